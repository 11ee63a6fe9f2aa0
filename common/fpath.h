/* Filer paths: validation of directories and names as clients send them, and
 * joining/splitting full paths. Leaf module; any thread. */
#ifndef FM_FPATH_H
#define FM_FPATH_H

#include <stdbool.h>
#include <stddef.h>

/* The directory bit of FuseAttributes.file_mode, which carries Go's os.FileMode
 * (os.ModeDir), as SeaweedFS clients set and read it. */
#define FM_MODE_DIR 0x80000000u

/* Longest name, in bytes, a filer entry may have (ENTRY_NAME_TOO_LONG beyond). */
#define FM_NAME_MAX 255

/*
 * Checks an absolute directory path: starts with '/', no empty, "." or ".."
 * component, no NUL (`len` is the byte length, so an embedded NUL is seen).
 * A trailing '/' is tolerated. On success *out is a malloc'ed normalised copy
 * (no trailing '/', except the root "/"); caller frees. Returns 0, or FM_EINVAL
 * with a reason naming `field` in err.
 */
int fm_path_check_dir(const char *dir, size_t len, const char *field, char **out, char *err, size_t errlen);

/* Checks an entry name: non-empty, no '/', no NUL, not "." or "..". Returns 0,
 * FM_EINVAL with a reason naming `field`, or FM_ETOOBIG when longer than
 * FM_NAME_MAX bytes (the name is otherwise valid). */
int fm_path_check_name(const char *name, size_t len, const char *field, char *err, size_t errlen);

/* "/dir/name" (or "/name" under the root); malloc'ed, caller frees; NULL on OOM. */
char *fm_path_join(const char *dir, const char *name);

/* Parent directory of a normalised full path ("/a/b" -> "/a", "/a" -> "/");
 * malloc'ed, caller frees. *name points into `full` at the last component. */
char *fm_path_parent(const char *full, const char **name);

/* True if `path` equals `prefix` or lies under it on a '/' boundary. */
bool fm_path_is_under(const char *path, const char *prefix);

#endif
