/* Unit tests for storage/chunk_store.h: assign/write/read, volume rollover,
 * reopen, cookies, CRC and header checks, crash repair at open, tombstones,
 * range reads, concurrent readers alongside the writer, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "chunk_store.h"
#include "error.h"
#include "log.h"

/* ================================================================ fixture */

/* Each test gets its own fresh directory under /tmp; the store lives in
 * <base>/volumes, as the server passes <data dir>/volumes. */
typedef struct fixture {
  char base[64];
  char dir[96];
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  snprintf(f->base, sizeof f->base, "/tmp/fm_test_chunk_store.XXXXXX");
  if (mkdtemp(f->base) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->dir, sizeof f->dir, "%s/volumes", f->base);
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
  int rc = nftw(f->base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return rc == 0 ? 0 : -1;
}

/* ================================================================ helpers */

static fm_chunk_store *open_store_opt(const fixture *f, uint64_t volume_bytes, const fm_chunk_store_options *opt)
{
  char err[FM_ERR_LEN] = "";
  fm_chunk_store *s = NULL;
  int rc = fm_chunk_store_open(f->dir, volume_bytes, opt, &s, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_chunk_store_open(%s): %d: %s", f->dir, rc, err);
  assert_non_null(s);
  return s;
}

static fm_chunk_store *open_store(const fixture *f, uint64_t volume_bytes)
{
  return open_store_opt(f, volume_bytes, NULL);
}

/* Deterministic content for a needle: `len` bytes derived from `seed`. */
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
  uint64_t x = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
}

/* Assigns a fid and writes `len` bytes of fill(seed) to it. */
static fm_fid put(fm_chunk_store *s, size_t len, uint64_t seed)
{
  fm_fid fid;
  assert_int_equal(fm_chunk_store_assign(s, &fid), 0);
  uint8_t *buf = malloc(len > 0 ? len : 1);
  assert_non_null(buf);
  fill(buf, len, seed);
  char err[FM_ERR_LEN] = "";
  int rc = fm_chunk_store_write(s, &fid, buf, len, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_chunk_store_write(%zu bytes): %d: %s", len, rc, err);
  free(buf);
  return fid;
}

/* Asserts fid reads back as `len` bytes of fill(seed). */
static void expect_needle(fm_chunk_store *s, const fm_fid *fid, size_t len, uint64_t seed)
{
  char err[FM_ERR_LEN] = "";
  void *data = NULL;
  size_t got = 12345;
  int rc = fm_chunk_store_read(s, fid, &data, &got, err, sizeof err);
  if (rc != 0)
    fail_msg("read %" PRIu32 ",%" PRIx64 ": %d: %s", fid->volume_id, fid->key, rc, err);
  assert_non_null(data);
  assert_int_equal(got, len);
  uint8_t *want = malloc(len > 0 ? len : 1);
  assert_non_null(want);
  fill(want, len, seed);
  if (len > 0)
    assert_memory_equal(data, want, len);
  free(want);
  free(data);
}

static int read_rc(fm_chunk_store *s, const fm_fid *fid, char *err, size_t errlen)
{
  void *data = NULL;
  size_t len = 0;
  int rc = fm_chunk_store_read(s, fid, &data, &len, err, errlen);
  if (rc == 0)
    free(data);
  else
    assert_null(data);
  return rc;
}

static void expect_not_found(fm_chunk_store *s, const fm_fid *fid)
{
  char err[FM_ERR_LEN] = "";
  assert_int_equal(read_rc(s, fid, err, sizeof err), FM_ENOTFOUND);
}

static void volume_file(const fixture *f, uint32_t id, const char *ext, char *buf, size_t len)
{
  snprintf(buf, len, "%s/%" PRIu32 ".%s", f->dir, id, ext);
}

static off_t file_size(const char *path)
{
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_size;
}

static void cut_file(const char *path, off_t by)
{
  assert_int_equal(truncate(path, file_size(path) - by), 0);
}

static void append_bytes(const char *path, const void *buf, size_t len)
{
  int fd = open(path, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, buf, len), (ssize_t)len);
  close(fd);
}

static void flip_byte(const char *path, off_t at)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= 0x5a;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

/* The layout the store documents: 16-byte superblock, 24-byte needle
 * headers, needles 8-byte aligned; 32-byte index records. */
static off_t span(size_t len)
{
  return (off_t)((24 + len + 7) / 8 * 8);
}

/* ================================================================ tests */

static void test_round_trip(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  assert_false(fm_chunk_store_has_volume(s, 1));

  fm_fid a = put(s, 1000, 1);
  assert_int_equal(a.volume_id, 1);
  assert_true(a.key == 1); /* keys start at 1, as upstream's */
  fm_fid b = put(s, 0, 2);
  fm_fid c = put(s, 7, 3);
  assert_true(b.key == 2 && c.key == 3);
  assert_true(fm_chunk_store_has_volume(s, 1));
  assert_false(fm_chunk_store_has_volume(s, 2));
  assert_false(fm_chunk_store_has_volume(s, 0));

  expect_needle(s, &a, 1000, 1);
  expect_needle(s, &b, 0, 2);
  expect_needle(s, &c, 7, 3);

  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.volumes, 1);
  assert_int_equal(st.needles, 3);
  assert_int_equal(st.deleted_needles, 0);
  assert_int_equal(st.live_bytes, 1007);
  char path[PATH_MAX];
  volume_file(f, 1, "dat", path, sizeof path);
  off_t dat = file_size(path);
  assert_int_equal(dat, 16 + span(1000) + span(0) + span(7));
  volume_file(f, 1, "idx", path, sizeof path);
  assert_int_equal(st.disk_bytes, (uint64_t)(dat + file_size(path)));
  fm_chunk_store_free(s);
}

static void test_rollover(void **state)
{
  fixture *f = *state;
  const uint64_t vb = 1024;
  fm_chunk_store *s = open_store(f, vb);
  enum { N = 200 };
  fm_fid fids[N];
  for (int i = 0; i < N; i++)
    fids[i] = put(s, (size_t)(i * 37) % 300, (uint64_t)i);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_true(st.volumes > 10);
  assert_int_equal(st.needles, N);
  /* fids go to volumes in order; a full volume takes no new fid */
  for (int i = 1; i < N; i++) {
    assert_true(fids[i].volume_id >= fids[i - 1].volume_id);
    assert_true(fids[i].volume_id <= fids[i - 1].volume_id + 1);
  }
  for (uint32_t v = 1; v <= st.volumes; v++) {
    char path[PATH_MAX];
    volume_file(f, v, "dat", path, sizeof path);
    /* at most one needle (of at most 24 + 300 bytes, padded) past the limit */
    assert_true((uint64_t)file_size(path) < vb + (uint64_t)span(300));
    assert_true(fm_chunk_store_has_volume(s, v));
  }
  assert_false(fm_chunk_store_has_volume(s, (uint32_t)st.volumes + 1));
  for (int i = 0; i < N; i++)
    expect_needle(s, &fids[i], (size_t)(i * 37) % 300, (uint64_t)i);
  fm_chunk_store_free(s);
}

static void test_reopen_keeps_all(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 4096);
  enum { N = 60 };
  fm_fid fids[N];
  for (int i = 0; i < N; i++)
    fids[i] = put(s, (size_t)i * 11, (uint64_t)i + 100);
  /* handed out, never written */
  fm_fid unused[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(fm_chunk_store_assign(s, &unused[i]), 0);
  struct fm_chunk_store_stats before;
  fm_chunk_store_stats(s, &before);
  fm_chunk_store_free(s);

  s = open_store(f, 4096);
  struct fm_chunk_store_stats after;
  fm_chunk_store_stats(s, &after);
  assert_int_equal(after.volumes, before.volumes);
  assert_int_equal(after.needles, N);
  assert_int_equal(after.live_bytes, before.live_bytes);
  assert_int_equal(after.disk_bytes, before.disk_bytes);
  assert_int_equal(after.repaired_volumes, 0);
  for (int i = 0; i < N; i++)
    expect_needle(s, &fids[i], (size_t)i * 11, (uint64_t)i + 100);

  /* no key is ever handed out twice in a volume, written or not */
  for (int round = 0; round < 3; round++) {
    fm_fid n;
    assert_int_equal(fm_chunk_store_assign(s, &n), 0);
    for (int i = 0; i < N; i++)
      assert_false(n.volume_id == fids[i].volume_id && n.key == fids[i].key);
    for (int i = 0; i < 3; i++)
      assert_false(n.volume_id == unused[i].volume_id && n.key == unused[i].key);
    fm_chunk_store_free(s);
    s = open_store(f, 4096);
  }
  fm_chunk_store_free(s);
}

/* A key assign never handed out cannot be written (a later assign would hand
 * it out again): not past the volume's next key, not key 0, and not after a
 * restart either; keys handed out before a restart stay writable. */
static void test_unassigned_key_refused(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 10, 1);
  fm_fid pending;
  assert_int_equal(fm_chunk_store_assign(s, &pending), 0);
  char err[FM_ERR_LEN] = "";
  uint8_t buf[10];
  fill(buf, sizeof buf, 9);
  fm_fid next = { a.volume_id, pending.key + 1, 42 };
  assert_int_equal(fm_chunk_store_write(s, &next, buf, sizeof buf, err, sizeof err), FM_EINVAL);
  assert_non_null(strstr(err, "never assigned"));
  fm_fid far = { a.volume_id, 5000, 42 };
  assert_int_equal(fm_chunk_store_write(s, &far, buf, sizeof buf, err, sizeof err), FM_EINVAL);
  fm_fid zero = { a.volume_id, 0, 42 };
  assert_int_equal(fm_chunk_store_write(s, &zero, buf, sizeof buf, err, sizeof err), FM_EINVAL);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.needles, 1);
  fm_chunk_store_free(s);

  s = open_store(f, 0);
  assert_int_equal(fm_chunk_store_write(s, &far, buf, sizeof buf, err, sizeof err), FM_EINVAL);
  assert_int_equal(fm_chunk_store_write(s, &pending, buf, sizeof buf, err, sizeof err), 0);
  expect_needle(s, &pending, 10, 9);
  fm_fid n;
  assert_int_equal(fm_chunk_store_assign(s, &n), 0);
  assert_true(n.key > pending.key);
  /* what a new assign hands out is writable, and the key after it is not */
  assert_int_equal(fm_chunk_store_write(s, &n, buf, sizeof buf, err, sizeof err), 0);
  next = (fm_fid){ n.volume_id, n.key + 1, 42 };
  assert_int_equal(fm_chunk_store_write(s, &next, buf, sizeof buf, err, sizeof err), FM_EINVAL);
  fm_chunk_store_free(s);
}

/* stat gives the size and the CRC of the data (zlib's crc32) without reading
 * it; not found as read; a damaged header is FM_EDECODE. */
static void test_stat(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid e = put(s, 0, 2);
  uint8_t want[100];
  fill(want, sizeof want, 1);
  char err[FM_ERR_LEN] = "";
  fm_chunk_needle_info info = { 0 };
  assert_int_equal(fm_chunk_store_stat(s, &a, &info, err, sizeof err), 0);
  assert_int_equal(info.size, 100);
  assert_int_equal(info.crc, (uint32_t)crc32(crc32(0, NULL, 0), want, sizeof want));
  assert_int_equal(fm_chunk_store_stat(s, &e, &info, err, sizeof err), 0);
  assert_int_equal(info.size, 0);
  assert_int_equal(info.crc, 0);
  fm_fid wrong = a;
  wrong.cookie ^= 1;
  assert_int_equal(fm_chunk_store_stat(s, &wrong, &info, err, sizeof err), FM_ENOTFOUND);
  wrong = (fm_fid){ 9, 1, 1 };
  assert_int_equal(fm_chunk_store_stat(s, &wrong, &info, err, sizeof err), FM_ENOTFOUND);
  assert_int_equal(fm_chunk_store_delete(s, &e), 0);
  assert_int_equal(fm_chunk_store_stat(s, &e, &info, err, sizeof err), FM_ENOTFOUND);
  /* data damage is not seen by stat (read_range sees it); header damage is */
  char path[PATH_MAX];
  volume_file(f, 1, "dat", path, sizeof path);
  flip_byte(path, 16 + 24 + 5);
  assert_int_equal(fm_chunk_store_stat(s, &a, &info, err, sizeof err), 0);
  flip_byte(path, 16 + 8);
  assert_int_equal(fm_chunk_store_stat(s, &a, &info, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, "needle header mismatch"));
  fm_chunk_store_free(s);
}

static void test_wrong_cookie(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid bad = a;
  bad.cookie ^= 1;
  expect_not_found(s, &bad);
  assert_int_equal(fm_chunk_store_delete(s, &bad), FM_ENOTFOUND);
  void *data = NULL;
  size_t len = 0;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_chunk_store_read_range(s, &bad, 0, 1, &data, &len, err, sizeof err), FM_ENOTFOUND);
  /* unknown key, unknown volumes */
  fm_fid other = a;
  other.key = 999;
  expect_not_found(s, &other);
  other = a;
  other.volume_id = 2;
  expect_not_found(s, &other);
  other.volume_id = 0;
  expect_not_found(s, &other);
  expect_needle(s, &a, 100, 1); /* still there */
  fm_chunk_store_free(s);
}

static void test_crc_mismatch(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid b = put(s, 200, 2);
  fm_fid c = put(s, 300, 3);
  char path[PATH_MAX];
  volume_file(f, 1, "dat", path, sizeof path);
  off_t b_at = 16 + span(100);
  flip_byte(path, b_at + 24 + 150); /* in b's data */

  char err[FM_ERR_LEN] = "";
  assert_int_equal(read_rc(s, &b, err, sizeof err), FM_EDECODE);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof want, "crc mismatch in %s at offset %jd", path, (intmax_t)b_at);
  assert_string_equal(err, want);
  /* a range far from the damage still fails: the CRC covers the needle */
  void *data = NULL;
  size_t len = 0;
  assert_int_equal(fm_chunk_store_read_range(s, &b, 0, 10, &data, &len, err, sizeof err), FM_EDECODE);
  assert_null(data);
  expect_needle(s, &a, 100, 1);
  expect_needle(s, &c, 300, 3);

  /* a damaged header (its key) is reported as such */
  off_t c_at = b_at + span(200);
  flip_byte(path, c_at + 12);
  assert_int_equal(read_rc(s, &c, err, sizeof err), FM_EDECODE);
  snprintf(want, sizeof want, "needle header mismatch in %s at offset %jd", path, (intmax_t)c_at);
  assert_string_equal(err, want);
  fm_chunk_store_free(s);
}

/* The last needle's bytes cut short (a crash during its append): dropped at
 * open, with its index record; what came before stays. */
static void test_torn_needle(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid b = put(s, 200, 2);
  fm_fid c = put(s, 300, 3);
  fm_chunk_store_free(s);
  char dat[PATH_MAX], idx[PATH_MAX];
  volume_file(f, 1, "dat", dat, sizeof dat);
  volume_file(f, 1, "idx", idx, sizeof idx);
  off_t idx_before = file_size(idx);
  cut_file(dat, 5);

  s = open_store(f, 0);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.repaired_volumes, 1);
  assert_int_equal(st.needles, 2);
  expect_needle(s, &a, 100, 1);
  expect_needle(s, &b, 200, 2);
  expect_not_found(s, &c);
  assert_int_equal(file_size(dat), 16 + span(100) + span(200));
  assert_int_equal(file_size(idx), idx_before - 32);
  /* the store goes on appending where the good needles end */
  fm_fid d = put(s, 50, 4);
  assert_true(d.key > c.key);
  fm_chunk_store_free(s);

  s = open_store(f, 0);
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.repaired_volumes, 0);
  expect_needle(s, &b, 200, 2);
  expect_needle(s, &d, 50, 4);
  fm_chunk_store_free(s);
}

/* The last index record cut short: the record and the needle it described
 * are dropped. */
static void test_torn_index(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid b = put(s, 200, 2);
  fm_fid c = put(s, 300, 3);
  fm_chunk_store_free(s);
  char dat[PATH_MAX], idx[PATH_MAX];
  volume_file(f, 1, "dat", dat, sizeof dat);
  volume_file(f, 1, "idx", idx, sizeof idx);
  cut_file(idx, 5);

  s = open_store(f, 0);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.repaired_volumes, 1);
  expect_needle(s, &a, 100, 1);
  expect_needle(s, &b, 200, 2);
  expect_not_found(s, &c);
  assert_int_equal(file_size(dat), 16 + span(100) + span(200));
  assert_int_equal(file_size(idx) % 32, 0);
  /* c's key is not handed out again: the reservation record survived */
  fm_fid d = put(s, 10, 4);
  assert_true(d.key > c.key);
  fm_chunk_store_free(s);
}

/* An OS crash can leave zero-filled records, and a needle whose record
 * reached the disk but whose bytes did not (zeros). Both are repaired. */
static void test_zero_filled_tail(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid b = put(s, 64, 2);
  fm_chunk_store_free(s);
  char dat[PATH_MAX], idx[PATH_MAX];
  volume_file(f, 1, "dat", dat, sizeof dat);
  volume_file(f, 1, "idx", idx, sizeof idx);
  static const uint8_t zeros[200];
  append_bytes(idx, zeros, 96); /* three empty records */
  s = open_store(f, 0);
  expect_needle(s, &a, 100, 1);
  expect_needle(s, &b, 64, 2);
  fm_chunk_store_free(s);

  /* b's needle zeroed on disk, its record intact */
  off_t b_at = 16 + span(100);
  int fd = open(dat, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, zeros, (size_t)span(64), b_at), span(64));
  close(fd);
  s = open_store(f, 0);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.repaired_volumes, 1);
  expect_needle(s, &a, 100, 1);
  expect_not_found(s, &b);
  assert_int_equal(file_size(dat), b_at);
  fm_chunk_store_free(s);
}

/* A needle appended whose record never was: the extra .dat bytes go. */
static void test_needle_without_record(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_chunk_store_free(s);
  char dat[PATH_MAX];
  volume_file(f, 1, "dat", dat, sizeof dat);
  static const uint8_t junk[40] = { 1, 2, 3 };
  append_bytes(dat, junk, sizeof junk);
  s = open_store(f, 0);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.repaired_volumes, 1);
  assert_int_equal(file_size(dat), 16 + span(100));
  expect_needle(s, &a, 100, 1);
  fm_fid b = put(s, 20, 2);
  expect_needle(s, &b, 20, 2);
  fm_chunk_store_free(s);
}

/* A crash while a new volume was being created leaves an empty .dat (made
 * first) and no .idx: open finishes the volume. */
static void test_volume_creation_crash(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 10, 1);
  fm_chunk_store_free(s);
  char dat[PATH_MAX], idx[PATH_MAX];
  volume_file(f, 2, "dat", dat, sizeof dat);
  volume_file(f, 2, "idx", idx, sizeof idx);
  int fd = open(dat, O_WRONLY | O_CREAT, 0644);
  assert_true(fd >= 0);
  close(fd);
  s = open_store(f, 0);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.volumes, 2);
  assert_int_equal(st.repaired_volumes, 1);
  assert_int_equal(file_size(dat), 16);
  assert_int_equal(file_size(idx), 0);
  fm_fid b = put(s, 20, 2); /* the newest volume takes new fids */
  assert_int_equal(b.volume_id, 2);
  expect_needle(s, &a, 10, 1);
  expect_needle(s, &b, 20, 2);
  fm_chunk_store_free(s);
}

/* Damage that is not a torn tail fails the open with file and offset. */
static void test_corruption_fails_open(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid b = put(s, 100, 2);
  fm_chunk_store_free(s);
  char dat[PATH_MAX], idx[PATH_MAX];
  volume_file(f, 1, "dat", dat, sizeof dat);
  volume_file(f, 1, "idx", idx, sizeof idx);
  char err[FM_ERR_LEN] = "", want[PATH_MAX + 64];

  /* record 1 (the first needle's; record 0 reserved keys) damaged, a good
   * record after it */
  flip_byte(idx, 32 + 3);
  s = NULL;
  assert_int_equal(fm_chunk_store_open(f->dir, 0, NULL, &s, err, sizeof err), FM_EDECODE);
  assert_null(s);
  snprintf(want, sizeof want, "%s at offset 32: record crc mismatch", idx);
  assert_string_equal(err, want);
  flip_byte(idx, 32 + 3);

  /* the last needle's header does not match its record (and is not zeros) */
  off_t second = 16 + span(100);
  flip_byte(dat, second + 9);
  assert_int_equal(fm_chunk_store_open(f->dir, 0, NULL, &s, err, sizeof err), FM_EDECODE);
  snprintf(want, sizeof want, "%s at offset %jd: ", dat, (intmax_t)second);
  assert_memory_equal(err, want, strlen(want));
  flip_byte(dat, second + 9);

  /* a damaged superblock */
  flip_byte(dat, 2);
  assert_int_equal(fm_chunk_store_open(f->dir, 0, NULL, &s, err, sizeof err), FM_EDECODE);
  snprintf(want, sizeof want, "%s at offset 0: ", dat);
  assert_memory_equal(err, want, strlen(want));
  flip_byte(dat, 2);

  /* an index without its volume file */
  char stray[PATH_MAX];
  volume_file(f, 9, "idx", stray, sizeof stray);
  static const uint8_t rec[32];
  int fd = open(stray, O_WRONLY | O_CREAT, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, rec, sizeof rec), (ssize_t)sizeof rec);
  close(fd);
  assert_int_equal(fm_chunk_store_open(f->dir, 0, NULL, &s, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, stray));
  unlink(stray);

  s = open_store(f, 0); /* every flip undone: nothing to repair */
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.repaired_volumes, 0);
  expect_needle(s, &a, 100, 1);
  expect_needle(s, &b, 100, 2);
  fm_chunk_store_free(s);
}

static void test_delete(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  fm_fid b = put(s, 200, 2);
  assert_int_equal(fm_chunk_store_delete(s, &a), 0);
  expect_not_found(s, &a);
  assert_int_equal(fm_chunk_store_delete(s, &a), FM_ENOTFOUND);
  expect_needle(s, &b, 200, 2);
  /* the key stays used */
  char err[FM_ERR_LEN] = "";
  uint8_t buf[4] = { 0 };
  assert_int_equal(fm_chunk_store_write(s, &a, buf, sizeof buf, err, sizeof err), FM_EEXIST);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.needles, 1);
  assert_int_equal(st.deleted_needles, 1);
  assert_int_equal(st.live_bytes, 200);
  /* the space is not reclaimed */
  char dat[PATH_MAX];
  volume_file(f, 1, "dat", dat, sizeof dat);
  assert_int_equal(file_size(dat), 16 + span(100) + span(200));
  fm_chunk_store_free(s);

  s = open_store(f, 0);
  expect_not_found(s, &a);
  expect_needle(s, &b, 200, 2);
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.needles, 1);
  assert_int_equal(st.deleted_needles, 1);
  assert_int_equal(fm_chunk_store_delete(s, &b), 0);
  fm_fid none = { 77, 1, 1 };
  assert_int_equal(fm_chunk_store_delete(s, &none), FM_ENOTFOUND);
  fm_chunk_store_free(s);
  s = open_store(f, 0);
  expect_not_found(s, &b);
  fm_chunk_store_free(s);
}

static void expect_range(fm_chunk_store *s, const fm_fid *fid, const uint8_t *whole, uint64_t off, uint64_t length,
                         size_t want_len)
{
  char err[FM_ERR_LEN] = "";
  void *data = NULL;
  size_t len = 9999;
  int rc = fm_chunk_store_read_range(s, fid, off, length, &data, &len, err, sizeof err);
  if (rc != 0)
    fail_msg("read_range(%" PRIu64 ", %" PRIu64 "): %d: %s", off, length, rc, err);
  assert_non_null(data);
  assert_int_equal(len, want_len);
  if (want_len > 0)
    assert_memory_equal(data, whole + off, want_len);
  free(data);
}

static void test_range(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  uint8_t whole[100];
  fill(whole, sizeof whole, 1);
  expect_range(s, &a, whole, 0, 100, 100);
  expect_range(s, &a, whole, 0, UINT64_MAX, 100);
  expect_range(s, &a, whole, 0, 1000, 100);
  expect_range(s, &a, whole, 0, 0, 0);
  expect_range(s, &a, whole, 0, 1, 1);
  expect_range(s, &a, whole, 99, 1, 1);
  expect_range(s, &a, whole, 99, 10, 1);
  expect_range(s, &a, whole, 50, 25, 25);
  expect_range(s, &a, whole, 1, 98, 98);
  expect_range(s, &a, whole, 100, 5, 0); /* at the end: nothing */
  expect_range(s, &a, whole, 100, UINT64_MAX, 0);
  char err[FM_ERR_LEN] = "";
  void *data = NULL;
  size_t len = 0;
  assert_int_equal(fm_chunk_store_read_range(s, &a, 101, 1, &data, &len, err, sizeof err), FM_EINVAL);
  assert_int_equal(fm_chunk_store_read_range(s, &a, UINT64_MAX, 1, &data, &len, err, sizeof err), FM_EINVAL);
  assert_null(data);

  fm_fid empty = put(s, 0, 2);
  expect_range(s, &empty, whole, 0, UINT64_MAX, 0);
  assert_int_equal(fm_chunk_store_read_range(s, &empty, 1, 1, &data, &len, err, sizeof err), FM_EINVAL);
  fm_chunk_store_free(s);
}

static void test_eexist(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 0);
  fm_fid a = put(s, 100, 1);
  char err[FM_ERR_LEN] = "";
  uint8_t other[100];
  fill(other, sizeof other, 2);
  assert_int_equal(fm_chunk_store_write(s, &a, other, sizeof other, err, sizeof err), FM_EEXIST);
  fm_fid same_key = a;
  same_key.cookie ^= 0xffff; /* the key, not the cookie, is what is taken */
  assert_int_equal(fm_chunk_store_write(s, &same_key, other, sizeof other, err, sizeof err), FM_EEXIST);
  expect_needle(s, &a, 100, 1);
  fm_chunk_store_free(s);
  s = open_store(f, 0);
  assert_int_equal(fm_chunk_store_write(s, &a, other, sizeof other, err, sizeof err), FM_EEXIST);
  fm_chunk_store_free(s);
}

static void test_toobig_and_unknown_volume(void **state)
{
  fixture *f = *state;
  fm_chunk_store *s = open_store(f, 1024);
  fm_fid a;
  assert_int_equal(fm_chunk_store_assign(s, &a), 0);
  uint8_t *buf = calloc(1, 2048);
  assert_non_null(buf);
  char err[FM_ERR_LEN] = "";
  /* an empty volume holds 1024 - 16 superblock - 24 header bytes */
  assert_int_equal(fm_chunk_store_write(s, &a, buf, 985, err, sizeof err), FM_ETOOBIG);
  assert_int_equal(fm_chunk_store_write(s, &a, buf, 2048, err, sizeof err), FM_ETOOBIG);
  assert_int_equal(fm_chunk_store_write(s, &a, buf, 984, err, sizeof err), 0);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(s, &st);
  assert_int_equal(st.needles, 1);

  fm_fid nowhere = { 5, 1, 1 };
  assert_int_equal(fm_chunk_store_write(s, &nowhere, buf, 10, err, sizeof err), FM_ENOTFOUND);
  assert_non_null(strstr(err, "volume 5"));
  free(buf);
  /* the full volume takes no new fid */
  fm_fid b;
  assert_int_equal(fm_chunk_store_assign(s, &b), 0);
  assert_int_equal(b.volume_id, 2);
  fm_chunk_store_free(s);

  s = NULL;
  assert_int_equal(fm_chunk_store_open(f->dir, 16, NULL, &s, err, sizeof err), FM_EINVAL);
  assert_int_equal(fm_chunk_store_open("", 0, NULL, &s, err, sizeof err), FM_EINVAL);
  assert_null(s);
}

static void test_free_null_and_lock(void **state)
{
  fixture *f = *state;
  fm_chunk_store_free(NULL);
  fm_chunk_store *s = open_store(f, 0);
  fm_chunk_store *t = NULL;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_chunk_store_open(f->dir, 0, NULL, &t, err, sizeof err), FM_EBUSY);
  assert_null(t);
  assert_non_null(strstr(err, f->dir));
  fm_chunk_store_free(s);
  s = open_store(f, 0); /* released by free */
  fm_chunk_store_free(s);
}

static void test_sync_option(void **state)
{
  fixture *f = *state;
  fm_chunk_store_options opt = { .sync = true };
  fm_chunk_store *s = open_store_opt(f, 2048, &opt);
  fm_fid fids[20];
  for (int i = 0; i < 20; i++)
    fids[i] = put(s, 300, (uint64_t)i);
  assert_int_equal(fm_chunk_store_delete(s, &fids[3]), 0);
  fm_chunk_store_free(s);
  s = open_store_opt(f, 2048, &opt);
  for (int i = 0; i < 20; i++) {
    if (i == 3)
      expect_not_found(s, &fids[i]);
    else
      expect_needle(s, &fids[i], 300, (uint64_t)i);
  }
  fm_chunk_store_free(s);
}

/* ---- readers alongside the writer ---- */

enum { CONC_N = 3000, CONC_READERS = 4 };

typedef struct conc {
  fm_chunk_store *s;
  fm_fid fids[CONC_N];
  atomic_int published;
  atomic_bool done;
  atomic_int reads;
  atomic_int failures;
} conc;

static size_t conc_len(int i)
{
  return (size_t)(i * 53) % 700;
}

static void *conc_reader(void *arg)
{
  conc *c = arg;
  uint32_t x = (uint32_t)(uintptr_t)&x | 1;
  uint8_t want[700];
  while (!atomic_load(&c->done) || atomic_load(&c->reads) < 1000) {
    int n = atomic_load(&c->published);
    if (n == 0)
      continue;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    int i = (int)(x % (uint32_t)n);
    void *data = NULL;
    size_t len = 0;
    char err[FM_ERR_LEN];
    int rc = fm_chunk_store_read(c->s, &c->fids[i], &data, &len, err, sizeof err);
    fill(want, conc_len(i), (uint64_t)i);
    if (rc != 0 || len != conc_len(i) || (len > 0 && memcmp(data, want, len) != 0))
      atomic_fetch_add(&c->failures, 1);
    free(data);
    struct fm_chunk_store_stats st;
    fm_chunk_store_stats(c->s, &st);
    (void)fm_chunk_store_has_volume(c->s, c->fids[i].volume_id);
    atomic_fetch_add(&c->reads, 1);
  }
  return NULL;
}

static void test_concurrent_reads(void **state)
{
  fixture *f = *state;
  conc *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->s = open_store(f, 64 * 1024);
  pthread_t readers[CONC_READERS];
  for (int i = 0; i < CONC_READERS; i++)
    assert_int_equal(pthread_create(&readers[i], NULL, conc_reader, c), 0);
  uint8_t buf[700];
  char err[FM_ERR_LEN];
  for (int i = 0; i < CONC_N; i++) {
    fm_fid fid;
    assert_int_equal(fm_chunk_store_assign(c->s, &fid), 0);
    fill(buf, conc_len(i), (uint64_t)i);
    int rc = fm_chunk_store_write(c->s, &fid, buf, conc_len(i), err, sizeof err);
    if (rc != 0)
      fail_msg("write %d: %d: %s", i, rc, err);
    c->fids[i] = fid;
    atomic_store(&c->published, i + 1);
    if (i % 100 == 0) /* deletes of other ids run alongside too */
      assert_int_equal(fm_chunk_store_delete(c->s, &(fm_fid){ fid.volume_id, UINT64_MAX, 0 }), FM_ENOTFOUND);
  }
  atomic_store(&c->done, true);
  for (int i = 0; i < CONC_READERS; i++)
    pthread_join(readers[i], NULL);
  assert_int_equal(atomic_load(&c->failures), 0);
  assert_true(atomic_load(&c->reads) >= 1000);
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(c->s, &st);
  assert_true(st.volumes > 5);
  assert_int_equal(st.needles, CONC_N);
  fm_chunk_store_free(c->s);
  free(c);
}

int main(void)
{
  fm_log_set_level(FM_LOG_ERROR); /* repairs log warnings by design */
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rollover, setup, teardown),
    cmocka_unit_test_setup_teardown(test_reopen_keeps_all, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unassigned_key_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
    cmocka_unit_test_setup_teardown(test_wrong_cookie, setup, teardown),
    cmocka_unit_test_setup_teardown(test_crc_mismatch, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_needle, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_index, setup, teardown),
    cmocka_unit_test_setup_teardown(test_zero_filled_tail, setup, teardown),
    cmocka_unit_test_setup_teardown(test_needle_without_record, setup, teardown),
    cmocka_unit_test_setup_teardown(test_volume_creation_crash, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corruption_fails_open, setup, teardown),
    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
    cmocka_unit_test_setup_teardown(test_range, setup, teardown),
    cmocka_unit_test_setup_teardown(test_eexist, setup, teardown),
    cmocka_unit_test_setup_teardown(test_toobig_and_unknown_volume, setup, teardown),
    cmocka_unit_test_setup_teardown(test_free_null_and_lock, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sync_option, setup, teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_reads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
