/* Data directory, and the signature file of the first version of filermeta
 * (read for migration into the store, then removed). */
#include "data_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "storage_internal.h"

struct fm_data_dir {
  char *path;
  int32_t signature;
};

static int errno_to_fm(int e)
{
  return e == EACCES || e == EPERM || e == EROFS ? FM_EPERM : FM_EIO;
}

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t errlen)
{
  char buf[PATH_MAX];
  if (path[0] == '\0') {
    snprintf(err, errlen, "data directory path is empty");
    return FM_EINVAL;
  }
  if (strlen(path) >= sizeof buf) {
    snprintf(err, errlen, "data directory path too long");
    return FM_EINVAL;
  }
  strcpy(buf, path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(err, errlen, "cannot create data directory %s: %s", buf, strerror(e));
        return errno_to_fm(e);
      }
      *p = saved;
      if (saved == '\0')
        break;
    }
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "data directory %s is not a directory", path);
    return FM_EIO;
  }
  if (access(path, W_OK | X_OK) != 0) {
    int e = errno;
    snprintf(err, errlen, "data directory %s is not writable: %s", path, strerror(e));
    return errno_to_fm(e);
  }
  return 0;
}

static int read_signature(const char *file, int32_t *sig, char *err, size_t errlen)
{
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return FM_ENOTFOUND;
    int e = errno;
    snprintf(err, errlen, "cannot read %s: %s", file, strerror(e));
    return errno_to_fm(e);
  }
  uint8_t b[5];
  ssize_t n = read(fd, b, sizeof b);
  int e = errno;
  close(fd);
  if (n < 0) {
    snprintf(err, errlen, "cannot read %s: %s", file, strerror(e));
    return errno_to_fm(e);
  }
  if (n != 4) {
    snprintf(err, errlen, "%s is corrupt (%zd bytes, expected 4); remove it only if this filer may take a new identity",
             file, n);
    return FM_EDECODE;
  }
  *sig = (int32_t)fm_storage__get_be32(b);
  if (*sig == 0) {
    /* 0 means "no signature" on the wire, so it can never be a filer's own */
    snprintf(err, errlen, "%s is corrupt (signature 0); remove it only if this filer may take a new identity", file);
    return FM_EDECODE;
  }
  return 0;
}

int fm_data_dir_open(const char *path, fm_data_dir **out, char *err, size_t errlen)
{
  int rc = make_dirs(path, err, errlen);
  if (rc != 0)
    return rc;
  fm_data_dir *d = calloc(1, sizeof *d);
  if (d == NULL || (d->path = strdup(path)) == NULL) {
    free(d);
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  char file[PATH_MAX];
  snprintf(file, sizeof file, "%s/%s", path, FM_SIGNATURE_FILE);
  rc = read_signature(file, &d->signature, err, errlen);
  if (rc == FM_ENOTFOUND) {
    d->signature = 0; /* nothing to migrate: the store creates the signature */
    rc = 0;
  }
  if (rc != 0) {
    fm_data_dir_free(d);
    return rc;
  }
  *out = d;
  return 0;
}

void fm_data_dir_free(fm_data_dir *d)
{
  if (d == NULL)
    return;
  free(d->path);
  free(d);
}

const char *fm_data_dir_path(const fm_data_dir *d)
{
  return d->path;
}

int32_t fm_data_dir_signature(const fm_data_dir *d)
{
  return d->signature;
}

int fm_data_dir_forget_signature(fm_data_dir *d)
{
  char file[PATH_MAX];
  snprintf(file, sizeof file, "%s/%s", d->path, FM_SIGNATURE_FILE);
  if (unlink(file) != 0 && errno != ENOENT)
    return FM_EIO;
  d->signature = 0;
  return 0;
}
