/* Unit tests for storage/log_file.h: names and their parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "log_file.h"

#define MIN FM_NS_PER_MINUTE
#define SEC INT64_C(1000000000)

/* ns of a UTC date and time. */
static int64_t at(const char *day, int hh, int mm, int64_t extra_ns)
{
  int64_t d;
  assert_true(fm_log_parse_day(day, strlen(day), &d));
  return d + (hh * 60 + mm) * MIN + extra_ns;
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

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names_round_trip),
    cmocka_unit_test(test_names_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
