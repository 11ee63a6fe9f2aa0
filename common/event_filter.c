/* The path filter of a subscription: the request's path fields copied and checked, and Go's filepath.Join and
 * Clean on the event's names, as upstream computes the paths it compares. */
#include "event_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"

/* ================================================================ request */

static int copy_str(fm_event_str *dst, const char *src)
{
  if (src == NULL)
    src = "";
  size_t len = strlen(src);
  dst->s = malloc(len + 1);
  if (dst->s == NULL)
    return FM_ENOMEM;
  memcpy(dst->s, src, len + 1);
  dst->len = len;
  return 0;
}

/* Copies n strings into a new array after checking that each starts with '/'; `field` names them in messages. */
static int copy_paths(fm_event_str **out, size_t *n_out, char *const *src, size_t n, const char *field, char *err,
                      size_t errlen)
{
  *out = NULL;
  *n_out = 0;
  for (size_t i = 0; i < n; i++) {
    const char *s = src[i] != NULL ? src[i] : "";
    if (s[0] != '/') {
      snprintf(err, errlen, "%s[%zu] \"%.200s\" does not start with '/'", field, i, s);
      return FM_EINVAL;
    }
  }
  if (n == 0)
    return 0;
  fm_event_str *a = calloc(n, sizeof *a);
  if (a == NULL)
    goto oom;
  *out = a;
  for (size_t i = 0; i < n; i++) {
    if (copy_str(&a[i], src[i]) != 0)
      goto oom;
    *n_out = i + 1;
  }
  return 0;
oom:
  snprintf(err, errlen, "out of memory");
  return FM_ENOMEM;
}

static void free_paths(fm_event_str *a, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(a[i].s);
  free(a);
}

int fm_event_filter_init(fm_event_filter *f, const char *path_prefix, char *const *path_prefixes, size_t n_prefixes,
                         char *const *directories, size_t n_directories, char *err, size_t errlen)
{
  int rc;
  *f = (fm_event_filter){ 0 };
  /* an empty path_prefix is the proto3 default, "not given": it matches everything (§5.3) */
  if (path_prefix != NULL && path_prefix[0] != '\0' && path_prefix[0] != '/') {
    snprintf(err, errlen, "path_prefix \"%.200s\" does not start with '/'", path_prefix);
    return FM_EINVAL;
  }
  if (copy_str(&f->path_prefix, path_prefix) != 0) {
    snprintf(err, errlen, "out of memory");
    rc = FM_ENOMEM;
    goto err;
  }
  rc = copy_paths(&f->prefixes, &f->n_prefixes, path_prefixes, n_prefixes, "path_prefixes", err, errlen);
  if (rc != 0)
    goto err;
  rc = copy_paths(&f->directories, &f->n_directories, directories, n_directories, "directories", err, errlen);
  if (rc != 0)
    goto err;
  return 0;
err:
  fm_event_filter_destroy(f);
  return rc;
}

void fm_event_filter_destroy(fm_event_filter *f)
{
  free(f->path_prefix.s);
  free_paths(f->prefixes, f->n_prefixes);
  free_paths(f->directories, f->n_directories);
  *f = (fm_event_filter){ 0 };
}

/*
 * Go's filepath.Join(dir, name) on a Unix system, which upstream's util.Join is: the non-empty elements joined with
 * '/' ("" when both are empty), then cleaned lexically as Go's Clean does (duplicate slashes, "." and ".." removed,
 * no trailing slash, "." for an empty relative result). The result lives in the arena; *len_out is its length.
 * NULL when the arena cannot allocate.
 */
/* True when Clean(Join(dir, name)) is just dir + "/" + name (dir "/": "/" + name), which is the common case: dir is
 * rooted and already clean (no empty, "." or ".." element, no trailing slash but in "/"), and name is one element
 * other than "." and "..". */
static bool plain_join(const char *dir, size_t dl, const char *name, size_t nl)
{
  if (dl == 0 || dir[0] != '/' || nl == 0)
    return false;
  if (dl > 1 && dir[dl - 1] == '/')
    return false;
  for (size_t i = 0; i + 1 < dl; i++) {
    if (dir[i] != '/')
      continue;
    const char *e = dir + i + 1; /* an element starts here: not empty, ".", ".." */
    size_t rem = dl - i - 1;
    if (e[0] == '/' || (e[0] == '.' && (rem == 1 || e[1] == '/')) ||
        (e[0] == '.' && e[1] == '.' && (rem == 2 || e[2] == '/')))
      return false;
  }
  if (memchr(name, '/', nl) != NULL)
    return false;
  return !(name[0] == '.' && (nl == 1 || (nl == 2 && name[1] == '.')));
}

static char *clean_join(fm_arena *a, const char *dir, const char *name, size_t *len_out)
{
  size_t dl = strlen(dir), nl = strlen(name);
  if (plain_join(dir, dl, name, nl)) {
    size_t at = dl > 1 ? dl : 0;
    char *out = fm_arena_alloc(a, at + nl + 2);
    if (out == NULL)
      return NULL;
    memcpy(out, dir, at);
    out[at] = '/';
    memcpy(out + at + 1, name, nl);
    out[at + 1 + nl] = '\0';
    *len_out = at + 1 + nl;
    return out;
  }
  if (dl == 0 && nl == 0) {
    *len_out = 0;
    return (char *)"";
  }
  char *in = fm_arena_alloc(a, dl + nl + 2);
  char *out = fm_arena_alloc(a, dl + nl + 2);
  if (in == NULL || out == NULL)
    return NULL;
  size_t n = 0;
  memcpy(in, dir, dl);
  n = dl;
  if (dl > 0 && nl > 0)
    in[n++] = '/';
  memcpy(in + n, name, nl);
  n += nl;

  bool rooted = in[0] == '/';
  size_t r = 0, w = 0, dotdot = 0;
  if (rooted) {
    out[w++] = '/';
    r = 1;
    dotdot = 1;
  }
  while (r < n) {
    if (in[r] == '/') {
      r++;
    } else if (in[r] == '.' && (r + 1 == n || in[r + 1] == '/')) {
      r++;
    } else if (in[r] == '.' && in[r + 1] == '.' && (r + 2 == n || in[r + 2] == '/')) {
      r += 2;
      if (w > dotdot) {
        /* back up to the previous '/' */
        w--;
        while (w > dotdot && out[w] != '/')
          w--;
      } else if (!rooted) {
        if (w > 0)
          out[w++] = '/';
        out[w++] = '.';
        out[w++] = '.';
        dotdot = w;
      }
    } else {
      if ((rooted && w != 1) || (!rooted && w != 0))
        out[w++] = '/';
      while (r < n && in[r] != '/')
        out[w++] = in[r++];
    }
  }
  if (w == 0)
    out[w++] = '.';
  out[w] = '\0';
  *len_out = w;
  return out;
}

static bool has_prefix(const char *s, size_t len, const fm_event_str *p)
{
  return len >= p->len && memcmp(s, p->s, p->len) == 0;
}

/* §5.3 item 3 for one (path, dir) pair: any path_prefixes element is a byte prefix of the path, or dir equals any
 * directories element, or path_prefix (possibly empty) is a byte prefix of the path. */
static bool pair_matches(const fm_event_filter *f, const char *path, size_t path_len, const char *dir)
{
  for (size_t i = 0; i < f->n_prefixes; i++)
    if (has_prefix(path, path_len, &f->prefixes[i]))
      return true;
  if (f->n_directories > 0) {
    size_t dl = strlen(dir);
    for (size_t i = 0; i < f->n_directories; i++)
      if (f->directories[i].len == dl && memcmp(f->directories[i].s, dir, dl) == 0)
        return true;
  }
  return has_prefix(path, path_len, &f->path_prefix);
}

static const char *str_or_empty(const char *s)
{
  return s != NULL ? s : "";
}

/* ================================================================ events */

int fm_event_filter_check(const fm_event_filter *f, const FilerPb__SubscribeMetadataResponse *m, fm_arena *scratch,
                          fm_event_verdict *out)
{
  const FilerPb__EventNotification *en = m->event_notification;
  const char *dir = str_or_empty(m->directory);
  const char *src_name = en->old_entry != NULL   ? str_or_empty(en->old_entry->name)
                         : en->new_entry != NULL ? str_or_empty(en->new_entry->name)
                                                 : "";
  size_t src_len;
  const char *src = clean_join(scratch, dir, src_name, &src_len);
  if (src == NULL)
    return FM_ENOMEM;
  if (src_len >= sizeof FM_EVENT_SYSTEM_LOG_PREFIX - 1 &&
      memcmp(src, FM_EVENT_SYSTEM_LOG_PREFIX, sizeof FM_EVENT_SYSTEM_LOG_PREFIX - 1) == 0) {
    *out = FM_EVENT_SYSTEM_LOG;
    return 0;
  }
  bool match = pair_matches(f, src, src_len, dir);
  if (!match && en->new_entry != NULL) {
    const char *npp = str_or_empty(en->new_parent_path);
    const char *tdir = npp[0] != '\0' ? npp : dir;
    size_t dst_len;
    const char *dst = clean_join(scratch, tdir, str_or_empty(en->new_entry->name), &dst_len);
    if (dst == NULL)
      return FM_ENOMEM;
    match = pair_matches(f, dst, dst_len, tdir);
  }
  *out = match ? FM_EVENT_MATCH : FM_EVENT_NO_MATCH;
  return 0;
}
