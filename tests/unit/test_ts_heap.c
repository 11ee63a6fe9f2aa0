/* Unit tests for common/ts_heap.h: the merge of three sorted streams whose timestamps collide across streams comes
 * out in (ts, tie) order, stable by stream; random loads pop sorted; an empty heap pops nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "ts_heap.h"

/* Three streams (think filer ids a < b < c) with equal timestamps across them; each stream sorted. */
static void test_merge_three_streams_stable_by_tie(void **state)
{
  (void)state;
  static const int64_t s[3][6] = {
    { 1, 3, 3, 5, 9, 9 }, /* equal ts within a stream too: the stream's own order must hold */
    { 1, 2, 3, 5, 8, 9 },
    { 0, 3, 5, 5, 9, 10 },
  };
  size_t pos[3] = { 0, 0, 0 };
  fm_ts_heap h;
  fm_ts_heap_init(&h);
  /* insert the streams in reverse tie order to show that insertion order does not matter */
  for (int k = 2; k >= 0; k--)
    assert_int_equal(fm_ts_heap_push(&h, s[k][0], (uint32_t)k, &pos[k]), 0);
  int64_t want_ts[18];
  uint32_t want_tie[18];
  /* expected: all 18 items sorted by (ts, stream), keeping each stream's order */
  size_t n = 0;
  for (int64_t t = 0; t <= 10; t++)
    for (uint32_t k = 0; k < 3; k++)
      for (size_t i = 0; i < 6; i++)
        if (s[k][i] == t) {
          want_ts[n] = t;
          want_tie[n] = k;
          n++;
        }
  assert_int_equal(n, 18);
  fm_ts_heap_item it;
  size_t got = 0;
  while (fm_ts_heap_pop(&h, &it)) {
    uint32_t k = it.tie;
    assert_ptr_equal(it.ptr, &pos[k]);
    assert_int_equal(it.ts_ns, want_ts[got]);
    assert_int_equal(k, want_tie[got]);
    assert_int_equal(it.ts_ns, s[k][pos[k]]);
    got++;
    if (++pos[k] < 6)
      assert_int_equal(fm_ts_heap_push(&h, s[k][pos[k]], k, &pos[k]), 0);
  }
  assert_int_equal(got, 18);
  assert_int_equal(fm_ts_heap_size(&h), 0);
  fm_ts_heap_destroy(&h);
}

static void test_random_load_pops_sorted(void **state)
{
  (void)state;
  fm_ts_heap h;
  fm_ts_heap_init(&h);
  srand(7);
  for (int i = 0; i < 5000; i++)
    assert_int_equal(fm_ts_heap_push(&h, rand() % 100, (uint32_t)(rand() % 4), NULL), 0);
  assert_int_equal(fm_ts_heap_size(&h), 5000);
  fm_ts_heap_item prev = { -1, 0, NULL }, it;
  size_t n = 0;
  while (fm_ts_heap_pop(&h, &it)) {
    assert_true(it.ts_ns > prev.ts_ns || (it.ts_ns == prev.ts_ns && it.tie >= prev.tie));
    prev = it;
    n++;
  }
  assert_int_equal(n, 5000);
  fm_ts_heap_destroy(&h);
}

static void test_empty(void **state)
{
  (void)state;
  fm_ts_heap h;
  fm_ts_heap_init(&h);
  fm_ts_heap_item it;
  assert_false(fm_ts_heap_pop(&h, &it));
  assert_int_equal(fm_ts_heap_push(&h, 5, 0, NULL), 0);
  assert_true(fm_ts_heap_pop(&h, &it));
  assert_false(fm_ts_heap_pop(&h, &it));
  fm_ts_heap_destroy(&h);
  fm_ts_heap_destroy(&h); /* destroy twice is harmless */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_merge_three_streams_stable_by_tie),
    cmocka_unit_test(test_random_load_pops_sorted),
    cmocka_unit_test(test_empty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
