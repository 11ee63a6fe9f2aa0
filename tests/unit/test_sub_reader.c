/* Unit tests for server/sub_reader.h over a real store, chunk store, MetaLogBuffer, filer and flusher: history from
 * the log files, then memory, each event exactly once, in ts order; since/until bounds; a reader that falls out of a
 * tiny buffer while writers and the flusher run goes back to the files and returns with no gap and no duplicate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunk_store.h"
#include "clock.h"
#include "error.h"
#include "filer.h"
#include "filer.pb-c.h"
#include "log_buffer.h"
#include "log_flusher.h"
#include "store.h"
#include "sub_reader.h"

#define SIG 0x5eed
#define SEC INT64_C(1000000000)

typedef struct fixture {
  char base[64];
  fm_store *store;
  fm_chunk_store *chunks;
  fm_logbuf *logbuf;
  fm_filer *filer;
  fm_log_flusher *flusher;
  /* every event the filer published, in order */
  pthread_mutex_t mu;
  int64_t *ts;
  size_t n, cap;
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void on_event(void *arg, int64_t ts, const uint8_t *ev, size_t len)
{
  fixture *f = arg;
  fm_logbuf_event_hook(f->logbuf, ts, ev, len);
  if (f->flusher != NULL)
    fm_log_flusher_note(f->flusher, len);
  pthread_mutex_lock(&f->mu);
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 1024;
    f->ts = realloc(f->ts, f->cap * sizeof *f->ts);
  }
  f->ts[f->n++] = ts;
  pthread_mutex_unlock(&f->mu);
}

/* A server as main.c builds it, with a buffer of `buffer_bytes` and small chunks so that files have several. */
static fixture *start(size_t buffer_bytes, int64_t interval_ns)
{
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->base, sizeof f->base, "/tmp/fm_subreader_XXXXXX");
  assert_non_null(mkdtemp(f->base));
  pthread_mutex_init(&f->mu, NULL);
  char vols[96], err[FM_ERR_LEN] = "";
  snprintf(vols, sizeof vols, "%s/volumes", f->base);
  fm_store_options so = { 0 };
  assert_int_equal(fm_store_open(f->base, &so, &f->store, err, sizeof err), 0);
  assert_int_equal(fm_chunk_store_open(vols, 0, NULL, &f->chunks, err, sizeof err), 0);
  fm_logbuf_options lo = { .size_bytes = buffer_bytes, .segment_bytes = buffer_bytes / 8 };
  assert_int_equal(fm_logbuf_new(&lo, &f->logbuf), 0);
  size_t recovered;
  assert_int_equal(fm_log_flusher_recover(f->store, f->logbuf, &recovered, err, sizeof err), 0);
  assert_int_equal(fm_filer_new(f->store, SIG, &f->filer, err, sizeof err), 0);
  fm_filer_set_event_hook(f->filer, on_event, f);
  fm_log_flusher_config fc = {
    .filer = f->filer,
    .store = f->store,
    .chunks = f->chunks,
    .logbuf = f->logbuf,
    .filer_id = fm_log_flusher_new_filer_id(),
    .interval_ns = interval_ns,
    .chunk_bytes = 16 << 10,
  };
  assert_int_equal(fm_log_flusher_start(&fc, &f->flusher, err, sizeof err), 0);
  return f;
}

static void stop(fixture *f)
{
  fm_log_flusher_stop(f->flusher);
  fm_logbuf_shutdown(f->logbuf);
  fm_filer_free(f->filer);
  fm_log_flusher_free(f->flusher);
  fm_logbuf_free(f->logbuf);
  fm_chunk_store_free(f->chunks);
  fm_store_free(f->store);
  nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  pthread_mutex_destroy(&f->mu);
  free(f->ts);
  free(f);
}

static void done_noop(fm_mutation *m)
{
  (void)m;
}

/* Creates dir/f<i> for i in [from, to) with ~pad bytes of content each. */
static void create_files(fixture *f, const char *dir, int from, int to, size_t pad)
{
  char *content = malloc(pad + 1);
  memset(content, 'c', pad);
  for (int i = from; i < to; i++) {
    char name[32];
    snprintf(name, sizeof name, "f%06d", i);
    FilerPb__Entry e = FILER_PB__ENTRY__INIT;
    e.name = name;
    e.content.data = (uint8_t *)content;
    e.content.len = pad;
    FilerPb__CreateEntryRequest req = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
    req.directory = (char *)dir;
    req.entry = &e;
    fm_mutation m = { .kind = FM_MUT_CREATE, .req = &req.base, .done = done_noop };
    assert_int_equal(fm_filer_submit(f->filer, &m), 0);
    assert_int_equal(m.status, GRPC_STATUS_OK);
  }
  free(content);
}

static size_t published(fixture *f, int64_t **copy)
{
  pthread_mutex_lock(&f->mu);
  size_t n = f->n;
  *copy = malloc((n ? n : 1) * sizeof **copy);
  memcpy(*copy, f->ts, n * sizeof **copy);
  pthread_mutex_unlock(&f->mu);
  return n;
}

static void wait_flushed(fixture *f, int64_t ts)
{
  for (int i = 0; i < 1000 && fm_logbuf_flushed_ts(f->logbuf) < ts; i++) {
    struct timespec d = { 0, 5000000 };
    nanosleep(&d, NULL);
  }
  assert_true(fm_logbuf_flushed_ts(f->logbuf) >= ts);
}

/* Reads until caught up (or the end); returns the ts read, in order. */
static size_t read_all(fixture *f, int64_t since, int64_t until, int64_t **out, size_t *from_disk, int *end_rc)
{
  fm_sub_reader_config cfg = { .store = f->store, .chunks = f->chunks, .logbuf = f->logbuf };
  fm_sub_reader *r = NULL;
  assert_int_equal(fm_sub_reader_open(&cfg, since, until, &r), 0);
  size_t n = 0, cap = 1024;
  *out = malloc(cap * sizeof **out);
  *from_disk = 0;
  char err[FM_ERR_LEN] = "";
  int rc;
  fm_sub_event ev;
  while ((rc = fm_sub_reader_next(r, &ev, 0, err, sizeof err)) == 0) {
    FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(NULL, ev.len, ev.data);
    assert_non_null(m);
    assert_int_equal(m->ts_ns, ev.ts_ns);
    filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);
    if (n == cap) {
      cap *= 2;
      *out = realloc(*out, cap * sizeof **out);
    }
    (*out)[n++] = ev.ts_ns;
    *from_disk += ev.from_disk;
    if (n % 97 == 0)
      fm_sub_reader_release(r); /* as a reader whose queue filled up */
  }
  *end_rc = rc;
  assert_int_equal(fm_sub_reader_ts(r), n > 0 ? (*out)[n - 1] : since);
  fm_sub_reader_close(r);
  return n;
}

/* ================================================================ tests */

/* A buffer that holds only the newest events: history comes from the files, the rest from memory. */
static void test_history_then_memory_exactly_once(void **state)
{
  (void)state;
  fixture *f = start(64 << 10, 3600 * SEC);
  create_files(f, "/h", 0, 3000, 200); /* ~1 MB of events through a 64 KiB buffer */
  int64_t *all;
  size_t total = published(f, &all);
  assert_int_equal(total, 3001); /* and /h */
  wait_flushed(f, all[total - 1000]);
  assert_true(fm_logbuf_floor_ts(f->logbuf) > all[0]); /* the oldest left memory */

  /* and a few more that stay in memory only: the flusher writes what it has and stops first */
  fm_log_flusher_stop(f->flusher);
  create_files(f, "/h", 3000, 3020, 200);
  free(all);
  total = published(f, &all);
  assert_int_equal(total, 3021);

  int64_t *got;
  size_t disk;
  int end;
  size_t n = read_all(f, 0, 0, &got, &disk, &end);
  assert_int_equal(end, FM_ETIMEDOUT);
  assert_int_equal(n, total);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(got[i], all[i]);
  assert_true(disk > 0 && n - disk >= 20); /* history from the files, the rest from memory */
  free(got);

  /* from the middle of the history, and from the middle of memory */
  size_t marks[] = { 1, 1500, total - 10 };
  for (size_t k = 0; k < 3; k++) {
    n = read_all(f, all[marks[k] - 1], 0, &got, &disk, &end);
    assert_int_equal(n, total - marks[k]);
    for (size_t i = 0; i < n; i++)
      assert_int_equal(got[i], all[marks[k] + i]);
    free(got);
  }
  /* a bound ends the reader, with the bound's event included */
  n = read_all(f, all[99], all[1999], &got, &disk, &end);
  assert_int_equal(end, FM_ENOTFOUND);
  assert_int_equal(n, 1900);
  assert_int_equal(got[0], all[100]);
  assert_int_equal(got[n - 1], all[1999]);
  free(got);
  free(all);
  stop(f);
}

typedef struct writer_arg {
  fixture *f;
  int from, to;
} writer_arg;

static void *writer_main(void *arg)
{
  writer_arg *w = arg;
  create_files(w->f, "/live", w->from, w->to, 300);
  return NULL;
}

/* A reader following live writes through a tiny buffer falls behind (it pauses while the writers run on and the
 * flusher lets memory move past it), is sent to the files, and comes back to memory. */
static void test_falling_out_of_memory_while_following(void **state)
{
  (void)state;
  fixture *f = start(32 << 10, 3600 * SEC);
  create_files(f, "/live", 0, 10, 300);
  fm_sub_reader_config cfg = { .store = f->store, .chunks = f->chunks, .logbuf = f->logbuf };
  fm_sub_reader *r = NULL;
  assert_int_equal(fm_sub_reader_open(&cfg, 0, 0, &r), 0);
  int64_t got[6100];
  size_t n = 0;
  fm_sub_event ev;
  char err[FM_ERR_LEN] = "";
  for (; n < 5; n++) {
    assert_int_equal(fm_sub_reader_next(r, &ev, 1000, err, sizeof err), 0);
    got[n] = ev.ts_ns;
  }
  fm_sub_reader_release(r); /* parked, as behind a full queue */
  writer_arg w = { f, 10, 6000 };
  pthread_t t;
  pthread_create(&t, NULL, writer_main, &w);
  /* read on while the writer runs: the reader is behind, then catches up */
  while (n < 6001) {
    int rc = fm_sub_reader_next(r, &ev, 5000, err, sizeof err);
    assert_int_equal(rc, 0);
    got[n++] = ev.ts_ns;
  }
  pthread_join(t, NULL);
  fm_sub_reader_close(r);
  int64_t *all;
  size_t total = published(f, &all);
  assert_int_equal(total, 6001);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(got[i], all[i]);
  free(all);
  stop(f);
}

/* The same, deterministically: the reader waits until everything it has not read is flushed and memory has moved
 * on, so its next read must go to the files, and then back to memory for what comes after. */
static void test_sent_to_the_files_and_back(void **state)
{
  (void)state;
  fixture *f = start(32 << 10, 3600 * SEC);
  create_files(f, "/live", 0, 10, 300);
  fm_sub_reader_config cfg = { .store = f->store, .chunks = f->chunks, .logbuf = f->logbuf };
  fm_sub_reader *r = NULL;
  assert_int_equal(fm_sub_reader_open(&cfg, 0, 0, &r), 0);
  int64_t got[2200];
  size_t n = 0, disk = 0;
  fm_sub_event ev;
  char err[FM_ERR_LEN] = "";
  for (; n < 5; n++) {
    assert_int_equal(fm_sub_reader_next(r, &ev, 1000, err, sizeof err), 0);
    got[n] = ev.ts_ns;
  }
  fm_sub_reader_release(r);
  create_files(f, "/live", 10, 2000, 300); /* ~600 KB through a 32 KiB buffer */
  int64_t *all;
  size_t total = published(f, &all);
  wait_flushed(f, all[total - 200]);
  free(all);
  /* the flusher writes what it has and stops, so these 10 stay in memory only: were it running, it could write them
   * out before the reader opens its scan, which then rightly reads everything from the files */
  fm_log_flusher_stop(f->flusher);
  create_files(f, "/live", 2000, 2010, 300); /* appends evict what was flushed */
  assert_true(fm_logbuf_floor_ts(f->logbuf) > got[4]);
  for (;;) {
    int rc = fm_sub_reader_next(r, &ev, 0, err, sizeof err);
    if (rc == FM_ETIMEDOUT)
      break;
    assert_int_equal(rc, 0);
    assert_true(n < 2200);
    got[n++] = ev.ts_ns;
    disk += ev.from_disk;
  }
  fm_sub_reader_close(r);
  total = published(f, &all);
  assert_int_equal(n, total);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(got[i], all[i]);
  assert_true(disk > 0 && disk < n - 5); /* from the files, then from memory */
  free(all);
  stop(f);
}

/* Recovery left a backlog in the write-ahead records that memory does not hold: a reader waits for the flusher to
 * write it out instead of skipping it. */
static void test_reader_waits_for_a_backlog_only_the_flusher_has(void **state)
{
  (void)state;
  fixture *f = start(1 << 20, 3600 * SEC);
  create_files(f, "/b", 0, 2000, 400);
  char base[64];
  snprintf(base, sizeof base, "%s", f->base);
  int64_t *before;
  size_t nb = published(f, &before);
  /* a crash: the buffer and flusher go, the write-ahead records stay */
  fm_log_flusher_free(f->flusher); /* final pass: flushes; then un-flush by writing more records below */
  f->flusher = NULL;
  fm_logbuf_shutdown(f->logbuf);
  fm_filer_free(f->filer);
  fm_logbuf_free(f->logbuf);
  char err[FM_ERR_LEN] = "";
  /* new events straight into the store, as a server that died before flushing leaves them */
  fm_store_batch *b = fm_store_batch_new();
  int64_t t0 = before[nb - 1];
  int64_t extra[3000];
  for (int i = 0; i < 3000; i++) {
    char dir[] = "/b";
    char buf[600];
    FilerPb__Entry e = FILER_PB__ENTRY__INIT;
    char name[16];
    snprintf(name, sizeof name, "x%d", i);
    e.name = name;
    FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
    en.new_entry = &e;
    FilerPb__SubscribeMetadataResponse ev = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
    ev.directory = dir;
    ev.event_notification = &en;
    ev.ts_ns = extra[i] = t0 + (i + 1) * 1000;
    size_t len = filer_pb__subscribe_metadata_response__pack(&ev, (uint8_t *)buf);
    fm_store_batch_put_event(b, ev.ts_ns, buf, len);
  }
  assert_int_equal(fm_store_write(f->store, b, err, sizeof err), 0);
  fm_store_batch_free(b);
  /* restart with a buffer too small for the backlog and a flusher that waits (interval 1 s) */
  fm_logbuf_options lo = { .size_bytes = 16 << 10, .segment_bytes = 2 << 10 };
  assert_int_equal(fm_logbuf_new(&lo, &f->logbuf), 0);
  size_t recovered;
  assert_int_equal(fm_log_flusher_recover(f->store, f->logbuf, &recovered, err, sizeof err), 0);
  assert_true(recovered > 0 && recovered < 3000);
  assert_true(fm_logbuf_floor_ts(f->logbuf) > fm_logbuf_flushed_ts(f->logbuf));
  assert_int_equal(fm_filer_new(f->store, SIG, &f->filer, err, sizeof err), 0);
  fm_filer_set_event_hook(f->filer, on_event, f);
  fm_sub_reader_config cfg = { .store = f->store, .chunks = f->chunks, .logbuf = f->logbuf, .poll_ms = 5 };
  fm_sub_reader *r = NULL;
  assert_int_equal(fm_sub_reader_open(&cfg, t0, 0, &r), 0);
  fm_sub_event ev;
  /* without a flusher nothing past memory's floor can come: the reader times out instead of skipping */
  assert_int_equal(fm_sub_reader_next(r, &ev, 50, err, sizeof err), FM_ETIMEDOUT);
  fm_log_flusher_config fc = {
    .filer = f->filer,
    .store = f->store,
    .chunks = f->chunks,
    .logbuf = f->logbuf,
    .filer_id = fm_log_flusher_new_filer_id(),
    .interval_ns = 3600 * SEC,
    .chunk_bytes = 16 << 10,
  };
  assert_int_equal(fm_log_flusher_start(&fc, &f->flusher, err, sizeof err), 0);
  for (int i = 0; i < 3000; i++) {
    int rc = fm_sub_reader_next(r, &ev, 5000, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(ev.ts_ns, extra[i]);
  }
  assert_int_equal(fm_sub_reader_next(r, &ev, 0, err, sizeof err), FM_ETIMEDOUT);
  fm_sub_reader_close(r);
  free(before);
  stop(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_history_then_memory_exactly_once),
    cmocka_unit_test(test_falling_out_of_memory_while_following),
    cmocka_unit_test(test_sent_to_the_files_and_back),
    cmocka_unit_test(test_reader_waits_for_a_backlog_only_the_flusher_has),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
