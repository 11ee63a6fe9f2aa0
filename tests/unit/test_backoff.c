/* Unit tests for common/backoff.h: every delay lies in [d/2, d] for d doubling from the initial delay to the cap,
 * never above the cap, jittered (not all equal), and a reset starts over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>

#include "backoff.h"

static void test_bounds_double_to_cap(void **state)
{
  (void)state;
  for (uint64_t seed = 1; seed <= 50; seed++) {
    fm_backoff b;
    fm_backoff_init(&b, 100, 10000, seed);
    int64_t d = 100;
    for (int i = 0; i < 30; i++) {
      int64_t x = fm_backoff_next(&b);
      if (x < (d + 1) / 2 || x > d)
        fail_msg("seed %llu attempt %d: delay %lld outside [%lld, %lld]", (unsigned long long)seed, i, (long long)x,
                 (long long)((d + 1) / 2), (long long)d);
      assert_true(x <= 10000);
      d = d * 2 > 10000 ? 10000 : d * 2;
    }
  }
}

static void test_jitter_and_reset(void **state)
{
  (void)state;
  fm_backoff b;
  fm_backoff_init(&b, 1000, 1000, 42);
  int64_t first = fm_backoff_next(&b);
  bool differ = false;
  for (int i = 0; i < 50; i++)
    differ |= fm_backoff_next(&b) != first;
  assert_true(differ);

  fm_backoff_init(&b, 10, 100000, 3);
  for (int i = 0; i < 10; i++)
    fm_backoff_next(&b);
  assert_true(fm_backoff_next(&b) > 10);
  fm_backoff_reset(&b);
  int64_t x = fm_backoff_next(&b);
  assert_true(x >= 5 && x <= 10);
}

static void test_degenerate_arguments(void **state)
{
  (void)state;
  fm_backoff b;
  fm_backoff_init(&b, 0, -5, 0); /* raised to 1 ms, cap 1 ms; seed from the clock */
  for (int i = 0; i < 10; i++)
    assert_int_equal(fm_backoff_next(&b), 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bounds_double_to_cap),
    cmocka_unit_test(test_jitter_and_reset),
    cmocka_unit_test(test_degenerate_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
