/* Method table kept as an array sorted by path and searched with bsearch;
 * the handful of services is derived from the paths as methods are added. */
#include "rpc_methods.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rpc_server.h"

struct fm_rpc_methods {
  const fm_rpc_method **methods; /* sorted by path */
  size_t count, cap;
  char **services; /* sorted, distinct */
  size_t nservices;
};

int fm_rpc_methods_new(fm_rpc_methods **out)
{
  fm_rpc_methods *t = calloc(1, sizeof *t);
  if (t == NULL)
    return FM_ENOMEM;
  *out = t;
  return 0;
}

void fm_rpc_methods_free(fm_rpc_methods *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nservices; i++)
    free(t->services[i]);
  free(t->services);
  free(t->methods);
  free(t);
}

bool fm_rpc_methods_valid_path(const char *path)
{
  if (path == NULL || path[0] != '/')
    return false;
  const char *slash = strchr(path + 1, '/');
  return slash != NULL && slash > path + 1 && slash[1] != '\0' && strchr(slash + 1, '/') == NULL;
}

/* Compares a length-delimited key with a NUL-terminated path, as strcmp would. */
static int cmp_key(const char *key, size_t len, const char *path)
{
  size_t plen = strlen(path);
  int c = memcmp(key, path, len < plen ? len : plen);
  if (c != 0)
    return c;
  return len < plen ? -1 : len > plen ? 1 : 0;
}

/* Index of the first method whose path is >= key. */
static size_t lower_bound(const fm_rpc_methods *t, const char *key, size_t len)
{
  size_t lo = 0, hi = t->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cmp_key(key, len, t->methods[mid]->path) > 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int add_service(fm_rpc_methods *t, const char *path)
{
  const char *start = path + 1;
  size_t len = (size_t)(strchr(start, '/') - start);
  size_t i = 0;
  for (; i < t->nservices; i++) {
    int c = cmp_key(start, len, t->services[i]);
    if (c == 0)
      return 0;
    if (c < 0)
      break;
  }
  char **grown = realloc(t->services, (t->nservices + 1) * sizeof *grown);
  if (grown == NULL)
    return FM_ENOMEM;
  t->services = grown;
  char *name = strndup(start, len);
  if (name == NULL)
    return FM_ENOMEM;
  memmove(&t->services[i + 1], &t->services[i], (t->nservices - i) * sizeof *t->services);
  t->services[i] = name;
  t->nservices++;
  return 0;
}

int fm_rpc_methods_add(fm_rpc_methods *t, const fm_rpc_method *m)
{
  if (!fm_rpc_methods_valid_path(m->path))
    return FM_EINVAL;
  size_t len = strlen(m->path);
  size_t at = lower_bound(t, m->path, len);
  if (at < t->count && strcmp(t->methods[at]->path, m->path) == 0)
    return FM_EEXIST;
  if (t->count == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    const fm_rpc_method **grown = realloc(t->methods, cap * sizeof *grown);
    if (grown == NULL)
      return FM_ENOMEM;
    t->methods = grown;
    t->cap = cap;
  }
  int rc = add_service(t, m->path);
  if (rc != 0)
    return rc;
  memmove(&t->methods[at + 1], &t->methods[at], (t->count - at) * sizeof *t->methods);
  t->methods[at] = m;
  t->count++;
  return 0;
}

int fm_rpc_methods_add_all(fm_rpc_methods *t, fm_rpc_method *methods, size_t n, void *ctx)
{
  for (size_t i = 0; i < n; i++) {
    methods[i].ctx = ctx;
    int rc = fm_rpc_methods_add(t, &methods[i]);
    if (rc != 0)
      return rc;
  }
  return 0;
}

long fm_rpc_methods_find_index(const fm_rpc_methods *t, const char *path, size_t len)
{
  size_t at = lower_bound(t, path, len);
  if (at < t->count && cmp_key(path, len, t->methods[at]->path) == 0)
    return (long)at;
  return -1;
}

const fm_rpc_method *fm_rpc_methods_find(const fm_rpc_methods *t, const char *path, size_t len)
{
  long at = fm_rpc_methods_find_index(t, path, len);
  return at >= 0 ? t->methods[at] : NULL;
}

size_t fm_rpc_methods_count(const fm_rpc_methods *t)
{
  return t->count;
}

const fm_rpc_method *fm_rpc_methods_at(const fm_rpc_methods *t, size_t i)
{
  return i < t->count ? t->methods[i] : NULL;
}

size_t fm_rpc_methods_service_count(const fm_rpc_methods *t)
{
  return t->nservices;
}

const char *fm_rpc_methods_service(const fm_rpc_methods *t, size_t i)
{
  return i < t->nservices ? t->services[i] : NULL;
}
