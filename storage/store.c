/*
 * The filer store over LevelDB's C API. LevelDB's handle, options and errptr
 * strings stay in this file: callers see fm_* codes and messages copied into
 * their own buffers.
 */
#include "store.h"

#include <leveldb/c.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "storage_internal.h"

struct fm_store {
  leveldb_t *db;
  leveldb_options_t *options;
  leveldb_cache_t *cache;
  leveldb_readoptions_t *read;
  leveldb_writeoptions_t *write;      /* never fsyncs */
  leveldb_writeoptions_t *write_sync; /* fsyncs LevelDB's log */
  bool sync;
  int64_t clock; /* highest event ts written (the "Mclock" key); writer thread only */
};

struct fm_store_batch {
  leveldb_writebatch_t *wb;
  int64_t clock; /* highest event ts put into this batch */
};

/* Copies a LevelDB error into err and frees it. Returns FM_EIO. */
static int take_error(char *lerr, const char *what, char *err, size_t errlen)
{
  snprintf(err, errlen, "store: %s: %s", what, lerr != NULL ? lerr : "unknown error");
  leveldb_free(lerr);
  return FM_EIO;
}

int fm_store_open(const char *dir, const fm_store_options *opt, fm_store **out, char *err, size_t errlen)
{
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/filer.db", dir) >= (int)sizeof path) {
    snprintf(err, errlen, "store path too long");
    return FM_EINVAL;
  }
  fm_store *s = calloc(1, sizeof *s);
  if (s == NULL)
    return FM_ENOMEM;
  s->sync = opt != NULL && opt->sync;
  s->options = leveldb_options_create();
  leveldb_options_set_create_if_missing(s->options, 1);
  leveldb_options_set_compression(s->options, leveldb_snappy_compression);
  leveldb_options_set_write_buffer_size(s->options, 4 << 20);
  if (opt != NULL && opt->cache_bytes > 0) {
    s->cache = leveldb_cache_create_lru(opt->cache_bytes);
    leveldb_options_set_cache(s->options, s->cache);
  }
  s->read = leveldb_readoptions_create();
  s->write = leveldb_writeoptions_create();
  leveldb_writeoptions_set_sync(s->write, 0);
  s->write_sync = leveldb_writeoptions_create();
  leveldb_writeoptions_set_sync(s->write_sync, 1);

  char *lerr = NULL;
  s->db = leveldb_open(s->options, path, &lerr);
  if (s->db == NULL) {
    int rc = FM_EIO;
    /* LevelDB words a held lock as "lock <path>/LOCK: already held by process"
     * (this process) or "...: Resource temporarily unavailable" (another one);
     * other errors merely mention the LOCK file because it is opened first */
    if (lerr != NULL && strstr(lerr, "lock ") != NULL &&
        (strstr(lerr, "already held") != NULL || strstr(lerr, "temporarily unavailable") != NULL)) {
      snprintf(err, errlen, "store is locked: %s is in use by another filermetad (%s)", path, lerr);
      leveldb_free(lerr);
      rc = FM_EBUSY;
    } else {
      take_error(lerr, "cannot open", err, errlen);
    }
    fm_store_free(s);
    return rc;
  }
  int rc = fm_store_last_ts(s, &s->clock, err, errlen);
  if (rc != 0) {
    fm_store_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void fm_store_free(fm_store *s)
{
  if (s == NULL)
    return;
  if (s->db != NULL)
    leveldb_close(s->db);
  if (s->read != NULL)
    leveldb_readoptions_destroy(s->read);
  if (s->write != NULL)
    leveldb_writeoptions_destroy(s->write);
  if (s->write_sync != NULL)
    leveldb_writeoptions_destroy(s->write_sync);
  if (s->options != NULL)
    leveldb_options_destroy(s->options);
  if (s->cache != NULL)
    leveldb_cache_destroy(s->cache);
  free(s);
}

void fm_store_value_free(void *value)
{
  leveldb_free(value);
}

bool fm_store_sync_enabled(const fm_store *s)
{
  return s->sync;
}

/* ---------------------------------------------------------------- reads */

static int get(fm_store *s, const fm_key *k, void **value, size_t *len, char *err, size_t errlen)
{
  char *lerr = NULL;
  size_t vlen = 0;
  char *v = leveldb_get(s->db, s->read, k->data, k->len, &vlen, &lerr);
  if (lerr != NULL)
    return take_error(lerr, "read", err, errlen);
  if (v == NULL)
    return FM_ENOTFOUND;
  *value = v;
  *len = vlen;
  return 0;
}

int fm_store_get_entry(fm_store *s, const char *dir, const char *name, void **value, size_t *len, char *err,
                       size_t errlen)
{
  fm_key k;
  if (fm_store__key_entry(&k, dir, name) != 0)
    return FM_ENOMEM;
  int rc = get(s, &k, value, len, err, errlen);
  fm_store__key_free(&k);
  return rc;
}

int fm_store_kv_get(fm_store *s, const void *key, size_t klen, void **value, size_t *len, char *err, size_t errlen)
{
  fm_key k;
  if (fm_store__key_kv(&k, key, klen) != 0)
    return FM_ENOMEM;
  int rc = get(s, &k, value, len, err, errlen);
  fm_store__key_free(&k);
  return rc;
}

static int iter_status(leveldb_iterator_t *it, char *err, size_t errlen)
{
  char *lerr = NULL;
  leveldb_iter_get_error(it, &lerr);
  leveldb_iter_destroy(it);
  return lerr != NULL ? take_error(lerr, "iterate", err, errlen) : 0;
}

int fm_store_list(fm_store *s, const char *dir, const char *start, bool inclusive, const char *prefix,
                  fm_store_list_fn fn, void *arg, char *err, size_t errlen)
{
  fm_key range, from;
  if (fm_store__key_entry(&range, dir, "") != 0)
    return FM_ENOMEM;
  /* start at the later of `start` and `prefix` */
  const char *seek = strcmp(start, prefix) > 0 ? start : prefix;
  if (fm_store__key_entry(&from, dir, seek) != 0) {
    fm_store__key_free(&range);
    return FM_ENOMEM;
  }
  /* fn may free or reuse what `start` points at (a caller's cursor), so the
   * comparison below works on a copy */
  size_t plen = strlen(prefix), slen = strlen(start);
  char *start_copy = strndup(start, slen);
  if (start_copy == NULL) {
    fm_store__key_free(&range);
    fm_store__key_free(&from);
    return FM_ENOMEM;
  }
  start = start_copy;
  leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->read);
  for (leveldb_iter_seek(it, from.data, from.len); leveldb_iter_valid(it); leveldb_iter_next(it)) {
    size_t klen = 0, vlen = 0;
    const char *key = leveldb_iter_key(it, &klen);
    if (klen < range.len || memcmp(key, range.data, range.len) != 0)
      break; /* past the directory */
    const char *name = key + range.len;
    size_t nlen = klen - range.len;
    if (nlen < plen || memcmp(name, prefix, plen) != 0)
      break; /* names are sorted: past the prefix */
    if (!inclusive && slen > 0 && nlen == slen && memcmp(name, start, slen) == 0)
      continue;
    const char *value = leveldb_iter_value(it, &vlen);
    if (!fn(arg, name, nlen, value, vlen))
      break;
  }
  fm_store__key_free(&range);
  fm_store__key_free(&from);
  free(start_copy);
  return iter_status(it, err, errlen);
}

int fm_store_has_children(fm_store *s, const char *dir, bool *has, char *err, size_t errlen)
{
  fm_key range;
  if (fm_store__key_entry(&range, dir, "") != 0)
    return FM_ENOMEM;
  leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->read);
  leveldb_iter_seek(it, range.data, range.len);
  *has = false;
  if (leveldb_iter_valid(it)) {
    size_t klen = 0;
    const char *key = leveldb_iter_key(it, &klen);
    *has = klen > range.len && memcmp(key, range.data, range.len) == 0;
  }
  fm_store__key_free(&range);
  return iter_status(it, err, errlen);
}

int fm_store_events(fm_store *s, int64_t after_ns, fm_store_event_fn fn, void *arg, char *err, size_t errlen)
{
  if (after_ns == INT64_MAX)
    return 0; /* nothing can be later */
  fm_key from;
  fm_store__key_event(&from, after_ns < 0 ? 0 : after_ns + 1);
  leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->read);
  for (leveldb_iter_seek(it, from.data, from.len); leveldb_iter_valid(it); leveldb_iter_next(it)) {
    size_t klen = 0, vlen = 0;
    const char *key = leveldb_iter_key(it, &klen);
    int64_t ts;
    if (klen == 0 || key[0] != FM_KEY_EVENT || fm_store__key_event_ts(key, klen, &ts) != 0)
      break;
    const char *value = leveldb_iter_value(it, &vlen);
    if (!fn(arg, ts, value, vlen))
      break;
  }
  return iter_status(it, err, errlen);
}

int fm_store_last_ts(fm_store *s, int64_t *ts_ns, char *err, size_t errlen)
{
  int64_t best = 0;
  /* the clock key survives the deletion of flushed write-ahead records */
  fm_key k = { .data = (char *)(uintptr_t)FM_KEY_CLOCK, .len = strlen(FM_KEY_CLOCK) };
  void *v = NULL;
  size_t len = 0;
  int rc = get(s, &k, &v, &len, err, errlen);
  if (rc == 0) {
    if (len == 8)
      best = (int64_t)fm_storage__get_be64(v);
    leveldb_free(v);
  } else if (rc != FM_ENOTFOUND) {
    return rc;
  }
  /* and the newest write-ahead record, in case it is newer */
  leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->read);
  const char next_range = FM_KEY_EVENT + 1;
  leveldb_iter_seek(it, &next_range, 1);
  if (leveldb_iter_valid(it))
    leveldb_iter_prev(it);
  else
    leveldb_iter_seek_to_last(it);
  if (leveldb_iter_valid(it)) {
    size_t klen = 0;
    const char *key = leveldb_iter_key(it, &klen);
    int64_t ts;
    if (fm_store__key_event_ts(key, klen, &ts) == 0 && ts > best)
      best = ts;
  }
  rc = iter_status(it, err, errlen);
  if (rc == 0)
    *ts_ns = best;
  return rc;
}

int fm_store_load_signature(fm_store *s, int32_t legacy, int32_t *sig, char *err, size_t errlen)
{
  const char *key = FM_STORE_SIGNATURE_KEY;
  void *v = NULL;
  size_t len = 0;
  int rc = fm_store_kv_get(s, key, strlen(key), &v, &len, err, errlen);
  if (rc == 0) {
    const uint8_t *b = v;
    int32_t have = len == 4 ? (int32_t)fm_storage__get_be32(b) : 0;
    leveldb_free(v);
    if (have != 0) {
      *sig = have;
      return 0;
    }
    /* as upstream: an empty or unusable value counts as missing */
  } else if (rc != FM_ENOTFOUND) {
    return rc;
  }
  int32_t fresh = legacy;
  while (fresh == 0) {
    if (getrandom(&fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh)
      fresh = (int32_t)(getpid() ^ time(NULL));
  }
  uint8_t b[4];
  fm_storage__put_be32(b, (uint32_t)fresh);
  fm_store_batch *batch = fm_store_batch_new();
  if (batch == NULL)
    return FM_ENOMEM;
  fm_store_batch_put_kv(batch, key, strlen(key), b, 4);
  char *lerr = NULL;
  leveldb_write(s->db, s->write_sync, batch->wb, &lerr);
  fm_store_batch_free(batch);
  if (lerr != NULL)
    return take_error(lerr, "write signature", err, errlen);
  *sig = fresh;
  return 0;
}

/* ---------------------------------------------------------------- writes */

fm_store_batch *fm_store_batch_new(void)
{
  fm_store_batch *b = calloc(1, sizeof *b);
  if (b == NULL)
    return NULL;
  b->wb = leveldb_writebatch_create();
  return b;
}

void fm_store_batch_free(fm_store_batch *b)
{
  if (b == NULL)
    return;
  leveldb_writebatch_destroy(b->wb);
  free(b);
}

void fm_store_batch_clear(fm_store_batch *b)
{
  leveldb_writebatch_clear(b->wb);
  b->clock = 0;
}

static void batch_put(fm_store_batch *b, const fm_key *k, const void *value, size_t len)
{
  leveldb_writebatch_put(b->wb, k->data, k->len, value, len);
}

void fm_store_batch_put_entry(fm_store_batch *b, const char *dir, const char *name, const void *value, size_t len)
{
  fm_key k;
  if (fm_store__key_entry(&k, dir, name) != 0)
    abort(); /* a few hundred bytes; nothing sensible is left to do */
  batch_put(b, &k, value, len);
  fm_store__key_free(&k);
}

void fm_store_batch_delete_entry(fm_store_batch *b, const char *dir, const char *name)
{
  fm_key k;
  if (fm_store__key_entry(&k, dir, name) != 0)
    abort();
  leveldb_writebatch_delete(b->wb, k.data, k.len);
  fm_store__key_free(&k);
}

void fm_store_batch_put_kv(fm_store_batch *b, const void *key, size_t klen, const void *value, size_t len)
{
  fm_key k;
  if (fm_store__key_kv(&k, key, klen) != 0)
    abort();
  batch_put(b, &k, value, len);
  fm_store__key_free(&k);
}

void fm_store_batch_delete_kv(fm_store_batch *b, const void *key, size_t klen)
{
  fm_key k;
  if (fm_store__key_kv(&k, key, klen) != 0)
    abort();
  leveldb_writebatch_delete(b->wb, k.data, k.len);
  fm_store__key_free(&k);
}

void fm_store_batch_put_event(fm_store_batch *b, int64_t ts_ns, const void *event, size_t len)
{
  fm_key k;
  fm_store__key_event(&k, ts_ns);
  batch_put(b, &k, event, len);
  if (ts_ns > b->clock)
    b->clock = ts_ns;
}

void fm_store_batch_delete_event(fm_store_batch *b, int64_t ts_ns)
{
  fm_key k;
  fm_store__key_event(&k, ts_ns);
  leveldb_writebatch_delete(b->wb, k.data, k.len);
}

void fm_store_batch_put_log_state(fm_store_batch *b, const fm_store_log_state *st)
{
  uint8_t v[24];
  fm_storage__put_be64(v, (uint64_t)st->flushed_ts_ns);
  fm_storage__put_be64(v + 8, (uint64_t)st->records);
  fm_storage__put_be64(v + 16, (uint64_t)st->retained_from_ns);
  leveldb_writebatch_put(b->wb, FM_KEY_LOG_STATE, strlen(FM_KEY_LOG_STATE), (const char *)v, sizeof v);
}

int fm_store_get_log_state(fm_store *s, fm_store_log_state *out, char *err, size_t errlen)
{
  *out = (fm_store_log_state){ 0 };
  fm_key k = { .data = (char *)(uintptr_t)FM_KEY_LOG_STATE, .len = strlen(FM_KEY_LOG_STATE) };
  void *v = NULL;
  size_t len = 0;
  int rc = get(s, &k, &v, &len, err, errlen);
  if (rc == FM_ENOTFOUND)
    return 0;
  if (rc != 0)
    return rc;
  if (len != 24) {
    leveldb_free(v);
    snprintf(err, errlen, "store: log state is %zu bytes, not 24", len);
    return FM_EDECODE;
  }
  out->flushed_ts_ns = (int64_t)fm_storage__get_be64(v);
  out->records = (int64_t)fm_storage__get_be64((const uint8_t *)v + 8);
  out->retained_from_ns = (int64_t)fm_storage__get_be64((const uint8_t *)v + 16);
  leveldb_free(v);
  return 0;
}

/* Adds the clock key to b when b holds an event later than any written
 * before, so the clock only ever moves forward. */
static void batch_add_clock(fm_store *s, fm_store_batch *b)
{
  if (b->clock <= s->clock)
    return;
  uint8_t v[8];
  fm_storage__put_be64(v, (uint64_t)b->clock);
  leveldb_writebatch_put(b->wb, FM_KEY_CLOCK, strlen(FM_KEY_CLOCK), (const char *)v, 8);
}

int fm_store_write(fm_store *s, fm_store_batch *b, char *err, size_t errlen)
{
  batch_add_clock(s, b);
  char *lerr = NULL;
  leveldb_write(s->db, s->write, b->wb, &lerr);
  if (lerr != NULL)
    return take_error(lerr, "write", err, errlen);
  if (b->clock > s->clock)
    s->clock = b->clock;
  return 0;
}

void fm_store_batch_append(fm_store_batch *dst, const fm_store_batch *src)
{
  leveldb_writebatch_append(dst->wb, src->wb);
  if (src->clock > dst->clock)
    dst->clock = src->clock;
}

int fm_store_sync(fm_store *s, fm_store_batch *group, char *err, size_t errlen)
{
  if (!s->sync)
    return 0;
  char *lerr = NULL;
  leveldb_write(s->db, s->write_sync, group->wb, &lerr);
  return lerr != NULL ? take_error(lerr, "sync", err, errlen) : 0;
}
