/* The data directory (-dir): created if missing and checked writable. The
 * first filermeta kept the signature in <dir>/filer.signature (4 bytes big-
 * endian); it now lives in the store, and this module only reads the old file
 * so that main.c can migrate it. Opened by server/main.c at start. */
#ifndef FM_DATA_DIR_H
#define FM_DATA_DIR_H

#include <stddef.h>
#include <stdint.h>

typedef struct fm_data_dir fm_data_dir;

/* Name of the legacy signature file inside the data directory. */
#define FM_SIGNATURE_FILE "filer.signature"

/*
 * Opens (creating as needed, like mkdir -p) the data directory at `path`,
 * then reads the legacy signature file if there is one. Returns 0, or FM_EINVAL (empty or too
 * long path), FM_EIO, FM_EPERM, FM_EDECODE (a damaged signature file, which is
 * never replaced) or FM_ENOMEM, with a one-line reason in `err`. Caller frees
 * with fm_data_dir_free.
 */
int fm_data_dir_open(const char *path, fm_data_dir **out, char *err, size_t errlen);
void fm_data_dir_free(fm_data_dir *d);

/* The directory path (borrowed, valid until fm_data_dir_free). */
const char *fm_data_dir_path(const fm_data_dir *d);

/* The legacy signature file's value, or 0 when there is none. */
int32_t fm_data_dir_signature(const fm_data_dir *d);

/* Removes the legacy signature file once the store holds the signature.
 * Returns 0 or FM_EIO. */
int fm_data_dir_forget_signature(fm_data_dir *d);

#endif
