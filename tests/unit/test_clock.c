/* Unit tests for common/clock.h: the clocks move, and fm_parse_time reads ns and RFC 3339. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clock.h"
#include "error.h"

static void test_clocks(void **state)
{
  (void)state;
  int64_t a = fm_mono_ns(), b = fm_mono_ns();
  assert_true(b >= a);
  assert_true(fm_now_ns() > INT64_C(1600000000) * 1000000000); /* after 2020 */
}

static void test_parse_time(void **state)
{
  (void)state;
  struct {
    const char *in;
    int64_t ns;
  } ok[] = {
    { "0", 0 },
    { "1795562434680059206", INT64_C(1795562434680059206) },
    { "1970-01-01T00:00:00Z", 0 },
    { "2026-11-24T10:00:00Z", INT64_C(1795514400) * 1000000000 },
    { "2026-11-24T10:00:00.5Z", INT64_C(1795514400) * 1000000000 + 500000000 },
    { "2026-11-24T10:00:00.123456789z", INT64_C(1795514400) * 1000000000 + 123456789 },
    { "2026-11-24T10:00:00.1234567891Z", INT64_C(1795514400) * 1000000000 + 123456789 }, /* beyond ns: cut */
    { "2026-11-24T11:30:00+01:30", INT64_C(1795514400) * 1000000000 },
    { "2026-11-24T08:00:00-02:00", INT64_C(1795514400) * 1000000000 },
    { "2024-02-29T00:00:00Z", INT64_C(1709164800) * 1000000000 },
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t ns = -1;
    assert_int_equal(fm_parse_time(ok[i].in, &ns), 0);
    assert_int_equal(ns, ok[i].ns);
  }
  const char *bad[] = { "",
                        "yesterday",
                        "-1",
                        "9223372036854775808",
                        "2026-11-24",
                        "2026-11-24T10:00:00",
                        "2026-11-24 10:00:00Z",
                        "2026-13-01T00:00:00Z",
                        "2023-02-29T00:00:00Z",
                        "2026-11-24T24:00:00Z",
                        "2026-11-24T10:00:00.Z",
                        "2026-11-24T10:00:00+1:00",
                        "2026-11-24T10:00:00Zjunk",
                        "1969-12-31T23:59:59Z" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ns = -1;
    assert_int_equal(fm_parse_time(bad[i], &ns), FM_EINVAL);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_clocks),
    cmocka_unit_test(test_parse_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
