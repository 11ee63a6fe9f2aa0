/* Unit tests for common/follow_refs.h against real HTTP: log records are written into a chunk store served by the
 * server's HTTP side on a free port, refs are built by hand, and the reader must fetch (libcurl), decode (gzip too),
 * filter and merge them: three filer ids with equal timestamps come out stable by filer id, a torn last record ends
 * its ref, records straddle chunks, since/upto bounds, path, system-log and signature filters, a corrupt record and a
 * missing chunk are reported, and a callback stops the read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "chunk_store.h"
#include "error.h"
#include "event_filter.h"
#include "fid.h"
#include "filer.pb-c.h"
#include "follow_refs.h"
#include "http_side.h"
#include "log_record.h"

typedef struct fixture {
  char dir[64];
  fm_chunk_store *chunks;
  fm_http_side *http;
  char url[64];
  uint32_t volume_id;
} fixture;

static fixture *F;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/fm_test_follow_refs.XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  char vdir[96], err[FM_ERR_LEN] = "";
  snprintf(vdir, sizeof vdir, "%s/volumes", f->dir);
  if (fm_chunk_store_open(vdir, 0, NULL, &f->chunks, err, sizeof err) != 0)
    return -1;
  fm_http_side_config cfg = { .ip = "127.0.0.1", .chunks = f->chunks, .max_upload_bytes = 1 << 20 };
  if (fm_http_side_start(&cfg, &f->http, err, sizeof err) != 0) {
    fprintf(stderr, "fm_http_side_start: %s\n", err);
    return -1;
  }
  snprintf(f->url, sizeof f->url, "127.0.0.1:%d", fm_http_side_port(f->http));
  F = f;
  *state = f;
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

static int teardown(void **state)
{
  fixture *f = *state;
  fm_http_side_free(f->http);
  fm_chunk_store_free(f->chunks);
  int rc = nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- building log files */

/* A byte stream of records under construction. */
typedef struct stream {
  uint8_t buf[1 << 16];
  size_t len;
  int64_t offset;
} stream;

/* Appends the record of an event "<dir>/<name>" created at ts (signatures: `sig` when non-zero). */
static void add_event(stream *s, int64_t ts, const char *dir, const char *name, int32_t sig)
{
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.name = (char *)name;
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  en.new_entry = &e;
  en.new_parent_path = (char *)dir;
  int32_t sigs[1] = { sig };
  if (sig != 0) {
    en.signatures = sigs;
    en.n_signatures = 1;
  }
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  m.directory = (char *)dir;
  m.event_notification = &en;
  m.ts_ns = ts;
  uint8_t ev[1024];
  size_t evlen = filer_pb__subscribe_metadata_response__pack(&m, ev);
  size_t w = 0;
  assert_int_equal(
      fm_log_record_encode(ts, ev, evlen, dir, strlen(dir), s->offset++, s->buf + s->len, sizeof s->buf - s->len, &w),
      0);
  s->len += w;
}

/* Appends a record whose LogEntry carries `data` (any bytes) as its event. */
static void add_raw_event(stream *s, int64_t ts, const char *data, size_t len)
{
  size_t w = 0;
  assert_int_equal(
      fm_log_record_encode(ts, data, len, "/d", 2, s->offset++, s->buf + s->len, sizeof s->buf - s->len, &w), 0);
  s->len += w;
}

/* gzip of [p, p+len) into a malloc'ed block. */
static uint8_t *gzip(const uint8_t *p, size_t len, size_t *out_len)
{
  z_stream z;
  memset(&z, 0, sizeof z);
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  size_t cap = deflateBound(&z, len) + 32;
  uint8_t *out = malloc(cap);
  z.next_in = (Bytef *)p;
  z.avail_in = (uInt)len;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  *out_len = z.total_out;
  deflateEnd(&z);
  return out;
}

/* A ref under construction: its chunks and their file ids live here. */
typedef struct ref {
  FilerPb__LogFileChunkRef pb;
  FilerPb__FileChunk chunks[8];
  FilerPb__FileChunk *chunkp[8];
  char fids[8][FM_FID_MAX];
} ref;

/* Stores [p, p+len) as one chunk of r at `offset` (gzipped when `compress`); `logical` is its content size. */
static void put_chunk(ref *r, const uint8_t *p, size_t len, int64_t offset, bool compress)
{
  size_t i = r->pb.n_chunks;
  fm_fid fid;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_chunk_store_assign(F->chunks, &fid), 0);
  F->volume_id = fid.volume_id;
  size_t zlen = len;
  uint8_t *z = compress ? gzip(p, len, &zlen) : NULL;
  assert_int_equal(fm_chunk_store_write(F->chunks, &fid, z != NULL ? z : p, zlen, err, sizeof err), 0);
  free(z);
  assert_int_equal(fm_fid_format(&fid, r->fids[i], sizeof r->fids[i]), 0);
  FilerPb__FileChunk c = FILER_PB__FILE_CHUNK__INIT;
  r->chunks[i] = c;
  r->chunks[i].file_id = r->fids[i];
  r->chunks[i].offset = offset;
  r->chunks[i].size = len;
  r->chunks[i].is_compressed = compress;
  r->chunkp[i] = &r->chunks[i];
  r->pb.chunks = r->chunkp;
  r->pb.n_chunks = i + 1;
}

/* A ref of stream s cut into chunks at the given offsets (ascending, within s; 0 ends the list). */
static void make_ref(ref *r, const char *filer_id, int64_t minute, const stream *s, const size_t *cuts, bool compress)
{
  FilerPb__LogFileChunkRef init = FILER_PB__LOG_FILE_CHUNK_REF__INIT;
  memset(r, 0, sizeof *r);
  r->pb = init;
  r->pb.filer_id = (char *)filer_id;
  r->pb.file_ts_ns = minute;
  size_t at = 0;
  for (size_t k = 0; cuts != NULL && cuts[k] != 0; k++) {
    put_chunk(r, s->buf + at, cuts[k] - at, (int64_t)at, compress);
    at = cuts[k];
  }
  put_chunk(r, s->buf + at, s->len - at, (int64_t)at, compress);
}

/* ---------------------------------------------------------------- reading */

#define GOT_MAX 512

typedef struct got {
  int64_t ts[GOT_MAX];
  char name[GOT_MAX][32];
  size_t n;
  size_t stop_after; /* 0: never */
} got;

static int collect(void *arg, const FilerPb__SubscribeMetadataResponse *ev)
{
  got *g = arg;
  assert_true(g->n < GOT_MAX);
  assert_non_null(ev->event_notification);
  assert_non_null(ev->event_notification->new_entry);
  g->ts[g->n] = ev->ts_ns;
  snprintf(g->name[g->n], sizeof g->name[g->n], "%s", ev->event_notification->new_entry->name);
  g->n++;
  return g->stop_after != 0 && g->n >= g->stop_after;
}

/* Reads refs[0..n) with a reader over `prefix` (and signature sig); returns the status. */
static int read_refs(FilerPb__LogFileChunkRef **refs, size_t n, const char *prefix, int32_t sig, int64_t after,
                     int64_t upto, int threads, int prefetch, got *g, fm_follow_refs_counts *counts, char *err)
{
  fm_event_filter paths;
  assert_int_equal(fm_event_filter_init(&paths, prefix, NULL, 0, NULL, 0, err, FM_ERR_LEN), 0);
  fm_follow_refs_config cfg = { .paths = &paths, .signature = sig, .threads = threads, .prefetch = prefetch };
  fm_follow_refs *r = NULL;
  assert_int_equal(fm_follow_refs_new(&cfg, &r), 0);
  assert_int_equal(fm_follow_refs_set_location(r, F->volume_id, F->url), 0);
  fm_follow_refs_counts c;
  err[0] = '\0';
  int rc =
      fm_follow_refs_read(r, NULL, refs, n, after, upto, collect, g, counts != NULL ? counts : &c, err, FM_ERR_LEN);
  fm_follow_refs_free(r);
  fm_event_filter_destroy(&paths);
  return rc;
}

/* Three filers (ids sorted a < b < c, sent in the order c, a, b), two files each, equal timestamps across filers:
 * the merge is by ts, ties in filer-id order, each filer's files in order. */
static void test_merge_three_filers(void **state)
{
  (void)state;
  static const char *ids[3] = { "0000000c", "0000000a", "0000000b" };
  /* per filer (in ids[] order), per file, the timestamps */
  static const int64_t ts[3][2][3] = {
    { { 10, 20, 30 }, { 40, 50, 60 } },
    { { 10, 25, 30 }, { 45, 50, 70 } },
    { { 5, 20, 30 }, { 41, 50, 61 } },
  };
  static ref refs[6];
  FilerPb__LogFileChunkRef *v[6];
  size_t nv = 0;
  for (int file = 0; file < 2; file++) {
    for (int k = 0; k < 3; k++) {
      stream *s = calloc(1, sizeof *s);
      for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s-%lld", ids[k], (long long)ts[k][file][i]);
        add_event(s, ts[k][file][i], "/d", name, 0);
      }
      /* the second file of each filer in two chunks cut inside a record, gzipped for filer b */
      size_t cuts[2] = { file == 1 ? s->len / 2 + 1 : 0, 0 };
      make_ref(&refs[nv], ids[k], file, s, cuts, k == 2);
      v[nv] = &refs[nv].pb;
      nv++;
      free(s);
    }
  }
  got g = { 0 };
  char err[FM_ERR_LEN];
  fm_follow_refs_counts counts;
  assert_int_equal(read_refs(v, nv, "/", 0, 0, 0, 2, 1, &g, &counts, err), 0);
  static const char *want[18] = {
    "0000000b-5",  "0000000a-10", "0000000c-10", "0000000b-20", "0000000c-20", "0000000a-25",
    "0000000a-30", "0000000b-30", "0000000c-30", "0000000c-40", "0000000b-41", "0000000a-45",
    "0000000a-50", "0000000b-50", "0000000c-50", "0000000c-60", "0000000b-61", "0000000a-70",
  };
  assert_int_equal(g.n, 18);
  for (size_t i = 0; i < 18; i++)
    assert_string_equal(g.name[i], want[i]);
  assert_int_equal(counts.delivered, 18);
  assert_int_equal(counts.records, 18);
}

/* since/upto bounds (exclusive/inclusive), path prefix, system log, signature; counts say what was filtered. */
static void test_bounds_and_filters(void **state)
{
  (void)state;
  stream *s = calloc(1, sizeof *s);
  add_event(s, 100, "/a", "x1", 0);
  add_event(s, 200, "/b", "y1", 0);
  add_event(s, 300, "/a", "x2", 77);                /* carries the reader's signature */
  add_event(s, 400, "/topics/.system/log", "z", 0); /* never delivered */
  add_event(s, 500, "/a/deeper", "x3", 0);
  add_event(s, 600, "/a", "x4", 0);
  static ref r;
  make_ref(&r, "00000001", 0, s, NULL, false);
  free(s);
  FilerPb__LogFileChunkRef *v[1] = { &r.pb };
  char err[FM_ERR_LEN];
  got g = { 0 };
  fm_follow_refs_counts c;
  assert_int_equal(read_refs(v, 1, "/", 0, 0, 0, 1, 1, &g, &c, err), 0);
  assert_int_equal(g.n, 5); /* all but the system log */
  memset(&g, 0, sizeof g);
  assert_int_equal(read_refs(v, 1, "/a", 77, 100, 500, 1, 1, &g, &c, err), 0);
  assert_int_equal(g.n, 1); /* 200 /b no, 300 signature, 400 system log, 500 yes, 100 and 600 out of range */
  assert_string_equal(g.name[0], "x3");
  assert_int_equal(g.ts[0], 500);
  assert_int_equal(c.filtered, 3);
  assert_int_equal(c.delivered, 1);
}

/* A ref whose stream ends inside a record (torn) ends there; the filer's next ref is still read. A zero length
 * prefix is corruption: reported with the ref's name. */
static void test_torn_tail_and_corruption(void **state)
{
  (void)state;
  stream *s = calloc(1, sizeof *s);
  add_event(s, 1, "/t", "a", 0);
  add_event(s, 2, "/t", "b", 0);
  size_t whole = s->len;
  add_event(s, 3, "/t", "torn", 0);
  s->len = whole + 7; /* cut inside the third record */
  static ref r1, r2, r3;
  make_ref(&r1, "00000001", 0, s, NULL, false);
  s->len = 0;
  add_event(s, 4, "/t", "c", 0);
  make_ref(&r2, "00000001", 1, s, NULL, true);
  FilerPb__LogFileChunkRef *v[2] = { &r1.pb, &r2.pb };
  char err[FM_ERR_LEN];
  got g = { 0 };
  assert_int_equal(read_refs(v, 2, "/", 0, 0, 0, 2, 2, &g, NULL, err), 0);
  assert_int_equal(g.n, 3);
  assert_string_equal(g.name[0], "a");
  assert_string_equal(g.name[1], "b");
  assert_string_equal(g.name[2], "c");

  /* four zero bytes where a length should be */
  s->len = 0;
  add_event(s, 5, "/t", "d", 0);
  memset(s->buf + s->len, 0, 8);
  s->len += 8;
  make_ref(&r3, "00000002", 2, s, NULL, false);
  free(s);
  FilerPb__LogFileChunkRef *w[1] = { &r3.pb };
  memset(&g, 0, sizeof g);
  assert_int_equal(read_refs(w, 1, "/", 0, 0, 0, 1, 1, &g, NULL, err), FM_EDECODE);
  assert_int_equal(g.n, 1);
  assert_non_null(strstr(err, "log file 00000002"));
}

/* A chunk that is not on the server is FM_ENOTFOUND naming it; a callback's non-zero return is FM_ECANCELED. */
static void test_missing_chunk_and_stop(void **state)
{
  (void)state;
  stream *s = calloc(1, sizeof *s);
  for (int i = 1; i <= 50; i++) {
    char name[16];
    snprintf(name, sizeof name, "n%d", i);
    add_event(s, i, "/m", name, 0);
  }
  static ref r, gone;
  make_ref(&r, "00000001", 0, s, NULL, false);
  make_ref(&gone, "00000002", 0, s, NULL, false);
  free(s);
  fm_fid fid;
  assert_int_equal(fm_fid_parse(gone.fids[0], strlen(gone.fids[0]), &fid), 0);
  assert_int_equal(fm_chunk_store_delete(F->chunks, &fid), 0);
  FilerPb__LogFileChunkRef *v[2] = { &r.pb, &gone.pb };
  char err[FM_ERR_LEN];
  got g = { 0 };
  assert_int_equal(read_refs(v, 2, "/", 0, 0, 0, 2, 4, &g, NULL, err), FM_ENOTFOUND);
  assert_non_null(strstr(err, gone.fids[0]));

  memset(&g, 0, sizeof g);
  g.stop_after = 10;
  assert_int_equal(read_refs(v, 1, "/", 0, 0, 0, 2, 4, &g, NULL, err), FM_ECANCELED);
  assert_int_equal(g.n, 10);
}

/* Many small files of one filer with a window of one and several threads: every record once, in order. */
static void test_many_files_small_window(void **state)
{
  (void)state;
  enum { FILES = 40 };
  static ref refs[FILES];
  FilerPb__LogFileChunkRef *v[FILES];
  stream *s = calloc(1, sizeof *s);
  for (int f = 0; f < FILES; f++) {
    s->len = 0;
    for (int i = 0; i < 5; i++) {
      char name[16];
      snprintf(name, sizeof name, "f%d-%d", f, i);
      add_event(s, f * 10 + i + 1, "/w", name, 0);
    }
    make_ref(&refs[f], f % 2 ? "000000aa" : "000000bb", f, s, NULL, f % 3 == 0);
    v[f] = &refs[f].pb;
  }
  free(s);
  char err[FM_ERR_LEN];
  got g = { 0 };
  assert_int_equal(read_refs(v, FILES, "/", 0, 0, 0, 3, 1, &g, NULL, err), 0);
  assert_int_equal(g.n, 200);
  for (size_t i = 1; i < g.n; i++)
    assert_true(g.ts[i] > g.ts[i - 1]);
}

/* One filer's file of 300 events in 8 chunks (one of 3 bytes, so that a record spans three chunks), gzipped or not,
 * merged with a second filer's file: chunks of one file decode on several threads, and every event comes once, in
 * order, from the start and from a resume point in the middle of the file. */
static void test_many_chunks_parallel(void **state)
{
  (void)state;
  for (int compress = 0; compress < 2; compress++) {
    stream *s = calloc(1, sizeof *s);
    for (int i = 1; i <= 300; i++) {
      char name[16];
      snprintf(name, sizeof name, "p%d", i);
      add_event(s, 2 * i, "/p", name, 0);
    }
    size_t l = s->len;
    size_t cuts[8] = { l / 7, l / 7 + 3, 2 * l / 7, 3 * l / 7, 4 * l / 7, 5 * l / 7, 6 * l / 7, 0 };
    static ref a, b;
    make_ref(&a, "0000000a", 0, s, cuts, compress);
    assert_int_equal(a.pb.n_chunks, 8);
    s->len = 0;
    for (int i = 1; i <= 50; i++) {
      char name[16];
      snprintf(name, sizeof name, "q%d", i);
      add_event(s, 12 * i + 1, "/q", name, 0);
    }
    make_ref(&b, "0000000b", 0, s, NULL, compress);
    free(s);
    FilerPb__LogFileChunkRef *v[2] = { &a.pb, &b.pb };
    char err[FM_ERR_LEN];
    for (int from = 0; from <= 300; from += 300) { /* since 0, then since ts 300 (p150) */
      got *g = calloc(1, sizeof *g);
      fm_follow_refs_counts c;
      assert_int_equal(read_refs(v, 2, "/", 0, from, 0, 3, 2, g, &c, err), 0);
      size_t want_p = from == 0 ? 300 : 150, want_q = from == 0 ? 50 : 26;
      assert_int_equal(g->n, want_p + want_q);
      assert_int_equal(c.records, 350);
      assert_int_equal(c.delivered, want_p + want_q);
      size_t np = 0, nq = 0;
      for (size_t i = 0; i < g->n; i++) {
        if (i > 0)
          assert_true(g->ts[i] > g->ts[i - 1]);
        char want[32];
        if (g->name[i][0] == 'p')
          snprintf(want, sizeof want, "p%zu", (300 - want_p) + ++np);
        else
          snprintf(want, sizeof want, "q%zu", (50 - want_q) + ++nq);
        assert_string_equal(g->name[i], want);
      }
      free(g);
    }
  }
}

/* A record whose event bytes do not decode is an error in the time range (the events before it are delivered) and
 * skipped outside it; a record that does not decode as a LogEntry is an error naming the file. */
static void test_undecodable_records(void **state)
{
  (void)state;
  stream *s = calloc(1, sizeof *s);
  add_event(s, 1, "/u", "one", 0);
  add_raw_event(s, 2, "\xff\xff\xff", 3); /* a varint that never ends */
  add_event(s, 3, "/u", "three", 0);
  static ref r, bad;
  make_ref(&r, "00000001", 0, s, NULL, false);
  char err[FM_ERR_LEN];
  FilerPb__LogFileChunkRef *v[1] = { &r.pb };
  got g = { 0 };
  assert_int_equal(read_refs(v, 1, "/", 0, 0, 0, 2, 2, &g, NULL, err), FM_EDECODE);
  assert_int_equal(g.n, 1);
  assert_non_null(strstr(err, "log file 00000001"));
  assert_non_null(strstr(err, "does not decode as SubscribeMetadataResponse"));
  memset(&g, 0, sizeof g);
  assert_int_equal(read_refs(v, 1, "/", 0, 2, 0, 2, 2, &g, NULL, err), 0); /* since ts 2: skipped */
  assert_int_equal(g.n, 1);
  assert_string_equal(g.name[0], "three");
  memset(&g, 0, sizeof g);
  assert_int_equal(read_refs(v, 1, "/", 0, 0, 1, 2, 2, &g, NULL, err), 0); /* until ts 1: skipped */
  assert_int_equal(g.n, 1);
  assert_string_equal(g.name[0], "one");

  s->len = 0;
  add_event(s, 1, "/u", "one", 0);
  static const uint8_t junk[] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
  memcpy(s->buf + s->len, junk, sizeof junk);
  s->len += sizeof junk;
  add_event(s, 3, "/u", "three", 0);
  make_ref(&bad, "00000002", 0, s, NULL, false);
  free(s);
  FilerPb__LogFileChunkRef *w[1] = { &bad.pb };
  memset(&g, 0, sizeof g);
  assert_int_equal(read_refs(w, 1, "/", 0, 0, 0, 2, 2, &g, NULL, err), FM_EDECODE);
  assert_int_equal(g.n, 1);
  assert_non_null(strstr(err, "log file 00000002"));
  assert_non_null(strstr(err, "does not decode as LogEntry"));
}

typedef struct tally {
  size_t n;
  int64_t last_ts;
  bool out_of_order;
} tally;

static int count_in_order(void *arg, const FilerPb__SubscribeMetadataResponse *ev)
{
  tally *t = arg;
  if (ev->ts_ns <= t->last_ts)
    t->out_of_order = true;
  t->last_ts = ev->ts_ns;
  t->n++;
  return 0;
}

/* Chunks of several megabytes (content buffers of their own size class, one plain and one gzipped): 80,000 events
 * once and in order. */
static void test_big_chunks(void **state)
{
  (void)state;
  enum { ROUNDS = 80, PER = 1000 };
  size_t cap = 8u << 20, len = 0;
  uint8_t *big = malloc(cap);
  stream *s = calloc(1, sizeof *s);
  int64_t ts = 0;
  for (int k = 0; k < ROUNDS; k++) {
    s->len = 0;
    for (int i = 0; i < PER; i++) {
      char name[24];
      snprintf(name, sizeof name, "big-%d-%d", k, i);
      add_event(s, ++ts, "/big", name, 0);
    }
    assert_true(len + s->len <= cap);
    memcpy(big + len, s->buf, s->len);
    len += s->len;
  }
  free(s);
  assert_true(len > (4u << 20));
  static ref r;
  FilerPb__LogFileChunkRef init = FILER_PB__LOG_FILE_CHUNK_REF__INIT;
  memset(&r, 0, sizeof r);
  r.pb = init;
  r.pb.filer_id = (char *)"0000000f";
  size_t cut = len / 2 + 5;
  put_chunk(&r, big, cut, 0, false);
  put_chunk(&r, big + cut, len - cut, (int64_t)cut, true);
  free(big);
  fm_event_filter paths;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_event_filter_init(&paths, "/", NULL, 0, NULL, 0, err, sizeof err), 0);
  fm_follow_refs_config cfg = { .paths = &paths, .threads = 2, .prefetch = 2 };
  fm_follow_refs *rd = NULL;
  assert_int_equal(fm_follow_refs_new(&cfg, &rd), 0);
  assert_int_equal(fm_follow_refs_set_location(rd, F->volume_id, F->url), 0);
  FilerPb__LogFileChunkRef *v[1] = { &r.pb };
  for (int round = 0; round < 2; round++) { /* the second read reuses the first one's buffers and arenas */
    tally t = { 0 };
    fm_follow_refs_counts c;
    assert_int_equal(fm_follow_refs_read(rd, NULL, v, 1, 0, 0, count_in_order, &t, &c, err, sizeof err), 0);
    assert_int_equal(t.n, ROUNDS * PER);
    assert_false(t.out_of_order);
    assert_int_equal(c.records, ROUNDS * PER);
    assert_int_equal(c.bytes, len);
  }
  fm_follow_refs_free(rd);
  fm_event_filter_destroy(&paths);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_merge_three_filers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bounds_and_filters, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_tail_and_corruption, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_chunk_and_stop, setup, teardown),
    cmocka_unit_test_setup_teardown(test_many_files_small_window, setup, teardown),
    cmocka_unit_test_setup_teardown(test_many_chunks_parallel, setup, teardown),
    cmocka_unit_test_setup_teardown(test_undecodable_records, setup, teardown),
    cmocka_unit_test_setup_teardown(test_big_chunks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
