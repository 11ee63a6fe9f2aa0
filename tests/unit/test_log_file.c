/* Unit tests for storage/log_file.h: names and their parsers, listing the log files of a time range, the merged scan
 * with its readahead thread (several filer ids, chunk splits, torn tails, corruption, missing chunks, early close),
 * and reading encrypted and compressed chunks as upstream writes them. Fixtures are real stores in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "chunk_store.h"
#include "error.h"
#include "filer.pb-c.h"
#include "log.h"
#include "log_file.h"
#include "log_record.h"
#include "log_scan.h"
#include "store.h"

#define MIN FM_NS_PER_MINUTE
#define SEC INT64_C(1000000000)

/* ================================================================ fixture */

/* One record the fixture wrote: what a scan must return. */
typedef struct written {
  int64_t ts;
  uint32_t filer;
} written;

typedef struct fixture {
  char base[64];
  char vol[96];
  fm_store *store;
  fm_chunk_store *cs;
  written *recs;
  size_t nrecs, cap;
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  snprintf(f->base, sizeof f->base, "/tmp/fm_test_log_file.XXXXXX");
  if (mkdtemp(f->base) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->vol, sizeof f->vol, "%s/volumes", f->base);
  char err[FM_ERR_LEN] = "";
  if (fm_store_open(f->base, NULL, &f->store, err, sizeof err) != 0 ||
      fm_chunk_store_open(f->vol, 0, NULL, &f->cs, err, sizeof err) != 0) {
    fprintf(stderr, "setup: %s\n", err);
    return -1;
  }
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
  fm_chunk_store_free(f->cs);
  fm_store_free(f->store);
  int rc = nftw(f->base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f->recs);
  free(f);
  return rc == 0 ? 0 : -1;
}

/* ================================================================ helpers */

/* ns of a UTC date and time. */
static int64_t at(const char *day, int hh, int mm, int64_t extra_ns)
{
  int64_t d;
  assert_true(fm_log_parse_day(day, strlen(day), &d));
  return d + (hh * 60 + mm) * MIN + extra_ns;
}

/* A growing byte buffer: a log file's bytes. */
typedef struct bytes {
  uint8_t *p;
  size_t len, cap;
} bytes;

static void bytes_put(bytes *b, const void *src, size_t n)
{
  if (b->cap - b->len < n) {
    size_t cap = b->cap > 0 ? b->cap : 256;
    while (cap - b->len < n)
      cap *= 2;
    b->p = realloc(b->p, cap);
    assert_non_null(b->p);
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

/* The event bytes of a record: its ts and filer id in text, so that a returned record names itself, padded to
 * `size`. */
static size_t event_bytes(int64_t ts, uint32_t filer, uint8_t *out, size_t size)
{
  int n = snprintf((char *)out, size, "ts=%020" PRId64 " filer=%08" PRIx32 " ", ts, filer);
  for (size_t i = (size_t)n; i < size; i++)
    out[i] = (uint8_t)('a' + i % 26);
  return size > (size_t)n ? size : (size_t)n;
}

/* Appends a record to `b`, and to the fixture's list of what a scan must return when `expect`. */
static void add_record(fixture *f, bytes *b, int64_t ts, uint32_t filer, bool expect)
{
  uint8_t ev[160], rec[256];
  size_t evlen = event_bytes(ts, filer, ev, 100 + (size_t)(ts % 40));
  size_t n;
  assert_int_equal(fm_log_record_encode(ts, ev, evlen, "/some/dir", 9, 0, rec, sizeof rec, &n), 0);
  bytes_put(b, rec, n);
  if (!expect)
    return;
  if (f->nrecs == f->cap) {
    f->cap = f->cap > 0 ? f->cap * 2 : 64;
    f->recs = realloc(f->recs, f->cap * sizeof *f->recs);
    assert_non_null(f->recs);
  }
  f->recs[f->nrecs++] = (written){ ts, filer };
}

enum {
  FID_TEXT = 1,   /* the chunk names its needle by file_id text */
  FID_STRUCT = 2, /* ... by the fid message */
  REVERSED = 4,   /* the entry lists its chunks last first */
};

/* Writes `data` as the log file of (minute, filer), cut into chunks at `cuts` (ascending byte offsets inside data),
 * with `flags`. fids[] (if not NULL) receives the chunks' fids. Adds chunks to an existing entry, as a later flush in
 * the same minute does, when `append`. */
static void write_file_ex(fixture *f, int64_t minute, uint32_t filer, const uint8_t *data, size_t len,
                          const size_t *cuts, size_t ncuts, int flags, fm_fid *fids)
{
  char day_dir[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX], err[FM_ERR_LEN] = "";
  fm_log_file_path(minute, filer, day_dir, name);
  size_t n = ncuts + 1;
  FilerPb__FileChunk *chunks = calloc(n, sizeof *chunks);
  FilerPb__FileChunk **ptrs = calloc(n, sizeof *ptrs);
  FilerPb__FileId *fidmsg = calloc(n, sizeof *fidmsg);
  char(*text)[FM_FID_MAX] = calloc(n, sizeof *text);
  assert_true(chunks != NULL && ptrs != NULL && fidmsg != NULL && text != NULL);
  for (size_t i = 0; i < n; i++) {
    size_t from = i == 0 ? 0 : cuts[i - 1], to = i == ncuts ? len : cuts[i];
    fm_fid fid;
    assert_int_equal(fm_chunk_store_assign(f->cs, &fid), 0);
    assert_int_equal(fm_chunk_store_write(f->cs, &fid, data + from, to - from, err, sizeof err), 0);
    if (fids != NULL)
      fids[i] = fid;
    filer_pb__file_chunk__init(&chunks[i]);
    if (flags & FID_TEXT || !(flags & FID_STRUCT)) {
      assert_int_equal(fm_fid_format(&fid, text[i], sizeof text[i]), 0);
      chunks[i].file_id = text[i];
    }
    if (flags & FID_STRUCT) {
      filer_pb__file_id__init(&fidmsg[i]);
      fidmsg[i].volume_id = fid.volume_id;
      fidmsg[i].file_key = fid.key;
      fidmsg[i].cookie = fid.cookie;
      chunks[i].fid = &fidmsg[i];
    }
    chunks[i].offset = (int64_t)from;
    chunks[i].size = to - from;
    ptrs[flags & REVERSED ? n - 1 - i : i] = &chunks[i];
  }
  FilerPb__Entry e;
  filer_pb__entry__init(&e);
  e.name = name;
  e.n_chunks = n;
  e.chunks = ptrs;
  size_t plen = filer_pb__entry__get_packed_size(&e);
  uint8_t *packed = malloc(plen + 1);
  assert_non_null(packed);
  filer_pb__entry__pack(&e, packed);

  /* the day directory's own entry, as the flusher's parent creation makes it */
  FilerPb__Entry d;
  filer_pb__entry__init(&d);
  d.name = day_dir + sizeof FM_LOG_DIR;
  d.is_directory = 1;
  uint8_t dpacked[64];
  size_t dlen = filer_pb__entry__pack(&d, dpacked);

  fm_store_batch *b = fm_store_batch_new();
  fm_store_batch_put_entry(b, FM_LOG_DIR, day_dir + sizeof FM_LOG_DIR, dpacked, dlen);
  fm_store_batch_put_entry(b, day_dir, name, packed, plen);
  assert_int_equal(fm_store_write(f->store, b, err, sizeof err), 0);
  fm_store_batch_free(b);
  free(packed);
  free(text);
  free(fidmsg);
  free(ptrs);
  free(chunks);
}

static void write_file(fixture *f, int64_t minute, uint32_t filer, const bytes *b, size_t chunk_size)
{
  size_t cuts[4096], n = 0;
  for (size_t c = chunk_size; chunk_size > 0 && c < b->len; c += chunk_size) {
    assert_true(n < 4096);
    cuts[n++] = c;
  }
  write_file_ex(f, minute, filer, b->p, b->len, cuts, n, FID_TEXT, NULL);
}

/* Puts a raw entry value at dir/name. */
static void put_raw(fixture *f, const char *dir, const char *name, const void *value, size_t len)
{
  char err[FM_ERR_LEN] = "";
  fm_store_batch *b = fm_store_batch_new();
  fm_store_batch_put_entry(b, dir, name, value, len);
  assert_int_equal(fm_store_write(f->store, b, err, sizeof err), 0);
  fm_store_batch_free(b);
}

static void put_entry(fixture *f, const char *dir, const char *name, bool is_dir)
{
  FilerPb__Entry e;
  filer_pb__entry__init(&e);
  e.name = (char *)name;
  e.is_directory = is_dir;
  uint8_t buf[128];
  put_raw(f, dir, name, buf, filer_pb__entry__pack(&e, buf));
}

static int cmp_written(const void *a, const void *b)
{
  const written *x = a, *y = b;
  if (x->ts != y->ts)
    return x->ts < y->ts ? -1 : 1;
  return x->filer < y->filer ? -1 : x->filer > y->filer;
}

/* Reads the ts and filer id a record's event names. */
static written record_id(const fm_log_record *rec)
{
  written w = { 0, 0 };
  char text[40];
  assert_true(rec->data_len >= 39);
  memcpy(text, rec->data, 39);
  text[39] = '\0';
  assert_int_equal(sscanf(text, "ts=%" SCNd64 " filer=%" SCNx32, &w.ts, &w.filer), 2);
  assert_int_equal(w.ts, rec->ts_ns);
  return w;
}

/* Scans (after, until] and checks that exactly the fixture's records in that range come back, in (ts, filer id)
 * order, then the end, twice. Returns how many. */
static size_t scan_check(fixture *f, int64_t after, int64_t until, const fm_log_scan_options *opt)
{
  written *want = calloc(f->nrecs + 1, sizeof *want);
  assert_non_null(want);
  size_t n = 0;
  for (size_t i = 0; i < f->nrecs; i++)
    if (f->recs[i].ts > after && (until == 0 || f->recs[i].ts <= until))
      want[n++] = f->recs[i];
  qsort(want, n, sizeof *want, cmp_written);

  char err[FM_ERR_LEN] = "";
  fm_log_scan *s;
  assert_int_equal(fm_log_scan_open(f->store, f->cs, after, until, opt, &s, err, sizeof err), 0);
  assert_int_equal(fm_log_scan_last_ts(s), after);
  size_t got = 0;
  fm_log_record rec;
  int rc;
  while ((rc = fm_log_scan_next(s, &rec, err, sizeof err)) == 0) {
    if (got >= n)
      fail_msg("extra record ts %" PRId64 " from %s", rec.ts_ns, fm_log_scan_file(s));
    written w = record_id(&rec);
    if (w.ts != want[got].ts || w.filer != want[got].filer)
      fail_msg("record %zu: got ts %" PRId64 " filer %08" PRIx32 ", want ts %" PRId64 " filer %08" PRIx32, got, w.ts,
               w.filer, want[got].ts, want[got].filer);
    assert_int_equal(fm_log_scan_last_ts(s), rec.ts_ns);
    /* the file the record came from is named for that filer id and a minute not after the record */
    const char *path = fm_log_scan_file(s);
    char suffix[16];
    snprintf(suffix, sizeof suffix, ".%08" PRIx32, w.filer);
    assert_true(strlen(path) > 9 && strcmp(path + strlen(path) - 9, suffix) == 0);
    got++;
  }
  if (rc != FM_ENOTFOUND)
    fail_msg("scan (%" PRId64 ", %" PRId64 "]: %d: %s", after, until, rc, err);
  assert_int_equal(got, n);
  assert_int_equal(fm_log_scan_next(s, &rec, err, sizeof err), FM_ENOTFOUND);
  fm_log_scan_stats st;
  fm_log_scan_get_stats(s, &st);
  assert_int_equal(st.records, n);
  fm_log_scan_close(s);
  free(want);
  return n;
}

/* scan_check with readahead (default and a tiny budget) and without. */
static size_t scan_check_all(fixture *f, int64_t after, int64_t until)
{
  fm_log_scan_options sync = { .synchronous = true }, tiny = { .readahead_bytes = 1 };
  size_t n = scan_check(f, after, until, NULL);
  assert_int_equal(scan_check(f, after, until, &sync), n);
  assert_int_equal(scan_check(f, after, until, &tiny), n);
  return n;
}

/* Lists (after, until] and returns the paths joined by ' '. */
static void list_paths(fixture *f, int64_t after, int64_t until, char *out, size_t cap)
{
  char err[FM_ERR_LEN] = "";
  fm_log_files *l;
  assert_int_equal(fm_log_files_open(f->store, after, until, &l, err, sizeof err), 0);
  out[0] = '\0';
  fm_log_file *file;
  int rc;
  while ((rc = fm_log_files_next(l, &file, err, sizeof err)) != FM_ENOTFOUND) {
    if (rc != 0)
      fail_msg("fm_log_files_next: %d: %s", rc, err);
    char one[FM_LOG_PATH_MAX + 2];
    snprintf(one, sizeof one, "%s%s", out[0] != '\0' ? " " : "", file->path + sizeof FM_LOG_DIR);
    assert_true(strlen(out) + strlen(one) < cap);
    strcat(out, one);
    fm_log_file_free(file);
  }
  fm_log_files_free(l);
}

/* Runs a scan to its end or error; returns the status and counts the records. */
static int scan_run(fixture *f, int64_t after, int64_t until, const fm_log_scan_options *opt, size_t *count, char *err,
                    size_t errlen)
{
  fm_log_scan *s;
  int rc = fm_log_scan_open(f->store, f->cs, after, until, opt, &s, err, errlen);
  assert_int_equal(rc, 0);
  fm_log_record rec;
  *count = 0;
  while ((rc = fm_log_scan_next(s, &rec, err, errlen)) == 0)
    (*count)++;
  /* an error is final */
  char again[FM_ERR_LEN] = "";
  assert_int_equal(fm_log_scan_next(s, &rec, again, sizeof again), rc);
  if (rc != FM_ENOTFOUND)
    assert_string_equal(again, err);
  fm_log_scan_close(s);
  return rc;
}

/* ================================================================ names */

static void test_names_round_trip(void **state)
{
  const int64_t cases[] = {
    0,
    MIN - 1,
    at("1999-12-31", 23, 59, 59 * SEC),
    at("2000-02-29", 12, 34, 5),
    at("2024-02-29", 23, 59, 0),
    at("2024-03-01", 0, 0, 0),
    at("2100-02-28", 0, 1, 0),
    at("2262-04-10", 23, 59, 59 * SEC),
    INT64_MAX,
  };
  const uint32_t ids[] = { 0, 1, 0x0a1b2c3d, 0x7fffffff, 0xffffffff };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char dir[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX];
    uint32_t id = ids[i % 5];
    fm_log_file_path(cases[i], id, dir, name);
    assert_int_equal(strlen(dir), FM_LOG_DAY_DIR_MAX - 1);
    assert_int_equal(strlen(name), FM_LOG_FILE_NAME_MAX - 1);
    assert_memory_equal(dir, FM_LOG_DIR "/", sizeof FM_LOG_DIR);
    int64_t day, minute;
    uint32_t back;
    assert_true(fm_log_parse_day(dir + sizeof FM_LOG_DIR, 10, &day));
    assert_true(fm_log_parse_file_name(name, strlen(name), &minute, &back));
    assert_int_equal(day + minute, fm_log_minute_of(cases[i]));
    assert_int_equal(back, id);
  }
  char dir[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX];
  fm_log_file_path(at("2024-02-29", 23, 59, 30 * SEC), 0x0a1b2c3d, dir, name);
  assert_string_equal(dir, "/topics/.system/log/2024-02-29");
  assert_string_equal(name, "23-59.0a1b2c3d");
  fm_log_file_path(0, 0, dir, name);
  assert_string_equal(dir, "/topics/.system/log/1970-01-01");
  assert_string_equal(name, "00-00.00000000");
  /* upstream's %x parse: short and upper-case ids are read too */
  int64_t minute;
  uint32_t id;
  assert_true(fm_log_parse_file_name("00-01.A", 7, &minute, &id));
  assert_int_equal(minute, MIN);
  assert_int_equal(id, 10);
}

static void test_names_rejects(void **state)
{
  const char *days[] = { "2024-02-30", "2023-02-29",  "2100-02-29", "1969-12-31", "2024-13-01",
                         "2024-00-10", "2024-01-00",  "2024-1-01",  "2024/01/01", "2024-01-0x",
                         "",           "2024-01-011", "2262-04-12", "9999-12-31" };
  int64_t ns;
  for (size_t i = 0; i < sizeof days / sizeof days[0]; i++)
    if (fm_log_parse_day(days[i], strlen(days[i]), &ns))
      fail_msg("day \"%s\" accepted", days[i]);
  assert_true(fm_log_parse_day("2000-02-29", 10, &ns));
  assert_true(fm_log_parse_day("2024-02-29", 10, &ns));
  assert_int_equal(ns, at("2024-02-28", 0, 0, 0) + FM_NS_PER_DAY);

  const char *names[] = { "24-00.x",        "24-00.00000001", "12-60.00000001", "12-00x00000001",  "1200.00000001",
                          "12-00",          "12-00.",         "12-00.0000000g", "12-00.123456789", "1-00.00000001",
                          "12-0a.00000001", "12_00.00000001", "-1-00.0000001",  "12-00.0000 001" };
  int64_t minute;
  uint32_t id;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (fm_log_parse_file_name(names[i], strlen(names[i]), &minute, &id))
      fail_msg("name \"%s\" accepted", names[i]);
  assert_true(fm_log_parse_file_name("23-59.ffffffff", 14, &minute, &id));
  assert_int_equal(minute, (23 * 60 + 59) * MIN);
  assert_int_equal(id, 0xffffffffu);
}

/* ================================================================ listing */

static void one_record_file(fixture *f, int64_t minute, uint32_t filer)
{
  bytes b = { 0 };
  add_record(f, &b, minute + 1, filer, true);
  write_file(f, minute, filer, &b, 0);
  free(b.p);
}

static void test_listing(void **state)
{
  fixture *f = *state;
  char paths[1024];
  list_paths(f, 0, 0, paths, sizeof paths);
  assert_string_equal(paths, "");

  one_record_file(f, at("2024-02-29", 10, 0, 0), 1);
  one_record_file(f, at("2024-02-29", 23, 58, 0), 1);
  one_record_file(f, at("2024-02-29", 23, 59, 0), 2);
  one_record_file(f, at("2024-02-29", 23, 59, 0), 1);
  one_record_file(f, at("2024-03-01", 0, 0, 0), 1);
  one_record_file(f, at("2024-03-01", 0, 1, 0), 2);
  one_record_file(f, at("2024-03-03", 7, 30, 0), 1);
  /* what a listing passes over: names that are no log file, directories, entries without chunks, non-days */
  put_entry(f, FM_LOG_DIR "/2024-03-01", "junk", false);
  put_entry(f, FM_LOG_DIR "/2024-03-01", "00-00.zz", false);
  put_entry(f, FM_LOG_DIR "/2024-03-01", "00-00.00000003", false); /* no chunks */
  put_entry(f, FM_LOG_DIR "/2024-03-01", "00-01.00000004", true);
  put_entry(f, FM_LOG_DIR, "notaday", true);
  put_entry(f, FM_LOG_DIR, "2024-02-30", true);
  one_record_file(f, at("2024-03-02", 0, 0, 0), 5);
  put_entry(f, FM_LOG_DIR, "2024-03-02", false); /* a day whose entry says file still lists */

  list_paths(f, 0, 0, paths, sizeof paths);
  assert_string_equal(paths, "2024-02-29/10-00.00000001 2024-02-29/23-58.00000001 2024-02-29/23-59.00000001 "
                             "2024-02-29/23-59.00000002 2024-03-01/00-00.00000001 2024-03-01/00-01.00000002 "
                             "2024-03-02/00-00.00000005 2024-03-03/07-30.00000001");
  /* from one minute before after_ns's minute, across midnight */
  list_paths(f, at("2024-02-29", 23, 59, 30 * SEC), 0, paths, sizeof paths);
  assert_string_equal(paths, "2024-02-29/23-58.00000001 2024-02-29/23-59.00000001 2024-02-29/23-59.00000002 "
                             "2024-03-01/00-00.00000001 2024-03-01/00-01.00000002 2024-03-02/00-00.00000005 "
                             "2024-03-03/07-30.00000001");
  list_paths(f, at("2024-03-01", 0, 0, 1), 0, paths, sizeof paths);
  assert_string_equal(paths, "2024-02-29/23-59.00000001 2024-02-29/23-59.00000002 2024-03-01/00-00.00000001 "
                             "2024-03-01/00-01.00000002 2024-03-02/00-00.00000005 2024-03-03/07-30.00000001");
  /* mid-day: earlier files of the day are not listed */
  list_paths(f, at("2024-02-29", 12, 0, 0), 0, paths, sizeof paths);
  assert_string_equal(paths, "2024-02-29/23-58.00000001 2024-02-29/23-59.00000001 2024-02-29/23-59.00000002 "
                             "2024-03-01/00-00.00000001 2024-03-01/00-01.00000002 2024-03-02/00-00.00000005 "
                             "2024-03-03/07-30.00000001");
  /* until: through until's minute, not the days after */
  list_paths(f, at("2024-02-29", 23, 59, 0), at("2024-03-01", 0, 0, 59 * SEC), paths, sizeof paths);
  assert_string_equal(paths, "2024-02-29/23-58.00000001 2024-02-29/23-59.00000001 2024-02-29/23-59.00000002 "
                             "2024-03-01/00-00.00000001");
  list_paths(f, 0, at("2024-02-29", 23, 58, 0), paths, sizeof paths);
  assert_string_equal(paths, "2024-02-29/10-00.00000001 2024-02-29/23-58.00000001");
  list_paths(f, at("2024-03-04", 0, 0, 0), 0, paths, sizeof paths);
  assert_string_equal(paths, "");

  int64_t oldest;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_log_files_oldest(f->store, &oldest, err, sizeof err), 0);
  assert_int_equal(oldest, at("2024-02-29", 10, 0, 0));

  fm_log_files *l;
  assert_int_equal(fm_log_files_open(f->store, -1, 0, &l, err, sizeof err), FM_EINVAL);
  assert_null(l);
  fm_log_files_free(NULL);
  fm_log_file_free(NULL);
}

/* A day with more files than one listing batch, with names to pass over among them. */
static void test_listing_batches(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-01-15", 10, 0, 0);
  for (int i = 0; i < 100; i++) {
    one_record_file(f, m + i * MIN, 1);
    one_record_file(f, m + i * MIN, 2);
    if (i % 30 == 0) {
      char name[32];
      snprintf(name, sizeof name, "%02d-%02d.bogus", 10 + i / 60, i % 60);
      put_entry(f, FM_LOG_DIR "/2024-01-15", name, false);
    }
  }
  one_record_file(f, at("2024-01-16", 0, 0, 0), 1);
  char err[FM_ERR_LEN] = "";
  fm_log_files *l;
  assert_int_equal(fm_log_files_open(f->store, 0, 0, &l, err, sizeof err), 0);
  fm_log_file *file;
  int n = 0;
  int64_t prev = 0;
  uint32_t prev_id = 0;
  while (fm_log_files_next(l, &file, err, sizeof err) == 0) {
    assert_true(file->file_ts_ns > prev || (file->file_ts_ns == prev && file->filer_id > prev_id));
    prev = file->file_ts_ns;
    prev_id = file->filer_id;
    fm_log_file_free(file);
    n++;
  }
  fm_log_files_free(l);
  assert_int_equal(n, 201);
  assert_int_equal(scan_check_all(f, 0, 0), 201);
  assert_int_equal(scan_check_all(f, m + 70 * MIN, m + 90 * MIN + 1), 42);
  assert_int_equal(scan_check_all(f, m + 70 * MIN, at("2024-01-16", 0, 0, 1)), 61);
}

static void test_listing_chunks(void **state)
{
  fixture *f = *state;
  bytes b = { 0 };
  int64_t m = at("2024-05-05", 5, 5, 0);
  for (int i = 0; i < 30; i++)
    add_record(f, &b, m + i * SEC, 7, true);
  size_t cuts[] = { 100, 1000, 1001, 2500 };
  fm_fid fids[5];
  write_file_ex(f, m, 7, b.p, b.len, cuts, 4, FID_STRUCT | REVERSED, fids);
  char err[FM_ERR_LEN] = "";
  fm_log_files *l;
  assert_int_equal(fm_log_files_open(f->store, m, 0, &l, err, sizeof err), 0);
  fm_log_file *file;
  assert_int_equal(fm_log_files_next(l, &file, err, sizeof err), 0);
  assert_string_equal(file->day, "2024-05-05");
  assert_string_equal(file->name, "05-05.00000007");
  assert_string_equal(file->path, FM_LOG_DIR "/2024-05-05/05-05.00000007");
  assert_int_equal(file->file_ts_ns, m);
  assert_int_equal(file->filer_id, 7);
  assert_int_equal(file->nchunks, 5);
  assert_non_null(file->entry);
  uint64_t off = 0;
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(file->chunks[i].offset, off);
    assert_int_equal(file->chunks[i].fid.key, fids[i].key);
    assert_int_equal(file->chunks[i].fid.cookie, fids[i].cookie);
    assert_int_equal(file->chunks[i].pb->fid->file_key, fids[i].key);
    off += file->chunks[i].size;
    void *data;
    size_t len;
    assert_int_equal(fm_log_chunk_read(f->cs, &file->chunks[i], &data, &len, err, sizeof err), 0);
    assert_int_equal(len, file->chunks[i].size);
    assert_memory_equal(data, b.p + file->chunks[i].offset, len);
    free(data);
  }
  assert_int_equal(off, b.len);
  fm_log_file_free(file);
  assert_int_equal(fm_log_files_next(l, &file, err, sizeof err), FM_ENOTFOUND);
  fm_log_files_free(l);
  free(b.p);
}

static void test_listing_damage(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-06-01", 1, 0, 0);
  one_record_file(f, m, 1);
  one_record_file(f, m + 3 * MIN, 1);
  const char *day = FM_LOG_DIR "/2024-06-01";
  /* an entry that is no Entry, and one whose chunks leave a gap */
  put_raw(f, day, "01-01.00000001", "\xff\xff\xff", 3);
  FilerPb__FileChunk c0 = FILER_PB__FILE_CHUNK__INIT, c1 = FILER_PB__FILE_CHUNK__INIT;
  c0.file_id = (char *)"1,0100000001";
  c0.size = 10;
  c1.file_id = (char *)"1,0200000001";
  c1.offset = 20;
  c1.size = 10;
  FilerPb__FileChunk *cp[] = { &c0, &c1 };
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.n_chunks = 2;
  e.chunks = cp;
  uint8_t buf[256];
  put_raw(f, day, "01-02.00000001", buf, filer_pb__entry__pack(&e, buf));

  char err[FM_ERR_LEN] = "";
  fm_log_files *l;
  assert_int_equal(fm_log_files_open(f->store, 0, 0, &l, err, sizeof err), 0);
  fm_log_file *file;
  assert_int_equal(fm_log_files_next(l, &file, err, sizeof err), 0);
  fm_log_file_free(file);
  assert_int_equal(fm_log_files_next(l, &file, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, FM_LOG_DIR "/2024-06-01/01-01.00000001 offset 0: "));
  assert_int_equal(fm_log_files_next(l, &file, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, FM_LOG_DIR "/2024-06-01/01-02.00000001 offset 20: "));
  assert_int_equal(fm_log_files_next(l, &file, err, sizeof err), 0); /* goes on */
  assert_int_equal(file->file_ts_ns, m + 3 * MIN);
  fm_log_file_free(file);
  assert_int_equal(fm_log_files_next(l, &file, err, sizeof err), FM_ENOTFOUND);
  fm_log_files_free(l);

  /* a bad file id */
  c1.file_id = (char *)"1,zz";
  c1.offset = 10;
  put_raw(f, day, "01-02.00000001", buf, filer_pb__entry__pack(&e, buf));
  size_t count;
  assert_int_equal(scan_run(f, 0, 0, NULL, &count, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, FM_LOG_DIR "/2024-06-01/01-01.00000001 offset 0: "));
  assert_int_equal(count, 1);
  fm_log_scan_options skip = { .skip_damaged = true };
  assert_int_equal(scan_run(f, 0, 0, &skip, &count, err, sizeof err), FM_ENOTFOUND);
  assert_int_equal(count, 2);
  put_raw(f, day, "01-01.00000001", buf, 0); /* an empty Entry: no chunks, passed over */
  assert_int_equal(scan_run(f, 0, 0, NULL, &count, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, FM_LOG_DIR "/2024-06-01/01-02.00000001 offset 10: chunk with a bad file id"));

  int64_t oldest;
  assert_int_equal(fm_log_files_oldest(f->store, &oldest, err, sizeof err), 0);
  assert_int_equal(oldest, m);
}

static void test_oldest(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  int64_t oldest = -1;
  assert_int_equal(fm_log_files_oldest(f->store, &oldest, err, sizeof err), 0);
  assert_int_equal(oldest, 0);
  /* a first day holding nothing readable does not count */
  put_entry(f, FM_LOG_DIR, "2023-01-01", true);
  put_entry(f, FM_LOG_DIR "/2023-01-01", "00-00.00000001", false);
  put_entry(f, FM_LOG_DIR "/2023-01-01", "bogus", false);
  assert_int_equal(fm_log_files_oldest(f->store, &oldest, err, sizeof err), 0);
  assert_int_equal(oldest, 0);
  one_record_file(f, at("2023-01-02", 3, 4, 0), 9);
  one_record_file(f, at("2023-01-02", 3, 3, 0), 10);
  one_record_file(f, at("2023-01-05", 0, 0, 0), 9);
  assert_int_equal(fm_log_files_oldest(f->store, &oldest, err, sizeof err), 0);
  assert_int_equal(oldest, at("2023-01-02", 3, 3, 0));
}

/* ================================================================ scan */

/* Two filer ids over several minutes and a midnight, events interleaved and one ts shared. */
static void test_scan_merge(void **state)
{
  fixture *f = *state;
  const uint32_t A = 0x0a, B = 0x0b;
  int64_t m0 = at("2024-12-31", 23, 57, 0);
  for (int k = 0; k < 6; k++) {
    int64_t m = m0 + k * MIN;
    bytes a = { 0 }, b = { 0 };
    for (int i = 0; i < 40; i++) {
      add_record(f, &a, m + i * 1500 * 1000 * 1000LL + 7, A, true);
      if (k != 2) /* B has no file in one minute */
        add_record(f, &b, m + i * 1500 * 1000 * 1000LL + (i == 5 ? 7 : 300), B, true);
    }
    write_file(f, m, A, &a, 700);
    if (k != 2)
      write_file(f, m, B, &b, k == 4 ? 0 : 1 << 20);
    free(a.p);
    free(b.p);
  }
  size_t all = scan_check_all(f, 0, 0);
  assert_int_equal(all, 6 * 40 + 5 * 40);
  /* ranges: mid-file, across midnight, bounded, a shared ts as the bound, empty */
  int64_t shared = m0 + 3 * MIN + 5 * 1500 * 1000 * 1000LL + 7;
  assert_true(scan_check_all(f, m0 + 90 * SEC, m0 + 4 * MIN + 10 * SEC) > 0);
  assert_true(scan_check_all(f, at("2025-01-01", 0, 0, 0) - 1, 0) > 0);
  assert_true(scan_check_all(f, shared - 1, shared) == 2);
  assert_true(scan_check_all(f, shared, shared + 1) == 0);
  assert_int_equal(scan_check_all(f, m0 + 10 * MIN, 0), 0);
  assert_int_equal(scan_check_all(f, m0 + MIN, m0 + MIN), 0);
  assert_int_equal(scan_check_all(f, m0 + 2 * MIN, m0 + MIN), 0);
}

/* A file named for minute M may hold events of the next minutes (upstream), while another filer id writes in
 * between. */
static void test_scan_overlap(void **state)
{
  fixture *f = *state;
  int64_t m = at("2025-02-03", 4, 5, 0);
  bytes a = { 0 }, b = { 0 }, a2 = { 0 };
  for (int i = 0; i < 150; i++)
    add_record(f, &a, m + i * SEC, 1, true); /* 04:05:00 .. 04:07:29 */
  for (int i = 0; i < 30; i++)
    add_record(f, &b, m + MIN + i * 2 * SEC + 500, 2, true);
  for (int i = 0; i < 10; i++)
    add_record(f, &a2, m + 2 * MIN + 40 * SEC + i * SEC, 1, true);
  write_file(f, m, 1, &a, 1000);
  write_file(f, m + MIN, 2, &b, 0);
  write_file(f, m + 2 * MIN, 1, &a2, 0);
  assert_int_equal(scan_check_all(f, 0, 0), 190);
  scan_check_all(f, m + MIN + 10 * SEC, 0);
  /* as the reference, a scan starts one minute before after_ns: A's first file is still listed here */
  scan_check_all(f, m + 110 * SEC, m + 2 * MIN + 45 * SEC);
  free(a.p);
  free(b.p);
  free(a2.p);
}

/* Chunks cut anywhere, a record split across three chunks, empty chunks, a later flush appending chunks. */
static void test_scan_split_records(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-07-07", 7, 7, 0);
  bytes b = { 0 };
  for (int i = 0; i < 20; i++)
    add_record(f, &b, m + i * SEC + 3, 0xabcdef01, true);
  /* record 3 starts at about 3 * 140: cut inside its prefix, inside its body twice, and leave an empty chunk */
  size_t cuts[] = { 1, 2, 300, 430, 431, 432, 440, 500, 500, 1400, 2001 };
  write_file_ex(f, m, 0xabcdef01, b.p, b.len, cuts, sizeof cuts / sizeof cuts[0], FID_TEXT | FID_STRUCT, NULL);
  assert_int_equal(scan_check_all(f, 0, 0), 20);
  scan_check_all(f, m + 5 * SEC, m + 9 * SEC + 3);
  /* a later flush in the same minute: the entry gets more chunks */
  for (int i = 20; i < 30; i++)
    add_record(f, &b, m + i * SEC + 3, 0xabcdef01, true);
  size_t cuts2[] = { 300, 2001, 2500, 3000 };
  write_file_ex(f, m, 0xabcdef01, b.p, b.len, cuts2, 4, FID_TEXT, NULL);
  assert_int_equal(scan_check_all(f, 0, 0), 30);
  free(b.p);
}

/* A torn last record ends its file; the next file of the same filer id continues. */
static void test_scan_torn_tail(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-08-08", 8, 8, 0);
  bytes b = { 0 }, torn = { 0 };
  for (int i = 0; i < 10; i++)
    add_record(f, &b, m + i * SEC, 3, true);
  add_record(f, &torn, m + 30 * SEC, 3, false);
  bytes_put(&b, torn.p, torn.len - 5);
  size_t cuts[] = { b.len - 20 }; /* the torn record straddles the last two chunks */
  write_file_ex(f, m, 3, b.p, b.len, cuts, 1, FID_TEXT, NULL);
  bytes c = { 0 };
  for (int i = 0; i < 10; i++)
    add_record(f, &c, m + MIN + i * SEC, 3, true);
  bytes_put(&c, torn.p, 3); /* a torn length prefix */
  write_file(f, m + MIN, 3, &c, 0);
  assert_int_equal(scan_check_all(f, 0, 0), 20);
  free(b.p);
  free(c.p);
  free(torn.p);
}

/* A corrupt record fails the scan with the file's path and the record's offset, or ends its file with skip_damaged. */
static void test_scan_corrupt(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-09-09", 9, 9, 0);
  bytes b = { 0 };
  for (int i = 0; i < 5; i++)
    add_record(f, &b, m + i * SEC, 4, true);
  size_t bad = b.len;
  bytes_put(&b, "\0\0\0\0", 4); /* a zero length */
  for (int i = 5; i < 10; i++)
    add_record(f, &b, m + i * SEC, 4, false);
  write_file(f, m, 4, &b, 256);
  bytes c = { 0 };
  for (int i = 0; i < 3; i++)
    add_record(f, &c, m + MIN + i * SEC, 4, true);
  write_file(f, m + MIN, 4, &c, 0);

  char err[FM_ERR_LEN] = "", want[128];
  size_t count;
  snprintf(want, sizeof want, "%s/2024-09-09/09-09.00000004 offset %zu: ", FM_LOG_DIR, bad);
  fm_log_scan_options sync = { .synchronous = true };
  for (int mode = 0; mode < 2; mode++) {
    assert_int_equal(scan_run(f, 0, 0, mode ? &sync : NULL, &count, err, sizeof err), FM_EDECODE);
    if (strncmp(err, want, strlen(want)) != 0)
      fail_msg("error \"%s\" does not start \"%s\"", err, want);
    assert_int_equal(count, 5);
  }
  fm_log_scan *s;
  fm_log_record rec;
  assert_int_equal(fm_log_scan_open(f->store, f->cs, 0, 0, NULL, &s, err, sizeof err), 0);
  while (fm_log_scan_next(s, &rec, err, sizeof err) == 0)
    ;
  assert_string_equal(fm_log_scan_file(s), FM_LOG_DIR "/2024-09-09/09-09.00000004");
  assert_int_equal(fm_log_scan_last_ts(s), m + 4 * SEC);
  fm_log_scan_close(s);

  fm_log_scan_options skip = { .skip_damaged = true };
  assert_int_equal(scan_run(f, 0, 0, &skip, &count, err, sizeof err), FM_ENOTFOUND);
  assert_int_equal(count, 8);
  /* corruption after the range's end is never read */
  assert_int_equal(scan_run(f, 0, m + 2 * SEC, NULL, &count, err, sizeof err), FM_ENOTFOUND);
  assert_int_equal(count, 3);
  free(b.p);
  free(c.p);
}

/* A chunk deleted from the chunk store ends its file with a warning; the scan goes on. A chunk that fails its CRC is
 * an error. */
static void test_scan_missing_chunk(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-10-10", 10, 10, 0);
  bytes b = { 0 };
  size_t cuts[3];
  for (int i = 0; i < 30; i++) {
    if (i == 10 || i == 20)
      cuts[i / 10 - 1] = b.len;
    add_record(f, &b, m + i * SEC, 5, i < 10);
  }
  fm_fid fids[3];
  write_file_ex(f, m, 5, b.p, b.len, cuts, 2, FID_TEXT, fids);
  assert_int_equal(fm_chunk_store_delete(f->cs, &fids[1]), 0);
  bytes c = { 0 };
  for (int i = 0; i < 7; i++)
    add_record(f, &c, m + MIN + i * SEC, 5, true);
  bytes d = { 0 };
  for (int i = 0; i < 7; i++)
    add_record(f, &d, m + i * SEC + 77, 6, true); /* another filer id in the same minute */
  write_file(f, m + MIN, 5, &c, 0);
  write_file(f, m, 6, &d, 0);
  assert_int_equal(scan_check_all(f, 0, 0), 24);
  /* the first chunk missing: nothing of that file */
  assert_int_equal(fm_chunk_store_delete(f->cs, &fids[0]), 0);
  f->nrecs = 0;
  for (int i = 0; i < 7; i++)
    f->recs[f->nrecs++] = (written){ m + MIN + i * SEC, 5 };
  for (int i = 0; i < 7; i++)
    f->recs[f->nrecs++] = (written){ m + i * SEC + 77, 6 };
  assert_int_equal(scan_check_all(f, 0, 0), 14);
  free(b.p);
  free(c.p);
  free(d.p);
}

static void test_scan_after_mid_file(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-11-11", 11, 11, 0);
  bytes b = { 0 };
  for (int i = 1; i <= 100; i++)
    add_record(f, &b, m + i * 100 * 1000 * 1000LL, 8, true);
  write_file(f, m, 8, &b, 900);
  fm_log_scan *s;
  char err[FM_ERR_LEN] = "";
  fm_log_record rec;
  int64_t after = m + 50 * 100 * 1000 * 1000LL;
  assert_int_equal(fm_log_scan_open(f->store, f->cs, after, 0, NULL, &s, err, sizeof err), 0);
  assert_int_equal(fm_log_scan_next(s, &rec, err, sizeof err), 0);
  assert_int_equal(rec.ts_ns, after + 100 * 1000 * 1000LL);
  /* rec.pos is where the record sits in its file, rec.raw its bytes there */
  assert_true(rec.pos + rec.raw_len <= b.len);
  assert_memory_equal(rec.raw, b.p + rec.pos, rec.raw_len);
  fm_log_scan_close(s);
  assert_int_equal(scan_check_all(f, after, 0), 50);
  assert_int_equal(scan_check_all(f, after + 1, after + 100 * 1000 * 1000LL), 1);
  free(b.p);
}

/* Records whose ts does not increase within a filer id are dropped, so the merge stays in order. */
static void test_scan_non_increasing(void **state)
{
  fixture *f = *state;
  int64_t m = at("2024-04-04", 4, 4, 0);
  bytes b = { 0 };
  add_record(f, &b, m + 10, 1, true);
  add_record(f, &b, m + 20, 1, true);
  add_record(f, &b, m + 20, 1, false);
  add_record(f, &b, m + 15, 1, false);
  add_record(f, &b, m + 30, 1, true);
  write_file(f, m, 1, &b, 0);
  assert_int_equal(scan_check_all(f, 0, 0), 3);
  free(b.p);
}

/* Closing a scan at any point, with chunks being fetched ahead, releases everything (ASan checks). */
static void test_scan_close_mid_file(void **state)
{
  fixture *f = *state;
  int64_t m = at("2025-03-03", 3, 0, 0);
  for (int k = 0; k < 6; k++) {
    bytes b = { 0 };
    for (int i = 0; i < 3000; i++)
      add_record(f, &b, m + k * MIN + i * 10 * 1000 * 1000LL, k % 2 ? 1 : 2, true);
    write_file(f, m + k * MIN, k % 2 ? 1 : 2, &b, 64 * 1024);
    free(b.p);
  }
  char err[FM_ERR_LEN] = "";
  fm_log_scan *s;
  fm_log_record rec;
  const size_t stops[] = { 0, 1, 2, 100, 3001, 7000 };
  const size_t budgets[] = { 0, 1, 100 << 10 };
  for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
    for (size_t j = 0; j < 3; j++) {
      fm_log_scan_options opt = { .readahead_bytes = budgets[j] };
      assert_int_equal(fm_log_scan_open(f->store, f->cs, 0, 0, &opt, &s, err, sizeof err), 0);
      for (size_t n = 0; n < stops[i]; n++)
        assert_int_equal(fm_log_scan_next(s, &rec, err, sizeof err), 0);
      if (stops[i] > 0)
        usleep(2000); /* let the readahead thread get ahead, or be mid-fetch */
      fm_log_scan_stats st;
      fm_log_scan_get_stats(s, &st);
      assert_int_equal(st.records, stops[i]);
      fm_log_scan_close(s);
    }
  }
  fm_log_scan_close(NULL);
  assert_int_equal(scan_check(f, 0, 0, NULL), 18000);
  /* memory ahead is bounded: a whole scan with a small budget fetches each chunk once */
  fm_log_scan_options small = { .readahead_bytes = 100 << 10 };
  assert_int_equal(fm_log_scan_open(f->store, f->cs, 0, 0, &small, &s, err, sizeof err), 0);
  while (fm_log_scan_next(s, &rec, err, sizeof err) == 0)
    ;
  fm_log_scan_stats st;
  fm_log_scan_get_stats(s, &st);
  assert_int_equal(st.records, 18000);
  assert_int_equal(st.files, 6);
  fm_log_scan_close(s);

  assert_int_equal(fm_log_scan_open(f->store, f->cs, -5, 0, NULL, &s, err, sizeof err), FM_EINVAL);
  assert_null(s);
}

/* ================================================================ upstream chunks: encrypted, compressed */

static size_t gzip_bytes(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  zs.next_in = (uint8_t *)in;
  zs.avail_in = (uInt)len;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  size_t n = zs.total_out;
  deflateEnd(&zs);
  return n;
}

/* nonce || ciphertext || tag, as Go's gcm.Seal(nonce, nonce, plain, nil) */
static size_t seal(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t *out)
{
  for (int i = 0; i < 12; i++)
    out[i] = (uint8_t)(i * 7 + 1);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int n = 0, fin = 0;
  assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL), 1);
  assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL), 1);
  assert_int_equal(EVP_EncryptInit_ex(ctx, NULL, NULL, key, out), 1);
  assert_int_equal(EVP_EncryptUpdate(ctx, out + 12, &n, in, (int)len), 1);
  assert_int_equal(EVP_EncryptFinal_ex(ctx, out + 12 + n, &fin), 1);
  assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + len), 1);
  EVP_CIPHER_CTX_free(ctx);
  return 12 + len + 16;
}

static void test_upstream_chunks(void **state)
{
  fixture *f = *state;
  int64_t m = at("2025-04-04", 4, 4, 0);
  bytes b = { 0 };
  for (int i = 0; i < 40; i++)
    add_record(f, &b, m + i * SEC, 0x11, true);
  size_t cut1 = b.len / 3, cut2 = 2 * b.len / 3 + 7; /* the pieces split records */
  uint8_t key[32];
  for (int i = 0; i < 32; i++)
    key[i] = (uint8_t)(0x40 + i);
  uint8_t *z = malloc(b.len * 2 + 64), *enc = malloc(b.len * 2 + 64);
  assert_true(z != NULL && enc != NULL);

  /* piece 1 gzipped, piece 2 encrypted, piece 3 gzipped then encrypted (upstream's order) */
  fm_fid fid[3];
  char text[3][FM_FID_MAX], err[FM_ERR_LEN] = "";
  const size_t from[3] = { 0, cut1, cut2 }, to[3] = { cut1, cut2, b.len };
  FilerPb__FileChunk c[3];
  FilerPb__FileChunk *cp[3];
  for (int i = 0; i < 3; i++) {
    filer_pb__file_chunk__init(&c[i]);
    cp[i] = &c[i];
    const uint8_t *plain = b.p + from[i];
    size_t plen = to[i] - from[i];
    const uint8_t *store = plain;
    size_t slen = plen;
    if (i != 1) {
      slen = gzip_bytes(plain, plen, z, b.len * 2 + 64);
      store = z;
      c[i].is_compressed = 1;
    }
    if (i != 0) {
      slen = seal(key, store, slen, enc);
      store = enc;
      c[i].cipher_key.data = key;
      c[i].cipher_key.len = 32;
    }
    assert_int_equal(fm_chunk_store_assign(f->cs, &fid[i]), 0);
    assert_int_equal(fm_chunk_store_write(f->cs, &fid[i], store, slen, err, sizeof err), 0);
    fm_fid_format(&fid[i], text[i], sizeof text[i]);
    c[i].file_id = text[i];
    c[i].offset = (int64_t)from[i];
    c[i].size = plen;
  }
  char day_dir[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX];
  fm_log_file_path(m, 0x11, day_dir, name);
  put_entry(f, FM_LOG_DIR, day_dir + sizeof FM_LOG_DIR, true);
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.name = name;
  e.n_chunks = 3;
  e.chunks = cp;
  size_t elen = filer_pb__entry__get_packed_size(&e);
  uint8_t *packed = malloc(elen);
  filer_pb__entry__pack(&e, packed);
  put_raw(f, day_dir, name, packed, elen);
  assert_int_equal(scan_check_all(f, 0, 0), 40);

  /* what fm_log_chunk_read refuses, with the fid in the message */
  fm_log_chunk lc = { .fid = fid[1], .offset = 0, .size = to[1] - from[1], .pb = &c[1] };
  void *data;
  size_t len;
  uint8_t wrong[32];
  memcpy(wrong, key, 32);
  wrong[0] ^= 1;
  c[1].cipher_key.data = wrong;
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, text[1]));
  assert_non_null(strstr(err, "does not decrypt"));
  c[1].cipher_key.len = 16;
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), FM_EDECODE);
  c[1].cipher_key.data = key;
  c[1].cipher_key.len = 32;
  lc.size++;
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, "its size is"));
  lc = (fm_log_chunk){ .fid = fid[0], .size = cut1 - 1, .pb = &c[0] };
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, "more than its size"));
  lc.size = cut1 + 1;
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), FM_EDECODE);
  c[0].is_compressed = 0; /* read as is: gzip bytes, not the chunk's size */
  lc.size = cut1;
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), FM_EDECODE);
  c[1].is_compressed = 1; /* not gzip */
  lc = (fm_log_chunk){ .fid = fid[1], .size = to[1] - from[1], .pb = &c[1] };
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, "does not gunzip"));
  lc.pb = NULL; /* without pb: the stored bytes as they are */
  lc.size = to[1] - from[1] + 28;
  assert_int_equal(fm_log_chunk_read(f->cs, &lc, &data, &len, err, sizeof err), 0);
  free(data);
  /* a chunk that fails its CRC is an error of the scan, with the file and the chunk's offset */
  char vol[160];
  snprintf(vol, sizeof vol, "%s/%u.dat", f->vol, fid[2].volume_id);
  FILE *fp = fopen(vol, "r+b");
  assert_non_null(fp);
  assert_int_equal(fseek(fp, -12, SEEK_END), 0);
  int ch = fgetc(fp);
  assert_int_equal(fseek(fp, -12, SEEK_END), 0);
  fputc(ch ^ 0x55, fp);
  fclose(fp);
  size_t count;
  assert_int_equal(scan_run(f, 0, 0, NULL, &count, err, sizeof err), FM_EDECODE);
  char want[128];
  snprintf(want, sizeof want, "%s/2025-04-04/04-04.00000011 offset %zu: chunk %s: ", FM_LOG_DIR, cut2, text[2]);
  if (strncmp(err, want, strlen(want)) != 0)
    fail_msg("error \"%s\" does not start \"%s\"", err, want);

  free(packed);
  free(z);
  free(enc);
  free(b.p);
}

int main(void)
{
  fm_log_set_level(FM_LOG_ERROR); /* skipped names and damage log warnings by design */
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names_round_trip),
    cmocka_unit_test(test_names_rejects),
    cmocka_unit_test_setup_teardown(test_listing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_listing_batches, setup, teardown),
    cmocka_unit_test_setup_teardown(test_listing_chunks, setup, teardown),
    cmocka_unit_test_setup_teardown(test_listing_damage, setup, teardown),
    cmocka_unit_test_setup_teardown(test_oldest, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_merge, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_overlap, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_split_records, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_torn_tail, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_corrupt, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_missing_chunk, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_after_mid_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_non_increasing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_scan_close_mid_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_upstream_chunks, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
