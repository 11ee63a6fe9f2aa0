/* Unit tests for server/sub_batch.h: every output decoded by protobuf-c and compared field by field. Batches of 1, 2
 * and 256 events; events of 0, >127 and >16383 bytes (varint lengths of 1 to 3 bytes); a marker inside a batch;
 * frames at every varint boundary; the marker and keep-alive messages; and a randomized round trip (fixed seed)
 * in which every leaf, packed again, must equal its input bytes. */
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
#include "sub_batch.h"

/* ================================================================ helpers */

typedef struct ev {
  uint8_t *p;
  size_t len;
} ev;

static ev pack(const FilerPb__SubscribeMetadataResponse *m)
{
  ev e;
  e.len = filer_pb__subscribe_metadata_response__get_packed_size(m);
  e.p = malloc(e.len > 0 ? e.len : 1);
  assert_non_null(e.p);
  assert_int_equal(filer_pb__subscribe_metadata_response__pack(m, e.p), e.len);
  return e;
}

/* An event whose directory is `dir_len` bytes of 'd' after a '/', created entry `name`, ts. */
static ev make_event(size_t dir_len, const char *name, int64_t ts)
{
  char *dir = malloc(dir_len + 2);
  assert_non_null(dir);
  dir[0] = '/';
  memset(dir + 1, 'd', dir_len);
  dir[dir_len + 1] = '\0';
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  int32_t sigs[] = { 11, 22 };
  e.name = (char *)name;
  en.new_entry = &e;
  en.new_parent_path = dir;
  en.n_signatures = 2;
  en.signatures = sigs;
  m.directory = dir;
  m.ts_ns = ts;
  m.event_notification = &en;
  ev out = pack(&m);
  free(dir);
  return out;
}

static ev empty_event(void)
{
  ev e = { .p = malloc(1), .len = 0 };
  assert_non_null(e.p);
  return e;
}

static ev marker_event(int64_t ts)
{
  ev e = { .p = malloc(FM_SUB_KEEPALIVE_MAX) };
  assert_non_null(e.p);
  e.len = fm_sub_batch_marker(ts, e.p);
  return e;
}

/* Asserts that `m` (a decoded leaf or a top level with its events set aside) packs to exactly `want`. Inputs were
 * packed by protobuf-c, which writes fields in number order, so equal messages give equal bytes. */
static void assert_packs_to(const FilerPb__SubscribeMetadataResponse *m, const ev *want)
{
  ev got = pack(m);
  assert_int_equal(got.len, want->len);
  if (got.len > 0)
    assert_memory_equal(got.p, want->p, got.len);
  free(got.p);
}

/* Encodes `evs` as a batch, decodes it, and checks every field: the top level is evs[0], the leaves the rest. */
static void check_batch(const ev *evs, size_t n)
{
  fm_sub_bytes in[FM_SUB_BATCH_MAX];
  for (size_t i = 0; i < n; i++)
    in[i] = (fm_sub_bytes){ evs[i].p, evs[i].len };
  size_t size = fm_sub_batch_size(in, n);
  uint8_t *out = malloc(size > 0 ? size : 1);
  assert_non_null(out);
  size_t written = 0;
  assert_int_equal(fm_sub_batch_encode(in, n, out, size, &written), 0);
  assert_int_equal(written, size);
  if (n == 1) {
    assert_int_equal(size, evs[0].len);
    if (size > 0)
      assert_memory_equal(out, evs[0].p, size);
  }
  FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(NULL, size, out);
  assert_non_null(m);
  assert_int_equal(m->n_events, n - 1);
  for (size_t i = 1; i < n; i++) {
    FilerPb__SubscribeMetadataResponse *leaf = m->events[i - 1];
    FilerPb__SubscribeMetadataResponse *want =
        filer_pb__subscribe_metadata_response__unpack(NULL, evs[i].len, evs[i].p);
    assert_non_null(want);
    assert_int_equal(leaf->n_events, 0); /* never nested deeper */
    assert_string_equal(leaf->directory, want->directory);
    assert_int_equal(leaf->ts_ns, want->ts_ns);
    assert_int_equal(leaf->event_notification != NULL, want->event_notification != NULL);
    if (want->event_notification != NULL) {
      FilerPb__EventNotification *a = leaf->event_notification, *b = want->event_notification;
      assert_int_equal(a->new_entry != NULL, b->new_entry != NULL);
      if (b->new_entry != NULL)
        assert_string_equal(a->new_entry->name, b->new_entry->name);
      assert_int_equal(a->old_entry != NULL, b->old_entry != NULL);
      assert_string_equal(a->new_parent_path, b->new_parent_path);
      assert_int_equal(a->n_signatures, b->n_signatures);
      for (size_t k = 0; k < a->n_signatures; k++)
        assert_int_equal(a->signatures[k], b->signatures[k]);
    }
    assert_packs_to(leaf, &evs[i]);
    filer_pb__subscribe_metadata_response__free_unpacked(want, NULL);
  }
  /* the top level without its events is the first event */
  size_t n_events = m->n_events;
  m->n_events = 0;
  assert_packs_to(m, &evs[0]);
  m->n_events = n_events;
  filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);
  free(out);
}

static void free_evs(ev *evs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(evs[i].p);
}

/* ================================================================ batches */

static void test_batch_of_one(void **state)
{
  (void)state;
  ev e = make_event(10, "f", 5);
  check_batch(&e, 1);
  free(e.p);
  e = empty_event();
  check_batch(&e, 1);
  free(e.p);
}

static void test_batch_of_two(void **state)
{
  (void)state;
  ev evs[2] = { make_event(10, "a", 1), make_event(20, "b", 2) };
  check_batch(evs, 2);
  free_evs(evs, 2);
}

static void test_varint_lengths(void **state)
{
  (void)state;
  /* leaves of 0, ~60, >127 and >16383 bytes: length varints of 1, 1, 2 and 3 bytes */
  ev evs[6] = { make_event(5, "first", 1),   empty_event(), make_event(50, "small", 3), make_event(200, "mid", 4),
                make_event(20000, "big", 5), empty_event() };
  assert_true(evs[3].len > 127 && evs[3].len <= 16383);
  assert_true(evs[4].len > 16383);
  check_batch(evs, 6);
  /* a first event of 0 bytes: the top level is empty, the leaves follow */
  ev swapped[3] = { evs[1], evs[4], evs[3] };
  check_batch(swapped, 3);
  /* a big first event */
  ev big_first[2] = { evs[4], evs[2] };
  check_batch(big_first, 2);
  free_evs(evs, 6);
}

static void test_batch_of_256(void **state)
{
  (void)state;
  ev evs[FM_SUB_BATCH_MAX];
  for (size_t i = 0; i < FM_SUB_BATCH_MAX; i++) {
    char name[32];
    snprintf(name, sizeof name, "f%zu", i);
    size_t dir_len = i % 50 == 7 ? 17000 : i % 5 == 0 ? 150 : 10 + i % 40;
    evs[i] = i % 64 == 63 ? empty_event() : make_event(dir_len, name, (int64_t)(1000 + i));
  }
  check_batch(evs, FM_SUB_BATCH_MAX);
  free_evs(evs, FM_SUB_BATCH_MAX);
}

static void test_marker_in_batch(void **state)
{
  (void)state;
  ev evs[4] = { make_event(10, "a", 1), marker_event(2), make_event(10, "b", 3), marker_event(0) };
  check_batch(evs, 4);
  uint8_t out[512];
  size_t written;
  fm_sub_bytes in[4];
  for (int i = 0; i < 4; i++)
    in[i] = (fm_sub_bytes){ evs[i].p, evs[i].len };
  assert_int_equal(fm_sub_batch_encode(in, 4, out, sizeof out, &written), 0);
  FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(NULL, written, out);
  assert_non_null(m);
  assert_int_equal(m->n_events, 3);
  /* a marker is present-but-empty event_notification, with no directory */
  FilerPb__SubscribeMetadataResponse *mk = m->events[0];
  assert_non_null(mk->event_notification);
  assert_null(mk->event_notification->old_entry);
  assert_null(mk->event_notification->new_entry);
  assert_int_equal(mk->event_notification->n_signatures, 0);
  assert_string_equal(mk->directory, "");
  assert_int_equal(mk->ts_ns, 2);
  assert_non_null(m->events[2]->event_notification);
  assert_int_equal(m->events[2]->ts_ns, 0);
  /* a marker first: the top level is the marker */
  ev first[2] = { evs[1], evs[0] };
  check_batch(first, 2);
  filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);
  free_evs(evs, 4);
}

static void test_encode_errors(void **state)
{
  (void)state;
  ev e = make_event(10, "a", 1);
  fm_sub_bytes in[FM_SUB_BATCH_MAX + 1];
  for (size_t i = 0; i <= FM_SUB_BATCH_MAX; i++)
    in[i] = (fm_sub_bytes){ e.p, e.len };
  uint8_t out[64];
  size_t written = 99;
  assert_int_equal(fm_sub_batch_encode(in, 0, out, sizeof out, &written), FM_EINVAL);
  assert_int_equal(written, 0);
  assert_int_equal(fm_sub_batch_encode(in, FM_SUB_BATCH_MAX + 1, out, sizeof out, &written), FM_EINVAL);
  size_t need = fm_sub_batch_size(in, 3);
  assert_true(need > sizeof out);
  assert_int_equal(fm_sub_batch_encode(in, 3, out, sizeof out, &written), FM_ETOOBIG);
  assert_int_equal(written, need);
  uint8_t *big = malloc(need);
  assert_non_null(big);
  assert_int_equal(fm_sub_batch_encode(in, 3, big, need, &written), 0); /* exactly enough */
  assert_int_equal(written, need);
  free(big);
  free(e.p);
}

/* ================================================================ frames */

static void test_frame_boundaries(void **state)
{
  (void)state;
  static const struct {
    uint64_t len;
    size_t bytes;
  } cases[] = {
    { 0, 2 },
    { 1, 2 },
    { 127, 2 },
    { 128, 3 },
    { 16383, 3 },
    { 16384, 4 },
    { (1u << 21) - 1, 4 },
    { 1u << 21, 5 },
    { (1u << 30), 6 },
    { UINT32_MAX, 6 },
    { (uint64_t)1 << 35, 7 },
    { SIZE_MAX, 1 + (SIZE_MAX > UINT32_MAX ? 10 : 5) },
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    uint8_t hdr[FM_SUB_BATCH_FRAME_MAX];
    size_t n = fm_sub_batch_frame(hdr, (size_t)cases[c].len);
    assert_int_equal(n, cases[c].bytes);
    assert_int_equal(hdr[0], 0x22); /* field 4, wire type 2 */
    /* read the varint back */
    uint64_t v = 0;
    for (size_t i = 1; i < n; i++) {
      v |= (uint64_t)(hdr[i] & 0x7f) << (7 * (i - 1));
      assert_int_equal((hdr[i] & 0x80) != 0, i + 1 < n);
    }
    assert_int_equal(v, (uint64_t)(size_t)cases[c].len);
  }
}

/* ================================================================ marker and keep-alives */

static void test_marker(void **state)
{
  (void)state;
  static const int64_t ts[] = { 0, 1, 123456789012345678, INT64_MAX, -1 };
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
    uint8_t out[FM_SUB_KEEPALIVE_MAX];
    size_t n = fm_sub_batch_marker(ts[i], out);
    assert_true(n >= 2 && n <= FM_SUB_KEEPALIVE_MAX);
    FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(NULL, n, out);
    assert_non_null(m);
    assert_non_null(m->event_notification);
    assert_null(m->event_notification->old_entry);
    assert_null(m->event_notification->new_entry);
    assert_int_equal(m->event_notification->n_signatures, 0);
    assert_string_equal(m->event_notification->new_parent_path, "");
    assert_string_equal(m->directory, "");
    assert_int_equal(m->ts_ns, ts[i]);
    assert_int_equal(m->flushed_ts_ns, 0);
    assert_int_equal(m->n_events, 0);
    assert_int_equal(m->n_log_file_refs, 0);
    filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);
  }
}

static void test_heartbeat(void **state)
{
  (void)state;
  static const int64_t cases[][2] = { { 5, 4 }, { 0, 9 }, { 7, 0 }, { 0, 0 }, { INT64_MAX, INT64_MAX }, { -1, -1 } };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t out[FM_SUB_KEEPALIVE_MAX];
    size_t n = fm_sub_batch_heartbeat(cases[i][0], cases[i][1], out);
    assert_true(n <= FM_SUB_KEEPALIVE_MAX);
    FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(NULL, n, out);
    assert_non_null(m);
    assert_null(m->event_notification); /* a keep-alive has no event_notification */
    assert_int_equal(m->ts_ns, cases[i][0]);
    assert_int_equal(m->flushed_ts_ns, cases[i][1]);
    assert_string_equal(m->directory, "");
    filer_pb__subscribe_metadata_response__free_unpacked(m, NULL);
  }
}

/* ================================================================ randomized */

/* xorshift64*: deterministic across platforms */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

/* A random event: any mix of fields, names of random bytes (no NUL), random signatures. */
static ev random_event(void)
{
  switch (rnd() % 16) {
  case 0:
    return empty_event();
  case 1:
    return marker_event((int64_t)(rnd() >> 1));
  default:
    break;
  }
  char dir[300], oldn[64], newn[64], npp[64];
  size_t dl = 1 + rnd() % (rnd() % 8 == 0 ? sizeof dir - 1 : 40);
  for (size_t i = 0; i < dl; i++)
    dir[i] = (char)(1 + rnd() % 255);
  dir[dl] = '\0';
  snprintf(oldn, sizeof oldn, "old-%llx", (unsigned long long)rnd());
  snprintf(newn, sizeof newn, "new-%llx", (unsigned long long)rnd());
  snprintf(npp, sizeof npp, "/p/%llx", (unsigned long long)(rnd() % 1000));
  FilerPb__Entry o = FILER_PB__ENTRY__INIT, n = FILER_PB__ENTRY__INIT;
  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  int32_t sigs[8];
  o.name = oldn;
  n.name = newn;
  n.content.len = rnd() % 4 == 0 ? rnd() % 20000 : 0;
  uint8_t *content = malloc(n.content.len + 1);
  assert_non_null(content);
  for (size_t i = 0; i < n.content.len; i++)
    content[i] = (uint8_t)rnd();
  n.content.data = content;
  unsigned kind = (unsigned)(rnd() % 4); /* create, update, delete, rename */
  if (kind != 0)
    en.old_entry = &o;
  if (kind != 2)
    en.new_entry = &n;
  if (kind != 2)
    en.new_parent_path = npp;
  en.delete_chunks = rnd() % 2;
  en.is_from_other_cluster = rnd() % 2;
  en.n_signatures = rnd() % 9;
  for (size_t i = 0; i < en.n_signatures; i++)
    sigs[i] = (int32_t)(uint32_t)rnd();
  en.signatures = sigs;
  m.directory = dir;
  m.ts_ns = (int64_t)(rnd() >> 1);
  m.event_notification = &en;
  ev out = pack(&m);
  free(content);
  return out;
}

static void test_random_round_trip(void **state)
{
  (void)state;
  for (int iter = 0; iter < 300; iter++) {
    size_t n = 1 + rnd() % (rnd() % 4 == 0 ? FM_SUB_BATCH_MAX : 8);
    ev *evs = malloc(n * sizeof *evs);
    assert_non_null(evs);
    for (size_t i = 0; i < n; i++)
      evs[i] = random_event();
    check_batch(evs, n);
    free_evs(evs, n);
    free(evs);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_batch_of_one),     cmocka_unit_test(test_batch_of_two),
    cmocka_unit_test(test_varint_lengths),   cmocka_unit_test(test_batch_of_256),
    cmocka_unit_test(test_marker_in_batch),  cmocka_unit_test(test_encode_errors),
    cmocka_unit_test(test_frame_boundaries), cmocka_unit_test(test_marker),
    cmocka_unit_test(test_heartbeat),        cmocka_unit_test(test_random_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
