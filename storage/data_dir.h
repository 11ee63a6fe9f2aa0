/* The data directory (-dir): created if missing, checked writable, and home of
 * the filer signature (a random non-zero int32 kept in <dir>/filer.signature as
 * 4 bytes big-endian, so it survives restarts). Opened by server/main.c at start. */
#ifndef FM_DATA_DIR_H
#define FM_DATA_DIR_H

#include <stddef.h>
#include <stdint.h>

typedef struct fm_data_dir fm_data_dir;

/* Name of the signature file inside the data directory. */
#define FM_SIGNATURE_FILE "filer.signature"

/*
 * Opens (creating as needed, like mkdir -p) the data directory at `path`,
 * then loads or creates the signature. Returns 0, or FM_EINVAL (empty or too
 * long path), FM_EIO, FM_EPERM, FM_EDECODE (a damaged signature file, which is
 * never replaced) or FM_ENOMEM, with a one-line reason in `err`. Caller frees
 * with fm_data_dir_free.
 */
int fm_data_dir_open(const char *path, fm_data_dir **out, char *err, size_t errlen);
void fm_data_dir_free(fm_data_dir *d);

/* The directory path (borrowed, valid until fm_data_dir_free). */
const char *fm_data_dir_path(const fm_data_dir *d);

/* This filer's signature. */
int32_t fm_data_dir_signature(const fm_data_dir *d);

#endif
