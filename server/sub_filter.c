/* The per-stream event filter: request validation, the decision for one encoded event, and the re-encoding that
 * appends this filer's signature. */
#include "sub_filter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filer.pb-c.h"

/* The first arena block: a typical event (a few hundred bytes encoded) decodes into well under this. */
#define FILTER_ARENA_MIN ((size_t)8 << 10)
/* The most the arena keeps between events; a bigger event's memory is returned after its check. */
#define FILTER_ARENA_KEEP ((size_t)1 << 20)

/* ================================================================ request */

static int copy_str(fm_sub_str *dst, const char *src)
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
static int copy_paths(fm_sub_str **out, size_t *n_out, char **src, size_t n, const char *field, char *err,
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
  fm_sub_str *a = calloc(n, sizeof *a);
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

static void free_paths(fm_sub_str *a, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(a[i].s);
  free(a);
}

int fm_sub_filter_init(fm_sub_filter *f, const FilerPb__SubscribeMetadataRequest *req, int32_t own_signature, char *err,
                       size_t errlen)
{
  int rc;
  *f = (fm_sub_filter){ 0 };
  if (req->since_ns < 0) {
    snprintf(err, errlen, "since_ns %" PRId64 " is negative", req->since_ns);
    return FM_EINVAL;
  }
  if (req->until_ns < 0) {
    snprintf(err, errlen, "until_ns %" PRId64 " is negative", req->until_ns);
    return FM_EINVAL;
  }
  if (req->until_ns > 0 && req->until_ns < req->since_ns) {
    snprintf(err, errlen, "until_ns %" PRId64 " is before since_ns %" PRId64, req->until_ns, req->since_ns);
    return FM_EINVAL;
  }
  /* an empty path_prefix is the proto3 default, "not given": it matches everything (§5.3) */
  if (req->path_prefix != NULL && req->path_prefix[0] != '\0' && req->path_prefix[0] != '/') {
    snprintf(err, errlen, "path_prefix \"%.200s\" does not start with '/'", req->path_prefix);
    return FM_EINVAL;
  }
  if (copy_str(&f->path_prefix, req->path_prefix) != 0) {
    snprintf(err, errlen, "out of memory");
    rc = FM_ENOMEM;
    goto err;
  }
  rc = copy_paths(&f->prefixes, &f->n_prefixes, req->path_prefixes, req->n_path_prefixes, "path_prefixes", err, errlen);
  if (rc != 0)
    goto err;
  rc = copy_paths(&f->directories, &f->n_directories, req->directories, req->n_directories, "directories", err, errlen);
  if (rc != 0)
    goto err;
  f->signature = req->signature;
  f->own_signature = own_signature;
  f->since_ns = req->since_ns;
  f->until_ns = req->until_ns;
  fm_arena_init(&f->arena, FILTER_ARENA_MIN, FILTER_ARENA_KEEP);
  return 0;
err:
  fm_sub_filter_destroy(f);
  return rc;
}

void fm_sub_filter_destroy(fm_sub_filter *f)
{
  free(f->path_prefix.s);
  free_paths(f->prefixes, f->n_prefixes);
  free_paths(f->directories, f->n_directories);
  fm_arena_destroy(&f->arena);
  free(f->out);
  *f = (fm_sub_filter){ 0 };
}

/* ================================================================ paths */

/*
 * Go's filepath.Join(dir, name) on a Unix system, which upstream's util.Join is: the non-empty elements joined with
 * '/' ("" when both are empty), then cleaned lexically as Go's Clean does (duplicate slashes, "." and ".." removed,
 * no trailing slash, "." for an empty relative result). The result lives in the arena; *len_out is its length.
 * NULL when the arena cannot allocate.
 */
static char *clean_join(fm_arena *a, const char *dir, const char *name, size_t *len_out)
{
  size_t dl = strlen(dir), nl = strlen(name);
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

static bool has_prefix(const char *s, size_t len, const fm_sub_str *p)
{
  return len >= p->len && memcmp(s, p->s, p->len) == 0;
}

/* §5.3 item 3 for one (path, dir) pair: any path_prefixes element is a byte prefix of the path, or dir equals any
 * directories element, or path_prefix (possibly empty) is a byte prefix of the path. */
static bool pair_matches(const fm_sub_filter *f, const char *path, size_t path_len, const char *dir)
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

/* Packs `m` with this filer's signature appended to its notification into f->out. */
static int reencode(fm_sub_filter *f, FilerPb__SubscribeMetadataResponse *m, fm_sub_result *res, char *err,
                    size_t errlen)
{
  FilerPb__EventNotification *en = m->event_notification;
  int32_t *sigs = fm_arena_alloc(&f->arena, (en->n_signatures + 1) * sizeof *sigs);
  if (sigs == NULL)
    goto oom;
  if (en->n_signatures > 0)
    memcpy(sigs, en->signatures, en->n_signatures * sizeof *sigs);
  sigs[en->n_signatures] = f->own_signature;
  en->signatures = sigs;
  en->n_signatures++;
  size_t size = filer_pb__subscribe_metadata_response__get_packed_size(m);
  if (size > f->out_cap) {
    uint8_t *p = realloc(f->out, size);
    if (p == NULL)
      goto oom;
    f->out = p;
    f->out_cap = size;
  }
  res->len = filer_pb__subscribe_metadata_response__pack(m, f->out);
  res->bytes = f->out;
  res->reencoded = true;
  return 0;
oom:
  snprintf(err, errlen, "out of memory appending the filer signature to an event");
  return FM_ENOMEM;
}

/* The decision of fm_sub_filter_check, without the progress count. */
static int decide(fm_sub_filter *f, const uint8_t *event, size_t len, fm_sub_result *res, char *err, size_t errlen)
{
  fm_arena_reset(&f->arena);
  ProtobufCAllocator alloc = fm_arena_allocator(&f->arena);
  FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(&alloc, len, event);
  if (m == NULL) {
    if (fm_arena_failed(&f->arena)) {
      snprintf(err, errlen, "out of memory decoding an event of %zu bytes", len);
      return FM_ENOMEM;
    }
    snprintf(err, errlen, "event of %zu bytes does not decode as SubscribeMetadataResponse", len);
    return FM_EDECODE;
  }
  res->ts_ns = m->ts_ns;

  /* §5.3 item 4 (§5.4), first: see the header */
  if (m->ts_ns <= f->since_ns) {
    res->verdict = FM_SUB_BEFORE_SINCE;
    return 0;
  }
  if (f->until_ns > 0 && m->ts_ns > f->until_ns) {
    res->verdict = FM_SUB_AFTER_UNTIL;
    return 0;
  }
  FilerPb__EventNotification *en = m->event_notification;
  if (en == NULL) {
    res->verdict = FM_SUB_SKIP_NOT_EVENT;
    return 0;
  }

  /* 1. signature loop prevention */
  bool has_own = false;
  for (size_t i = 0; i < en->n_signatures; i++) {
    if (f->signature != 0 && en->signatures[i] == f->signature) {
      res->verdict = FM_SUB_SKIP_SIGNATURE;
      return 0;
    }
    if (en->signatures[i] == f->own_signature)
      has_own = true;
  }

  /* 2. system log exclusion, on the source path */
  const char *dir = str_or_empty(m->directory);
  const char *src_name = en->old_entry != NULL   ? str_or_empty(en->old_entry->name)
                         : en->new_entry != NULL ? str_or_empty(en->new_entry->name)
                                                 : "";
  size_t src_len;
  const char *src = clean_join(&f->arena, dir, src_name, &src_len);
  if (src == NULL)
    goto oom;
  if (src_len >= sizeof FM_SUB_SYSTEM_LOG_PREFIX - 1 &&
      memcmp(src, FM_SUB_SYSTEM_LOG_PREFIX, sizeof FM_SUB_SYSTEM_LOG_PREFIX - 1) == 0) {
    res->verdict = FM_SUB_SKIP_SYSTEM_LOG;
    return 0;
  }

  /* 3. path match: the source pair, or the target pair of an event with a new entry */
  bool match = pair_matches(f, src, src_len, dir);
  if (!match && en->new_entry != NULL) {
    const char *npp = str_or_empty(en->new_parent_path);
    const char *tdir = npp[0] != '\0' ? npp : dir;
    size_t dst_len;
    const char *dst = clean_join(&f->arena, tdir, str_or_empty(en->new_entry->name), &dst_len);
    if (dst == NULL)
      goto oom;
    match = pair_matches(f, dst, dst_len, tdir);
  }
  if (!match) {
    res->verdict = FM_SUB_SKIP_PATH;
    return 0;
  }

  res->verdict = FM_SUB_DELIVER;
  if (has_own) {
    res->bytes = event;
    res->len = len;
    return 0;
  }
  return reencode(f, m, res, err, errlen);
oom:
  snprintf(err, errlen, "out of memory filtering an event");
  return FM_ENOMEM;
}

int fm_sub_filter_check(fm_sub_filter *f, const uint8_t *event, size_t len, fm_sub_result *res, char *err,
                        size_t errlen)
{
  *res = (fm_sub_result){ 0 };
  int rc = decide(f, event, len, res, err, errlen);
  if (rc != 0) {
    *res = (fm_sub_result){ 0 };
    return rc;
  }
  switch (res->verdict) {
  case FM_SUB_BEFORE_SINCE:
  case FM_SUB_AFTER_UNTIL:
    break;
  case FM_SUB_DELIVER:
    f->unsynced = 0;
    f->last_examined_ts = res->ts_ns;
    break;
  case FM_SUB_SKIP_SIGNATURE:
  case FM_SUB_SKIP_SYSTEM_LOG:
  case FM_SUB_SKIP_PATH:
  case FM_SUB_SKIP_NOT_EVENT:
    f->unsynced++;
    f->last_examined_ts = res->ts_ns;
    break;
  }
  return 0;
}

bool fm_sub_filter_marker_due(const fm_sub_filter *f, int64_t *ts_ns)
{
  if (f->unsynced <= FM_SUB_MAX_UNSYNCED)
    return false;
  *ts_ns = f->last_examined_ts;
  return true;
}

void fm_sub_filter_marker_sent(fm_sub_filter *f)
{
  f->unsynced = 0;
}
