/* Unit tests for storage/log_record.h: partition hashes and bytes checked against Python's hashlib and protobuf,
 * encode/decode round trips, absolute offsets, every kind of damage with its message, torn tails told from
 * corruption, and records straddling chunks at every split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "error.h"
#include "filer.pb-c.h"
#include "log_record.h"

/* ================================================================ helpers */

/* A growable byte buffer holding a log file. */
typedef struct bytes {
  uint8_t *p;
  size_t len;
  size_t cap;
} bytes;

static void bytes_add(bytes *b, const void *p, size_t n)
{
  if (b->cap - b->len < n) {
    size_t cap = b->cap > 0 ? b->cap : 256;
    while (cap - b->len < n)
      cap *= 2;
    b->p = realloc(b->p, cap);
    assert_non_null(b->p);
    b->cap = cap;
  }
  if (n > 0)
    memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void bytes_free(bytes *b)
{
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* Appends one record for an event, checking fm_log_record_size against what pack writes. */
static void add_record(bytes *b, int64_t ts, const void *event, size_t event_len, const char *dir, size_t dir_len,
                       int64_t offset)
{
  fm_log_record rec;
  fm_log_record_set(&rec, ts, event, event_len, dir, dir_len, offset);
  size_t size = fm_log_record_size(&rec);
  assert_true(size > FM_LOG_RECORD_PREFIX);
  uint8_t *out = malloc(size);
  assert_non_null(out);
  size_t written = 0;
  int rc = fm_log_record_encode(ts, event, event_len, dir, dir_len, offset, out, size, &written);
  assert_int_equal(rc, 0);
  assert_int_equal(written, size);
  bytes_add(b, out, written);
  free(out);
}

static void add_str_record(bytes *b, int64_t ts, const char *event, const char *dir, int64_t offset)
{
  add_record(b, ts, event, strlen(event), dir, strlen(dir), offset);
}

/* Appends a raw 4-byte big-endian length. */
static void add_len(bytes *b, uint32_t n)
{
  uint8_t p[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
  bytes_add(b, p, sizeof p);
}

static void expect_record(fm_log_reader *r, fm_log_record *rec)
{
  char err[FM_ERR_LEN] = "";
  int rc = fm_log_reader_next(r, rec, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_log_reader_next: %d: %s", rc, err);
}

static void expect_end(fm_log_reader *r)
{
  char err[FM_ERR_LEN] = "";
  fm_log_record rec;
  int rc = fm_log_reader_next(r, &rec, err, sizeof err);
  if (rc != FM_ENOTFOUND)
    fail_msg("fm_log_reader_next: got %d (%s), want FM_ENOTFOUND", rc, err);
}

/* Reads records until the end or an error; expects an error with exactly `want` and this torn flag. The reader
 * must then stay stopped at the same record. Returns the number of good records before it. */
static int expect_damage(fm_log_reader *r, const char *want, bool torn, uint64_t at)
{
  char err[FM_ERR_LEN] = "";
  fm_log_record rec;
  int n = 0, rc;
  while ((rc = fm_log_reader_next(r, &rec, err, sizeof err)) == 0)
    n++;
  if (rc != FM_EDECODE)
    fail_msg("fm_log_reader_next: got %d, want FM_EDECODE \"%s\"", rc, want);
  assert_string_equal(err, want);
  assert_int_equal(fm_log_reader_torn(r), torn);
  assert_int_equal(fm_log_reader_pos(r), at);
  char again[FM_ERR_LEN] = "";
  assert_int_equal(fm_log_reader_next(r, &rec, again, sizeof again), FM_EDECODE);
  assert_string_equal(again, want);
  assert_int_equal(fm_log_reader_pos(r), at);
  return n;
}

/* Reads a whole buffer; expects exactly this error. */
static int expect_buffer_damage(const bytes *b, uint64_t base, const char *want, bool torn, uint64_t at)
{
  fm_log_reader r;
  fm_log_reader_init(&r, b->p, b->len, base);
  int n = expect_damage(&r, want, torn, at);
  fm_log_reader_destroy(&r);
  return n;
}

/* ================================================================ Python cross-checks */

/*
 * Computed with /usr/bin/python3:
 *   struct.unpack('>i', hashlib.md5(d).digest()[:4])[0]
 */
static void test_partition_hash_matches_python(void **state)
{
  static const struct {
    const char *dir;
    int32_t want;
  } cases[] = {
    { "/a/b", -1360847503 },
    { "/", 1718013302 },
    { "", -736260903 },
    { "/buckets/photos/2024", -1419133487 },
    { "/donn\xc3\xa9"
      "es/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
      290824062 },
    { "/topics/.system/log", -1002632559 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint32_t h = fm_log_partition_hash(cases[i].dir, strlen(cases[i].dir));
    if ((int32_t)h != cases[i].want)
      fail_msg("hash(%s) = %" PRId32 ", want %" PRId32, cases[i].dir, (int32_t)h, cases[i].want);
  }
  /* the length counts, not a NUL */
  assert_int_equal(fm_log_partition_hash("/a/bXYZ", 4), (uint32_t)-1360847503);
}

/* SubscribeMetadataResponse{directory "/a/b", event_notification{new_entry{name "c"}, signatures [7, -3]},
 * ts_ns 1700000000000000001}, serialized by Python protobuf 4.21.12. */
static const uint8_t python_event[] = "\x0a\x04\x2f\x61\x2f\x62\x12\x12\x12\x03\x0a\x01\x63\x32\x0b\x07\xfd\xff\xff"
                                      "\xff\xff\xff\xff\xff\xff\x01\x18\x81\x80\xa8\xb1\xe3\x9f\xe7\xcb\x17";

/*
 * A log file written with Python protobuf from the descriptor set (message_factory GetPrototype), records
 * 4-byte big-endian length + LogEntry(ts_ns, partition_key_hash = the Python hash of key, data, key, offset):
 *   1700000000000000001, python_event, "/a/b", 0
 *   1700000000000000002, "", "/", 1
 *   1700000000000000003, "\x00\x01\xff", "/données/日本語", 2
 *   -5, "x", "", -1
 *   0, "", "/buckets/photos/2024", INT64_MAX
 */
static const uint8_t python_file[] =
    "\x00\x00\x00\x41\x08\x81\x80\xa8\xb1\xe3\x9f\xe7\xcb\x17\x10\xf1\xba\x8c\xf7\xfa\xff\xff\xff\xff"
    "\x01\x1a\x24\x0a\x04\x2f\x61\x2f\x62\x12\x12\x12\x03\x0a\x01\x63\x32\x0b\x07\xfd\xff\xff\xff\xff"
    "\xff\xff\xff\xff\x01\x18\x81\x80\xa8\xb1\xe3\x9f\xe7\xcb\x17\x22\x04\x2f\x61\x2f\x62\x00\x00\x00"
    "\x15\x08\x82\x80\xa8\xb1\xe3\x9f\xe7\xcb\x17\x10\xf6\x9a\x9b\xb3\x06\x22\x01\x2f\x28\x01\x00\x00"
    "\x00\x2c\x08\x83\x80\xa8\xb1\xe3\x9f\xe7\xcb\x17\x10\xfe\xbe\xd6\x8a\x01\x1a\x03\x00\x01\xff\x22"
    "\x13\x2f\x64\x6f\x6e\x6e\xc3\xa9\x65\x73\x2f\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\x28\x02\x00\x00"
    "\x00\x24\x08\xfb\xff\xff\xff\xff\xff\xff\xff\xff\x01\x10\xd9\x99\xf6\xa0\xfd\xff\xff\xff\xff\x01"
    "\x1a\x01\x78\x28\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00\x00\x2b\x10\xd1\xfb\xa6\xdb\xfa"
    "\xff\xff\xff\xff\x01\x22\x14\x2f\x62\x75\x63\x6b\x65\x74\x73\x2f\x70\x68\x6f\x74\x6f\x73\x2f\x32"
    "\x30\x32\x34\x28\xff\xff\xff\xff\xff\xff\xff\xff\x7f";

#define UNICODE_DIR                                                                                                    \
  "/donn\xc3\xa9"                                                                                                      \
  "es/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"

/* The same event built with protobuf-c packs to Python's bytes (packed negative int32, field order). */
static void test_event_bytes_match_python(void **state)
{
  FilerPb__Entry entry = FILER_PB__ENTRY__INIT;
  entry.name = (char *)"c";
  int32_t sigs[] = { 7, -3 };
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  en.new_entry = &entry;
  en.signatures = sigs;
  en.n_signatures = 2;
  FilerPb__SubscribeMetadataResponse resp = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  resp.directory = (char *)"/a/b";
  resp.event_notification = &en;
  resp.ts_ns = 1700000000000000001;
  size_t n = filer_pb__subscribe_metadata_response__get_packed_size(&resp);
  assert_int_equal(n, sizeof python_event - 1);
  uint8_t buf[64];
  filer_pb__subscribe_metadata_response__pack(&resp, buf);
  assert_memory_equal(buf, python_event, n);
}

static void test_encode_matches_python(void **state)
{
  bytes b = { 0 };
  add_record(&b, 1700000000000000001, python_event, sizeof python_event - 1, "/a/b", 4, 0);
  add_str_record(&b, 1700000000000000002, "", "/", 1);
  add_record(&b, 1700000000000000003, "\x00\x01\xff", 3, UNICODE_DIR, strlen(UNICODE_DIR), 2);
  add_str_record(&b, -5, "x", "", -1);
  add_str_record(&b, 0, "", "/buckets/photos/2024", INT64_MAX);
  assert_int_equal(b.len, sizeof python_file - 1);
  assert_memory_equal(b.p, python_file, b.len);
  bytes_free(&b);
}

/* Python's file reads back with the fields Python wrote. */
static void test_decode_python_file(void **state)
{
  fm_log_reader r;
  fm_log_reader_init(&r, python_file, sizeof python_file - 1, 0);
  fm_log_record rec;
  expect_record(&r, &rec);
  assert_int_equal(rec.ts_ns, 1700000000000000001);
  assert_int_equal(rec.partition_key_hash, -1360847503);
  assert_int_equal(rec.data_len, sizeof python_event - 1);
  assert_memory_equal(rec.data, python_event, rec.data_len);
  assert_int_equal(rec.key_len, 4);
  assert_memory_equal(rec.key, "/a/b", 4);
  assert_int_equal(rec.offset, 0);
  assert_int_equal(rec.pos, 0);
  assert_int_equal(rec.raw_len, 4 + 0x41);
  assert_ptr_equal(rec.raw, python_file);

  expect_record(&r, &rec);
  assert_int_equal(rec.ts_ns, 1700000000000000002);
  assert_int_equal(rec.partition_key_hash, 1718013302);
  assert_int_equal(rec.data_len, 0);
  assert_non_null(rec.data);
  assert_int_equal(rec.pos, 4 + 0x41);

  expect_record(&r, &rec);
  assert_int_equal(rec.partition_key_hash, 290824062);
  assert_int_equal(rec.key_len, strlen(UNICODE_DIR));
  assert_memory_equal(rec.key, UNICODE_DIR, rec.key_len);
  assert_memory_equal(rec.data, "\x00\x01\xff", 3);

  expect_record(&r, &rec);
  assert_int_equal(rec.ts_ns, -5);
  assert_int_equal(rec.offset, -1);
  assert_int_equal(rec.key_len, 0);
  assert_non_null(rec.key);

  expect_record(&r, &rec);
  assert_int_equal(rec.ts_ns, 0);
  assert_int_equal(rec.offset, INT64_MAX);
  assert_int_equal(rec.partition_key_hash, -1419133487);
  assert_int_equal(rec.pos + rec.raw_len, sizeof python_file - 1);

  expect_end(&r);
  expect_end(&r);
  assert_int_equal(fm_log_reader_pos(&r), sizeof python_file - 1);
  fm_log_reader_destroy(&r);
}

/* ================================================================ round trips */

static void round_trip(int64_t ts, const void *event, size_t event_len, const char *dir, size_t dir_len, int64_t offset)
{
  bytes b = { 0 };
  add_record(&b, ts, event, event_len, dir, dir_len, offset);
  fm_log_reader r;
  fm_log_reader_init(&r, b.p, b.len, 0);
  fm_log_record rec;
  expect_record(&r, &rec);
  assert_int_equal(rec.ts_ns, ts);
  assert_int_equal(rec.partition_key_hash, (int32_t)fm_log_partition_hash(dir, dir_len));
  assert_int_equal(rec.data_len, event_len);
  if (event_len > 0)
    assert_memory_equal(rec.data, event, event_len);
  assert_int_equal(rec.key_len, dir_len);
  if (dir_len > 0)
    assert_memory_equal(rec.key, dir, dir_len);
  assert_int_equal(rec.offset, offset);
  assert_int_equal(rec.pos, 0);
  assert_ptr_equal(rec.raw, b.p);
  assert_int_equal(rec.raw_len, b.len);

  /* what the reader returns packs back to the same bytes */
  uint8_t *again = malloc(b.len);
  assert_non_null(again);
  size_t written = 0;
  assert_int_equal(fm_log_record_size(&rec), b.len);
  assert_int_equal(fm_log_record_pack(&rec, again, b.len, &written), 0);
  assert_int_equal(written, b.len);
  assert_memory_equal(again, b.p, b.len);
  free(again);

  expect_end(&r);
  fm_log_reader_destroy(&r);
  bytes_free(&b);
}

static void test_round_trip(void **state)
{
  round_trip(1700000000123456789, "", 0, "/", 1, 0);
  round_trip(1, "\x0a\x01x", 3, "/a/b", 4, 1);
  round_trip(INT64_MAX, "e", 1, UNICODE_DIR, strlen(UNICODE_DIR), INT64_MIN);
  round_trip(INT64_MIN, "", 0, "", 0, 0);

  size_t big = 1 << 20;
  uint8_t *ev = malloc(big);
  assert_non_null(ev);
  for (size_t i = 0; i < big; i++)
    ev[i] = (uint8_t)(i * 131 + (i >> 8));
  round_trip(1700000000000000000, ev, big, "/big/dir", 8, 42);
  free(ev);
}

/* 1,000 records at a base offset above 4 GiB parse back in order with absolute positions. */
static void test_thousand_records(void **state)
{
  enum { N = 1000 };
  const uint64_t base = (UINT64_C(1) << 32) + 7;
  bytes b = { 0 };
  size_t starts[N];
  for (int i = 0; i < N; i++) {
    char ev[64], dir[32];
    snprintf(ev, sizeof ev, "event %d %.*s", i, i % 40, "........................................");
    snprintf(dir, sizeof dir, "/d/%d", i % 17);
    starts[i] = b.len;
    add_str_record(&b, 1700000000000000000 + i, ev, dir, i);
  }
  fm_log_reader r;
  fm_log_reader_init(&r, b.p, b.len, base);
  for (int i = 0; i < N; i++) {
    char ev[64], dir[32];
    snprintf(ev, sizeof ev, "event %d %.*s", i, i % 40, "........................................");
    snprintf(dir, sizeof dir, "/d/%d", i % 17);
    fm_log_record rec;
    expect_record(&r, &rec);
    assert_int_equal(rec.ts_ns, 1700000000000000000 + i);
    assert_int_equal(rec.offset, i);
    assert_int_equal(rec.pos, base + starts[i]);
    assert_ptr_equal(rec.raw, b.p + starts[i]);
    assert_int_equal(rec.data_len, strlen(ev));
    assert_memory_equal(rec.data, ev, rec.data_len);
    assert_int_equal(rec.key_len, strlen(dir));
    assert_memory_equal(rec.key, dir, rec.key_len);
    assert_int_equal(fm_log_reader_pos(&r), base + starts[i] + rec.raw_len);
  }
  expect_end(&r);
  assert_int_equal(fm_log_reader_pos(&r), base + b.len);
  fm_log_reader_destroy(&r);
  bytes_free(&b);
}

static void test_empty_buffer(void **state)
{
  fm_log_reader r;
  fm_log_reader_init(&r, NULL, 0, 99);
  expect_end(&r);
  assert_int_equal(fm_log_reader_pos(&r), 99);
  assert_false(fm_log_reader_torn(&r));
  fm_log_reader_destroy(&r);
}

/* ================================================================ encoder limits */

static void test_pack_too_small(void **state)
{
  fm_log_record rec;
  fm_log_record_set(&rec, 5, "event", 5, "/a", 2, 3);
  size_t size = fm_log_record_size(&rec);
  uint8_t buf[64];
  memset(buf, 0xee, sizeof buf);
  size_t written = 12345;
  assert_int_equal(fm_log_record_pack(&rec, buf, size - 1, &written), FM_ETOOBIG);
  assert_int_equal(written, size);
  for (size_t i = 0; i < sizeof buf; i++)
    assert_int_equal(buf[i], 0xee);
  assert_int_equal(fm_log_record_encode(5, "event", 5, "/a", 2, 3, buf, 0, &written), FM_ETOOBIG);
  assert_int_equal(written, size);
  assert_int_equal(fm_log_record_pack(&rec, buf, size, &written), 0);
  assert_int_equal(written, size);
}

/* A record longer than FM_LOG_RECORD_MAX is refused before any byte of it is read, so a fake length will do. */
static void test_pack_over_max(void **state)
{
  static const uint8_t one[1];
  fm_log_record rec;
  fm_log_record_set(&rec, 5, one, FM_LOG_RECORD_MAX, "/a", 2, 3);
  assert_int_equal(fm_log_record_size(&rec), 0);
  size_t written = 12345;
  uint8_t buf[8];
  assert_int_equal(fm_log_record_pack(&rec, buf, sizeof buf, &written), FM_ETOOBIG);
  assert_int_equal(written, 0);
  rec.data_len = SIZE_MAX;
  assert_int_equal(fm_log_record_size(&rec), 0);
  assert_int_equal(fm_log_record_pack(&rec, buf, sizeof buf, &written), FM_ETOOBIG);
  rec.data_len = 0;
  rec.key_len = (size_t)FM_LOG_RECORD_MAX + 1;
  assert_int_equal(fm_log_record_size(&rec), 0);
  assert_int_equal(fm_log_record_pack(&rec, buf, sizeof buf, &written), FM_ETOOBIG);
}

/* A LogEntry of zero fields packs to nothing, and a zero length is what readers call corruption: refused. */
static void test_pack_empty_entry(void **state)
{
  fm_log_record rec;
  memset(&rec, 0, sizeof rec);
  assert_int_equal(fm_log_record_size(&rec), 0);
  uint8_t buf[16];
  size_t written = 12345;
  assert_int_equal(fm_log_record_pack(&rec, buf, sizeof buf, &written), FM_EINVAL);
  assert_int_equal(written, 0);
  /* any one field makes it a record */
  rec.offset = 1;
  assert_int_equal(fm_log_record_size(&rec), 4 + 2);
  assert_int_equal(fm_log_record_pack(&rec, buf, sizeof buf, &written), 0);
  assert_memory_equal(buf, "\x00\x00\x00\x02\x28\x01", 6);
}

/* ================================================================ damage */

/* Base offset of the damage tests: above 4 GiB, so 64-bit offsets are printed whole. */
#define BASE (UINT64_C(5) << 32)

/* Two good records; returns the file's length. */
static size_t two_records(bytes *b)
{
  add_str_record(b, 100, "first event", "/x", 0);
  add_str_record(b, 101, "second event", "/y", 1);
  return b->len;
}

static void test_short_length_prefix(void **state)
{
  for (size_t have = 1; have < 4; have++) {
    bytes b = { 0 };
    size_t at = two_records(&b);
    bytes_add(&b, "\x00\x00\x00", have);
    char want[FM_ERR_LEN];
    snprintf(want, sizeof want, "log record length cut short at offset %" PRIu64 " (%zu of 4 bytes)", BASE + at, have);
    assert_int_equal(expect_buffer_damage(&b, BASE, want, true, BASE + at), 2);
    bytes_free(&b);
  }
}

/* The torn tail of a file: a complete record cut at every length. */
static void test_short_record(void **state)
{
  bytes whole = { 0 };
  add_str_record(&whole, 102, "third event", "/z", 2);
  for (size_t cut = 4; cut < whole.len; cut++) {
    bytes b = { 0 };
    size_t at = two_records(&b);
    bytes_add(&b, whole.p, cut);
    char want[FM_ERR_LEN];
    snprintf(want, sizeof want, "log record cut short at offset %" PRIu64 " (length %zu, %zu bytes present)", BASE + at,
             whole.len - 4, cut);
    assert_int_equal(expect_buffer_damage(&b, BASE, want, true, BASE + at), 2);
    bytes_free(&b);
  }
  bytes_free(&whole);
}

static void test_zero_length(void **state)
{
  /* in the middle */
  bytes b = { 0 };
  size_t at = two_records(&b);
  add_len(&b, 0);
  add_str_record(&b, 102, "third event", "/z", 2);
  char want[FM_ERR_LEN];
  snprintf(want, sizeof want, "zero-length log record at offset %" PRIu64, BASE + at);
  assert_int_equal(expect_buffer_damage(&b, BASE, want, false, BASE + at), 2);
  bytes_free(&b);

  /* as the last 4 bytes: a torn write cannot leave a zero length either */
  bytes t = { 0 };
  at = two_records(&t);
  add_len(&t, 0);
  assert_int_equal(expect_buffer_damage(&t, BASE, want, false, BASE + at), 2);
  bytes_free(&t);

  /* first thing in a file */
  bytes z = { 0 };
  add_len(&z, 0);
  snprintf(want, sizeof want, "zero-length log record at offset %" PRIu64, BASE);
  assert_int_equal(expect_buffer_damage(&z, BASE, want, false, BASE), 0);
  bytes_free(&z);
}

static void test_too_big(void **state)
{
  static const uint32_t lens[] = { FM_LOG_RECORD_MAX + 1, 1u << 30, UINT32_MAX };
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    bytes b = { 0 };
    size_t at = two_records(&b);
    add_len(&b, lens[i]);
    bytes_add(&b, "0123456789", 10);
    char want[FM_ERR_LEN];
    snprintf(want, sizeof want, "log record too big at offset %" PRIu64 " (length %" PRIu32 ", limit 1073741820)",
             BASE + at, lens[i]);
    assert_int_equal(expect_buffer_damage(&b, BASE, want, false, BASE + at), 2);
    bytes_free(&b);
  }
}

/* A caller's lower limit: a record of exactly the limit passes, one byte more does not, whole or torn. */
static void test_caller_limit(void **state)
{
  bytes b = { 0 };
  add_str_record(&b, 100, "first event", "/x", 0);
  size_t limit = b.len - 4;
  add_str_record(&b, 101, "first event!", "/x", 0); /* one byte longer */
  char want[FM_ERR_LEN];
  snprintf(want, sizeof want, "log record too big at offset %" PRIu64 " (length %zu, limit %zu)", BASE + limit + 4,
           limit + 1, limit);
  for (int torn = 0; torn < 2; torn++) {
    fm_log_reader r;
    fm_log_reader_init(&r, b.p, b.len - (size_t)torn, BASE);
    fm_log_reader_set_max(&r, (uint32_t)limit);
    assert_int_equal(expect_damage(&r, want, false, BASE + limit + 4), 1);
    fm_log_reader_destroy(&r);
  }
  bytes_free(&b);

  /* the limit cannot be raised past FM_LOG_RECORD_MAX */
  bytes big = { 0 };
  add_len(&big, FM_LOG_RECORD_MAX + 1);
  fm_log_reader r;
  fm_log_reader_init(&r, big.p, big.len, 0);
  fm_log_reader_set_max(&r, UINT32_MAX);
  assert_int_equal(expect_damage(&r, "log record too big at offset 0 (length 1073741821, limit 1073741820)", false, 0),
                   0);
  fm_log_reader_destroy(&r);
  bytes_free(&big);
}

static void test_undecodable(void **state)
{
  static const struct {
    const char *bytes;
    size_t len;
  } bad[] = {
    { "\xff\xff\xff", 3 }, /* a varint that never ends */
    { "\x1a\x10xy", 4 },   /* data says 16 bytes, 2 follow */
    { "\x0a\x01x", 3 },    /* field 1 (int64) with a length-delimited wire type */
    { "\x08", 1 },         /* a tag without its value */
    { "\x00\x00", 2 },     /* field number 0 */
    { "\x0f\x00", 2 },     /* wire type 7 */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    bytes b = { 0 };
    size_t at = two_records(&b);
    add_len(&b, (uint32_t)bad[i].len);
    bytes_add(&b, bad[i].bytes, bad[i].len);
    add_str_record(&b, 102, "third event", "/z", 2);
    char want[FM_ERR_LEN];
    snprintf(want, sizeof want, "log record does not decode as LogEntry at offset %" PRIu64 " (length %zu)", BASE + at,
             bad[i].len);
    assert_int_equal(expect_buffer_damage(&b, BASE, want, false, BASE + at), 2);
    bytes_free(&b);
  }
}

/* Unknown fields are ignored, as everywhere in the protocol: a newer writer's records still read. */
static void test_unknown_field_accepted(void **state)
{
  bytes b = { 0 };
  static const uint8_t entry[] = { 0x08, 0x05, 0x1a, 0x01, 'e', 0x30, 0x07 }; /* ts 5, data "e", field 6 = 7 */
  add_len(&b, sizeof entry);
  bytes_add(&b, entry, sizeof entry);
  fm_log_reader r;
  fm_log_reader_init(&r, b.p, b.len, 0);
  fm_log_record rec;
  expect_record(&r, &rec);
  assert_int_equal(rec.ts_ns, 5);
  assert_int_equal(rec.data_len, 1);
  assert_int_equal(rec.data[0], 'e');
  expect_end(&r);
  fm_log_reader_destroy(&r);
  bytes_free(&b);
}

/*
 * What a caller does with the flag: a torn tail is the end of the file; anything else is corruption. A length
 * that runs past the end cannot be told from a torn write, and counts as torn (as upstream's readers treat it).
 */
static void test_torn_tail_vs_corruption(void **state)
{
  bytes torn = { 0 }, corrupt = { 0 };
  two_records(&torn);
  add_len(&torn, 50);
  bytes_add(&torn, "partial", 7);
  two_records(&corrupt);
  add_len(&corrupt, 0);
  add_str_record(&corrupt, 102, "third event", "/z", 2);
  const bytes *files[] = { &torn, &corrupt };
  for (int i = 0; i < 2; i++) {
    fm_log_reader r;
    fm_log_reader_init(&r, files[i]->p, files[i]->len, 0);
    char err[FM_ERR_LEN];
    fm_log_record rec;
    int n = 0, rc;
    while ((rc = fm_log_reader_next(&r, &rec, err, sizeof err)) == 0)
      n++;
    assert_int_equal(n, 2);
    assert_int_equal(rc, FM_EDECODE);
    assert_int_equal(fm_log_reader_torn(&r), i == 0);
    fm_log_reader_destroy(&r);
  }
  bytes_free(&torn);
  bytes_free(&corrupt);
}

/* ================================================================ chunks */

typedef struct seen {
  int n;
  fm_log_record rec[8];
  uint8_t raw[8][128];
  char err[FM_ERR_LEN];
  int rc;
  bool torn;
  uint64_t pos;
} seen;

/* Reads a stream given as the chunks buf[cuts[i]..cuts[i+1]), recording every record and the final status. The
 * chunks are copied into heap buffers freed as soon as the reader is done with them, so ASan catches a reader that
 * keeps pointing into an old chunk. */
static void read_chunks(const bytes *b, const size_t *cuts, size_t ncuts, seen *s)
{
  memset(s, 0, sizeof *s);
  fm_log_reader r;
  fm_log_reader_init_stream(&r, BASE);
  size_t from = 0;
  uint8_t *chunk = NULL;
  for (size_t c = 0; c <= ncuts; c++) {
    size_t to = c < ncuts ? cuts[c] : b->len;
    free(chunk);
    chunk = malloc(to - from + 1);
    assert_non_null(chunk);
    memcpy(chunk, b->p + from, to - from);
    assert_int_equal(fm_log_reader_feed(&r, chunk, to - from, c == ncuts), 0);
    from = to;
    int rc;
    fm_log_record rec;
    while ((rc = fm_log_reader_next(&r, &rec, s->err, sizeof s->err)) == 0) {
      assert_true(s->n < 8);
      assert_true(rec.raw_len <= sizeof s->raw[0]);
      memcpy(s->raw[s->n], rec.raw, rec.raw_len);
      s->rec[s->n] = rec;
      s->rec[s->n].data = NULL; /* borrowed; compared through raw */
      s->rec[s->n].key = NULL;
      s->rec[s->n].raw = NULL;
      s->n++;
    }
    if (rc != FM_ENOTFOUND || c == ncuts) {
      s->rc = rc;
      break;
    }
  }
  s->torn = fm_log_reader_torn(&r);
  s->pos = fm_log_reader_pos(&r);
  fm_log_reader_destroy(&r);
  free(chunk);
}

static void expect_same(const seen *a, const seen *b, const size_t *cuts, size_t ncuts)
{
  if (a->n != b->n || a->rc != b->rc || a->torn != b->torn || a->pos != b->pos || strcmp(a->err, b->err) != 0)
    fail_msg("cuts at %zu,%zu: %d records, rc %d, \"%s\", pos %" PRIu64
             "; whole: %d records, rc %d, \"%s\", pos %" PRIu64,
             cuts[0], ncuts > 1 ? cuts[1] : 0, b->n, b->rc, b->err, b->pos, a->n, a->rc, a->err, a->pos);
  for (int i = 0; i < a->n; i++) {
    assert_int_equal(a->rec[i].ts_ns, b->rec[i].ts_ns);
    assert_int_equal(a->rec[i].partition_key_hash, b->rec[i].partition_key_hash);
    assert_int_equal(a->rec[i].offset, b->rec[i].offset);
    assert_int_equal(a->rec[i].pos, b->rec[i].pos);
    assert_int_equal(a->rec[i].raw_len, b->rec[i].raw_len);
    assert_int_equal(a->rec[i].data_len, b->rec[i].data_len);
    assert_int_equal(a->rec[i].key_len, b->rec[i].key_len);
    assert_memory_equal(a->raw[i], b->raw[i], a->rec[i].raw_len);
  }
}

/* Splits `b` at every position into two chunks, and at every pair of positions into three, and at every byte;
 * each reads exactly as the whole buffer does. Returns the whole read's result in *whole. */
static void check_every_split(const bytes *b, seen *whole)
{
  read_chunks(b, NULL, 0, whole);
  seen *s = malloc(sizeof *s);
  assert_non_null(s);
  for (size_t i = 0; i <= b->len; i++) {
    size_t cuts[2] = { i, 0 };
    read_chunks(b, cuts, 1, s);
    expect_same(whole, s, cuts, 1);
    for (size_t j = i; j <= b->len; j++) {
      cuts[1] = j;
      read_chunks(b, cuts, 2, s);
      expect_same(whole, s, cuts, 2);
    }
  }
  size_t *every = malloc(b->len * sizeof *every + 1);
  assert_non_null(every);
  for (size_t i = 0; i < b->len; i++)
    every[i] = i + 1;
  read_chunks(b, every, b->len, s);
  expect_same(whole, s, every, b->len);
  free(every);
  free(s);
}

static void test_split_three_records(void **state)
{
  bytes b = { 0 };
  add_str_record(&b, 100, "first event", "/x", 0);
  add_str_record(&b, 101, "", "/", 1);
  add_str_record(&b, 102, "third event, a little longer", UNICODE_DIR, 2);
  seen whole;
  check_every_split(&b, &whole);
  assert_int_equal(whole.n, 3);
  assert_int_equal(whole.rc, FM_ENOTFOUND);
  assert_int_equal(whole.pos, BASE + b.len);
  assert_int_equal(whole.rec[2].ts_ns, 102);
  /* and the streaming reader agrees with the one-buffer reader */
  fm_log_reader r;
  fm_log_reader_init(&r, b.p, b.len, BASE);
  for (int i = 0; i < 3; i++) {
    fm_log_record rec;
    expect_record(&r, &rec);
    assert_int_equal(rec.pos, whole.rec[i].pos);
    assert_memory_equal(rec.raw, whole.raw[i], rec.raw_len);
  }
  expect_end(&r);
  fm_log_reader_destroy(&r);
  bytes_free(&b);
}

static void test_split_torn_and_corrupt(void **state)
{
  seen whole;
  bytes torn = { 0 };
  two_records(&torn);
  add_len(&torn, 40);
  bytes_add(&torn, "partial", 7);
  check_every_split(&torn, &whole);
  assert_int_equal(whole.n, 2);
  assert_int_equal(whole.rc, FM_EDECODE);
  assert_true(whole.torn);

  bytes torn_prefix = { 0 };
  two_records(&torn_prefix);
  bytes_add(&torn_prefix, "\x00\x00", 2);
  check_every_split(&torn_prefix, &whole);
  assert_int_equal(whole.n, 2);
  assert_true(whole.torn);

  bytes corrupt = { 0 };
  two_records(&corrupt);
  add_len(&corrupt, 3);
  bytes_add(&corrupt, "\xff\xff\xff", 3);
  add_str_record(&corrupt, 102, "third event", "/z", 2);
  check_every_split(&corrupt, &whole);
  assert_int_equal(whole.n, 2);
  assert_int_equal(whole.rc, FM_EDECODE);
  assert_false(whole.torn);

  bytes zero = { 0 };
  two_records(&zero);
  add_len(&zero, 0);
  check_every_split(&zero, &whole);
  assert_int_equal(whole.n, 2);
  assert_false(whole.torn);

  bytes_free(&torn);
  bytes_free(&torn_prefix);
  bytes_free(&corrupt);
  bytes_free(&zero);
}

/* A straddling record's raw bytes live in the reader until the next call. */
static void test_straddling_raw_is_gathered(void **state)
{
  bytes b = { 0 };
  add_str_record(&b, 100, "first event", "/x", 0);
  fm_log_reader r;
  fm_log_reader_init_stream(&r, 10);
  fm_log_record rec;
  char err[FM_ERR_LEN];
  assert_int_equal(fm_log_reader_feed(&r, b.p, 5, false), 0);
  assert_int_equal(fm_log_reader_next(&r, &rec, err, sizeof err), FM_ENOTFOUND);
  assert_int_equal(fm_log_reader_pos(&r), 10);
  assert_int_equal(fm_log_reader_feed(&r, b.p + 5, b.len - 5, false), 0);
  expect_record(&r, &rec);
  assert_int_equal(rec.pos, 10);
  assert_true(rec.raw < b.p || rec.raw >= b.p + b.len);
  assert_memory_equal(rec.raw, b.p, b.len);
  assert_int_equal(fm_log_reader_pos(&r), 10 + b.len);
  assert_int_equal(fm_log_reader_next(&r, &rec, err, sizeof err), FM_ENOTFOUND);
  assert_int_equal(fm_log_reader_feed(&r, NULL, 0, true), 0);
  expect_end(&r);
  fm_log_reader_destroy(&r);
  bytes_free(&b);
}

/* Framing without decoding (fm_log_reader_next_raw) at every split of a stream into two chunks finds the records
 * fm_log_reader_next finds, and fm_log_record_decode with an arena's allocator decodes them alike. */
static void test_raw_framing_and_arena_decode(void **state)
{
  bytes b = { 0 };
  add_str_record(&b, 100, "first event", "/x", 0);
  add_str_record(&b, 101, "", "/", 1);
  add_str_record(&b, 102, "third event, a little longer", UNICODE_DIR, 2);
  fm_arena a;
  fm_arena_init(&a, 0, 0);
  ProtobufCAllocator alloc = fm_arena_allocator(&a);
  char err[FM_ERR_LEN];
  for (size_t cut = 0; cut <= b.len; cut++) {
    fm_log_reader whole, r;
    fm_log_reader_init(&whole, b.p, b.len, BASE);
    fm_log_reader_init_stream(&r, BASE);
    assert_int_equal(fm_log_reader_feed(&r, b.p, cut, false), 0);
    bool fed_rest = false;
    for (int i = 0; i < 3; i++) {
      fm_log_record want, got;
      expect_record(&whole, &want);
      const uint8_t *raw = NULL;
      size_t raw_len = 0;
      uint64_t pos = 0;
      int rc = fm_log_reader_next_raw(&r, &raw, &raw_len, &pos, err, sizeof err);
      if (rc == FM_ENOTFOUND && !fed_rest) {
        assert_int_equal(fm_log_reader_feed(&r, b.p + cut, b.len - cut, true), 0);
        fed_rest = true;
        rc = fm_log_reader_next_raw(&r, &raw, &raw_len, &pos, err, sizeof err);
      }
      assert_int_equal(rc, 0);
      assert_int_equal(pos, want.pos);
      assert_int_equal(raw_len, want.raw_len);
      assert_memory_equal(raw, want.raw, raw_len);
      fm_arena_reset(&a);
      assert_int_equal(fm_log_record_decode(raw, raw_len, pos, &alloc, &got, err, sizeof err), 0);
      assert_int_equal(got.ts_ns, want.ts_ns);
      assert_int_equal(got.partition_key_hash, want.partition_key_hash);
      assert_int_equal(got.offset, want.offset);
      assert_int_equal(got.data_len, want.data_len);
      assert_memory_equal(got.data, want.data, want.data_len);
      assert_int_equal(got.key_len, want.key_len);
      assert_memory_equal(got.key, want.key, want.key_len);
      assert_int_equal(got.pos, pos);
    }
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    uint64_t pos = 0;
    if (!fed_rest) {
      assert_int_equal(fm_log_reader_next_raw(&r, &raw, &raw_len, &pos, err, sizeof err), FM_ENOTFOUND);
      assert_int_equal(fm_log_reader_feed(&r, b.p + cut, b.len - cut, true), 0);
    }
    assert_int_equal(fm_log_reader_next_raw(&r, &raw, &raw_len, &pos, err, sizeof err), FM_ENOTFOUND);
    assert_int_equal(fm_log_reader_pos(&r), BASE + b.len);
    fm_log_reader_destroy(&r);
    fm_log_reader_destroy(&whole);
  }

  /* bytes that frame but do not decode, and a length that does not match the prefix */
  bytes bad = { 0 };
  add_len(&bad, 3);
  bytes_add(&bad, "\xff\xff\xff", 3);
  assert_int_equal(fm_log_record_decode(bad.p, bad.len, 77, &alloc, &(fm_log_record){ 0 }, err, sizeof err),
                   FM_EDECODE);
  assert_string_equal(err, "log record does not decode as LogEntry at offset 77 (length 3)");
  assert_int_equal(fm_log_record_decode(bad.p, bad.len - 1, 77, &alloc, &(fm_log_record){ 0 }, err, sizeof err),
                   FM_EINVAL);
  bytes_free(&bad);
  fm_arena_destroy(&a);
  bytes_free(&b);
}

static void test_feed_misuse(void **state)
{
  bytes b = { 0 };
  two_records(&b);
  fm_log_reader r;
  fm_log_reader_init_stream(&r, 0);
  assert_int_equal(fm_log_reader_feed(&r, b.p, b.len, false), 0);
  /* the chunk is not consumed yet */
  assert_int_equal(fm_log_reader_feed(&r, b.p, b.len, false), FM_EINVAL);
  fm_log_record rec;
  expect_record(&r, &rec);
  expect_record(&r, &rec);
  expect_end(&r);
  assert_int_equal(fm_log_reader_feed(&r, NULL, 0, true), 0);
  expect_end(&r);
  /* the stream has ended */
  assert_int_equal(fm_log_reader_feed(&r, b.p, b.len, true), FM_EINVAL);
  fm_log_reader_destroy(&r);

  /* a whole-buffer reader takes no chunks */
  fm_log_reader_init(&r, b.p, b.len, 0);
  expect_record(&r, &rec);
  expect_record(&r, &rec);
  expect_end(&r);
  assert_int_equal(fm_log_reader_feed(&r, b.p, b.len, true), FM_EINVAL);
  fm_log_reader_destroy(&r);
  bytes_free(&b);
}

/* Destroying a reader that holds a gathered partial record and a decoded record frees both (ASan). */
static void test_destroy_mid_stream(void **state)
{
  bytes b = { 0 };
  two_records(&b);
  fm_log_reader r;
  fm_log_reader_init_stream(&r, 0);
  assert_int_equal(fm_log_reader_feed(&r, b.p, b.len - 3, false), 0);
  fm_log_record rec;
  expect_record(&r, &rec);
  char err[FM_ERR_LEN];
  assert_int_equal(fm_log_reader_next(&r, &rec, err, sizeof err), FM_ENOTFOUND);
  fm_log_reader_destroy(&r);
  bytes_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_partition_hash_matches_python),
    cmocka_unit_test(test_event_bytes_match_python),
    cmocka_unit_test(test_encode_matches_python),
    cmocka_unit_test(test_decode_python_file),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_thousand_records),
    cmocka_unit_test(test_empty_buffer),
    cmocka_unit_test(test_pack_too_small),
    cmocka_unit_test(test_pack_over_max),
    cmocka_unit_test(test_pack_empty_entry),
    cmocka_unit_test(test_short_length_prefix),
    cmocka_unit_test(test_short_record),
    cmocka_unit_test(test_zero_length),
    cmocka_unit_test(test_too_big),
    cmocka_unit_test(test_caller_limit),
    cmocka_unit_test(test_undecodable),
    cmocka_unit_test(test_unknown_field_accepted),
    cmocka_unit_test(test_torn_tail_vs_corruption),
    cmocka_unit_test(test_split_three_records),
    cmocka_unit_test(test_split_torn_and_corrupt),
    cmocka_unit_test(test_straddling_raw_is_gathered),
    cmocka_unit_test(test_raw_framing_and_arena_decode),
    cmocka_unit_test(test_feed_misuse),
    cmocka_unit_test(test_destroy_mid_stream),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
