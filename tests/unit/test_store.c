/* Unit tests for storage/store.h: the LevelDB filer store's entries, listing,
 * KV keys, event write-ahead records, clock, batches, sync and signature. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "store.h"

/* ================================================================ fixture */

/* Each test gets its own fresh directory under /tmp. */
typedef struct fixture {
  char base[64];
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  snprintf(f->base, sizeof f->base, "/tmp/fm_test_store.XXXXXX");
  if (mkdtemp(f->base) == NULL) {
    free(f);
    return -1;
  }
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

static fm_store *open_store_opt(const fixture *f, const fm_store_options *opt)
{
  char err[FM_ERR_LEN] = "";
  fm_store *s = NULL;
  int rc = fm_store_open(f->base, opt, &s, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_open(%s): %d: %s", f->base, rc, err);
  assert_non_null(s);
  return s;
}

static fm_store *open_store(const fixture *f)
{
  return open_store_opt(f, NULL);
}

static void write_batch(fm_store *s, fm_store_batch *b)
{
  char err[FM_ERR_LEN] = "";
  int rc = fm_store_write(s, b, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_write: %d: %s", rc, err);
}

/* Puts one entry whose value is "v:" name, in a batch of its own. */
static void put_entry(fm_store *s, const char *dir, const char *name)
{
  char value[512];
  int n = snprintf(value, sizeof value, "v:%s", name);
  assert_true(n > 0 && (size_t)n < sizeof value);
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_entry(b, dir, name, value, (size_t)n);
  write_batch(s, b);
  fm_store_batch_free(b);
}

static void put_event(fm_store *s, int64_t ts, const char *payload)
{
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_event(b, ts, payload, strlen(payload));
  write_batch(s, b);
  fm_store_batch_free(b);
}

/* Asserts the entry exists with exactly this value. */
static void expect_entry(fm_store *s, const char *dir, const char *name, const void *want, size_t want_len)
{
  char err[FM_ERR_LEN] = "";
  void *v = NULL;
  size_t len = 12345;
  int rc = fm_store_get_entry(s, dir, name, &v, &len, err, sizeof err);
  if (rc != 0)
    fail_msg("get_entry(%s, %s): %d: %s", dir, name, rc, err);
  assert_int_equal(len, want_len);
  assert_memory_equal(v, want, want_len);
  fm_store_value_free(v);
}

static void expect_no_entry(fm_store *s, const char *dir, const char *name)
{
  char err[FM_ERR_LEN] = "";
  void *v = NULL;
  size_t len = 0;
  int rc = fm_store_get_entry(s, dir, name, &v, &len, err, sizeof err);
  if (rc != FM_ENOTFOUND)
    fail_msg("get_entry(%s, %s): got %d, want FM_ENOTFOUND", dir, name, rc);
  assert_null(v);
}

static void expect_kv(fm_store *s, const void *key, size_t klen, const void *want, size_t want_len)
{
  char err[FM_ERR_LEN] = "";
  void *v = NULL;
  size_t len = 12345;
  int rc = fm_store_kv_get(s, key, klen, &v, &len, err, sizeof err);
  if (rc != 0)
    fail_msg("kv_get: %d: %s", rc, err);
  assert_int_equal(len, want_len);
  if (want_len > 0)
    assert_memory_equal(v, want, want_len);
  fm_store_value_free(v);
}

static void expect_no_kv(fm_store *s, const void *key, size_t klen)
{
  char err[FM_ERR_LEN] = "";
  void *v = NULL;
  size_t len = 0;
  assert_int_equal(fm_store_kv_get(s, key, klen, &v, &len, err, sizeof err), FM_ENOTFOUND);
  assert_null(v);
}

static int64_t last_ts(fm_store *s)
{
  char err[FM_ERR_LEN] = "";
  int64_t ts = -1;
  int rc = fm_store_last_ts(s, &ts, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_last_ts: %d: %s", rc, err);
  return ts;
}

/* What a listing saw: "name," per entry, after checking each value. */
typedef struct listing {
  char text[4096];
  size_t calls;
  size_t stop_after; /* return false on this call; 0 = never */
} listing;

static bool collect_entry(void *arg, const char *name, size_t name_len, const void *value, size_t len)
{
  listing *l = arg;
  l->calls++;
  /* every value put by put_entry is "v:" name */
  if (len != name_len + 2 || memcmp(value, "v:", 2) != 0 || memcmp((const char *)value + 2, name, name_len) != 0)
    fail_msg("value of \"%.*s\" is \"%.*s\"", (int)name_len, name, (int)len, (const char *)value);
  size_t at = strlen(l->text);
  assert_true(at + name_len + 2 <= sizeof l->text);
  memcpy(l->text + at, name, name_len);
  l->text[at + name_len] = ',';
  l->text[at + name_len + 1] = '\0';
  return l->stop_after == 0 || l->calls < l->stop_after;
}

/* Lists and returns what was seen as "a,b,c,". */
static const char *list(fm_store *s, listing *l, const char *dir, const char *start, bool inclusive, const char *prefix)
{
  char err[FM_ERR_LEN] = "";
  l->text[0] = '\0';
  l->calls = 0;
  int rc = fm_store_list(s, dir, start, inclusive, prefix, collect_entry, l, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_list: %d: %s", rc, err);
  return l->text;
}

/* What an event iteration saw: "ts=payload," per record. */
typedef struct events_seen {
  char text[4096];
  size_t calls;
  size_t stop_after;
  int64_t prev;
} events_seen;

static bool collect_event(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  events_seen *e = arg;
  if (e->calls > 0 && ts_ns <= e->prev)
    fail_msg("ts %lld after %lld: not in ts order", (long long)ts_ns, (long long)e->prev);
  e->prev = ts_ns;
  e->calls++;
  size_t at = strlen(e->text);
  int n = snprintf(e->text + at, sizeof e->text - at, "%lld=%.*s,", (long long)ts_ns, (int)len, (const char *)event);
  assert_true(n > 0 && (size_t)n < sizeof e->text - at);
  return e->stop_after == 0 || e->calls < e->stop_after;
}

static const char *events(fm_store *s, events_seen *e, int64_t after)
{
  char err[FM_ERR_LEN] = "";
  e->text[0] = '\0';
  e->calls = 0;
  int rc = fm_store_events(s, after, collect_event, e, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_events: %d: %s", rc, err);
  return e->text;
}

/* ================================================================ open */

static void test_open_creates_db(void **state)
{
  fixture *f = *state;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/filer.db", f->base);
  struct stat st;
  assert_int_not_equal(stat(path, &st), 0);

  fm_store *s = open_store(f);
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  snprintf(path, sizeof path, "%s/filer.db/CURRENT", f->base);
  assert_int_equal(stat(path, &st), 0);
  assert_false(fm_store_sync_enabled(s));
  fm_store_free(s);

  fm_store_options opt = { .sync = true, .cache_bytes = 1 << 20 };
  s = open_store_opt(f, &opt);
  assert_true(fm_store_sync_enabled(s));
  fm_store_free(s);
}

static void test_open_locked(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);

  char err[FM_ERR_LEN] = "";
  fm_store *const sentinel = (fm_store *)(uintptr_t)0x1;
  fm_store *other = sentinel;
  assert_int_equal(fm_store_open(f->base, NULL, &other, err, sizeof err), FM_EBUSY);
  assert_ptr_equal(other, sentinel);
  if (strstr(err, "store is locked") == NULL)
    fail_msg("error \"%s\" does not say \"store is locked\"", err);
  assert_non_null(strstr(err, f->base));

  /* Released on close: the next open succeeds. */
  fm_store_free(s);
  s = open_store(f);
  fm_store_free(s);
}

/* Errors that merely mention the LOCK file are not "store is locked". */
static void test_open_other_errors_are_not_locks(void **state)
{
  fixture *f = *state;
  char path[PATH_MAX], file[PATH_MAX];
  snprintf(path, sizeof path, "%s/missing/deeper", f->base);
  snprintf(file, sizeof file, "%s/plain", f->base);
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  fclose(fp);
  const char *paths[] = { path, file };
  for (size_t i = 0; i < 2; i++) {
    char err[FM_ERR_LEN] = "";
    fm_store *s = NULL;
    int rc = fm_store_open(paths[i], NULL, &s, err, sizeof err);
    assert_int_equal(rc, FM_EIO);
    assert_null(s);
    if (strstr(err, "store is locked") != NULL)
      fail_msg("%s: a plain open failure reported as a lock: %s", paths[i], err);
  }
}

static void test_free_null(void **state)
{
  fm_store_free(NULL);
  fm_store_batch_free(NULL);
  /* Reaching here without a crash is the test. */
  assert_string_equal(FM_STORE_SIGNATURE_KEY, "filer.store.id");
}

/* ================================================================ entries */

static void test_entry_put_get_delete(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  expect_no_entry(s, "/a", "x");

  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_entry(b, "/a", "x", "one", 3);
  fm_store_batch_put_entry(b, "/b", "x", "other dir", 9);
  write_batch(s, b);
  expect_entry(s, "/a", "x", "one", 3);
  expect_entry(s, "/b", "x", "other dir", 9);
  /* same name elsewhere, and neighbours of the key, are not found */
  expect_no_entry(s, "/", "x");
  expect_no_entry(s, "/a", "");
  expect_no_entry(s, "/a", "xx");
  expect_no_entry(s, "/a/x", "");
  expect_no_entry(s, "/ax", "");

  /* overwrite, with a value holding NUL bytes */
  fm_store_batch_clear(b);
  fm_store_batch_put_entry(b, "/a", "x", "t\0o", 3);
  write_batch(s, b);
  expect_entry(s, "/a", "x", "t\0o", 3);

  /* an empty value is a value */
  fm_store_batch_clear(b);
  fm_store_batch_put_entry(b, "/a", "empty", "", 0);
  write_batch(s, b);
  expect_entry(s, "/a", "empty", "", 0);

  fm_store_batch_clear(b);
  fm_store_batch_delete_entry(b, "/a", "x");
  fm_store_batch_delete_entry(b, "/a", "never-there");
  write_batch(s, b);
  expect_no_entry(s, "/a", "x");
  expect_entry(s, "/b", "x", "other dir", 9);
  fm_store_batch_free(b);

  /* and it stays as written across a reopen */
  fm_store_free(s);
  s = open_store(f);
  expect_no_entry(s, "/a", "x");
  expect_entry(s, "/b", "x", "other dir", 9);
  expect_entry(s, "/a", "empty", "", 0);
  fm_store_free(s);
}

/* ================================================================ listing */

static void test_list_name_order(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  /* put out of order; listed in byte order ('B' < 'a', ' ' < 'b') */
  static const char *const names[] = { "b", "a", "c", "aa", "a b", "B", "\xc3\xbc", "ab", "a.b" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    put_entry(s, "/d", names[i]);
  listing l = { 0 };
  assert_string_equal(list(s, &l, "/d", "", true, ""), "B,a,a b,a.b,aa,ab,b,c,\xc3\xbc,");
  assert_int_equal(l.calls, 9);
  /* exclusive with an empty start still starts at the beginning */
  assert_string_equal(list(s, &l, "/d", "", false, ""), "B,a,a b,a.b,aa,ab,b,c,\xc3\xbc,");
  fm_store_free(s);
}

static void test_list_prefix(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  static const char *const names[] = { "a", "ab", "abc", "abd", "ac", "b", "aa", "ab\xff" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    put_entry(s, "/d", names[i]);
  listing l = { 0 };
  assert_string_equal(list(s, &l, "/d", "", true, "ab"), "ab,abc,abd,ab\xff,");
  assert_string_equal(list(s, &l, "/d", "", true, "a"), "a,aa,ab,abc,abd,ab\xff,ac,");
  assert_string_equal(list(s, &l, "/d", "", true, "b"), "b,");
  assert_string_equal(list(s, &l, "/d", "", true, "abc"), "abc,");
  assert_string_equal(list(s, &l, "/d", "", true, "abz"), "");
  assert_string_equal(list(s, &l, "/d", "", true, "0"), "");
  assert_string_equal(list(s, &l, "/d", "", true, "z"), "");
  fm_store_free(s);
}

static void test_list_start(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  static const char *const names[] = { "a", "b", "bb", "c", "d" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    put_entry(s, "/d", names[i]);
  listing l = { 0 };
  assert_string_equal(list(s, &l, "/d", "b", true, ""), "b,bb,c,d,");
  assert_string_equal(list(s, &l, "/d", "b", false, ""), "bb,c,d,");
  /* a start that is not a name: the next name, either way */
  assert_string_equal(list(s, &l, "/d", "ba", true, ""), "bb,c,d,");
  assert_string_equal(list(s, &l, "/d", "ba", false, ""), "bb,c,d,");
  assert_string_equal(list(s, &l, "/d", "a", false, ""), "b,bb,c,d,");
  assert_string_equal(list(s, &l, "/d", "d", true, ""), "d,");
  assert_string_equal(list(s, &l, "/d", "d", false, ""), "");
  assert_string_equal(list(s, &l, "/d", "e", true, ""), "");
  assert_string_equal(list(s, &l, "/d", "0", false, ""), "a,b,bb,c,d,");
  fm_store_free(s);
}

static void test_list_start_and_prefix(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  static const char *const names[] = { "a", "b", "b1", "b2", "b3", "c" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    put_entry(s, "/d", names[i]);
  listing l = { 0 };
  /* start before the prefix: the whole prefix */
  assert_string_equal(list(s, &l, "/d", "a", true, "b"), "b,b1,b2,b3,");
  assert_string_equal(list(s, &l, "/d", "a", false, "b"), "b,b1,b2,b3,");
  /* start equal to the prefix */
  assert_string_equal(list(s, &l, "/d", "b", true, "b"), "b,b1,b2,b3,");
  assert_string_equal(list(s, &l, "/d", "b", false, "b"), "b1,b2,b3,");
  /* start inside the prefix */
  assert_string_equal(list(s, &l, "/d", "b2", true, "b"), "b2,b3,");
  assert_string_equal(list(s, &l, "/d", "b2", false, "b"), "b3,");
  /* start after the prefix: nothing, not the names after it */
  assert_string_equal(list(s, &l, "/d", "b4", true, "b"), "");
  assert_string_equal(list(s, &l, "/d", "c", true, "b"), "");
  assert_string_equal(list(s, &l, "/d", "c", false, "b"), "");
  fm_store_free(s);
}

/* A directory whose name is a prefix of another's, and a subdirectory, are
 * separate ranges. */
static void test_list_dir_boundaries(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  put_entry(s, "/", "a");
  put_entry(s, "/", "ab");
  put_entry(s, "/a", "x");
  put_entry(s, "/a", "y");
  put_entry(s, "/ab", "x");
  put_entry(s, "/ab", "z");
  put_entry(s, "/a/b", "w");
  put_entry(s, "/a b", "v");
  put_entry(s, "/a.b", "u");
  listing l = { 0 };
  assert_string_equal(list(s, &l, "/a", "", true, ""), "x,y,");
  assert_string_equal(list(s, &l, "/ab", "", true, ""), "x,z,");
  assert_string_equal(list(s, &l, "/a/b", "", true, ""), "w,");
  assert_string_equal(list(s, &l, "/", "", true, ""), "a,ab,");
  /* from a start past the directory's last name: nothing from the next one */
  assert_string_equal(list(s, &l, "/a", "y", false, ""), "");
  assert_string_equal(list(s, &l, "/a", "z", true, ""), "");
  /* a prefix does not reach across either */
  assert_string_equal(list(s, &l, "/a", "", true, "z"), "");
  fm_store_free(s);
}

static void test_list_stop_early(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  static const char *const names[] = { "a", "b", "c", "d" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    put_entry(s, "/d", names[i]);
  listing l = { .stop_after = 2 };
  assert_string_equal(list(s, &l, "/d", "", true, ""), "a,b,");
  assert_int_equal(l.calls, 2);
  l.stop_after = 1;
  assert_string_equal(list(s, &l, "/d", "b", false, ""), "c,");
  assert_int_equal(l.calls, 1);
  fm_store_free(s);
}

static void test_list_empty_dir(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  listing l = { 0 };
  /* an empty store */
  assert_string_equal(list(s, &l, "/", "", true, ""), "");
  assert_int_equal(l.calls, 0);
  put_entry(s, "/a", "x");
  put_entry(s, "/c", "x");
  /* a directory with no entries, between two that have some */
  assert_string_equal(list(s, &l, "/b", "", true, ""), "");
  assert_int_equal(l.calls, 0);
  assert_string_equal(list(s, &l, "/z", "", true, ""), "");
  assert_string_equal(list(s, &l, "/", "", true, ""), "");
  fm_store_free(s);
}

static void test_has_children(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  char err[FM_ERR_LEN] = "";
  bool has = true;
  assert_int_equal(fm_store_has_children(s, "/", &has, err, sizeof err), 0);
  assert_false(has);

  put_entry(s, "/a", "x");
  put_entry(s, "/abc", "y");
  put_entry(s, "/q/r", "z");
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_kv(b, "/p\0", 3, "v", 1);
  write_batch(s, b);

  assert_int_equal(fm_store_has_children(s, "/a", &has, err, sizeof err), 0);
  assert_true(has);
  /* "/ab" sorts between "/a" and "/abc": nothing of either is its child */
  has = true;
  assert_int_equal(fm_store_has_children(s, "/ab", &has, err, sizeof err), 0);
  assert_false(has);
  has = false;
  assert_int_equal(fm_store_has_children(s, "/abc", &has, err, sizeof err), 0);
  assert_true(has);
  /* a deeper directory's entries are not "/q"'s */
  has = true;
  assert_int_equal(fm_store_has_children(s, "/q", &has, err, sizeof err), 0);
  assert_false(has);
  /* KV keys are not entries */
  has = true;
  assert_int_equal(fm_store_has_children(s, "/p", &has, err, sizeof err), 0);
  assert_false(has);
  /* the last directory in key order */
  has = true;
  assert_int_equal(fm_store_has_children(s, "/zzz", &has, err, sizeof err), 0);
  assert_false(has);

  fm_store_batch_clear(b);
  fm_store_batch_delete_entry(b, "/a", "x");
  write_batch(s, b);
  has = true;
  assert_int_equal(fm_store_has_children(s, "/a", &has, err, sizeof err), 0);
  assert_false(has);
  fm_store_batch_free(b);
  fm_store_free(s);
}

/* ================================================================ KV */

static void test_kv(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  static const char k1[] = { 'a', '\0', 'b' };
  static const char k2[] = { 'a', '\0', 'c' };
  static const char k3[] = { 'a' };
  static const char k4[] = { '\0', '\0' };
  expect_no_kv(s, k1, sizeof k1);

  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_kv(b, k1, sizeof k1, "one", 3);
  fm_store_batch_put_kv(b, k2, sizeof k2, "two\0two", 7);
  fm_store_batch_put_kv(b, k3, sizeof k3, "", 0);
  fm_store_batch_put_kv(b, k4, sizeof k4, "\xff", 1);
  write_batch(s, b);
  expect_kv(s, k1, sizeof k1, "one", 3);
  expect_kv(s, k2, sizeof k2, "two\0two", 7);
  expect_kv(s, k3, sizeof k3, "", 0);
  expect_kv(s, k4, sizeof k4, "\xff", 1);
  /* the bytes after the NUL count */
  expect_no_kv(s, "a", 2);
  expect_no_kv(s, k4, 1);
  /* an entry with the same bytes is another thing */
  expect_no_entry(s, "a", "b");

  fm_store_batch_clear(b);
  fm_store_batch_delete_kv(b, k1, sizeof k1);
  fm_store_batch_delete_kv(b, k3, sizeof k3);
  write_batch(s, b);
  expect_no_kv(s, k1, sizeof k1);
  expect_no_kv(s, k3, sizeof k3);
  expect_kv(s, k2, sizeof k2, "two\0two", 7);

  /* an empty key is a key too */
  fm_store_batch_clear(b);
  fm_store_batch_put_kv(b, "", 0, "e", 1);
  write_batch(s, b);
  expect_kv(s, "", 0, "e", 1);
  fm_store_batch_free(b);
  fm_store_free(s);
}

/* ================================================================ events */

static void put_shuffled_events(fm_store *s)
{
  /* several batches, out of order, differing in high and low bytes */
  put_event(s, 256, "c");
  put_event(s, 1LL << 40, "e");
  put_event(s, 1, "a");
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_event(b, INT64_MAX - 1, "f", 1);
  fm_store_batch_put_event(b, 255, "b", 1);
  fm_store_batch_put_event(b, 65536, "d", 1);
  write_batch(s, b);
  fm_store_batch_free(b);
}

static void test_events_order(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  events_seen e = { 0 };
  assert_string_equal(events(s, &e, 0), "");
  assert_int_equal(last_ts(s), 0);

  /* keys in the ranges on either side must not show up */
  put_entry(s, "/", "x");
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_kv(b, "k", 1, "v", 1);
  write_batch(s, b);
  fm_store_batch_free(b);

  put_shuffled_events(s);
  assert_string_equal(events(s, &e, 0), "1=a,255=b,256=c,65536=d,1099511627776=e,9223372036854775806=f,");
  assert_string_equal(events(s, &e, 1), "255=b,256=c,65536=d,1099511627776=e,9223372036854775806=f,");
  assert_string_equal(events(s, &e, 255), "256=c,65536=d,1099511627776=e,9223372036854775806=f,");
  assert_string_equal(events(s, &e, 256), "65536=d,1099511627776=e,9223372036854775806=f,");
  assert_string_equal(events(s, &e, 257), "65536=d,1099511627776=e,9223372036854775806=f,");
  assert_string_equal(events(s, &e, (1LL << 40) - 1), "1099511627776=e,9223372036854775806=f,");
  assert_string_equal(events(s, &e, 1LL << 40), "9223372036854775806=f,");
  assert_string_equal(events(s, &e, INT64_MAX - 2), "9223372036854775806=f,");
  assert_string_equal(events(s, &e, INT64_MAX - 1), "");

  e.stop_after = 2;
  assert_string_equal(events(s, &e, 1), "255=b,256=c,");
  assert_int_equal(e.calls, 2);
  fm_store_free(s);
}

static void test_event_payloads(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_event(b, 5, "", 0);
  fm_store_batch_put_event(b, 6, "a\0b", 3);
  write_batch(s, b);
  fm_store_batch_free(b);
  events_seen e = { 0 };
  /* %.*s stops at the NUL: "a" */
  assert_string_equal(events(s, &e, 0), "5=,6=a,");
  /* and the records are at the same keys after a reopen */
  fm_store_free(s);
  s = open_store(f);
  assert_string_equal(events(s, &e, 5), "6=a,");
  fm_store_free(s);
}

static void test_last_ts(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  assert_int_equal(last_ts(s), 0);

  put_event(s, 0x0102030405060708LL, "x");
  assert_true(last_ts(s) == 0x0102030405060708LL);

  put_shuffled_events(s);
  assert_true(last_ts(s) == INT64_MAX - 1);

  /* Flushed records are deleted; the clock key keeps the high-water mark. */
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  static const int64_t all[] = { 1, 255, 256, 65536, 1LL << 40, 0x0102030405060708LL, INT64_MAX - 1 };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    fm_store_batch_delete_event(b, all[i]);
  write_batch(s, b);
  fm_store_batch_free(b);
  events_seen e = { 0 };
  assert_string_equal(events(s, &e, 0), "");
  assert_true(last_ts(s) == INT64_MAX - 1);

  fm_store_free(s);
  s = open_store(f);
  assert_true(last_ts(s) == INT64_MAX - 1);
  fm_store_free(s);
}

/* The clock key is decoded big-endian: values with distinct high and low
 * bytes survive the deletion of their record. */
/* The clock key only moves forward, even if a later batch carries an older
 * event; and fm_store_events honours its bounds at both extremes. */
static void test_clock_monotonic_and_event_bounds(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  put_event(s, 100, "a");
  put_event(s, 50, "b");
  char err[FM_ERR_LEN] = "";
  fm_store_batch *b = fm_store_batch_new();
  fm_store_batch_delete_event(b, 100);
  fm_store_batch_delete_event(b, 50);
  assert_int_equal(fm_store_write(s, b, err, sizeof err), 0);
  fm_store_batch_free(b);
  assert_int_equal(last_ts(s), 100);
  fm_store_free(s);
  s = open_store(f);
  assert_int_equal(last_ts(s), 100);

  put_event(s, INT64_MAX, "max");
  put_event(s, 7, "seven");
  events_seen e = { 0 };
  assert_string_equal(events(s, &e, INT64_MAX), "");
  char want[128];
  snprintf(want, sizeof want, "7=seven,%lld=max,", (long long)INT64_MAX);
  assert_string_equal(events(s, &e, -5), want);
  fm_store_free(s);
}

static void test_last_ts_clock_bytes(void **state)
{
  fixture *f = *state;
  static const int64_t values[] = { 1, 255, 256, 1LL << 40, 0x0102030405060708LL, INT64_MAX - 1 };
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    fm_store *s = open_store(f);
    put_event(s, values[i], "x");
    fm_store_batch *b = fm_store_batch_new();
    assert_non_null(b);
    fm_store_batch_delete_event(b, values[i]);
    write_batch(s, b);
    fm_store_batch_free(b);
    events_seen e = { 0 };
    assert_string_equal(events(s, &e, 0), "");
    int64_t got = last_ts(s);
    if (got != values[i])
      fail_msg("last_ts %lld, want %lld", (long long)got, (long long)values[i]);
    fm_store_free(s);
    /* a fresh store for the next value, so an earlier higher clock cannot hide it */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/filer.db", f->base);
    assert_int_equal(nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
  }
}

/* ================================================================ batches */

static void test_batch_atomic(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_entry(b, "/a", "x", "v:x", 3);
  fm_store_batch_put_entry(b, "/b", "y", "v:y", 3);
  fm_store_batch_put_kv(b, "k", 1, "kv", 2);
  fm_store_batch_put_event(b, 42, "ev", 2);
  /* operations apply in order: put then delete leaves nothing */
  fm_store_batch_put_entry(b, "/a", "gone", "v:gone", 6);
  fm_store_batch_delete_entry(b, "/a", "gone");

  /* nothing is visible before the write */
  expect_no_entry(s, "/a", "x");
  expect_no_entry(s, "/b", "y");
  expect_no_kv(s, "k", 1);
  events_seen e = { 0 };
  assert_string_equal(events(s, &e, 0), "");
  assert_int_equal(last_ts(s), 0);

  write_batch(s, b);
  fm_store_batch_free(b);
  expect_entry(s, "/a", "x", "v:x", 3);
  expect_entry(s, "/b", "y", "v:y", 3);
  expect_kv(s, "k", 1, "kv", 2);
  expect_no_entry(s, "/a", "gone");
  assert_string_equal(events(s, &e, 0), "42=ev,");
  assert_int_equal(last_ts(s), 42);
  fm_store_free(s);
}

static void test_batch_clear(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_entry(b, "/a", "dropped", "v:dropped", 9);
  fm_store_batch_put_kv(b, "dropped", 7, "x", 1);
  fm_store_batch_put_event(b, 100, "dropped", 7);
  fm_store_batch_clear(b);
  fm_store_batch_put_entry(b, "/a", "kept", "v:kept", 6);
  /* the batch's clock restarted too: ts 5 still records the clock */
  fm_store_batch_put_event(b, 5, "kept", 4);
  write_batch(s, b);

  expect_no_entry(s, "/a", "dropped");
  expect_no_kv(s, "dropped", 7);
  expect_entry(s, "/a", "kept", "v:kept", 6);
  events_seen e = { 0 };
  assert_string_equal(events(s, &e, 0), "5=kept,");
  assert_int_equal(last_ts(s), 5);
  fm_store_batch_clear(b);
  fm_store_batch_delete_event(b, 5);
  write_batch(s, b);
  assert_string_equal(events(s, &e, 0), "");
  assert_int_equal(last_ts(s), 5);

  /* a cleared batch writes nothing */
  fm_store_batch_clear(b);
  write_batch(s, b);
  expect_entry(s, "/a", "kept", "v:kept", 6);
  fm_store_batch_free(b);
  fm_store_free(s);
}

/* ================================================================ sync */

static void test_sync_disabled_is_noop(void **state)
{
  fixture *f = *state;
  fm_store_options opt = { .sync = false };
  fm_store *s = open_store_opt(f, &opt);
  assert_false(fm_store_sync_enabled(s));
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_entry(b, "/a", "x", "v:x", 3);
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_store_sync(s, b, err, sizeof err), 0);
  /* a no-op: the group was not (re)written */
  expect_no_entry(s, "/a", "x");
  fm_store_batch_free(b);
  fm_store_free(s);
}

static void expect_a_then_b(fm_store *s)
{
  expect_no_entry(s, "/d", "x");
  expect_entry(s, "/d", "y", "v:y", 3);
  expect_entry(s, "/d", "z", "v:z2", 4);
  expect_no_kv(s, "k1", 2);
  expect_kv(s, "k2", 2, "two", 3);
  events_seen e = { 0 };
  assert_string_equal(events(s, &e, 0), "11=b,");
  assert_int_equal(last_ts(s), 11);
}

static void test_sync_group_idempotent(void **state)
{
  fixture *f = *state;
  fm_store_options opt = { .sync = true };
  fm_store *s = open_store_opt(f, &opt);
  assert_true(fm_store_sync_enabled(s));

  fm_store_batch *a = fm_store_batch_new(), *b = fm_store_batch_new(), *group = fm_store_batch_new();
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(group);
  fm_store_batch_put_entry(a, "/d", "x", "v:x", 3);
  fm_store_batch_put_entry(a, "/d", "z", "v:z1", 4);
  fm_store_batch_put_kv(a, "k1", 2, "one", 3);
  fm_store_batch_put_event(a, 10, "a", 1);
  write_batch(s, a);
  fm_store_batch_delete_entry(b, "/d", "x");
  fm_store_batch_put_entry(b, "/d", "y", "v:y", 3);
  fm_store_batch_put_entry(b, "/d", "z", "v:z2", 4);
  fm_store_batch_delete_kv(b, "k1", 2);
  fm_store_batch_put_kv(b, "k2", 2, "two", 3);
  fm_store_batch_put_event(b, 11, "b", 1);
  fm_store_batch_delete_event(b, 10);
  write_batch(s, b);
  expect_a_then_b(s);

  fm_store_batch_append(group, a);
  fm_store_batch_append(group, b);
  char err[FM_ERR_LEN] = "";
  int rc = fm_store_sync(s, group, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_sync: %d: %s", rc, err);
  expect_a_then_b(s);
  /* twice changes nothing either */
  assert_int_equal(fm_store_sync(s, group, err, sizeof err), 0);
  expect_a_then_b(s);
  fm_store_free(s);
  s = open_store_opt(f, &opt);
  expect_a_then_b(s);

  /* Control: sync really rewrites the group. A group of only A puts back
   * what B deleted. */
  fm_store_batch *only_a = fm_store_batch_new();
  assert_non_null(only_a);
  fm_store_batch_append(only_a, a);
  assert_int_equal(fm_store_sync(s, only_a, err, sizeof err), 0);
  expect_entry(s, "/d", "x", "v:x", 3);
  expect_kv(s, "k1", 2, "one", 3);

  fm_store_batch_free(only_a);
  fm_store_batch_free(group);
  fm_store_batch_free(a);
  fm_store_batch_free(b);
  fm_store_free(s);
}

/* ================================================================ signature */

static int32_t load_signature(fm_store *s, int32_t legacy)
{
  char err[FM_ERR_LEN] = "";
  int32_t sig = 0;
  int rc = fm_store_load_signature(s, legacy, &sig, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_load_signature: %d: %s", rc, err);
  return sig;
}

/* Asserts the stored signature value is `sig`, 4 bytes big-endian. */
static void expect_stored_signature(fm_store *s, int32_t sig)
{
  uint32_t u = (uint32_t)sig;
  uint8_t want[4] = { (uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u };
  expect_kv(s, FM_STORE_SIGNATURE_KEY, strlen(FM_STORE_SIGNATURE_KEY), want, 4);
}

static void put_signature_value(fm_store *s, const void *v, size_t len)
{
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_kv(b, FM_STORE_SIGNATURE_KEY, strlen(FM_STORE_SIGNATURE_KEY), v, len);
  write_batch(s, b);
  fm_store_batch_free(b);
}

static void test_signature_created_and_kept(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  int32_t sig = load_signature(s, 0);
  assert_int_not_equal(sig, 0);
  expect_stored_signature(s, sig);
  /* the same on a second load and after a reopen */
  assert_int_equal(load_signature(s, 0), sig);
  fm_store_free(s);
  s = open_store(f);
  assert_int_equal(load_signature(s, 0), sig);
  /* a stored value wins over a legacy one */
  int32_t legacy = sig == 0x12345678 ? 0x12345679 : 0x12345678;
  assert_int_equal(load_signature(s, legacy), sig);
  expect_stored_signature(s, sig);
  fm_store_free(s);
}

static void test_signature_from_legacy(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  assert_int_equal(load_signature(s, 0x12345678), 0x12345678);
  expect_stored_signature(s, 0x12345678);
  fm_store_free(s);
  s = open_store(f);
  assert_int_equal(load_signature(s, 0), 0x12345678);
  assert_int_equal(load_signature(s, 99), 0x12345678);
  fm_store_free(s);
}

static void test_signature_negative_legacy(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  assert_int_equal(load_signature(s, -2), -2);
  expect_stored_signature(s, -2);
  expect_kv(s, FM_STORE_SIGNATURE_KEY, strlen(FM_STORE_SIGNATURE_KEY), "\xff\xff\xff\xfe", 4);
  assert_int_equal(load_signature(s, 0), -2);
  fm_store_free(s);
}

/* A stored value that is not 4 bytes, or is 0, counts as missing. */
static void test_signature_unusable_value(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  static const struct {
    const char *bytes;
    size_t len;
  } cases[] = { { "", 0 }, { "\x01\x02\x03", 3 }, { "\x01\x02\x03\x04\x05", 5 }, { "\0\0\0\0", 4 } };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    put_signature_value(s, cases[i].bytes, cases[i].len);
    int32_t legacy = 1000 + (int32_t)i;
    assert_int_equal(load_signature(s, legacy), legacy);
    expect_stored_signature(s, legacy);

    /* and without a legacy value, a fresh non-zero one */
    put_signature_value(s, cases[i].bytes, cases[i].len);
    int32_t sig = load_signature(s, 0);
    assert_int_not_equal(sig, 0);
    expect_stored_signature(s, sig);
  }
  /* a 4-byte value is used as it is, however odd */
  put_signature_value(s, "\x80\0\0\0", 4);
  assert_int_equal(load_signature(s, 5), INT32_MIN);
  fm_store_free(s);
}

/* ================================================================ sizes */

/* Keys longer than fm_key's inline buffer, and large values. */
static void test_long_keys_and_values(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  char dir[400], name[256], name2[256];
  memset(dir, 'd', sizeof dir - 1);
  dir[0] = '/';
  dir[sizeof dir - 1] = '\0';
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  memcpy(name2, name, sizeof name);
  name2[sizeof name2 - 2] = 'o';
  size_t vlen = 200000;
  char *value = malloc(vlen);
  assert_non_null(value);
  for (size_t i = 0; i < vlen; i++)
    value[i] = (char)(i * 7 + i / 256);

  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_entry(b, dir, name, value, vlen);
  fm_store_batch_put_entry(b, dir, name2, "v:", 2);
  fm_store_batch_put_entry(b, "/", "short", value, 300);
  char kvkey[1000];
  for (size_t i = 0; i < sizeof kvkey; i++)
    kvkey[i] = (char)(i % 3 == 0 ? '\0' : 'k');
  fm_store_batch_put_kv(b, kvkey, sizeof kvkey, value, 1000);
  write_batch(s, b);

  expect_entry(s, dir, name, value, vlen);
  expect_entry(s, dir, name2, "v:", 2);
  expect_entry(s, "/", "short", value, 300);
  expect_kv(s, kvkey, sizeof kvkey, value, 1000);
  /* one byte shorter is another key */
  expect_no_kv(s, kvkey, sizeof kvkey - 1);
  dir[sizeof dir - 2] = '\0';
  expect_no_entry(s, dir, name);
  dir[sizeof dir - 2] = 'd';

  char err[FM_ERR_LEN] = "";
  bool has = false;
  assert_int_equal(fm_store_has_children(s, dir, &has, err, sizeof err), 0);
  assert_true(has);

  /* overwrite and delete long keys */
  fm_store_batch_clear(b);
  fm_store_batch_put_entry(b, dir, name, "small", 5);
  fm_store_batch_delete_entry(b, dir, name2);
  fm_store_batch_delete_kv(b, kvkey, sizeof kvkey);
  write_batch(s, b);
  expect_entry(s, dir, name, "small", 5);
  expect_no_entry(s, dir, name2);
  expect_no_kv(s, kvkey, sizeof kvkey);

  fm_store_batch_free(b);
  free(value);
  fm_store_free(s);
}

/* Listing a directory with a long name, from a long start or prefix. */
static void test_list_long_names(void **state)
{
  fixture *f = *state;
  fm_store *s = open_store(f);
  char dir[300], n1[256], n2[256];
  memset(dir, 'd', sizeof dir - 1);
  dir[0] = '/';
  dir[sizeof dir - 1] = '\0';
  memset(n1, 'n', sizeof n1 - 1);
  n1[sizeof n1 - 1] = '\0';
  memcpy(n2, n1, sizeof n1);
  n2[sizeof n2 - 2] = 'o';
  put_entry(s, dir, "a");
  put_entry(s, dir, n1);
  put_entry(s, dir, n2);
  put_entry(s, "/", "z");

  listing l = { 0 };
  char want[1024];
  snprintf(want, sizeof want, "a,%s,%s,", n1, n2);
  assert_string_equal(list(s, &l, dir, "", true, ""), want);
  snprintf(want, sizeof want, "%s,", n2);
  assert_string_equal(list(s, &l, dir, n1, false, ""), want);
  snprintf(want, sizeof want, "%s,%s,", n1, n2);
  assert_string_equal(list(s, &l, dir, "", true, "nnnnnnnnnn"), want);
  fm_store_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
    T(test_open_creates_db),
    T(test_open_locked),
    T(test_open_other_errors_are_not_locks),
    cmocka_unit_test(test_free_null),
    T(test_entry_put_get_delete),
    T(test_list_name_order),
    T(test_list_prefix),
    T(test_list_start),
    T(test_list_start_and_prefix),
    T(test_list_dir_boundaries),
    T(test_list_stop_early),
    T(test_list_empty_dir),
    T(test_has_children),
    T(test_kv),
    T(test_events_order),
    T(test_event_payloads),
    T(test_last_ts),
    T(test_last_ts_clock_bytes),
    T(test_clock_monotonic_and_event_bounds),
    T(test_batch_atomic),
    T(test_batch_clear),
    T(test_sync_disabled_is_noop),
    T(test_sync_group_idempotent),
    T(test_signature_created_and_kept),
    T(test_signature_from_legacy),
    T(test_signature_negative_legacy),
    T(test_signature_unusable_value),
    T(test_long_keys_and_values),
    T(test_list_long_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
