/* Unit tests for server/http_range.h: the Range header values a chunk read
 * honours, the unsatisfiable ones, and those it ignores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http_range.h"

static void expect_partial(const char *h, uint64_t size, uint64_t off, uint64_t len)
{
  uint64_t o = 12345, l = 12345;
  if (fm_http_range_parse(h, size, &o, &l) != FM_HTTP_RANGE_PARTIAL)
    fail_msg("\"%s\" on %ju bytes: not partial", h, (uintmax_t)size);
  assert_int_equal(o, off);
  assert_int_equal(l, len);
}

static void expect_kind(const char *h, uint64_t size, fm_http_range want)
{
  uint64_t o = 12345, l = 12345;
  if (fm_http_range_parse(h, size, &o, &l) != want)
    fail_msg("\"%s\" on %ju bytes: not %d", h ? h : "(null)", (uintmax_t)size, (int)want);
  /* nothing is set unless the range is honoured */
  assert_int_equal(o, 12345);
  assert_int_equal(l, 12345);
}

static void test_single_ranges(void **state)
{
  (void)state;
  expect_partial("bytes=0-0", 10, 0, 1);
  expect_partial("bytes=0-9", 10, 0, 10);
  expect_partial("bytes=2-5", 10, 2, 4);
  expect_partial("bytes=2-500", 10, 2, 8); /* cut at the end */
  expect_partial("bytes=9-", 10, 9, 1);
  expect_partial("bytes=0-", 10, 0, 10);
  expect_partial("bytes=-3", 10, 7, 3);
  expect_partial("bytes=-10", 10, 0, 10);
  expect_partial("bytes=-11", 10, 0, 10);    /* a longer suffix is all of it */
  expect_partial("BYTES=1-2", 10, 1, 2);     /* the unit is case-insensitive */
  expect_partial(" bytes = 1-2 ", 10, 1, 2); /* spaces around the spec */
  expect_partial("bytes=00003-4", 10, 3, 2);
  expect_partial("bytes=1-99999999999999999999999", 10, 1, 9); /* saturates */
  expect_partial("bytes=-99999999999999999999999", 10, 0, 10);
}

static void test_unsatisfiable(void **state)
{
  (void)state;
  expect_kind("bytes=10-", 10, FM_HTTP_RANGE_UNSATISFIABLE);
  expect_kind("bytes=10-20", 10, FM_HTTP_RANGE_UNSATISFIABLE);
  expect_kind("bytes=99999999999999999999999-", 10, FM_HTTP_RANGE_UNSATISFIABLE);
  expect_kind("bytes=-0", 10, FM_HTTP_RANGE_UNSATISFIABLE);
  expect_kind("bytes=0-", 0, FM_HTTP_RANGE_UNSATISFIABLE);
  expect_kind("bytes=-5", 0, FM_HTTP_RANGE_UNSATISFIABLE);
}

/* What the RFC lets a server ignore: the whole body is sent. */
static void test_ignored(void **state)
{
  (void)state;
  const char *ignored[] = {
    NULL,        "",          "bytes",         "bytes=",     "bytes=-",    "bytes=a-b",
    "bytes=1-a", "bytes=5-2", "bytes=0-1,3-4", "bytes=0-1,", "items=0-1",  "bytes 0-1",
    "bytes=--1", "bytes=1",   "bytes=+1-2",    "bytes=1-2x", "bytesx=1-2",
  };
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
    expect_kind(ignored[i], 10, FM_HTTP_RANGE_WHOLE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_single_ranges),
    cmocka_unit_test(test_unsatisfiable),
    cmocka_unit_test(test_ignored),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
