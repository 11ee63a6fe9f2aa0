/* Unit tests for server/log_flusher.h over a real store, chunk store, MetaLogBuffer and filer: write-ahead records
 * become per-minute log files cut into chunks, the records leave the write-ahead log in the same batch, a crash
 * between flushes gives byte-identical records, recovery fills the buffer, retention removes old days. The
 * write-ahead records are written directly, with chosen timestamps, as a crashed server would have left them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunk_store.h"
#include "clock.h"
#include "error.h"
#include "fid.h"
#include "filer.h"
#include "filer.pb-c.h"
#include "log_buffer.h"
#include "log_file.h"
#include "log_flusher.h"
#include "log_record.h"
#include "store.h"

#define SIG 0x5eed

/* 2024-03-01 00:00:00 UTC */
#define DAY1 (INT64_C(1709251200) * 1000000000)
#define MIN FM_NS_PER_MINUTE
#define SEC INT64_C(1000000000)

typedef struct fixture {
  char base[64];
  char volumes[96];
  fm_store *store;
  fm_chunk_store *chunks;
  fm_logbuf *logbuf;
  fm_filer *filer;
  fm_log_flusher *flusher;
  size_t recovered;
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->base, sizeof f->base, "/tmp/fm_flusher_XXXXXX");
  if (mkdtemp(f->base) == NULL)
    return -1;
  snprintf(f->volumes, sizeof f->volumes, "%s/volumes", f->base);
  char err[FM_ERR_LEN];
  fm_store_options opt = { 0 };
  if (fm_store_open(f->base, &opt, &f->store, err, sizeof err) != 0 ||
      fm_chunk_store_open(f->volumes, 0, NULL, &f->chunks, err, sizeof err) != 0)
    return -1;
  *state = f;
  return 0;
}

/* Stops a running server: flusher (final pass), buffer, filer. */
static void stop_server(fixture *f)
{
  fm_log_flusher_stop(f->flusher);
  if (f->logbuf != NULL)
    fm_logbuf_shutdown(f->logbuf);
  fm_filer_free(f->filer);
  fm_log_flusher_free(f->flusher);
  fm_logbuf_free(f->logbuf);
  f->flusher = NULL;
  f->filer = NULL;
  f->logbuf = NULL;
}

static int teardown(void **state)
{
  fixture *f = *state;
  stop_server(f);
  fm_chunk_store_free(f->chunks);
  fm_store_free(f->store);
  nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* Starts a "server" as main.c does: buffer (buffer_bytes, 0 for the default), recovery, filer, flusher. */
static void start_server_sized(fixture *f, size_t buffer_bytes, size_t chunk_bytes, int retention_days)
{
  char err[FM_ERR_LEN] = "";
  fm_logbuf_options lopt = { .size_bytes = buffer_bytes };
  assert_int_equal(fm_logbuf_new(&lopt, &f->logbuf), 0);
  assert_int_equal(fm_log_flusher_recover(f->store, f->logbuf, &f->recovered, err, sizeof err), 0);
  assert_int_equal(fm_filer_new(f->store, SIG, &f->filer, err, sizeof err), 0);
  fm_filer_set_event_hook(f->filer, fm_logbuf_event_hook, f->logbuf);
  fm_log_flusher_config cfg = {
    .filer = f->filer,
    .store = f->store,
    .chunks = f->chunks,
    .logbuf = f->logbuf,
    .filer_id = fm_log_flusher_new_filer_id(),
    .interval_ns = 3600 * SEC, /* only the first and the final pass run */
    .chunk_bytes = chunk_bytes,
    .retention_days = retention_days,
  };
  assert_int_equal(fm_log_flusher_start(&cfg, &f->flusher, err, sizeof err), 0);
}

static void start_server(fixture *f, size_t chunk_bytes, int retention_days)
{
  start_server_sized(f, 0, chunk_bytes, retention_days);
}

/* An event as the filer would have logged it: a create of <dir>/f<i>. Caller frees. */
static uint8_t *make_event(int64_t ts, const char *dir, int i, size_t pad, size_t *len)
{
  char name[32];
  snprintf(name, sizeof name, "f%d", i);
  char *content = calloc(1, pad + 1);
  memset(content, 'x', pad);
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.name = name;
  e.content.data = (uint8_t *)content;
  e.content.len = pad;
  int32_t sig = SIG;
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  en.new_entry = &e;
  en.new_parent_path = (char *)dir;
  en.n_signatures = 1;
  en.signatures = &sig;
  FilerPb__SubscribeMetadataResponse ev = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  ev.directory = (char *)dir;
  ev.event_notification = &en;
  ev.ts_ns = ts;
  *len = filer_pb__subscribe_metadata_response__get_packed_size(&ev);
  uint8_t *out = malloc(*len);
  filer_pb__subscribe_metadata_response__pack(&ev, out);
  free(content);
  return out;
}

/* Writes write-ahead records as a server that died before flushing them would have left them. */
static void put_wal(fixture *f, const int64_t *ts, size_t n, size_t pad)
{
  fm_store_batch *b = fm_store_batch_new();
  for (size_t i = 0; i < n; i++) {
    size_t len;
    int k = (int)(ts[i] % 1000003); /* the event depends on its ts only */
    uint8_t *ev = make_event(ts[i], k % 2 ? "/a/b" : "/c", k, pad, &len);
    fm_store_batch_put_event(b, ts[i], ev, len);
    free(ev);
  }
  char err[FM_ERR_LEN];
  assert_int_equal(fm_store_write(f->store, b, err, sizeof err), 0);
  fm_store_batch_free(b);
}

static bool count_wal(void *arg, int64_t ts, const void *ev, size_t len)
{
  (void)ts;
  (void)ev;
  (void)len;
  (*(size_t *)arg)++;
  return true;
}

static size_t wal_count(fixture *f)
{
  size_t n = 0;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_store_events(f->store, 0, count_wal, &n, err, sizeof err), 0);
  return n;
}

/* ---- reading the log files back, independently of the flusher ---- */

typedef struct names {
  char *v[256];
  size_t n;
} names;

static bool collect_name(void *arg, const char *name, size_t nlen, const void *value, size_t len)
{
  (void)value;
  (void)len;
  names *l = arg;
  assert_true(l->n < 256);
  l->v[l->n++] = strndup(name, nlen);
  return true;
}

static void list_names(fixture *f, const char *dir, names *out)
{
  out->n = 0;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_store_list(f->store, dir, "", true, "", collect_name, out, err, sizeof err), 0);
}

static void free_names(names *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  l->n = 0;
}

/* One record as found in a file. */
typedef struct found {
  int64_t ts, offset;
  uint8_t *raw;
  size_t raw_len;
  char file[64];
} found;

typedef struct found_list {
  found v[4096];
  size_t n;
} found_list;

static FilerPb__Entry *get_file(fixture *f, const char *dir, const char *name)
{
  void *v = NULL;
  size_t len = 0;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_store_get_entry(f->store, dir, name, &v, &len, err, sizeof err), 0);
  FilerPb__Entry *e = filer_pb__entry__unpack(NULL, len, v);
  fm_store_value_free(v);
  assert_non_null(e);
  return e;
}

/* Reads one file's chunks (in offset order, contiguous) and checks its size and chunk bound. */
static void read_file(fixture *f, const char *day, const char *name, size_t chunk_bytes, found_list *out)
{
  FilerPb__Entry *e = get_file(f, day, name);
  assert_false(e->is_directory);
  assert_non_null(e->attributes);
  uint8_t *all = NULL;
  size_t total = 0;
  for (size_t i = 0; i < e->n_chunks; i++) {
    const FilerPb__FileChunk *c = e->chunks[i];
    assert_int_equal(c->offset, (int64_t)total); /* appended in order, no gap */
    fm_fid fid;
    assert_int_equal(fm_fid_parse(c->file_id, strlen(c->file_id), &fid), 0);
    void *data = NULL;
    size_t len = 0;
    char err[FM_ERR_LEN];
    assert_int_equal(fm_chunk_store_read(f->chunks, &fid, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, c->size);
    assert_true(c->e_tag != NULL && strlen(c->e_tag) == 24); /* base64 MD5 */
    /* each chunk holds whole records: it decodes on its own */
    fm_log_reader r;
    fm_log_reader_init(&r, data, len, 0);
    fm_log_record rec;
    size_t nrec = 0;
    int rc;
    while ((rc = fm_log_reader_next(&r, &rec, err, sizeof err)) == 0)
      nrec++;
    assert_int_equal(rc, FM_ENOTFOUND);
    fm_log_reader_destroy(&r);
    assert_true(len <= chunk_bytes || nrec == 1);
    all = realloc(all, total + len);
    memcpy(all + total, data, len);
    total += len;
    free(data);
  }
  assert_int_equal(e->attributes->file_size, total);
  assert_int_equal(e->attributes->file_mode, 0644);
  filer_pb__entry__free_unpacked(e, NULL);

  fm_log_reader r;
  fm_log_reader_init(&r, all, total, 0);
  fm_log_record rec;
  char err[FM_ERR_LEN];
  int rc;
  while ((rc = fm_log_reader_next(&r, &rec, err, sizeof err)) == 0) {
    assert_true(out->n < 4096);
    found *x = &out->v[out->n++];
    x->ts = rec.ts_ns;
    x->offset = rec.offset;
    x->raw = malloc(rec.raw_len);
    memcpy(x->raw, rec.raw, rec.raw_len);
    x->raw_len = rec.raw_len;
    snprintf(x->file, sizeof x->file, "%s", name);
    /* the key is the event's directory and the data the event itself */
    FilerPb__SubscribeMetadataResponse *ev =
        filer_pb__subscribe_metadata_response__unpack(NULL, rec.data_len, rec.data);
    assert_non_null(ev);
    assert_int_equal(ev->ts_ns, rec.ts_ns);
    assert_int_equal(rec.key_len, strlen(ev->directory));
    assert_memory_equal(rec.key, ev->directory, rec.key_len);
    assert_int_equal((uint32_t)rec.partition_key_hash, fm_log_partition_hash(ev->directory, strlen(ev->directory)));
    filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  }
  assert_int_equal(rc, FM_ENOTFOUND);
  fm_log_reader_destroy(&r);
  free(all);
}

static int by_ts(const void *a, const void *b)
{
  const found *x = a, *y = b;
  return (x->ts > y->ts) - (x->ts < y->ts);
}

/* Every record of every log file, sorted by ts; checks each file against its name. */
static void read_log(fixture *f, size_t chunk_bytes, found_list *out)
{
  out->n = 0;
  names days;
  list_names(f, FM_LOG_DIR, &days);
  for (size_t d = 0; d < days.n; d++) {
    int64_t day_ns;
    assert_true(fm_log_parse_day(days.v[d], strlen(days.v[d]), &day_ns));
    char dir[FM_LOG_DAY_DIR_MAX + 8];
    snprintf(dir, sizeof dir, "%s/%s", FM_LOG_DIR, days.v[d]);
    names files;
    list_names(f, dir, &files);
    for (size_t i = 0; i < files.n; i++) {
      int64_t minute;
      uint32_t id;
      assert_true(fm_log_parse_file_name(files.v[i], strlen(files.v[i]), &minute, &id));
      size_t first = out->n;
      read_file(f, dir, files.v[i], chunk_bytes, out);
      assert_true(out->n > first);
      for (size_t k = first; k < out->n; k++) {
        assert_int_equal(fm_log_minute_of(out->v[k].ts), day_ns + minute); /* one minute per file */
        if (k > first)
          assert_true(out->v[k].ts > out->v[k - 1].ts);
      }
    }
    free_names(&files);
  }
  free_names(&days);
  qsort(out->v, out->n, sizeof out->v[0], by_ts);
}

static void free_found(found_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].raw);
  l->n = 0;
}

/* ================================================================ tests */

static void test_records_become_minute_files_in_chunks(void **state)
{
  fixture *f = *state;
  int64_t ts[40];
  size_t n = 0;
  for (int i = 0; i < 30; i++) /* 10:00:00 .. 10:00:58 */
    ts[n++] = DAY1 + 600 * MIN + i * 2 * SEC + 17;
  for (int i = 0; i < 5; i++) /* 10:01 */
    ts[n++] = DAY1 + 601 * MIN + i * SEC;
  for (int i = 0; i < 5; i++) /* the next day, 00:00 */
    ts[n++] = DAY1 + FM_NS_PER_DAY + i * SEC + 1;
  put_wal(f, ts, n, 100);
  start_server(f, 600, 0);
  assert_int_equal(f->recovered, n);
  assert_int_equal(fm_logbuf_floor_ts(f->logbuf), 0);
  stop_server(f);

  assert_int_equal(wal_count(f), 0);
  fm_store_log_state st;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_store_get_log_state(f->store, &st, err, sizeof err), 0);
  assert_int_equal(st.flushed_ts_ns, ts[n - 1]);
  assert_int_equal(st.records, n);

  found_list *log = calloc(1, sizeof *log);
  read_log(f, 600, log);
  assert_int_equal(log->n, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(log->v[i].ts, ts[i]);
    assert_int_equal(log->v[i].offset, (int64_t)i);
  }
  assert_int_equal(strncmp(log->v[0].file, "10-00.", 6), 0);
  assert_int_equal(strncmp(log->v[30].file, "10-01.", 6), 0);
  assert_int_equal(strncmp(log->v[35].file, "00-00.", 6), 0);
  free_found(log);
  free(log);

  names days;
  list_names(f, FM_LOG_DIR, &days);
  assert_int_equal(days.n, 2);
  assert_string_equal(days.v[0], "2024-03-01");
  assert_string_equal(days.v[1], "2024-03-02");
  free_names(&days);
}

/* A crash between two flushes (the second half of the records flushed by the next process, under a new filer id)
 * leaves exactly the records a single flush writes, byte for byte. */
static void test_crash_between_flushes_gives_identical_records(void **state)
{
  fixture *f = *state;
  enum { N = 200 };
  int64_t ts[N];
  for (int i = 0; i < N; i++)
    ts[i] = DAY1 + i * 700 * INT64_C(1000000); /* 0.7 s apart: about 3 minutes */

  /* one run */
  put_wal(f, ts, N, 50);
  start_server(f, 1000, 0);
  stop_server(f);
  found_list *once = calloc(1, sizeof *once);
  read_log(f, 1000, once);
  assert_int_equal(once->n, N);

  /* a second data dir: half, a crash, the rest */
  fixture *g = NULL;
  assert_int_equal(setup((void **)&g), 0);
  put_wal(g, ts, N / 2, 50);
  start_server(g, 1000, 0);
  stop_server(g);
  put_wal(g, ts + N / 2, N / 2, 50);
  start_server(g, 1000, 0);
  assert_int_equal(g->recovered, N / 2);
  assert_int_equal(fm_logbuf_floor_ts(g->logbuf), ts[N / 2 - 1]);
  assert_int_equal(fm_logbuf_oldest_ts(g->logbuf), ts[N / 2]);
  stop_server(g);
  found_list *twice = calloc(1, sizeof *twice);
  read_log(g, 1000, twice);
  assert_int_equal(twice->n, N);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(twice->v[i].raw_len, once->v[i].raw_len);
    assert_memory_equal(twice->v[i].raw, once->v[i].raw, once->v[i].raw_len);
  }
  free_found(once);
  free_found(twice);
  free(once);
  free(twice);
  teardown((void **)&g);
}

static void test_retention_removes_old_days_and_their_chunks(void **state)
{
  fixture *f = *state;
  int64_t now = fm_now_ns();
  int64_t ts[] = { DAY1 + 5 * SEC, DAY1 + FM_NS_PER_DAY + 5 * SEC, now - 2 * SEC };
  put_wal(f, ts, 3, 10);
  start_server(f, 0, 0);
  stop_server(f);
  names days;
  list_names(f, FM_LOG_DIR, &days);
  assert_int_equal(days.n, 3);
  char old_dir[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX];
  fm_log_file_path(DAY1, 1, old_dir, name);
  names files;
  list_names(f, old_dir, &files);
  assert_int_equal(files.n, 1);
  FilerPb__Entry *e = get_file(f, old_dir, files.v[0]);
  fm_fid old_fid;
  assert_int_equal(fm_fid_parse(e->chunks[0]->file_id, strlen(e->chunks[0]->file_id), &old_fid), 0);
  filer_pb__entry__free_unpacked(e, NULL);
  free_names(&files);
  free_names(&days);

  start_server(f, 0, 1);
  stop_server(f);
  list_names(f, FM_LOG_DIR, &days);
  assert_int_equal(days.n, 1); /* today's (or yesterday's, just after midnight) stays */
  free_names(&days);
  void *data = NULL;
  size_t len = 0;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_chunk_store_read(f->chunks, &old_fid, &data, &len, err, sizeof err), FM_ENOTFOUND);
  fm_store_log_state st;
  assert_int_equal(fm_store_get_log_state(f->store, &st, err, sizeof err), 0);
  assert_int_equal(st.retained_from_ns, DAY1 + 2 * FM_NS_PER_DAY);
  assert_int_equal(st.records, 3);
}

static bool append_wal_to(void *arg, int64_t ts, const void *ev, size_t len)
{
  assert_int_equal(fm_logbuf_append(arg, ts, ev, len), 0);
  return true;
}

/* Memory that does not vouch for the oldest events (as after a failed append: its floor is above the flushed
 * watermark) sends the flusher to the write-ahead records for them, then back to memory. */
static void test_events_memory_lacks_come_from_the_write_ahead_records(void **state)
{
  fixture *f = *state;
  int64_t ts[10];
  for (int i = 0; i < 10; i++)
    ts[i] = DAY1 + i * SEC;
  put_wal(f, ts, 10, 20);
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_logbuf_new(NULL, &f->logbuf), 0);
  assert_int_equal(fm_logbuf_set_start_ts(f->logbuf, ts[4]), 0); /* memory holds only the last five */
  assert_int_equal(fm_store_events(f->store, ts[4], append_wal_to, f->logbuf, err, sizeof err), 0);
  assert_int_equal(fm_filer_new(f->store, SIG, &f->filer, err, sizeof err), 0);
  fm_log_flusher_config cfg = {
    .filer = f->filer,
    .store = f->store,
    .chunks = f->chunks,
    .logbuf = f->logbuf,
    .filer_id = 7,
    .interval_ns = 3600 * SEC,
  };
  assert_int_equal(fm_log_flusher_start(&cfg, &f->flusher, err, sizeof err), 0);
  stop_server(f);
  assert_int_equal(wal_count(f), 0);
  found_list *log = calloc(1, sizeof *log);
  read_log(f, FM_LOG_CHUNK_BYTES_DEFAULT, log);
  assert_int_equal(log->n, 10);
  for (size_t i = 0; i < 10; i++) {
    assert_int_equal(log->v[i].ts, ts[i]);
    assert_int_equal(log->v[i].offset, (int64_t)i);
  }
  free_found(log);
  free(log);
}

/* A backlog bigger than half the buffer: only its newest part is loaded, the rest is flushed from the store. */
static void test_recovery_of_a_backlog_larger_than_the_buffer(void **state)
{
  fixture *f = *state;
  enum { N = 2000 };
  int64_t ts[N];
  for (int i = 0; i < N; i++)
    ts[i] = DAY1 + i * 10 * INT64_C(1000000);
  put_wal(f, ts, N, 400); /* ~0.9 MB */
  start_server_sized(f, 256 << 10, 64 << 10, 0);
  assert_true(f->recovered > 0 && f->recovered < N / 2);
  assert_int_equal(fm_logbuf_oldest_ts(f->logbuf), ts[N - f->recovered]);
  assert_int_equal(fm_logbuf_floor_ts(f->logbuf), ts[N - f->recovered - 1]);
  stop_server(f);
  assert_int_equal(wal_count(f), 0);
  found_list *log = calloc(1, sizeof *log);
  read_log(f, 64 << 10, log);
  assert_int_equal(log->n, N);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(log->v[i].ts, ts[i]);
    assert_int_equal(log->v[i].offset, (int64_t)i);
  }
  free_found(log);
  free(log);
}

/* A flush whose file change fails (here: /topics is a file) is retried after a pause with the same chunk, so a
 * failing store does not fill the chunk store. */
static void test_failed_flush_is_retried_with_the_same_chunk(void **state)
{
  fixture *f = *state;
  int64_t ts[] = { DAY1 + SEC, DAY1 + 2 * SEC };
  put_wal(f, ts, 2, 10);
  FilerPb__Entry file = FILER_PB__ENTRY__INIT;
  file.name = (char *)"topics";
  uint8_t buf[64];
  size_t len = filer_pb__entry__pack(&file, buf);
  fm_store_batch *b = fm_store_batch_new();
  fm_store_batch_put_entry(b, "/", "topics", buf, len);
  char err[FM_ERR_LEN];
  assert_int_equal(fm_store_write(f->store, b, err, sizeof err), 0);

  start_server(f, 0, 0);
  fm_log_flusher_stats st;
  for (int i = 0; i < 200; i++) { /* the first pass fails at once */
    fm_log_flusher_get_stats(f->flusher, &st);
    if (st.errors > 0)
      break;
    struct timespec ts10 = { 0, 10000000 };
    nanosleep(&ts10, NULL);
  }
  assert_true(st.errors > 0);
  assert_int_equal(st.records, 0);
  fm_store_batch_clear(b);
  fm_store_batch_delete_entry(b, "/", "topics");
  assert_int_equal(fm_store_write(f->store, b, err, sizeof err), 0);
  fm_store_batch_free(b);
  for (int i = 0; i < 500; i++) { /* retried after about a second */
    fm_log_flusher_get_stats(f->flusher, &st);
    if (st.records == 2)
      break;
    struct timespec ts10 = { 0, 10000000 };
    nanosleep(&ts10, NULL);
  }
  assert_int_equal(st.records, 2);
  assert_true(st.errors <= 2); /* paced: not one failure per wake-up */
  stop_server(f);
  struct fm_chunk_store_stats cs;
  fm_chunk_store_stats(f->chunks, &cs);
  assert_int_equal(cs.needles, 1); /* the chunk of the failed attempt is the one the file holds */
  assert_int_equal(cs.deleted_needles, 0);
  assert_int_equal(wal_count(f), 0);
}

static void done_noop(fm_mutation *m)
{
  (void)m;
}

static void count_event(void *arg, int64_t ts, const uint8_t *ev, size_t len)
{
  (void)ts;
  (void)ev;
  (void)len;
  (*(int *)arg)++;
}

/* Upstream creates the parents of a system log entry silently too. */
static void test_create_under_the_log_dir_makes_no_events(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_filer_new(f->store, SIG, &f->filer, err, sizeof err), 0);
  int events = 0;
  fm_filer_set_event_hook(f->filer, count_event, &events);
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.name = (char *)"12-00.00000001";
  FilerPb__CreateEntryRequest req = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
  req.directory = (char *)"/topics/.system/log/2024-03-01";
  req.entry = &e;
  fm_mutation m = { .kind = FM_MUT_CREATE, .req = &req.base, .done = done_noop };
  assert_int_equal(fm_filer_submit(f->filer, &m), 0);
  assert_int_equal(m.status, GRPC_STATUS_OK);
  assert_string_equal(m.inband_error, "");
  assert_int_equal(events, 0);
  names l;
  list_names(f, "/topics/.system", &l);
  assert_int_equal(l.n, 1);
  free_names(&l);
  /* outside it, parents have events as always */
  req.directory = (char *)"/topics/other";
  assert_int_equal(fm_filer_submit(f->filer, &m), 0);
  assert_int_equal(events, 2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_records_become_minute_files_in_chunks, setup, teardown),
    cmocka_unit_test_setup_teardown(test_crash_between_flushes_gives_identical_records, setup, teardown),
    cmocka_unit_test_setup_teardown(test_retention_removes_old_days_and_their_chunks, setup, teardown),
    cmocka_unit_test_setup_teardown(test_events_memory_lacks_come_from_the_write_ahead_records, setup, teardown),
    cmocka_unit_test_setup_teardown(test_recovery_of_a_backlog_larger_than_the_buffer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failed_flush_is_retried_with_the_same_chunk, setup, teardown),
    cmocka_unit_test_setup_teardown(test_create_under_the_log_dir_makes_no_events, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
