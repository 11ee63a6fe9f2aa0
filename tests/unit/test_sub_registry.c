/* Unit tests for server/sub_registry.h: registration and the listing fields, anonymous streams, epoch replacement
 * (the older stream is told to end; its exit keeps the newer), refusal with the upstream texts of both RPCs, the
 * listing filter and order, the /debug/subscribers JSON, the lag histogram, and a multi-threaded stress of
 * registering, unregistering and listing at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "clock.h"
#include "error.h"
#include "sub_registry.h"

#define FILER "filer1:18888"
#define SEC 1000000000LL

/* A request for `type` with `id` and `epoch`, the rest zero; path_prefix points at a string literal. */
static FilerPb__SubscribeMetadataRequest request(const char *type, const char *prefix, int32_t id, int32_t epoch)
{
  FilerPb__SubscribeMetadataRequest req = FILER_PB__SUBSCRIBE_METADATA_REQUEST__INIT;
  req.client_name = (char *)type;
  req.path_prefix = (char *)prefix;
  req.client_id = id;
  req.client_epoch = epoch;
  return req;
}

static fm_subreg_stream *must_register(fm_subreg *r, fm_subreg_rpc rpc, const char *type, const char *peer,
                                       const char *prefix, int32_t id, int32_t epoch)
{
  FilerPb__SubscribeMetadataRequest req = request(type, prefix, id, epoch);
  fm_subreg_stream *s = NULL;
  char err[FM_ERR_LEN] = "";
  int rc = fm_subreg_register(r, rpc, &req, peer, NULL, NULL, &s, err);
  if (rc != 0)
    fail_msg("register %s@%s id %d epoch %d: %s", type, peer, id, epoch, err);
  assert_non_null(s);
  return s;
}

static FilerPb__ListMetadataSubscribersResponse *list(fm_subreg *r, const char **types, size_t n)
{
  FilerPb__ListMetadataSubscribersRequest req = FILER_PB__LIST_METADATA_SUBSCRIBERS_REQUEST__INIT;
  req.client_types = (char **)types;
  req.n_client_types = n;
  FilerPb__ListMetadataSubscribersResponse *resp = NULL;
  assert_int_equal(fm_subreg_list(r, &req, &resp), 0);
  assert_non_null(resp);
  return resp;
}

static size_t count_listed(fm_subreg *r)
{
  FilerPb__ListMetadataSubscribersResponse *resp = list(r, NULL, 0);
  size_t n = resp->n_subscribers;
  fm_subreg_list_free(resp);
  return n;
}

static fm_subreg *new_registry(void)
{
  fm_subreg *r = NULL;
  assert_int_equal(fm_subreg_new(FILER, &r), 0);
  return r;
}

/* ================================================================ registration */

static void test_register_and_list_fields(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  int64_t before = fm_now_ns();
  FilerPb__SubscribeMetadataRequest req = request("mount", "/buckets/a", 42, 3);
  char *dirs[] = { (char *)"/d1", (char *)"/d2" };
  req.directories = dirs;
  req.n_directories = 2;
  fm_subreg_stream *s = NULL;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &req, "10.0.0.1:5000", NULL, NULL, &s, err), 0);
  int64_t after = fm_now_ns();
  assert_string_equal(fm_subreg_stream_name(s), "mount@10.0.0.1:5000");
  assert_int_equal(fm_subreg_stream_id(s), 42);
  assert_false(fm_subreg_stream_superseded(s));

  FilerPb__ListMetadataSubscribersResponse *resp = list(r, NULL, 0);
  assert_int_equal(resp->n_subscribers, 1);
  FilerPb__MetadataSubscriber *m = resp->subscribers[0];
  assert_string_equal(m->client_name, "mount@10.0.0.1:5000");
  assert_string_equal(m->client_type, "mount");
  assert_string_equal(m->address, "10.0.0.1:5000");
  assert_string_equal(m->path_prefix, "/buckets/a");
  assert_int_equal(m->client_id, 42);
  assert_int_equal(m->client_epoch, 3);
  assert_true(m->connected_at_ns >= before && m->connected_at_ns <= after);
  assert_string_equal(m->filer_address, FILER);
  /* The response encodes as the message it claims to be. */
  size_t len = filer_pb__list_metadata_subscribers_response__get_packed_size(resp);
  uint8_t *buf = malloc(len);
  assert_non_null(buf);
  filer_pb__list_metadata_subscribers_response__pack(resp, buf);
  FilerPb__ListMetadataSubscribersResponse *back = filer_pb__list_metadata_subscribers_response__unpack(NULL, len, buf);
  assert_non_null(back);
  assert_int_equal(back->n_subscribers, 1);
  assert_string_equal(back->subscribers[0]->client_name, "mount@10.0.0.1:5000");
  filer_pb__list_metadata_subscribers_response__free_unpacked(back, NULL);
  free(buf);
  fm_subreg_list_free(resp);

  fm_subreg_unregister(r, s);
  assert_int_equal(count_listed(r), 0);
  fm_subreg_unregister(r, NULL); /* no-op */
  fm_subreg_free(r);
  fm_subreg_free(NULL);
}

static void test_bad_arguments(void **state)
{
  (void)state;
  fm_subreg *r = NULL;
  assert_int_equal(fm_subreg_new(NULL, &r), FM_EINVAL);
  r = new_registry();
  FilerPb__SubscribeMetadataRequest req = request("mount", "/", 1, 1);
  fm_subreg_stream *s = (fm_subreg_stream *)&req;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, NULL, "p", NULL, NULL, &s, err), FM_EINVAL);
  assert_null(s);
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &req, NULL, NULL, NULL, &s, err), FM_EINVAL);
  assert_int_equal(fm_subreg_register(r, (fm_subreg_rpc)7, &req, "p", NULL, NULL, &s, NULL), FM_EINVAL);
  /* A request straight from the decoder may carry NULL strings; they read as empty. */
  req.client_name = NULL;
  req.path_prefix = NULL;
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &req, "p:1", NULL, NULL, &s, err), 0);
  assert_string_equal(fm_subreg_stream_name(s), "@p:1");
  fm_subreg_unregister(r, s);
  fm_subreg_free(r);
}

static void test_anonymous_streams(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  /* id 0: never deduplicated, whatever the epoch, in either RPC. */
  fm_subreg_stream *a = must_register(r, FM_SUBREG_AGGREGATED, "grpcurl", "127.0.0.1:1", "/", 0, 0);
  fm_subreg_stream *b = must_register(r, FM_SUBREG_AGGREGATED, "grpcurl", "127.0.0.1:1", "/", 0, 0);
  fm_subreg_stream *c = must_register(r, FM_SUBREG_LOCAL, "grpcurl", "127.0.0.1:1", "/", 0, 5);
  fm_subreg_stream *d = must_register(r, FM_SUBREG_LOCAL, "grpcurl", "127.0.0.1:1", "/", 0, 0);
  assert_int_equal(count_listed(r), 4);
  assert_false(fm_subreg_stream_superseded(a));
  assert_false(fm_subreg_stream_superseded(b));
  assert_int_equal(fm_subreg_stream_id(c), 0);
  fm_subreg_stats st;
  fm_subreg_get_stats(r, fm_now_ns(), &st);
  assert_int_equal(st.streams, 4);
  assert_int_equal(st.anonymous, 4);
  fm_subreg_unregister(r, b);
  assert_int_equal(count_listed(r), 3);
  fm_subreg_unregister(r, a);
  fm_subreg_unregister(r, d);
  fm_subreg_unregister(r, c);
  assert_int_equal(count_listed(r), 0);
  fm_subreg_free(r);
}

/* ================================================================ epochs */

typedef struct wake_probe {
  atomic_int calls;
} wake_probe;

static void on_wake(void *arg)
{
  wake_probe *p = arg;
  atomic_fetch_add(&p->calls, 1);
}

static void test_epoch_replacement(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  wake_probe pa = { 0 }, pb = { 0 };
  char err[FM_ERR_LEN] = "";
  FilerPb__SubscribeMetadataRequest ra = request("mount", "/a", 7, 1);
  FilerPb__SubscribeMetadataRequest rb = request("mount", "/b", 7, 2);
  fm_subreg_stream *a = NULL, *b = NULL;
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &ra, "10.0.0.1:1", on_wake, &pa, &a, err), 0);
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &rb, "10.0.0.1:2", on_wake, &pb, &b, err), 0);

  /* The older stream is told to end; the listing already shows only the newer. */
  assert_true(fm_subreg_stream_superseded(a));
  assert_int_equal(atomic_load(&pa.calls), 1);
  assert_false(fm_subreg_stream_superseded(b));
  assert_int_equal(atomic_load(&pb.calls), 0);
  FilerPb__ListMetadataSubscribersResponse *resp = list(r, NULL, 0);
  assert_int_equal(resp->n_subscribers, 1);
  assert_string_equal(resp->subscribers[0]->path_prefix, "/b");
  assert_int_equal(resp->subscribers[0]->client_epoch, 2);
  fm_subreg_list_free(resp);

  /* The superseded stream's exit keeps its replacement. */
  fm_subreg_unregister(r, a);
  assert_int_equal(count_listed(r), 1);
  FilerPb__SubscribeMetadataRequest same = request("mount", "/c", 7, 2);
  fm_subreg_stream *c = NULL;
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &same, "10.0.0.1:3", NULL, NULL, &c, err), FM_EEXIST);

  /* A third epoch replaces the second, which is woken in turn. */
  fm_subreg_stream *d = must_register(r, FM_SUBREG_AGGREGATED, "mount", "10.0.0.1:4", "/d", 7, 3);
  assert_true(fm_subreg_stream_superseded(b));
  assert_int_equal(atomic_load(&pb.calls), 1);
  fm_subreg_unregister(r, b);
  assert_int_equal(count_listed(r), 1);

  /* Once the holder exits, the id is free again, even for a lower epoch. */
  fm_subreg_unregister(r, d);
  assert_int_equal(count_listed(r), 0);
  fm_subreg_stream *e = must_register(r, FM_SUBREG_AGGREGATED, "mount", "10.0.0.1:5", "/e", 7, 1);
  fm_subreg_unregister(r, e);
  fm_subreg_free(r);
}

static void test_superseded_without_wake(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  fm_subreg_stream *a = must_register(r, FM_SUBREG_LOCAL, "s3", "h:1", "/", 9, 1);
  fm_subreg_stream *b = must_register(r, FM_SUBREG_LOCAL, "s3", "h:1", "/", 9, 2);
  assert_true(fm_subreg_stream_superseded(a));
  assert_false(fm_subreg_stream_superseded(b));
  fm_subreg_unregister(r, b); /* the newer exits first: the older was already out of the set */
  assert_int_equal(count_listed(r), 0);
  fm_subreg_unregister(r, a);
  fm_subreg_free(r);
}

static void test_refusal_texts(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  char err[FM_ERR_LEN] = "";
  fm_subreg_stream *s = NULL;
  fm_subreg_stream *agg = must_register(r, FM_SUBREG_AGGREGATED, "filer:10.0.0.9:8888", "10.0.0.9:4711", "/", 12, 5);

  /* Same epoch and lower epoch are both refused. */
  FilerPb__SubscribeMetadataRequest req = request("filer:10.0.0.9:8888", "/", 12, 5);
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &req, "10.0.0.9:4712", NULL, NULL, &s, err), FM_EEXIST);
  assert_null(s);
  assert_string_equal(err, "duplicated subscription detected for client filer:10.0.0.9:8888@10.0.0.9:4712 id 12");
  req.client_epoch = 4;
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_AGGREGATED, &req, "10.0.0.9:4712", NULL, NULL, &s, err), FM_EEXIST);
  assert_false(fm_subreg_stream_superseded(agg));

  /* The local RPC's id is negated: the same client id does not collide with the aggregated one. */
  fm_subreg_stream *loc = must_register(r, FM_SUBREG_LOCAL, "filer:10.0.0.9:8888", "10.0.0.9:4713", "/", 12, 1);
  assert_int_equal(fm_subreg_stream_id(loc), -12);
  assert_false(fm_subreg_stream_superseded(agg));
  req.client_epoch = 1;
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_LOCAL, &req, "10.0.0.9:4714", NULL, NULL, &s, err), FM_EEXIST);
  assert_string_equal(
      err, "duplicated local subscription detected for client filer:10.0.0.9:8888@10.0.0.9:4714 clientId:-12");

  /* A negative id on the local RPC shows positive, as upstream prints it. */
  fm_subreg_stream *neg = must_register(r, FM_SUBREG_LOCAL, "mount", "h:2", "/", -3, 2);
  assert_int_equal(fm_subreg_stream_id(neg), 3);
  req = request("mount", "/", -3, 2);
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_LOCAL, &req, "h:2", NULL, NULL, &s, err), FM_EEXIST);
  assert_string_equal(err, "duplicated local subscription detected for client mount@h:2 clientId:3");

  /* The listing shows the local stream under its negated id. */
  FilerPb__ListMetadataSubscribersResponse *resp = list(r, NULL, 0);
  assert_int_equal(resp->n_subscribers, 3);
  bool seen_local = false;
  for (size_t i = 0; i < resp->n_subscribers; i++)
    if (strcmp(resp->subscribers[i]->address, "10.0.0.9:4713") == 0) {
      assert_int_equal(resp->subscribers[i]->client_id, -12);
      seen_local = true;
    }
  assert_true(seen_local);
  fm_subreg_list_free(resp);

  /* INT32_MIN negates to itself, as in Go. */
  fm_subreg_stream *min = must_register(r, FM_SUBREG_LOCAL, "mount", "h:3", "/", INT32_MIN, 1);
  assert_int_equal(fm_subreg_stream_id(min), INT32_MIN);

  fm_subreg_unregister(r, min);
  fm_subreg_unregister(r, neg);
  fm_subreg_unregister(r, loc);
  fm_subreg_unregister(r, agg);
  fm_subreg_free(r);
}

/* ================================================================ listings */

static void test_list_filter_and_order(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  fm_subreg_stream *s[7];
  s[0] = must_register(r, FM_SUBREG_AGGREGATED, "s3", "10.0.0.2:1", "/buckets", 1, 1);
  s[1] = must_register(r, FM_SUBREG_AGGREGATED, "mount", "10.0.0.3:1", "/z", 2, 1);
  s[2] = must_register(r, FM_SUBREG_AGGREGATED, "mount", "10.0.0.1:1", "/b", 3, 1);
  s[3] = must_register(r, FM_SUBREG_LOCAL, "filer:f2", "10.0.0.4:1", "/", 4, 1);
  s[4] = must_register(r, FM_SUBREG_AGGREGATED, "mount", "10.0.0.1:1", "/a", 5, 1);
  s[5] = must_register(r, FM_SUBREG_AGGREGATED, "mount", "10.0.0.1:1", "", 0, 0);
  s[6] = must_register(r, FM_SUBREG_AGGREGATED, "mounts", "10.0.0.0:1", "/", 6, 1);

  /* All, by display name then path_prefix. */
  static const char *const all[][2] = {
    { "filer:f2@10.0.0.4:1", "/" },  { "mount@10.0.0.1:1", "" },   { "mount@10.0.0.1:1", "/a" },
    { "mount@10.0.0.1:1", "/b" },    { "mount@10.0.0.3:1", "/z" }, { "mounts@10.0.0.0:1", "/" },
    { "s3@10.0.0.2:1", "/buckets" },
  };
  FilerPb__ListMetadataSubscribersResponse *resp = list(r, NULL, 0);
  assert_int_equal(resp->n_subscribers, 7);
  for (size_t i = 0; i < 7; i++) {
    assert_string_equal(resp->subscribers[i]->client_name, all[i][0]);
    assert_string_equal(resp->subscribers[i]->path_prefix, all[i][1]);
  }
  fm_subreg_list_free(resp);

  /* Exact client types: "mount" is not "mounts", and a prefix of a type matches nothing. */
  const char *types[] = { "s3", "mount" };
  resp = list(r, types, 2);
  assert_int_equal(resp->n_subscribers, 5);
  assert_string_equal(resp->subscribers[0]->client_name, "mount@10.0.0.1:1");
  assert_string_equal(resp->subscribers[0]->path_prefix, "");
  assert_string_equal(resp->subscribers[3]->client_name, "mount@10.0.0.3:1");
  assert_string_equal(resp->subscribers[4]->client_type, "s3");
  fm_subreg_list_free(resp);
  const char *none[] = { "moun" };
  resp = list(r, none, 1);
  assert_int_equal(resp->n_subscribers, 0);
  fm_subreg_list_free(resp);

  /* A NULL request lists everything. */
  assert_int_equal(fm_subreg_list(r, NULL, &resp), 0);
  assert_int_equal(resp->n_subscribers, 7);
  fm_subreg_list_free(resp);

  for (size_t i = 0; i < 7; i++)
    fm_subreg_unregister(r, s[i]);
  fm_subreg_free(r);
}

static json_object *field(json_object *o, const char *key)
{
  json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v))
    fail_msg("no field %s", key);
  return v;
}

static void test_debug_json(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  FilerPb__SubscribeMetadataRequest req = request("sync", "/data", 11, 4);
  char *prefixes[] = { (char *)"/p1", (char *)"/p2" };
  char *dirs[] = { (char *)"/d" };
  req.path_prefixes = prefixes;
  req.n_path_prefixes = 2;
  req.directories = dirs;
  req.n_directories = 1;
  req.client_supports_batching = true;
  req.client_supports_idle_heartbeat = true;
  req.since_ns = 0;
  fm_subreg_stream *a = NULL;
  char err[FM_ERR_LEN] = "";
  assert_int_equal(fm_subreg_register(r, FM_SUBREG_LOCAL, &req, "10.1.1.1:9", NULL, NULL, &a, err), 0);
  fm_subreg_stream *b = must_register(r, FM_SUBREG_AGGREGATED, "tail", "10.1.1.2:9", "/", 0, 0);

  int64_t now = 1700000000LL * SEC;
  fm_subreg_stream_set_position(b, now - 2500000000LL); /* 2.5 s behind */
  fm_subreg_stream_count_sent(b, 3, 300);
  fm_subreg_stream_count_sent(b, 2, 45);
  fm_subreg_stream_set_ring_fill(b, 1024);

  json_object *arr = NULL;
  assert_int_equal(fm_subreg_debug_json(r, now, &arr), 0);
  const char *text = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
  json_object *parsed = json_tokener_parse(text);
  json_object_put(arr);
  assert_non_null(parsed);
  assert_true(json_object_is_type(parsed, json_type_array));
  assert_int_equal(json_object_array_length(parsed), 2);

  json_object *o = json_object_array_get_idx(parsed, 0); /* "sync@..." sorts before "tail@..." */
  assert_string_equal(json_object_get_string(field(o, "name")), "sync@10.1.1.1:9");
  assert_string_equal(json_object_get_string(field(o, "client_type")), "sync");
  assert_string_equal(json_object_get_string(field(o, "peer")), "10.1.1.1:9");
  assert_string_equal(json_object_get_string(field(o, "rpc")), "local");
  assert_int_equal(json_object_get_int(field(o, "id")), -11);
  assert_int_equal(json_object_get_int(field(o, "epoch")), 4);
  assert_string_equal(json_object_get_string(field(o, "path_prefix")), "/data");
  json_object *pp = field(o, "path_prefixes");
  assert_int_equal(json_object_array_length(pp), 2);
  assert_string_equal(json_object_get_string(json_object_array_get_idx(pp, 1)), "/p2");
  json_object *dd = field(o, "directories");
  assert_int_equal(json_object_array_length(dd), 1);
  assert_string_equal(json_object_get_string(json_object_array_get_idx(dd, 0)), "/d");
  assert_true(json_object_get_int64(field(o, "connected_at_ns")) > 0);
  assert_int_equal(json_object_get_int64(field(o, "position_ts_ns")), 0);
  assert_null(field(o, "lag_seconds")); /* no position yet */
  assert_int_equal(json_object_get_uint64(field(o, "events_sent")), 0);
  assert_true(json_object_get_boolean(field(o, "batching")));
  assert_false(json_object_get_boolean(field(o, "refs")));
  assert_true(json_object_get_boolean(field(o, "heartbeat")));

  o = json_object_array_get_idx(parsed, 1);
  assert_string_equal(json_object_get_string(field(o, "name")), "tail@10.1.1.2:9");
  assert_string_equal(json_object_get_string(field(o, "rpc")), "aggregated");
  assert_int_equal(json_object_get_int(field(o, "id")), 0);
  assert_int_equal(json_object_array_length(field(o, "path_prefixes")), 0);
  assert_int_equal(json_object_get_int64(field(o, "position_ts_ns")), now - 2500000000LL);
  assert_true(json_object_is_type(field(o, "lag_seconds"), json_type_double));
  assert_float_equal(json_object_get_double(field(o, "lag_seconds")), 2.5, 1e-9);
  assert_int_equal(json_object_get_uint64(field(o, "events_sent")), 5);
  assert_int_equal(json_object_get_uint64(field(o, "bytes_sent")), 345);
  assert_int_equal(json_object_get_uint64(field(o, "ring_fill")), 1024);
  assert_false(json_object_get_boolean(field(o, "batching")));
  json_object_put(parsed);

  /* An empty registry gives an empty array; a position in the future reads as no lag. */
  fm_subreg_stream_set_position(b, now + SEC);
  assert_int_equal(fm_subreg_debug_json(r, now, &arr), 0);
  assert_float_equal(json_object_get_double(field(json_object_array_get_idx(arr, 1), "lag_seconds")), 0.0, 0.0);
  json_object_put(arr);
  fm_subreg_unregister(r, a);
  fm_subreg_unregister(r, b);
  assert_int_equal(fm_subreg_debug_json(r, now, &arr), 0);
  assert_int_equal(json_object_array_length(arr), 0);
  json_object_put(arr);
  fm_subreg_free(r);
}

static void test_lag_histogram(void **state)
{
  (void)state;
  fm_subreg *r = new_registry();
  int64_t now = 1700000000LL * SEC;
  /* Lags in ns, one per stream; each lands in the first bucket whose bound it does not exceed. */
  static const int64_t lags[] = {
    0,                   /* <= 0.001 */
    1000000,             /* == 0.001: le is inclusive */
    1000001,             /* <= 0.01 */
    50000000,            /* <= 0.1 */
    999999999,           /* <= 1 */
    5 * SEC,             /* <= 10 */
    60 * SEC,            /* <= 60 */
    599 * SEC,           /* <= 600 */
    3600 * SEC,          /* +Inf */
    200LL * 86400 * SEC, /* +Inf */
  };
  enum { N = sizeof lags / sizeof lags[0] };
  fm_subreg_stream *s[N + 1];
  for (size_t i = 0; i < N; i++) {
    char peer[32];
    snprintf(peer, sizeof peer, "h:%zu", i);
    s[i] = must_register(r, FM_SUBREG_AGGREGATED, "mount", peer, "/", (int32_t)i + 1, 1);
    fm_subreg_stream_set_position(s[i], now - lags[i]);
  }
  s[N] = must_register(r, FM_SUBREG_AGGREGATED, "mount", "h:none", "/", 0, 0); /* no position: not observed */

  fm_subreg_stats st;
  fm_subreg_get_stats(r, now, &st);
  assert_int_equal(st.streams, N + 1);
  assert_int_equal(st.anonymous, 1);
  assert_int_equal(st.lag_count, N);
  static const uint64_t want[FM_SUBREG_LAG_BUCKETS] = { 2, 3, 4, 5, 6, 7, 8, 10 };
  for (size_t i = 0; i < FM_SUBREG_LAG_BUCKETS; i++)
    assert_int_equal(st.lag_le[i], want[i]);
  assert_int_equal(st.lag_le[FM_SUBREG_LAG_BUCKETS - 1], st.lag_count);
  double sum = 0;
  for (size_t i = 0; i < N; i++)
    sum += (double)lags[i] / 1e9;
  assert_float_equal(st.lag_sum_seconds, sum, 1e-3);
  assert_string_equal(fm_subreg_lag_le[0], "0.001");
  assert_string_equal(fm_subreg_lag_le[3], "1");
  assert_string_equal(fm_subreg_lag_le[FM_SUBREG_LAG_BUCKETS - 1], "+Inf");

  for (size_t i = 0; i <= N; i++)
    fm_subreg_unregister(r, s[i]);
  fm_subreg_get_stats(r, now, &st);
  assert_int_equal(st.streams, 0);
  assert_int_equal(st.lag_count, 0);
  assert_int_equal(st.lag_le[FM_SUBREG_LAG_BUCKETS - 1], 0);
  fm_subreg_free(r);
}

/* ================================================================ stress */

#define STRESS_THREADS 6
#define STRESS_LISTERS 2
#define STRESS_ROUNDS 20000
#define STRESS_SLOTS 8
#define STRESS_IDS 5

/* cmocka's assertions longjmp, which only works on the test's own thread: the threads record failures instead. */
static atomic_int stress_failures;
#define stress_fail(...)                                                                                               \
  do {                                                                                                                 \
    fprintf(stderr, __VA_ARGS__);                                                                                      \
    fputc('\n', stderr);                                                                                               \
    atomic_fetch_add(&stress_failures, 1);                                                                             \
  } while (0)

typedef struct stress_slot {
  fm_subreg_stream *s;
  wake_probe wake;
} stress_slot;

typedef struct stress_ctx {
  fm_subreg *r;
  atomic_int epoch;
  atomic_bool stop;
  atomic_long superseded_seen;
  atomic_long refused;
} stress_ctx;

typedef struct stress_worker {
  stress_ctx *ctx;
  unsigned seed;
  stress_slot slots[STRESS_SLOTS];
} stress_worker;

static void stress_end(stress_worker *w, stress_slot *sl)
{
  bool was_superseded = fm_subreg_stream_superseded(sl->s);
  fm_subreg_unregister(w->ctx->r, sl->s);
  sl->s = NULL;
  /* After unregister no wake is running or to come: a superseded stream was woken exactly once. */
  int calls = atomic_load(&sl->wake.calls);
  if (calls > 1 || (was_superseded && calls != 1))
    stress_fail("wake called %d times (superseded %d)", calls, was_superseded);
  if (calls == 1)
    atomic_fetch_add(&w->ctx->superseded_seen, 1);
}

static void *stress_registrar(void *arg)
{
  stress_worker *w = arg;
  stress_ctx *ctx = w->ctx;
  for (int round = 0; round < STRESS_ROUNDS; round++) {
    stress_slot *sl = &w->slots[rand_r(&w->seed) % STRESS_SLOTS];
    if (sl->s != NULL) {
      if (fm_subreg_stream_superseded(sl->s) || rand_r(&w->seed) % 2 == 0) {
        stress_end(w, sl);
      } else {
        fm_subreg_stream_set_position(sl->s, fm_now_ns() - (int64_t)(rand_r(&w->seed) % 1000) * 1000000);
        fm_subreg_stream_count_sent(sl->s, 1, 100);
        fm_subreg_stream_set_ring_fill(sl->s, rand_r(&w->seed) % 1025);
      }
      continue;
    }
    int32_t id = (int32_t)(rand_r(&w->seed) % (STRESS_IDS + 1)); /* 0 = anonymous */
    /* Mostly rising epochs (replacements), sometimes a stale one (refusals). */
    int32_t epoch = rand_r(&w->seed) % 4 == 0 ? 1 : atomic_fetch_add(&ctx->epoch, 1) + 2;
    char peer[32];
    snprintf(peer, sizeof peer, "10.0.%u.%u:%d", w->seed % 7, (unsigned)round % 3, id);
    FilerPb__SubscribeMetadataRequest req = request(round % 2 ? "mount" : "s3", round % 3 ? "/a" : "/b", id, epoch);
    atomic_store(&sl->wake.calls, 0);
    char err[FM_ERR_LEN] = "";
    int rc = fm_subreg_register(ctx->r, rand_r(&w->seed) % 2 ? FM_SUBREG_LOCAL : FM_SUBREG_AGGREGATED, &req, peer,
                                on_wake, &sl->wake, &sl->s, err);
    if (rc == FM_EEXIST) {
      if (strncmp(err, "duplicated ", 11) != 0)
        stress_fail("refusal text: %s", err);
      atomic_fetch_add(&ctx->refused, 1);
    } else if (rc != 0) {
      stress_fail("register: %d %s", rc, err);
    }
  }
  for (size_t i = 0; i < STRESS_SLOTS; i++)
    if (w->slots[i].s != NULL)
      stress_end(w, &w->slots[i]);
  return NULL;
}

/* Checks a listing's invariants: sorted, and no non-zero id held twice. */
static void *stress_lister(void *arg)
{
  stress_ctx *ctx = arg;
  while (!atomic_load(&ctx->stop)) {
    FilerPb__ListMetadataSubscribersResponse *resp = NULL;
    if (fm_subreg_list(ctx->r, NULL, &resp) != 0)
      stress_fail("list failed");
    for (size_t i = 0; i < resp->n_subscribers; i++) {
      FilerPb__MetadataSubscriber *m = resp->subscribers[i];
      if (i > 0) {
        FilerPb__MetadataSubscriber *p = resp->subscribers[i - 1];
        int c = strcmp(p->client_name, m->client_name);
        if (c > 0 || (c == 0 && strcmp(p->path_prefix, m->path_prefix) > 0))
          stress_fail("listing out of order at %zu", i);
      }
      for (size_t j = 0; j < i && m->client_id != 0; j++)
        if (resp->subscribers[j]->client_id == m->client_id)
          stress_fail("id %d listed twice", m->client_id);
    }
    fm_subreg_list_free(resp);
    json_object *arr = NULL;
    if (fm_subreg_debug_json(ctx->r, fm_now_ns(), &arr) != 0)
      stress_fail("debug json failed");
    json_object_put(arr);
    fm_subreg_stats st;
    fm_subreg_get_stats(ctx->r, fm_now_ns(), &st);
    if (st.lag_le[FM_SUBREG_LAG_BUCKETS - 1] != st.lag_count || st.lag_count > st.streams)
      stress_fail("stats inconsistent");
  }
  return NULL;
}

static void test_stress(void **state)
{
  (void)state;
  stress_ctx ctx = { .r = new_registry() };
  atomic_init(&ctx.epoch, 0);
  atomic_init(&ctx.stop, false);
  atomic_init(&ctx.superseded_seen, 0);
  atomic_init(&ctx.refused, 0);
  stress_worker *workers = calloc(STRESS_THREADS, sizeof *workers);
  assert_non_null(workers);
  pthread_t reg[STRESS_THREADS], lis[STRESS_LISTERS];
  for (size_t i = 0; i < STRESS_LISTERS; i++)
    assert_int_equal(pthread_create(&lis[i], NULL, stress_lister, &ctx), 0);
  for (size_t i = 0; i < STRESS_THREADS; i++) {
    workers[i].ctx = &ctx;
    workers[i].seed = (unsigned)(i * 7919 + 1);
    assert_int_equal(pthread_create(&reg[i], NULL, stress_registrar, &workers[i]), 0);
  }
  for (size_t i = 0; i < STRESS_THREADS; i++)
    assert_int_equal(pthread_join(reg[i], NULL), 0);
  atomic_store(&ctx.stop, true);
  for (size_t i = 0; i < STRESS_LISTERS; i++)
    assert_int_equal(pthread_join(lis[i], NULL), 0);

  /* No thread saw a broken invariant, both paths were exercised, and everything left. */
  assert_int_equal(atomic_load(&stress_failures), 0);
  assert_true(atomic_load(&ctx.superseded_seen) > 0);
  assert_true(atomic_load(&ctx.refused) > 0);
  assert_int_equal(count_listed(ctx.r), 0);
  fm_subreg_stats st;
  fm_subreg_get_stats(ctx.r, fm_now_ns(), &st);
  assert_int_equal(st.streams, 0);
  free(workers);
  fm_subreg_free(ctx.r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_register_and_list_fields),
    cmocka_unit_test(test_bad_arguments),
    cmocka_unit_test(test_anonymous_streams),
    cmocka_unit_test(test_epoch_replacement),
    cmocka_unit_test(test_superseded_without_wake),
    cmocka_unit_test(test_refusal_texts),
    cmocka_unit_test(test_list_filter_and_order),
    cmocka_unit_test(test_debug_json),
    cmocka_unit_test(test_lag_histogram),
    cmocka_unit_test(test_stress),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
