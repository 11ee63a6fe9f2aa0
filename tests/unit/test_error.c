/* Unit tests for common/error.h: fm_strerror names every fm_err code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "error.h"

/* Every code from FM_OK down to FM_EUNAVAILABLE must have its own non-empty
 * text, and none of them may fall through to the default branch. */
static void test_every_code_distinct(void **state)
{
  const char *seen[1 - FM_EUNAVAILABLE];
  size_t n = 0;
  for (int code = FM_OK; code >= FM_EUNAVAILABLE; code--) {
    const char *s = fm_strerror(code);
    assert_non_null(s);
    assert_true(strlen(s) > 0);
    assert_string_not_equal(s, "unknown error");
    for (size_t i = 0; i < n; i++)
      assert_string_not_equal(s, seen[i]);
    seen[n++] = s;
  }
  assert_int_equal(n, 15);
}

/* A few fixed strings, so a reordered switch that still yields distinct text is caught. */
static void test_known_texts(void **state)
{
  assert_string_equal(fm_strerror(FM_OK), "success");
  assert_string_equal(fm_strerror(FM_EINVAL), "invalid argument");
  assert_string_equal(fm_strerror(FM_EDECODE), "message does not decode");
  assert_string_equal(fm_strerror(FM_EUNAVAILABLE), "unavailable");
}

/* Codes outside the enum, on both sides, get the fallback text. */
static void test_out_of_range(void **state)
{
  assert_string_equal(fm_strerror(FM_EUNAVAILABLE - 1), "unknown error");
  assert_string_equal(fm_strerror(1), "unknown error");
  assert_string_equal(fm_strerror(-1000), "unknown error");
  assert_string_equal(fm_strerror(INT32_MAX), "unknown error");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_code_distinct),
    cmocka_unit_test(test_known_texts),
    cmocka_unit_test(test_out_of_range),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
