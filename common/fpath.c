/* Filer path rules. */
#include "fpath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int fm_path_check_dir(const char *dir, size_t len, const char *field, char **out, char *err, size_t errlen)
{
  if (len == 0 || dir[0] != '/') {
    snprintf(err, errlen, "%s \"%.200s\" is not an absolute path", field, len ? dir : "");
    return FM_EINVAL;
  }
  if (memchr(dir, '\0', len) != NULL) {
    snprintf(err, errlen, "%s contains a NUL byte", field);
    return FM_EINVAL;
  }
  while (len > 1 && dir[len - 1] == '/')
    len--;
  /* every component between slashes must be a valid name */
  for (size_t i = 1; i < len;) {
    const char *c = dir + i;
    const char *slash = memchr(c, '/', len - i);
    size_t clen = slash ? (size_t)(slash - c) : len - i;
    if (clen == 0 || (clen == 1 && c[0] == '.') || (clen == 2 && c[0] == '.' && c[1] == '.')) {
      snprintf(err, errlen, "%s \"%.200s\" has an empty, \".\" or \"..\" component", field, dir);
      return FM_EINVAL;
    }
    i += clen + 1;
  }
  char *copy = strndup(dir, len);
  if (copy == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  *out = copy;
  return 0;
}

int fm_path_check_name(const char *name, size_t len, const char *field, char *err, size_t errlen)
{
  if (len == 0) {
    snprintf(err, errlen, "%s is empty", field);
    return FM_EINVAL;
  }
  if (memchr(name, '\0', len) != NULL || memchr(name, '/', len) != NULL) {
    snprintf(err, errlen, "%s \"%.200s\" contains '/' or a NUL byte", field, name);
    return FM_EINVAL;
  }
  if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
    snprintf(err, errlen, "%s cannot be \"%s\"", field, name);
    return FM_EINVAL;
  }
  if (len > FM_NAME_MAX) {
    snprintf(err, errlen, "entry name too long");
    return FM_ETOOBIG;
  }
  return 0;
}

char *fm_path_join(const char *dir, const char *name)
{
  size_t dl = strlen(dir), nl = strlen(name);
  bool root = dl == 1 && dir[0] == '/';
  char *p = malloc(dl + nl + 2);
  if (p == NULL)
    return NULL;
  memcpy(p, dir, dl);
  size_t at = dl;
  if (!root)
    p[at++] = '/';
  memcpy(p + at, name, nl + 1);
  return p;
}

char *fm_path_parent(const char *full, const char **name)
{
  const char *slash = strrchr(full, '/');
  if (slash == NULL) { /* not a full path; treat as a name under the root */
    *name = full;
    return strdup("/");
  }
  *name = slash + 1;
  if (slash == full)
    return strdup("/");
  return strndup(full, (size_t)(slash - full));
}

bool fm_path_is_under(const char *path, const char *prefix)
{
  size_t pl = strlen(prefix);
  while (pl > 1 && prefix[pl - 1] == '/')
    pl--;
  if (strncmp(path, prefix, pl) != 0)
    return false;
  return path[pl] == '\0' || path[pl] == '/' || (pl == 1 && prefix[0] == '/');
}
