/* Unit tests for common/fpath.h: which directory paths and entry names the
 * filer accepts, and joining/splitting full paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fpath.h"

/* Checks that `dir` (of `len` bytes) is accepted and normalised to `want`. */
static void accept_dir(const char *dir, size_t len, const char *want)
{
  char err[FM_ERR_LEN] = "";
  char *out = NULL;
  int rc = fm_path_check_dir(dir, len, "directory", &out, err, sizeof err);
  if (rc != 0)
    fail_msg("\"%s\" refused (%d): %s", dir, rc, err);
  assert_non_null(out);
  assert_string_equal(out, want);
  free(out);
}

/* Checks that `dir` is refused with FM_EINVAL, a message naming the field,
 * and *out left alone. */
static void refuse_dir(const char *dir, size_t len)
{
  char err[FM_ERR_LEN] = "";
  char *const sentinel = (char *)(uintptr_t)0x1;
  char *out = sentinel;
  int rc = fm_path_check_dir(dir, len, "parent_dir", &out, err, sizeof err);
  if (rc != FM_EINVAL)
    fail_msg("\"%s\" (len %zu): got %d, want FM_EINVAL", dir, len, rc);
  assert_ptr_equal(out, sentinel);
  if (strstr(err, "parent_dir") == NULL)
    fail_msg("\"%s\": error \"%s\" does not name the field", dir, err);
}

static void test_dir_accepts(void **state)
{
  accept_dir("/", 1, "/");
  accept_dir("/a", 2, "/a");
  accept_dir("/a/b", 4, "/a/b");
  accept_dir("/buckets/my-bucket/x y/ü", strlen("/buckets/my-bucket/x y/ü"), "/buckets/my-bucket/x y/ü");
  /* names that merely contain dots are names */
  accept_dir("/.a/..b/...", 11, "/.a/..b/...");
}

/* A trailing '/' is tolerated and stripped; the root keeps its one '/'. */
static void test_dir_trailing_slash(void **state)
{
  accept_dir("/a/b/", 5, "/a/b");
  accept_dir("/a/", 3, "/a");
  /* Several trailing slashes are stripped too (as "/a/b/" is, repeatedly). */
  accept_dir("/a/b//", 6, "/a/b");
  /* "//" and "///" are the root with trailing slashes: the root. */
  accept_dir("//", 2, "/");
  accept_dir("///", 3, "/");
}

/* `len` bounds the path: bytes after it are not part of it. */
static void test_dir_len_bounds(void **state)
{
  accept_dir("/a/b/c", 4, "/a/b");
  accept_dir("/a/b/c", 5, "/a/b");
  accept_dir("/a/..", 3, "/a");
}

static void test_dir_refuses(void **state)
{
  refuse_dir("", 0);
  refuse_dir("a", 1);
  refuse_dir("a/b", 3);
  refuse_dir("./a", 3);
  refuse_dir("/a//b", 5);
  refuse_dir("//a", 3);
  refuse_dir("/a/./b", 6);
  refuse_dir("/a/../b", 7);
  refuse_dir("/..", 3);
  refuse_dir("/.", 2);
  refuse_dir("/a/.", 4);
  refuse_dir("/a/..", 5);
  refuse_dir("/a/../", 6);
  /* an embedded NUL, seen because len covers it */
  refuse_dir("/a\0b", 4);
  refuse_dir("/a\0", 3);
}

static void test_dir_messages(void **state)
{
  char err[FM_ERR_LEN] = "";
  char *out = NULL;
  assert_int_equal(fm_path_check_dir("a/b", 3, "directory", &out, err, sizeof err), FM_EINVAL);
  assert_non_null(strstr(err, "absolute"));
  assert_non_null(strstr(err, "\"a/b\""));
  assert_int_equal(fm_path_check_dir("/a\0b", 4, "directory", &out, err, sizeof err), FM_EINVAL);
  assert_non_null(strstr(err, "NUL"));
  assert_int_equal(fm_path_check_dir("/x/../y", 7, "new_parent_path", &out, err, sizeof err), FM_EINVAL);
  assert_non_null(strstr(err, "new_parent_path"));
  assert_non_null(strstr(err, "/x/../y"));
  assert_null(out);
}

static void test_name_accepts(void **state)
{
  char err[FM_ERR_LEN] = "";
  static const char *const names[] = {
    "a", "file.txt", ".hidden", "..a", "...", "a b", "\xc3\xbc\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "a\\b",
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int rc = fm_path_check_name(names[i], strlen(names[i]), "name", err, sizeof err);
    if (rc != 0)
      fail_msg("\"%s\" refused (%d): %s", names[i], rc, err);
  }
}

static void test_name_length(void **state)
{
  char err[FM_ERR_LEN] = "";
  char name[FM_NAME_MAX + 2];
  assert_int_equal(FM_NAME_MAX, 255);
  memset(name, 'x', sizeof name);
  name[FM_NAME_MAX] = '\0';
  assert_int_equal(fm_path_check_name(name, FM_NAME_MAX, "name", err, sizeof err), 0);
  name[FM_NAME_MAX] = 'x';
  name[FM_NAME_MAX + 1] = '\0';
  assert_int_equal(fm_path_check_name(name, FM_NAME_MAX + 1, "name", err, sizeof err), FM_ETOOBIG);
  assert_true(strlen(err) > 0);

  /* The limit counts bytes, not characters: 127 two-byte characters fit,
   * 128 do not. */
  char utf[2 * 128 + 1];
  for (size_t i = 0; i < 128; i++)
    memcpy(utf + 2 * i, "\xc3\xbc", 2);
  utf[2 * 127] = '\0';
  assert_int_equal(fm_path_check_name(utf, 2 * 127, "name", err, sizeof err), 0);
  memcpy(utf + 2 * 127, "\xc3\xbc", 2);
  utf[2 * 128] = '\0';
  assert_int_equal(fm_path_check_name(utf, 2 * 128, "name", err, sizeof err), FM_ETOOBIG);
}

static void test_name_refuses(void **state)
{
  static const struct {
    const char *name;
    size_t len;
  } cases[] = {
    { "", 0 }, { ".", 1 }, { "..", 2 }, { "a/b", 3 }, { "/", 1 }, { "a/", 2 }, { "a\0b", 3 }, { "\0", 1 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[FM_ERR_LEN] = "";
    int rc = fm_path_check_name(cases[i].name, cases[i].len, "entry.name", err, sizeof err);
    if (rc != FM_EINVAL)
      fail_msg("case %zu (\"%s\"): got %d, want FM_EINVAL", i, cases[i].name, rc);
    if (strstr(err, "entry.name") == NULL)
      fail_msg("case %zu: error \"%s\" does not name the field", i, err);
  }
}

/* An invalid name that is also too long is invalid, not too big. */
static void test_name_invalid_beats_too_long(void **state)
{
  char err[FM_ERR_LEN] = "";
  char name[FM_NAME_MAX + 11];
  memset(name, 'x', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  name[100] = '/';
  assert_int_equal(fm_path_check_name(name, sizeof name - 1, "name", err, sizeof err), FM_EINVAL);
}

static void test_join(void **state)
{
  static const struct {
    const char *dir, *name, *want;
  } cases[] = {
    { "/", "a", "/a" },
    { "/a", "b", "/a/b" },
    { "/a/b", "c.txt", "/a/b/c.txt" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *p = fm_path_join(cases[i].dir, cases[i].name);
    assert_non_null(p);
    assert_string_equal(p, cases[i].want);
    free(p);
  }
}

static void test_parent(void **state)
{
  static const struct {
    const char *full, *parent, *name;
  } cases[] = {
    { "/a/b", "/a", "b" },
    { "/a", "/", "a" },
    { "/a/b/c.txt", "/a/b", "c.txt" },
    { "/", "/", "" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *name = NULL;
    char *p = fm_path_parent(cases[i].full, &name);
    assert_non_null(p);
    assert_string_equal(p, cases[i].parent);
    assert_string_equal(name, cases[i].name);
    /* the name points into `full` */
    assert_true(name >= cases[i].full && name <= cases[i].full + strlen(cases[i].full));
    free(p);
  }
}

/* join and parent are inverses on normalised paths. */
static void test_join_parent_round_trip(void **state)
{
  static const char *const paths[] = { "/a", "/a/b", "/x/y/z.txt" };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    const char *name = NULL;
    char *dir = fm_path_parent(paths[i], &name);
    assert_non_null(dir);
    char *back = fm_path_join(dir, name);
    assert_non_null(back);
    assert_string_equal(back, paths[i]);
    free(back);
    free(dir);
  }
}

static void test_is_under(void **state)
{
  static const struct {
    const char *path, *prefix;
    bool want;
  } cases[] = {
    { "/a/b", "/a", true },    { "/a/b/c", "/a", true },    { "/a/bc", "/a/b", false },  { "/a/b", "/a/b", true },
    { "/a/b", "/a/b/", true }, { "/a/b/c", "/a/b/", true }, { "/a/bc", "/a/b/", false }, { "/a", "/", true },
    { "/", "/", true },        { "/x/y/z", "/", true },     { "/a", "/a/b", false },     { "/ab", "/a", false },
    { "/b", "/a", false },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bool got = fm_path_is_under(cases[i].path, cases[i].prefix);
    if (got != cases[i].want)
      fail_msg("fm_path_is_under(\"%s\", \"%s\") = %d, want %d", cases[i].path, cases[i].prefix, got, cases[i].want);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dir_accepts),
    cmocka_unit_test(test_dir_trailing_slash),
    cmocka_unit_test(test_dir_len_bounds),
    cmocka_unit_test(test_dir_refuses),
    cmocka_unit_test(test_dir_messages),
    cmocka_unit_test(test_name_accepts),
    cmocka_unit_test(test_name_length),
    cmocka_unit_test(test_name_refuses),
    cmocka_unit_test(test_name_invalid_beats_too_long),
    cmocka_unit_test(test_join),
    cmocka_unit_test(test_parent),
    cmocka_unit_test(test_join_parent_round_trip),
    cmocka_unit_test(test_is_under),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
