/* Unit tests for storage/storage_internal.h: the byte layout of the filer
 * store's keys (entries, KV, event records) and their ordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "storage_internal.h"

static void test_layout_bytes(void **state)
{
  /* The leading bytes are part of the on-disk format: never renumber them. */
  assert_int_equal(FM_KEY_ENTRY, 'E');
  assert_int_equal(FM_KEY_KV, 'K');
  assert_int_equal(FM_KEY_EVENT, 'W');
  assert_int_equal(FM_KEY_META, 'M');
  assert_string_equal(FM_KEY_CLOCK, "Mclock");
}

static void test_entry_key(void **state)
{
  fm_key k;
  assert_int_equal(fm_store__key_entry(&k, "/a/b", "file.txt"), 0);
  static const char want[] = "E/a/b\0file.txt";
  assert_int_equal(k.len, sizeof want - 1);
  assert_memory_equal(k.data, want, sizeof want - 1);
  fm_store__key_free(&k);

  /* The root, and the directory's range prefix (name ""). */
  assert_int_equal(fm_store__key_entry(&k, "/", "x"), 0);
  assert_int_equal(k.len, 4);
  assert_memory_equal(k.data, "E/\0x", 4);
  fm_store__key_free(&k);
  assert_int_equal(fm_store__key_entry(&k, "/a", ""), 0);
  assert_int_equal(k.len, 4);
  assert_memory_equal(k.data, "E/a\0", 4);
  fm_store__key_free(&k);
}

/* "/a"'s range prefix must not be a prefix of "/ab"'s keys, nor of "/a/b"'s. */
static void test_entry_key_dir_boundary(void **state)
{
  fm_key range, ab, sub, own;
  assert_int_equal(fm_store__key_entry(&range, "/a", ""), 0);
  assert_int_equal(fm_store__key_entry(&ab, "/ab", "x"), 0);
  assert_int_equal(fm_store__key_entry(&sub, "/a/b", "x"), 0);
  assert_int_equal(fm_store__key_entry(&own, "/a", "b"), 0);
  assert_true(memcmp(ab.data, range.data, range.len) != 0);
  assert_true(memcmp(sub.data, range.data, range.len) != 0);
  assert_memory_equal(own.data, range.data, range.len);
  fm_store__key_free(&range);
  fm_store__key_free(&ab);
  fm_store__key_free(&sub);
  fm_store__key_free(&own);
}

static void test_kv_key(void **state)
{
  fm_key k;
  static const char bin[] = { 'a', '\0', 'b', '\xff' };
  assert_int_equal(fm_store__key_kv(&k, bin, sizeof bin), 0);
  assert_int_equal(k.len, 5);
  assert_memory_equal(k.data, "Ka\0b\xff", 5);
  fm_store__key_free(&k);

  assert_int_equal(fm_store__key_kv(&k, "", 0), 0);
  assert_int_equal(k.len, 1);
  assert_int_equal(k.data[0], 'K');
  fm_store__key_free(&k);
}

static void test_event_key(void **state)
{
  fm_key k;
  assert_int_equal(fm_store__key_event(&k, 0x0102030405060708LL), 0);
  assert_int_equal(k.len, 9);
  assert_memory_equal(k.data, "W\x01\x02\x03\x04\x05\x06\x07\x08", 9);
  fm_store__key_free(&k);

  assert_int_equal(fm_store__key_event(&k, 1), 0);
  assert_memory_equal(k.data, "W\0\0\0\0\0\0\0\x01", 9);
  fm_store__key_free(&k);

  assert_int_equal(fm_store__key_event(&k, 256), 0);
  assert_memory_equal(k.data, "W\0\0\0\0\0\0\x01\0", 9);
  fm_store__key_free(&k);

  assert_int_equal(fm_store__key_event(&k, INT64_MAX), 0);
  assert_memory_equal(k.data, "W\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
  fm_store__key_free(&k);
}

static void test_event_ts_round_trip(void **state)
{
  static const int64_t values[] = {
    0, 1, 255, 256, 65535, 65536, 1LL << 32, 1LL << 40, 1700000000123456789LL, INT64_MAX - 1, INT64_MAX,
  };
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    fm_key k;
    assert_int_equal(fm_store__key_event(&k, values[i]), 0);
    int64_t ts = -42;
    assert_int_equal(fm_store__key_event_ts(k.data, k.len, &ts), 0);
    assert_true(ts == values[i]);
    fm_store__key_free(&k);
  }
}

static void test_event_ts_rejects(void **state)
{
  int64_t ts = 7;
  /* wrong length, either side of 9 */
  assert_int_equal(fm_store__key_event_ts("W\0\0\0\0\0\0\0", 8, &ts), FM_EDECODE);
  assert_int_equal(fm_store__key_event_ts("W\0\0\0\0\0\0\0\x01\x02", 10, &ts), FM_EDECODE);
  assert_int_equal(fm_store__key_event_ts("W", 1, &ts), FM_EDECODE);
  assert_int_equal(fm_store__key_event_ts("", 0, &ts), FM_EDECODE);
  /* right length, wrong range */
  assert_int_equal(fm_store__key_event_ts("K\0\0\0\0\0\0\0\x01", 9, &ts), FM_EDECODE);
  assert_int_equal(fm_store__key_event_ts("Mclock123", 9, &ts), FM_EDECODE);
  assert_int_equal(fm_store__key_event_ts("E/\0abcdef", 9, &ts), FM_EDECODE);
  /* nothing written on failure */
  assert_true(ts == 7);
  /* and the same bytes with the right prefix decode */
  assert_int_equal(fm_store__key_event_ts("W\0\0\0\0\0\0\0\x01", 9, &ts), 0);
  assert_true(ts == 1);
}

static int cmp_keys(const void *a, const void *b)
{
  const fm_key *x = a, *y = b;
  assert_int_equal(x->len, y->len);
  return memcmp(x->data, y->data, x->len);
}

/* LevelDB orders keys by memcmp: encoded event keys must sort as their ts. */
static void test_event_key_order(void **state)
{
  /* Deliberately shuffled, and differing in high and in low bytes. */
  static const int64_t values[] = {
    1LL << 40,
    256,
    INT64_MAX - 1,
    1,
    255,
    1LL << 8 | 1,
    0x00ff000000000000LL,
    65536,
    1LL << 56,
    0x0100000000000000LL - 1,
    2,
  };
  static const int64_t sorted[] = {
    1, 2, 255, 256, 257, 65536, 1LL << 40, 0x00ff000000000000LL, 0x0100000000000000LL - 1, 1LL << 56, INT64_MAX - 1,
  };
  enum { N = sizeof values / sizeof values[0] };
  _Static_assert(sizeof sorted / sizeof sorted[0] == N, "same count");
  fm_key keys[N];
  /* fm_key holds a pointer into itself when inline; sort copies, so keep
   * each key's bytes in a heap copy that moves with it. */
  for (size_t i = 0; i < N; i++) {
    fm_key k;
    assert_int_equal(fm_store__key_event(&k, values[i]), 0);
    keys[i].len = k.len;
    keys[i].data = malloc(k.len);
    assert_non_null(keys[i].data);
    memcpy(keys[i].data, k.data, k.len);
    fm_store__key_free(&k);
  }
  qsort(keys, N, sizeof keys[0], cmp_keys);
  for (size_t i = 0; i < N; i++) {
    int64_t ts = 0;
    assert_int_equal(fm_store__key_event_ts(keys[i].data, keys[i].len, &ts), 0);
    if (ts != sorted[i])
      fail_msg("position %zu: key of ts %lld, want %lld", i, (long long)ts, (long long)sorted[i]);
    free(keys[i].data);
  }
}

/* Keys up to the inline buffer's size stay inline; longer ones go to the
 * heap, and fm_store__key_free frees them (a leak shows under ASan). */
static void test_long_keys_spill(void **state)
{
  fm_key k;
  size_t cap = sizeof k.inline_buf;
  char *name = malloc(cap + 100);
  assert_non_null(name);

  /* 'E' + "/" + '\0' + name: exactly cap bytes stays inline */
  memset(name, 'n', cap - 3);
  name[cap - 3] = '\0';
  assert_int_equal(fm_store__key_entry(&k, "/", name), 0);
  assert_int_equal(k.len, cap);
  assert_ptr_equal(k.data, k.inline_buf);
  fm_store__key_free(&k);
  assert_null(k.data);

  /* one more byte spills */
  memset(name, 'n', cap - 2);
  name[cap - 2] = '\0';
  assert_int_equal(fm_store__key_entry(&k, "/", name), 0);
  assert_int_equal(k.len, cap + 1);
  assert_ptr_not_equal(k.data, k.inline_buf);
  assert_memory_equal(k.data, "E/\0", 3);
  assert_memory_equal(k.data + 3, name, cap - 2);
  fm_store__key_free(&k);
  assert_null(k.data);

  /* a long directory and a long KV key, too */
  memset(name, 'd', cap + 50);
  name[0] = '/';
  name[cap + 50] = '\0';
  assert_int_equal(fm_store__key_entry(&k, name, "x"), 0);
  assert_int_equal(k.len, 1 + cap + 50 + 1 + 1);
  assert_ptr_not_equal(k.data, k.inline_buf);
  assert_int_equal(k.data[1 + cap + 50], '\0');
  assert_int_equal(k.data[k.len - 1], 'x');
  fm_store__key_free(&k);

  assert_int_equal(fm_store__key_kv(&k, name, cap + 50), 0);
  assert_int_equal(k.len, cap + 51);
  assert_ptr_not_equal(k.data, k.inline_buf);
  assert_int_equal(k.data[0], 'K');
  assert_memory_equal(k.data + 1, name, cap + 50);
  fm_store__key_free(&k);
  /* freeing twice is harmless: the first free cleared data */
  fm_store__key_free(&k);
  free(name);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_layout_bytes),
    cmocka_unit_test(test_entry_key),
    cmocka_unit_test(test_entry_key_dir_boundary),
    cmocka_unit_test(test_kv_key),
    cmocka_unit_test(test_event_key),
    cmocka_unit_test(test_event_ts_round_trip),
    cmocka_unit_test(test_event_ts_rejects),
    cmocka_unit_test(test_event_key_order),
    cmocka_unit_test(test_long_keys_spill),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
