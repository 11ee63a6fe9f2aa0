/* Unit tests for server/sub_filter.h: every rule and quirk of PROTOCOL.md §5.3 as its own case, request validation
 * (§5.1) naming fields, time bounds, the progress count, malformed bytes, and that a warmed-up filter calls no
 * malloc per event. Linked with -Wl,--wrap=malloc,--wrap=realloc to count (and fail) allocations made by this file
 * and the server and common libraries; protobuf-c's own calls are not wrapped, and with an arena it makes none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "sub_filter.h"

/* ================================================================ allocation counting */

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);

static size_t alloc_calls;
static bool fail_alloc;

void *__wrap_malloc(size_t size)
{
  alloc_calls++;
  return fail_alloc ? NULL : __real_malloc(size);
}

void *__wrap_realloc(void *p, size_t size)
{
  alloc_calls++;
  return fail_alloc ? NULL : __real_realloc(p, size);
}

/* ================================================================ events */

#define OWN_SIG 4242

/* An encoded event; caller frees ev->p. */
typedef struct ev {
  uint8_t *p;
  size_t len;
} ev;

/* Encodes a SubscribeMetadataResponse: old/new entry names (NULL = unset), new_parent_path (NULL = empty), the
 * signatures (terminated by 0; NULL = none) and ts. */
static ev make_event(const char *dir, const char *old_name, const char *new_name, const char *npp, const int32_t *sigs,
                     int64_t ts)
{
  FilerPb__Entry old_e = FILER_PB__ENTRY__INIT, new_e = FILER_PB__ENTRY__INIT;
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  m.directory = (char *)dir;
  m.ts_ns = ts;
  m.event_notification = &en;
  if (old_name != NULL) {
    old_e.name = (char *)old_name;
    en.old_entry = &old_e;
  }
  if (new_name != NULL) {
    new_e.name = (char *)new_name;
    new_e.is_directory = true;
    en.new_entry = &new_e;
  }
  if (npp != NULL)
    en.new_parent_path = (char *)npp;
  size_t n = 0;
  while (sigs != NULL && sigs[n] != 0)
    n++;
  en.n_signatures = n;
  en.signatures = (int32_t *)sigs;
  ev e;
  e.len = filer_pb__subscribe_metadata_response__get_packed_size(&m);
  e.p = malloc(e.len > 0 ? e.len : 1);
  assert_non_null(e.p);
  assert_int_equal(filer_pb__subscribe_metadata_response__pack(&m, e.p), e.len);
  return e;
}

static const int32_t OWN[] = { OWN_SIG, 0 };

static ev create_ev(const char *dir, const char *name)
{
  return make_event(dir, NULL, name, dir, OWN, 1000);
}

static ev delete_ev(const char *dir, const char *name)
{
  return make_event(dir, name, NULL, NULL, OWN, 1000);
}

static ev rename_ev(const char *dir, const char *old_name, const char *new_dir, const char *new_name)
{
  return make_event(dir, old_name, new_name, new_dir, OWN, 1000);
}

/* ================================================================ filters */

typedef struct spec {
  const char *path_prefix;
  const char *prefixes[4]; /* NULL-terminated */
  const char *dirs[4];
  int32_t signature;
  int64_t since, until;
} spec;

static size_t count(const char *const *a)
{
  size_t n = 0;
  while (n < 4 && a[n] != NULL)
    n++;
  return n;
}

static int init_filter(fm_sub_filter *f, const spec *s, char *err)
{
  FilerPb__SubscribeMetadataRequest req = FILER_PB__SUBSCRIBE_METADATA_REQUEST__INIT;
  if (s->path_prefix != NULL)
    req.path_prefix = (char *)s->path_prefix;
  req.n_path_prefixes = count(s->prefixes);
  req.path_prefixes = (char **)s->prefixes;
  req.n_directories = count(s->dirs);
  req.directories = (char **)s->dirs;
  req.signature = s->signature;
  req.since_ns = s->since;
  req.until_ns = s->until;
  return fm_sub_filter_init(f, &req, OWN_SIG, err, FM_ERR_LEN);
}

static void open_filter(fm_sub_filter *f, const spec *s)
{
  char err[FM_ERR_LEN] = "";
  int rc = init_filter(f, s, err);
  if (rc != 0)
    fail_msg("init: %s", err);
}

/* The verdict for `e` (freed here). */
static fm_sub_verdict verdict(fm_sub_filter *f, ev e)
{
  char err[FM_ERR_LEN] = "";
  fm_sub_result res;
  int rc = fm_sub_filter_check(f, e.p, e.len, &res, err, sizeof err);
  free(e.p);
  if (rc != 0)
    fail_msg("check: %s", err);
  return res.verdict;
}

/* ================================================================ path match */

static void test_single_prefix(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/a/b" });
  assert_int_equal(verdict(&f, create_ev("/a/b", "x")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/a/b/c/d", "x")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/a", "b")), FM_SUB_DELIVER); /* the watched directory itself */
  assert_int_equal(verdict(&f, create_ev("/a/c", "x")), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, create_ev("/a", "x")), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, create_ev("/", "a")), FM_SUB_SKIP_PATH);
  fm_sub_filter_destroy(&f);
}

static void test_raw_byte_prefix(void **state)
{
  (void)state;
  fm_sub_filter f;
  /* /a/b matches /a/bc: prefixes are bytes, not path components */
  open_filter(&f, &(spec){ .path_prefix = "/a/b" });
  assert_int_equal(verdict(&f, create_ev("/a/bc", "x")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/a", "bc")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/a", "a")), FM_SUB_SKIP_PATH);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/zz", .prefixes = { "/a/b" } });
  assert_int_equal(verdict(&f, create_ev("/a", "bc")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/a", "c")), FM_SUB_SKIP_PATH);
  fm_sub_filter_destroy(&f);
  /* a trailing slash in the prefix excludes the directory itself and its siblings */
  open_filter(&f, &(spec){ .path_prefix = "/a/b/" });
  assert_int_equal(verdict(&f, create_ev("/a", "b")), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, create_ev("/a", "bc")), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, create_ev("/a/b", "x")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

static void test_multiple_prefixes(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/z", .prefixes = { "/x", "/y/1" } });
  assert_int_equal(verdict(&f, create_ev("/x", "f")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/y/1", "f")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/y", "10")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/z/q", "f")), FM_SUB_DELIVER); /* path_prefix still counts */
  assert_int_equal(verdict(&f, create_ev("/y/2", "f")), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, create_ev("/w", "f")), FM_SUB_SKIP_PATH);
  fm_sub_filter_destroy(&f);
}

static void test_directories_exact(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/nomatch", .dirs = { "/d", "/e/f" } });
  assert_int_equal(verdict(&f, create_ev("/d", "x")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/e/f", "x")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/d/sub", "x")), FM_SUB_SKIP_PATH); /* not recursive */
  assert_int_equal(verdict(&f, create_ev("/dd", "x")), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, create_ev("/", "d")), FM_SUB_SKIP_PATH);   /* the directory itself lives in / */
  assert_int_equal(verdict(&f, create_ev("/d/", "x")), FM_SUB_SKIP_PATH); /* exact bytes, not cleaned */
  fm_sub_filter_destroy(&f);
}

static void test_empty_path_prefix_quirk(void **state)
{
  (void)state;
  fm_sub_filter f;
  /* an empty path_prefix matches everything, even with prefixes and directories given */
  open_filter(&f, &(spec){ .path_prefix = "", .prefixes = { "/x" }, .dirs = { "/d" } });
  assert_int_equal(verdict(&f, create_ev("/other", "f")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, delete_ev("/", "g")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = NULL });
  assert_int_equal(verdict(&f, create_ev("/any/where", "f")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

static void test_rename_into(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/w" });
  assert_int_equal(verdict(&f, rename_ev("/o", "f", "/w/sub", "g")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
  /* a directory watch sees an entry moved into it through the target directory */
  open_filter(&f, &(spec){ .path_prefix = "/nomatch", .dirs = { "/w" } });
  assert_int_equal(verdict(&f, rename_ev("/o", "f", "/w", "g")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

static void test_rename_out_of(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/w" });
  assert_int_equal(verdict(&f, rename_ev("/w/a", "f", "/o", "f")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/nomatch", .dirs = { "/w" } });
  assert_int_equal(verdict(&f, rename_ev("/w", "f", "/o", "g")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

static void test_rename_within_and_elsewhere(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/w" });
  assert_int_equal(verdict(&f, rename_ev("/w/a", "f", "/w/b", "g")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, rename_ev("/o", "f", "/p", "g")), FM_SUB_SKIP_PATH);
  /* a rename in place (same directory, new name): new_parent_path is the directory */
  assert_int_equal(verdict(&f, rename_ev("/", "x", "/", "w")), FM_SUB_DELIVER);
  /* target name used on the target side: /o/f -> /o/w... is not under /w */
  assert_int_equal(verdict(&f, rename_ev("/o", "f", "/o", "w")), FM_SUB_SKIP_PATH);
  fm_sub_filter_destroy(&f);
}

static void test_delete_source_side_only(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/w" });
  assert_int_equal(verdict(&f, delete_ev("/w", "f")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, delete_ev("/o", "f")), FM_SUB_SKIP_PATH);
  /* without a new entry the target side is never looked at, whatever new_parent_path says */
  assert_int_equal(verdict(&f, make_event("/o", "f", NULL, "/w", OWN, 1000)), FM_SUB_SKIP_PATH);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/nomatch", .dirs = { "/w" } });
  assert_int_equal(verdict(&f, make_event("/o", "f", NULL, "/w", OWN, 1000)), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, delete_ev("/w", "f")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

static void test_update_uses_old_name_on_source(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/d/old" });
  /* source = directory + old name; the target (new name, same directory) is tried too */
  assert_int_equal(verdict(&f, make_event("/d", "old", "new", "", OWN, 1000)), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/d/new" });
  assert_int_equal(verdict(&f, make_event("/d", "old", "new", "", OWN, 1000)), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, make_event("/d", "old", "other", "", OWN, 1000)), FM_SUB_SKIP_PATH);
  fm_sub_filter_destroy(&f);
}

static void test_clean_join(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/a/c/f" });
  assert_int_equal(verdict(&f, create_ev("/a/./b/../c", "f")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("//a//c/", "f")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/a/c/f/..", "f")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/../../a/c", "f")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/x" });
  assert_int_equal(verdict(&f, create_ev("/", "x")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("", "/x")), FM_SUB_DELIVER);
  /* a relative directory stays relative: never under an absolute prefix */
  assert_int_equal(verdict(&f, create_ev("x", "y")), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, create_ev("../x", "y")), FM_SUB_SKIP_PATH);
  /* no entry at all: the path is the cleaned directory, the directory is as sent */
  assert_int_equal(verdict(&f, make_event("/x/", NULL, NULL, NULL, OWN, 1000)), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/nomatch", .dirs = { "/x/" } });
  assert_int_equal(verdict(&f, make_event("/x/", NULL, NULL, NULL, OWN, 1000)), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

/* ================================================================ system log */

static void test_system_log_excluded(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "" });
  assert_int_equal(verdict(&f, create_ev("/topics/.system/log/2024-01-02", "03-04.0000abcd")), FM_SUB_SKIP_SYSTEM_LOG);
  assert_int_equal(verdict(&f, create_ev("/topics/.system", "log")), FM_SUB_SKIP_SYSTEM_LOG);
  assert_int_equal(verdict(&f, delete_ev("/topics/.system/log", "2024-01-02")), FM_SUB_SKIP_SYSTEM_LOG);
  /* a raw byte prefix: "logs" is excluded too, as upstream does */
  assert_int_equal(verdict(&f, create_ev("/topics/.system", "logs")), FM_SUB_SKIP_SYSTEM_LOG);
  /* after the clean join */
  assert_int_equal(verdict(&f, create_ev("/topics//.system/./log", "x")), FM_SUB_SKIP_SYSTEM_LOG);
  assert_int_equal(verdict(&f, create_ev("/topics/.system", "other")), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, create_ev("/topics", ".system")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
  /* even a subscriber that asks for it never gets it */
  open_filter(&f, &(spec){ .path_prefix = "/topics/.system/log" });
  assert_int_equal(verdict(&f, create_ev("/topics/.system/log/d", "f")), FM_SUB_SKIP_SYSTEM_LOG);
  fm_sub_filter_destroy(&f);
}

static void test_system_log_rename(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/a" });
  /* out of the system log: the source path decides, the target is never looked at */
  assert_int_equal(verdict(&f, rename_ev("/topics/.system/log/d", "f", "/a", "f")), FM_SUB_SKIP_SYSTEM_LOG);
  /* into it: the source is an ordinary path, and the target side matches nothing here, but the source does */
  assert_int_equal(verdict(&f, rename_ev("/a", "f", "/topics/.system/log", "f")), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

/* ================================================================ signatures */

static void test_signature_skip(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "", .signature = 7 });
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", (int32_t[]){ 3, 7, 0 }, 1000)), FM_SUB_SKIP_SIGNATURE);
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", (int32_t[]){ 7, OWN_SIG, 0 }, 1000)),
                   FM_SUB_SKIP_SIGNATURE);
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", (int32_t[]){ 3, OWN_SIG, 0 }, 1000)), FM_SUB_DELIVER);
  /* signature first, then the system log, then the path */
  assert_int_equal(verdict(&f, make_event("/topics/.system/log", NULL, "f", "", (int32_t[]){ 7, 0 }, 1000)),
                   FM_SUB_SKIP_SIGNATURE);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/topics", .signature = 7 });
  assert_int_equal(verdict(&f, make_event("/topics/.system/log", NULL, "f", "", OWN, 1000)), FM_SUB_SKIP_SYSTEM_LOG);
  assert_int_equal(verdict(&f, make_event("/other", NULL, "f", "", (int32_t[]){ 7, 0 }, 1000)), FM_SUB_SKIP_SIGNATURE);
  fm_sub_filter_destroy(&f);
  /* signature 0 means "none": nothing is skipped for it */
  open_filter(&f, &(spec){ .path_prefix = "", .signature = 0 });
  int32_t zero_sig[] = { 0 }; /* an event carrying a 0 signature: make_event stops at 0, so encode it by hand */
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  e.name = (char *)"f";
  en.new_entry = &e;
  en.n_signatures = 1;
  en.signatures = zero_sig;
  m.directory = (char *)"/a";
  m.ts_ns = 5;
  m.event_notification = &en;
  ev ze = { .len = filer_pb__subscribe_metadata_response__get_packed_size(&m) };
  ze.p = malloc(ze.len);
  assert_non_null(ze.p);
  filer_pb__subscribe_metadata_response__pack(&m, ze.p);
  assert_int_equal(verdict(&f, ze), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

/* Checks `e`, expects delivery, decodes the delivered bytes and returns them (caller frees with
 * filer_pb__subscribe_metadata_response__free_unpacked). */
static FilerPb__SubscribeMetadataResponse *deliver(fm_sub_filter *f, ev e, bool want_reencoded)
{
  char err[FM_ERR_LEN] = "";
  fm_sub_result res;
  assert_int_equal(fm_sub_filter_check(f, e.p, e.len, &res, err, sizeof err), 0);
  assert_int_equal(res.verdict, FM_SUB_DELIVER);
  assert_int_equal(res.reencoded, want_reencoded);
  if (!want_reencoded) {
    assert_ptr_equal(res.bytes, e.p); /* passed through untouched */
    assert_int_equal(res.len, e.len);
  } else {
    assert_ptr_not_equal(res.bytes, e.p);
  }
  FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(NULL, res.len, res.bytes);
  assert_non_null(m);
  free(e.p);
  return m;
}

static void test_signature_append(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/a", .signature = 9 });

  FilerPb__SubscribeMetadataResponse *m =
      deliver(&f, make_event("/a", "old", "new", "/a/b", (int32_t[]){ 3, 5, 0 }, 77), true);
  assert_string_equal(m->directory, "/a");
  assert_int_equal(m->ts_ns, 77);
  assert_non_null(m->event_notification);
  assert_string_equal(m->event_notification->old_entry->name, "old");
  assert_string_equal(m->event_notification->new_entry->name, "new");
  assert_true(m->event_notification->new_entry->is_directory);
  assert_string_equal(m->event_notification->new_parent_path, "/a/b");
  assert_int_equal(m->event_notification->n_signatures, 3);
  assert_int_equal(m->event_notification->signatures[0], 3);
  assert_int_equal(m->event_notification->signatures[1], 5);
  assert_int_equal(m->event_notification->signatures[2], OWN_SIG);
  filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);

  /* no signatures at all */
  m = deliver(&f, make_event("/a", NULL, "x", "/a", NULL, 78), true);
  assert_int_equal(m->event_notification->n_signatures, 1);
  assert_int_equal(m->event_notification->signatures[0], OWN_SIG);
  filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);

  /* already there (anywhere in the list): the original bytes */
  m = deliver(&f, make_event("/a", NULL, "x", "/a", (int32_t[]){ 3, OWN_SIG, 5, 0 }, 79), false);
  assert_int_equal(m->event_notification->n_signatures, 3);
  filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);
  fm_sub_filter_destroy(&f);
}

static void test_signature_append_keeps_unknown_fields(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "" });
  ev e = make_event("/a", NULL, "x", "/a", NULL, 80);
  /* append an unknown field 99 (varint 1) at the top level */
  uint8_t *p = realloc(e.p, e.len + 3);
  assert_non_null(p);
  p[e.len] = 0x98; /* (99 << 3) | 0 = 792 = 0x98 0x06 */
  p[e.len + 1] = 0x06;
  p[e.len + 2] = 0x01;
  e.p = p;
  e.len += 3;
  FilerPb__SubscribeMetadataResponse *m = deliver(&f, e, true);
  assert_int_equal(m->base.n_unknown_fields, 1);
  assert_int_equal(m->base.unknown_fields[0].tag, 99);
  assert_int_equal(m->event_notification->signatures[0], OWN_SIG);
  filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);
  fm_sub_filter_destroy(&f);
}

/* ================================================================ time bounds and the progress count */

static void test_time_bounds(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "", .since = 100, .until = 200 });
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", OWN, 99)), FM_SUB_BEFORE_SINCE);
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", OWN, 100)), FM_SUB_BEFORE_SINCE);
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", OWN, 101)), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", OWN, 200)), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", OWN, 201)), FM_SUB_AFTER_UNTIL);
  /* past until_ns ends the stream whatever the path */
  assert_int_equal(verdict(&f, make_event("/topics/.system/log", NULL, "f", "/a", OWN, 201)), FM_SUB_AFTER_UNTIL);
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "" }); /* until 0: unbounded */
  assert_int_equal(verdict(&f, make_event("/a", NULL, "f", "/a", OWN, INT64_MAX)), FM_SUB_DELIVER);
  fm_sub_filter_destroy(&f);
}

static void test_progress_count(void **state)
{
  (void)state;
  fm_sub_filter f;
  int64_t ts = -1;
  open_filter(&f, &(spec){ .path_prefix = "/w", .signature = 9, .since = 10, .until = 100000 });
  /* outside the time bounds: not examined */
  assert_int_equal(verdict(&f, make_event("/o", NULL, "f", "/o", OWN, 5)), FM_SUB_BEFORE_SINCE);
  assert_false(fm_sub_filter_marker_due(&f, &ts));
  for (int64_t i = 0; i < FM_SUB_MAX_UNSYNCED; i++) {
    /* every kind of skip counts */
    ev e = i % 3 == 0   ? make_event("/o", NULL, "f", "/o", OWN, 100 + i)
           : i % 3 == 1 ? make_event("/topics/.system/log", NULL, "f", "", OWN, 100 + i)
                        : make_event("/w", NULL, "f", "/w", (int32_t[]){ 9, 0 }, 100 + i);
    assert_int_not_equal(verdict(&f, e), FM_SUB_DELIVER);
  }
  assert_false(fm_sub_filter_marker_due(&f, &ts)); /* exactly 1000: not more than */
  assert_int_equal(verdict(&f, make_event("/o", NULL, "f", "/o", OWN, 5000)), FM_SUB_SKIP_PATH);
  assert_true(fm_sub_filter_marker_due(&f, &ts));
  assert_int_equal(ts, 5000);
  fm_sub_filter_marker_sent(&f);
  assert_false(fm_sub_filter_marker_due(&f, &ts));
  /* a delivery resets the count */
  for (int i = 0; i < FM_SUB_MAX_UNSYNCED; i++)
    assert_int_equal(verdict(&f, make_event("/o", NULL, "f", "/o", OWN, 6000 + i)), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, make_event("/w", NULL, "f", "/w", OWN, 7000)), FM_SUB_DELIVER);
  assert_int_equal(verdict(&f, make_event("/o", NULL, "f", "/o", OWN, 7001)), FM_SUB_SKIP_PATH);
  assert_false(fm_sub_filter_marker_due(&f, &ts));
  /* an event past until_ns is not counted: 1 + 999 examined, then one past until_ns */
  for (int i = 0; i < FM_SUB_MAX_UNSYNCED - 1; i++)
    assert_int_equal(verdict(&f, make_event("/o", NULL, "f", "/o", OWN, 8000 + i)), FM_SUB_SKIP_PATH);
  assert_int_equal(verdict(&f, make_event("/o", NULL, "f", "/o", OWN, 200000)), FM_SUB_AFTER_UNTIL);
  assert_false(fm_sub_filter_marker_due(&f, &ts));
  fm_sub_filter_destroy(&f);
}

static void test_not_an_event(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "" });
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  m.directory = (char *)"/a";
  m.ts_ns = 3;
  ev e = { .len = filer_pb__subscribe_metadata_response__get_packed_size(&m) };
  e.p = malloc(e.len);
  assert_non_null(e.p);
  filer_pb__subscribe_metadata_response__pack(&m, e.p);
  assert_int_equal(verdict(&f, e), FM_SUB_SKIP_NOT_EVENT);
  /* an empty buffer is a valid, empty message */
  char err[FM_ERR_LEN];
  fm_sub_result res;
  assert_int_equal(fm_sub_filter_check(&f, NULL, 0, &res, err, sizeof err), 0);
  assert_int_equal(res.verdict, FM_SUB_BEFORE_SINCE); /* ts 0 <= since 0 */
  fm_sub_filter_destroy(&f);
}

/* ================================================================ validation */

static void expect_invalid(const spec *s, const char *needle)
{
  fm_sub_filter f;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(init_filter(&f, s, err), FM_EINVAL);
  if (strstr(err, needle) == NULL)
    fail_msg("message \"%s\" does not name %s", err, needle);
}

static void test_validation(void **state)
{
  (void)state;
  expect_invalid(&(spec){ .path_prefix = "a/b" }, "path_prefix");
  expect_invalid(&(spec){ .prefixes = { "/ok", "rel" } }, "path_prefixes[1]");
  expect_invalid(&(spec){ .prefixes = { "" } }, "path_prefixes[0]");
  expect_invalid(&(spec){ .dirs = { "d" } }, "directories[0]");
  expect_invalid(&(spec){ .dirs = { "/d", "" } }, "directories[1]");
  expect_invalid(&(spec){ .since = -1 }, "since_ns");
  expect_invalid(&(spec){ .until = -1 }, "until_ns");
  expect_invalid(&(spec){ .since = 10, .until = 5 }, "until_ns");
  /* valid: unbounded until with any since, until == since, everything empty */
  fm_sub_filter f;
  open_filter(&f, &(spec){ .since = 10, .until = 0 });
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .since = 10, .until = 10 });
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ 0 });
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "/", .prefixes = { "/a", "/b", "/c" }, .dirs = { "/", "/x" } });
  fm_sub_filter_destroy(&f);
}

/* ================================================================ malformed bytes */

static void test_malformed(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "" });
  char err[FM_ERR_LEN] = "";
  fm_sub_result res;
  static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff };
  assert_int_equal(fm_sub_filter_check(&f, garbage, sizeof garbage, &res, err, sizeof err), FM_EDECODE);
  assert_non_null(strstr(err, "does not decode"));
  /* field 2 claims more bytes than there are */
  static const uint8_t short_len[] = { 0x12, 0x10, 0x0a };
  assert_int_equal(fm_sub_filter_check(&f, short_len, sizeof short_len, &res, err, sizeof err), FM_EDECODE);
  /* every truncation of a real event: decodes or fails cleanly, never crashes */
  ev e = make_event("/some/dir", "old-name", "new-name", "/other/dir", (int32_t[]){ 1, 2, 3, 0 }, 123456789);
  size_t failed = 0;
  for (size_t n = 0; n < e.len; n++) {
    uint8_t *copy = malloc(n > 0 ? n : 1); /* exact size, so ASan sees any overread */
    assert_non_null(copy);
    memcpy(copy, e.p, n);
    int rc = fm_sub_filter_check(&f, copy, n, &res, err, sizeof err);
    assert_true(rc == 0 || rc == FM_EDECODE);
    failed += rc != 0;
    free(copy);
  }
  assert_true(failed > 0);
  /* single-byte corruptions everywhere */
  for (size_t i = 0; i < e.len; i++) {
    for (unsigned v = 0; v < 256; v += 17) {
      uint8_t *copy = malloc(e.len);
      assert_non_null(copy);
      memcpy(copy, e.p, e.len);
      copy[i] = (uint8_t)v;
      int rc = fm_sub_filter_check(&f, copy, e.len, &res, err, sizeof err);
      assert_true(rc == 0 || rc == FM_EDECODE);
      free(copy);
    }
  }
  /* still usable */
  assert_int_equal(fm_sub_filter_check(&f, e.p, e.len, &res, err, sizeof err), 0);
  assert_int_equal(res.verdict, FM_SUB_DELIVER);
  free(e.p);
  fm_sub_filter_destroy(&f);
}

/* ================================================================ allocations */

static void test_no_malloc_after_warmup(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "/w", .signature = 9 });
  enum { N = 64 };
  ev evs[N];
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "file-%d", i);
    switch (i % 4) {
    case 0:
      evs[i] = make_event("/w/dir", NULL, name, "/w/dir", OWN, 100 + i); /* passed through */
      break;
    case 1:
      evs[i] = make_event("/w/dir", name, name, "/w/dir", (int32_t[]){ 1, 2, 0 }, 100 + i); /* re-encoded */
      break;
    case 2:
      evs[i] = make_event("/o", name, NULL, NULL, OWN, 100 + i); /* skipped by path */
      break;
    default:
      evs[i] = make_event("/w", NULL, name, "/w", (int32_t[]){ 9, 0 }, 100 + i); /* skipped by signature */
      break;
    }
  }
  char err[FM_ERR_LEN];
  fm_sub_result res;
  for (int i = 0; i < N; i++) /* warm-up */
    assert_int_equal(fm_sub_filter_check(&f, evs[i].p, evs[i].len, &res, err, sizeof err), 0);
  size_t blocks = fm_arena_mallocs(&f.arena);
  size_t before = alloc_calls;
  size_t delivered = 0;
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < N; i++) {
      assert_int_equal(fm_sub_filter_check(&f, evs[i].p, evs[i].len, &res, err, sizeof err), 0);
      delivered += res.verdict == FM_SUB_DELIVER;
    }
  }
  assert_int_equal(alloc_calls - before, 0);
  assert_int_equal(fm_arena_mallocs(&f.arena), blocks);
  assert_int_equal(delivered, 50 * N / 2);
  for (int i = 0; i < N; i++)
    free(evs[i].p);
  fm_sub_filter_destroy(&f);
}

static void test_out_of_memory(void **state)
{
  (void)state;
  fm_sub_filter f;
  open_filter(&f, &(spec){ .path_prefix = "" });
  ev e = make_event("/a", NULL, "f", "/a", NULL, 5);
  char err[FM_ERR_LEN] = "";
  fm_sub_result res;
  /* the first check needs the arena's first block: a failed malloc is FM_ENOMEM, not damage */
  fail_alloc = true;
  int rc = fm_sub_filter_check(&f, e.p, e.len, &res, err, sizeof err);
  fail_alloc = false;
  assert_int_equal(rc, FM_ENOMEM);
  assert_non_null(strstr(err, "out of memory"));
  /* a retry succeeds; the re-encoding's buffer can fail too */
  fm_sub_filter_destroy(&f);
  open_filter(&f, &(spec){ .path_prefix = "" });
  ev warm = make_event("/a", NULL, "f", "/a", OWN, 4);
  assert_int_equal(fm_sub_filter_check(&f, warm.p, warm.len, &res, err, sizeof err), 0);
  fail_alloc = true;
  rc = fm_sub_filter_check(&f, e.p, e.len, &res, err, sizeof err);
  fail_alloc = false;
  assert_int_equal(rc, FM_ENOMEM);
  assert_int_equal(fm_sub_filter_check(&f, e.p, e.len, &res, err, sizeof err), 0);
  assert_int_equal(res.verdict, FM_SUB_DELIVER);
  assert_true(res.reencoded);
  free(warm.p);
  free(e.p);
  fm_sub_filter_destroy(&f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_single_prefix),
    cmocka_unit_test(test_raw_byte_prefix),
    cmocka_unit_test(test_multiple_prefixes),
    cmocka_unit_test(test_directories_exact),
    cmocka_unit_test(test_empty_path_prefix_quirk),
    cmocka_unit_test(test_rename_into),
    cmocka_unit_test(test_rename_out_of),
    cmocka_unit_test(test_rename_within_and_elsewhere),
    cmocka_unit_test(test_delete_source_side_only),
    cmocka_unit_test(test_update_uses_old_name_on_source),
    cmocka_unit_test(test_clean_join),
    cmocka_unit_test(test_system_log_excluded),
    cmocka_unit_test(test_system_log_rename),
    cmocka_unit_test(test_signature_skip),
    cmocka_unit_test(test_signature_append),
    cmocka_unit_test(test_signature_append_keeps_unknown_fields),
    cmocka_unit_test(test_time_bounds),
    cmocka_unit_test(test_progress_count),
    cmocka_unit_test(test_not_an_event),
    cmocka_unit_test(test_validation),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_no_malloc_after_warmup),
    cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
