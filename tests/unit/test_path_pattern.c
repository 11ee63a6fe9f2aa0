/* Unit tests for common/path_pattern.h: filer.meta.tail's -pattern on names, on full paths, and on events (old and
 * new side of a rename). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "filer.pb-c.h"
#include "path_pattern.h"

static void test_name_patterns(void **state)
{
  (void)state;
  assert_true(fm_path_pattern_match("*.pdf", "/docs", "a.pdf"));
  assert_false(fm_path_pattern_match("*.pdf", "/docs", "a.pdf.txt"));
  assert_true(fm_path_pattern_match("?opher", "/home", "gopher"));
  assert_false(fm_path_pattern_match("?opher", "/home", "ggopher"));
  assert_true(fm_path_pattern_match("[gh]opher", "/", "hopher"));
  assert_false(fm_path_pattern_match("[!gh]opher", "/", "hopher"));
  /* a name pattern ignores the directory, even one that would match */
  assert_false(fm_path_pattern_match("docs", "/docs", "a.pdf"));
  assert_true(fm_path_pattern_match("*", "/x/y", "anything"));
}

static void test_path_patterns(void **state)
{
  (void)state;
  assert_true(fm_path_pattern_match("/home/?opher", "/home", "gopher"));
  assert_true(fm_path_pattern_match("/a.pdf", "/", "a.pdf")); /* the root joins without a double slash */
  assert_true(fm_path_pattern_match("/docs/*.pdf", "/docs/", "a.pdf"));
  /* '*' and '?' stay within one directory, as Go's filepath.Match */
  assert_false(fm_path_pattern_match("/docs/*.pdf", "/docs/sub", "a.pdf"));
  assert_false(fm_path_pattern_match("/docs?a.pdf", "/docs", "a.pdf"));
  assert_true(fm_path_pattern_match("/docs/*/*.pdf", "/docs/sub", "a.pdf"));
  assert_false(fm_path_pattern_match("/other/*", "/docs", "a"));
}

static void test_event_sides(void **state)
{
  (void)state;
  FilerPb__Entry old_e = FILER_PB__ENTRY__INIT, new_e = FILER_PB__ENTRY__INIT;
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  FilerPb__SubscribeMetadataResponse ev = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  ev.event_notification = &en;
  ev.directory = (char *)"/in";
  old_e.name = (char *)"a.txt";
  new_e.name = (char *)"a.pdf";
  /* a create: the new side in `directory` (no new_parent_path) */
  en.new_entry = &new_e;
  assert_true(fm_path_pattern_match_event("/in/*.pdf", &ev));
  /* a rename /in/a.txt -> /out/a.pdf: either side */
  en.old_entry = &old_e;
  en.new_parent_path = (char *)"/out";
  assert_true(fm_path_pattern_match_event("/in/*.txt", &ev));
  assert_true(fm_path_pattern_match_event("/out/*.pdf", &ev));
  assert_false(fm_path_pattern_match_event("/in/*.pdf", &ev));
  /* a delete: the old side only */
  en.new_entry = NULL;
  assert_true(fm_path_pattern_match_event("*.txt", &ev));
  assert_false(fm_path_pattern_match_event("*.pdf", &ev));
  /* a marker has no sides */
  en.old_entry = NULL;
  assert_false(fm_path_pattern_match_event("*", &ev));
  ev.event_notification = NULL;
  assert_false(fm_path_pattern_match_event("*", &ev));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_name_patterns),
    cmocka_unit_test(test_path_patterns),
    cmocka_unit_test(test_event_sides),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
