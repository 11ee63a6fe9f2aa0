/* Unit tests for common/pb_json.h: protobuf-c messages to proto3 canonical
 * JSON. The expected strings of the *_canonical cases were produced once by
 * Python's google.protobuf.json_format.MessageToJson (protobuf 3.21) from the
 * same messages, and are compared structurally, not byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.pb-c.h"
#include "error.h"
#include "filer.pb-c.h"
#include "pb_json.h"
#include "reflection_v1alpha.pb-c.h"

/* ---------------------------------------------------------------- helpers */

/* Renders `msg`, and checks that it parses to the same JSON value as `expected`. */
static void assert_json_equal(const ProtobufCMessage *msg, const char *expected)
{
  char *got = NULL;
  assert_int_equal(fm_pb_json_string(msg, &got), 0);
  assert_non_null(got);
  struct json_object *g = json_tokener_parse(got);
  struct json_object *e = json_tokener_parse(expected);
  assert_non_null(g);
  assert_non_null(e);
  if (!json_object_equal(g, e))
    print_message("got:      %s\nexpected: %s\n", got, expected);
  assert_true(json_object_equal(g, e));
  json_object_put(g);
  json_object_put(e);
  free(got);
}

/* Renders `msg` and checks the exact bytes. */
static void assert_json_string(const ProtobufCMessage *msg, const char *expected)
{
  char *got = NULL;
  assert_int_equal(fm_pb_json_string(msg, &got), 0);
  assert_string_equal(got, expected);
  free(got);
}

/*
 * The JSON shows what protobuf-c puts on the wire: packing `msg`, unpacking
 * it and rendering the copy gives the same JSON.
 */
static void assert_wire_consistent(const ProtobufCMessage *msg)
{
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len + 1);
  assert_non_null(buf);
  assert_int_equal(protobuf_c_message_pack(msg, buf), len);
  ProtobufCMessage *back = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
  assert_non_null(back);
  char *want = NULL;
  assert_int_equal(fm_pb_json_string(msg, &want), 0);
  assert_json_equal(back, want);
  free(want);
  protobuf_c_message_free_unpacked(back, NULL);
  free(buf);
}

static ProtobufCBinaryData bin(const char *s, size_t len)
{
  ProtobufCBinaryData b = { len, (uint8_t *)s };
  return b;
}

/* ---------------------------------------------------------------- filer messages */

/* A metadata event with every kind of field the filer protocol uses: nested
 * entries, chunks with FileIds (fixed32 cookie), a bytes map, int64s,
 * uint32 above INT32_MAX, uint64 max, bytes, enums, repeated messages. */
static void test_subscribe_response_canonical(void **state)
{
  static const char expected[] =
      "{\"directory\":\"/buckets/"
      "b1\",\"eventNotification\":{\"oldEntry\":{\"name\":\"a.txt\",\"attributes\":{\"fileSize\":\"10\","
      "\"mtime\":\"1700000000\",\"fileMode\":420,\"uid\":1000,\"gid\":1000,\"mime\":\"text/"
      "plain\"}},\"newEntry\":{\"name\":"
      "\"b \\\"quoted\\\"/\\u00e9\\n\","
      "\"chunks\":[{\"fileId\":\"3,01637037d6\",\"size\":\"10\",\"modifiedTsNs\":\"1700000000123456789\","
      "\"eTag\":\"abc\",\"fid\":{\"volumeId\":3,\"fileKey\":\"1\",\"cookie\":3735928559},\"cipherKey\":\"AAEC/w==\","
      "\"isCompressed\":true,\"sseType\":\"SSE_KMS\"},{\"fileId\":\"4,02\",\"offset\":\"10\",\"size\":\"20\","
      "\"fid\":{\"volumeId\":4,\"fileKey\":\"2\"},\"sourceFid\":{}}],\"attributes\":{\"fileSize\":\"30\","
      "\"mtime\":\"-1\",\"fileMode\":2147484068,\"groupName\":[\"g1\",\"g2\"],\"symlinkTarget\":\"../x\","
      "\"md5\":\"AAECAwQFBgcICQoLDA0ODw==\",\"inode\":\"18446744073709551615\",\"mtimeNs\":-5},\"extended\":{\"xattr-"
      "bin\":"
      "\"//79\","
      "\"user.a\":\"djE=\",\"user.b\":\"\"},\"hardLinkId\":\"AQID\",\"hardLinkCounter\":2,\"content\":\"aGVsbG8K\","
      "\"remoteEntry\":{\"storageName\":\"s3\",\"remoteSize\":\"1099511627776\"},\"quota\":\"-1\"},\"deleteChunks\":"
      "true,"
      "\"newParentPath\":\"/buckets/b2\",\"signatures\":[1,-2,2147483647]},\"tsNs\":\"1700000000999999999\","
      "\"events\":[{\"directory\":\"/x\"},{}],\"logFileRefs\":[{\"chunks\":[{\"fileId\":\"9,9\"}],\"fileTsNs\":\"5\","
      "\"filerId\":\"f1\"}]}";

  FilerPb__FuseAttributes old_attr, new_attr;
  filer_pb__fuse_attributes__init(&old_attr);
  old_attr.file_size = 10;
  old_attr.mtime = 1700000000;
  old_attr.file_mode = 0644;
  old_attr.uid = 1000;
  old_attr.gid = 1000;
  old_attr.mime = (char *)"text/plain";
  FilerPb__Entry old_entry;
  filer_pb__entry__init(&old_entry);
  old_entry.name = (char *)"a.txt";
  old_entry.attributes = &old_attr;

  FilerPb__FileId fid1, fid2, src_fid;
  filer_pb__file_id__init(&fid1);
  fid1.volume_id = 3;
  fid1.file_key = 1;
  fid1.cookie = 0xdeadbeef;
  filer_pb__file_id__init(&fid2);
  fid2.volume_id = 4;
  fid2.file_key = 2;
  filer_pb__file_id__init(&src_fid);
  FilerPb__FileChunk c1, c2;
  filer_pb__file_chunk__init(&c1);
  c1.file_id = (char *)"3,01637037d6";
  c1.size = 10;
  c1.modified_ts_ns = 1700000000123456789;
  c1.e_tag = (char *)"abc";
  c1.fid = &fid1;
  c1.cipher_key = bin("\x00\x01\x02\xff", 4);
  c1.is_compressed = 1;
  c1.sse_type = FILER_PB__SSETYPE__SSE_KMS;
  filer_pb__file_chunk__init(&c2);
  c2.file_id = (char *)"4,02";
  c2.offset = 10;
  c2.size = 20;
  c2.fid = &fid2;
  c2.source_fid = &src_fid; /* present and empty: {} */
  FilerPb__FileChunk *chunks[] = { &c1, &c2 };

  static const char md5[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
  char *groups[] = { (char *)"g1", (char *)"g2" };
  filer_pb__fuse_attributes__init(&new_attr);
  new_attr.file_size = 30;
  new_attr.mtime = -1;
  new_attr.file_mode = 0x800001a4;
  new_attr.n_group_name = 2;
  new_attr.group_name = groups;
  new_attr.md5 = bin(md5, sizeof md5);
  new_attr.inode = UINT64_MAX;
  new_attr.mtime_ns = -5;
  new_attr.symlink_target = (char *)"../x";

  FilerPb__Entry__ExtendedEntry x1, x2, x3;
  filer_pb__entry__extended_entry__init(&x1);
  x1.key = (char *)"user.a";
  x1.value = bin("v1", 2);
  filer_pb__entry__extended_entry__init(&x2);
  x2.key = (char *)"user.b";
  filer_pb__entry__extended_entry__init(&x3);
  x3.key = (char *)"xattr-bin";
  x3.value = bin("\xff\xfe\xfd", 3);
  FilerPb__Entry__ExtendedEntry *ext[] = { &x1, &x2, &x3 };

  FilerPb__RemoteEntry remote;
  filer_pb__remote_entry__init(&remote);
  remote.storage_name = (char *)"s3";
  remote.remote_size = INT64_C(1) << 40;

  FilerPb__Entry new_entry;
  filer_pb__entry__init(&new_entry);
  new_entry.name = (char *)"b \"quoted\"/\xc3\xa9\n";
  new_entry.n_chunks = 2;
  new_entry.chunks = chunks;
  new_entry.attributes = &new_attr;
  new_entry.n_extended = 3;
  new_entry.extended = ext;
  new_entry.hard_link_id = bin("\x01\x02\x03", 3);
  new_entry.hard_link_counter = 2;
  new_entry.content = bin("hello\n", 6);
  new_entry.remote_entry = &remote;
  new_entry.quota = -1;

  int32_t sigs[] = { 1, -2, 2147483647 };
  FilerPb__EventNotification en;
  filer_pb__event_notification__init(&en);
  en.old_entry = &old_entry;
  en.new_entry = &new_entry;
  en.delete_chunks = 1;
  en.new_parent_path = (char *)"/buckets/b2";
  en.n_signatures = 3;
  en.signatures = sigs;

  FilerPb__SubscribeMetadataResponse ev1, ev2;
  filer_pb__subscribe_metadata_response__init(&ev1);
  ev1.directory = (char *)"/x";
  filer_pb__subscribe_metadata_response__init(&ev2);
  FilerPb__SubscribeMetadataResponse *events[] = { &ev1, &ev2 };

  FilerPb__FileChunk rc;
  filer_pb__file_chunk__init(&rc);
  rc.file_id = (char *)"9,9";
  FilerPb__FileChunk *rchunks[] = { &rc };
  FilerPb__LogFileChunkRef ref;
  filer_pb__log_file_chunk_ref__init(&ref);
  ref.n_chunks = 1;
  ref.chunks = rchunks;
  ref.file_ts_ns = 5;
  ref.filer_id = (char *)"f1";
  FilerPb__LogFileChunkRef *refs[] = { &ref };

  FilerPb__SubscribeMetadataResponse m;
  filer_pb__subscribe_metadata_response__init(&m);
  m.directory = (char *)"/buckets/b1";
  m.event_notification = &en;
  m.ts_ns = 1700000000999999999;
  m.n_events = 2;
  m.events = events;
  m.n_log_file_refs = 1;
  m.log_file_refs = refs;

  assert_json_equal(&m.base, expected);
  assert_wire_consistent(&m.base);
}

/* map<string, Locations>: keys as object keys (including ""), a present but
 * empty value as {}. */
static void test_lookup_volume_map_canonical(void **state)
{
  static const char expected[] =
      "{\"locationsMap\":{\"3\":{\"locations\":[{\"url\":\"a:8080\",\"publicUrl\":\"a.pub:8080\",\"grpcPort\":18080,"
      "\"dataCenter\":\"dc1\"},{\"url\":\"b:8080\"}]},\"4\":{},\"\":{\"locations\":[{}]}}}";
  FilerPb__Location la, lb, lc;
  filer_pb__location__init(&la);
  la.url = (char *)"a:8080";
  la.public_url = (char *)"a.pub:8080";
  la.grpc_port = 18080;
  la.data_center = (char *)"dc1";
  filer_pb__location__init(&lb);
  lb.url = (char *)"b:8080";
  filer_pb__location__init(&lc);
  FilerPb__Location *l3[] = { &la, &lb };
  FilerPb__Location *lempty[] = { &lc };
  FilerPb__Locations v3, v4, vempty;
  filer_pb__locations__init(&v3);
  v3.n_locations = 2;
  v3.locations = l3;
  filer_pb__locations__init(&v4);
  filer_pb__locations__init(&vempty);
  vempty.n_locations = 1;
  vempty.locations = lempty;
  FilerPb__LookupVolumeResponse__LocationsMapEntry e3, e4, eempty;
  filer_pb__lookup_volume_response__locations_map_entry__init(&e3);
  e3.key = (char *)"3";
  e3.value = &v3;
  filer_pb__lookup_volume_response__locations_map_entry__init(&e4);
  e4.key = (char *)"4";
  e4.value = &v4;
  filer_pb__lookup_volume_response__locations_map_entry__init(&eempty);
  eempty.value = &vempty;
  FilerPb__LookupVolumeResponse__LocationsMapEntry *entries[] = { &e3, &e4, &eempty };
  FilerPb__LookupVolumeResponse m;
  filer_pb__lookup_volume_response__init(&m);
  m.n_locations_map = 3;
  m.locations_map = entries;
  assert_json_equal(&m.base, expected);
  assert_wire_consistent(&m.base);

  /* a map entry whose message value was never set reads as {}, as in protobuf */
  e4.value = NULL;
  assert_json_equal(&m.base,
                    "{\"locationsMap\":{\"3\":{\"locations\":[{\"url\":\"a:8080\",\"publicUrl\":\"a.pub:8080\","
                    "\"grpcPort\":18080,\"dataCenter\":\"dc1\"},{\"url\":\"b:8080\"}]},\"4\":{},"
                    "\"\":{\"locations\":[{}]}}}");
}

/* Enums by value name; an unknown number as the number. */
static void test_create_entry_response_enum_canonical(void **state)
{
  FilerPb__EventNotification en;
  filer_pb__event_notification__init(&en);
  FilerPb__SubscribeMetadataResponse ev;
  filer_pb__subscribe_metadata_response__init(&ev);
  ev.directory = (char *)"/d";
  ev.event_notification = &en;
  FilerPb__CreateEntryResponse m;
  filer_pb__create_entry_response__init(&m);
  m.error = (char *)"exists";
  m.metadata_event = &ev;
  m.error_code = FILER_PB__FILER_ERROR__ENTRY_ALREADY_EXISTS;
  m.log_ts_ns = 42;
  m.log_signature = -7;
  assert_json_equal(&m.base, "{\"error\":\"exists\",\"metadataEvent\":{\"directory\":\"/d\",\"eventNotification\":{}},"
                             "\"errorCode\":\"ENTRY_ALREADY_EXISTS\",\"logTsNs\":\"42\",\"logSignature\":-7}");
  assert_wire_consistent(&m.base);

  FilerPb__CreateEntryResponse u;
  filer_pb__create_entry_response__init(&u);
  u.error_code = (FilerPb__FilerError)99;
  assert_json_equal(&u.base, "{\"errorCode\":99}");
  assert_json_string(&u.base, "{\"errorCode\":99}");
}

/* json_name: snake_case camel-cased, names already in camelCase kept. */
static void test_list_entries_request_names_canonical(void **state)
{
  static const char expected[] =
      "{\"directory\":\"/"
      "\",\"prefix\":\"p\",\"startFromFileName\":\"x\",\"inclusiveStartFrom\":true,\"limit\":4294967295,"
      "\"snapshotTsNs\":\"1\",\"omitChunks\":true}";
  FilerPb__ListEntriesRequest m;
  filer_pb__list_entries_request__init(&m);
  m.directory = (char *)"/";
  m.prefix = (char *)"p";
  m.startfromfilename = (char *)"x";
  m.inclusivestartfrom = 1;
  m.limit = UINT32_MAX;
  m.snapshot_ts_ns = 1;
  m.omit_chunks = 1;
  assert_json_equal(&m.base, expected);
  /* compact, keys in field-number order, no slash escaping */
  assert_json_string(&m.base, expected);
}

/* A nested enum in a nested message, repeated strings with escapes. */
static void test_create_entry_request_condition_canonical(void **state)
{
  static const char expected[] =
      "{\"directory\":\"/d\",\"entry\":{\"name\":\"f\"},\"oExcl\":true,\"signatures\":[7],\"condition\":{\"clauses\":[{"
      "\"kind\":\"IF_ETAG_MATCH\",\"etags\":[\"\\\"e1\\\"\",\"\"],\"unixTime\":\"-3\",\"allowWeak\":true,\"extKey\":"
      "\"k\","
      "\"fids\":[\"1,2\"]},{\"kind\":\"IF_CHUNKS_EQUAL\"}]}}";
  char *etags[] = { (char *)"\"e1\"", (char *)"" };
  char *fids[] = { (char *)"1,2" };
  FilerPb__WriteCondition__Clause c1, c2;
  filer_pb__write_condition__clause__init(&c1);
  c1.kind = FILER_PB__WRITE_CONDITION__KIND__IF_ETAG_MATCH;
  c1.n_etags = 2;
  c1.etags = etags;
  c1.unix_time = -3;
  c1.allow_weak = 1;
  c1.ext_key = (char *)"k";
  c1.n_fids = 1;
  c1.fids = fids;
  filer_pb__write_condition__clause__init(&c2);
  c2.kind = FILER_PB__WRITE_CONDITION__KIND__IF_CHUNKS_EQUAL;
  FilerPb__WriteCondition__Clause *clauses[] = { &c1, &c2 };
  FilerPb__WriteCondition cond;
  filer_pb__write_condition__init(&cond);
  cond.n_clauses = 2;
  cond.clauses = clauses;
  FilerPb__Entry entry;
  filer_pb__entry__init(&entry);
  entry.name = (char *)"f";
  int32_t sigs[] = { 7 };
  FilerPb__CreateEntryRequest m;
  filer_pb__create_entry_request__init(&m);
  m.directory = (char *)"/d";
  m.entry = &entry;
  m.o_excl = 1;
  m.n_signatures = 1;
  m.signatures = sigs;
  m.condition = &cond;
  assert_json_equal(&m.base, expected);
  assert_wire_consistent(&m.base);
}

/* The protocol tells an absent event_notification from a present empty one. */
static void test_event_notification_presence(void **state)
{
  FilerPb__SubscribeMetadataResponse m;
  filer_pb__subscribe_metadata_response__init(&m);
  m.directory = (char *)"/a/b";
  m.ts_ns = 5;
  assert_json_string(&m.base, "{\"directory\":\"/a/b\",\"tsNs\":\"5\"}");

  FilerPb__EventNotification en;
  filer_pb__event_notification__init(&en);
  m.event_notification = &en;
  assert_json_string(&m.base, "{\"directory\":\"/a/b\",\"eventNotification\":{},\"tsNs\":\"5\"}");
  assert_wire_consistent(&m.base);

  /* the object form: int64 as a JSON string */
  struct json_object *o = fm_pb_json_object(&m.base);
  assert_non_null(o);
  struct json_object *ts = NULL, *ev = NULL;
  assert_true(json_object_object_get_ex(o, "tsNs", &ts));
  assert_int_equal(json_object_get_type(ts), json_type_string);
  assert_string_equal(json_object_get_string(ts), "5");
  assert_true(json_object_object_get_ex(o, "eventNotification", &ev));
  assert_int_equal(json_object_get_type(ev), json_type_object);
  assert_int_equal(json_object_object_length(ev), 0);
  assert_false(json_object_object_get_ex(o, "events", NULL));
  json_object_put(o);
}

/* Every proto3 default is left out. */
static void test_defaults_omitted(void **state)
{
  FilerPb__Entry e;
  filer_pb__entry__init(&e);
  assert_json_string(&e.base, "{}");
  FilerPb__FuseAttributes a;
  filer_pb__fuse_attributes__init(&a);
  assert_json_string(&a.base, "{}");
  FilerPb__FileChunk c;
  filer_pb__file_chunk__init(&c);
  assert_json_string(&c.base, "{}");
  FilerPb__CreateEntryResponse r;
  filer_pb__create_entry_response__init(&r);
  assert_json_string(&r.base, "{}");

  /* NULL strings read as "", and a repeated message element that is NULL as {} */
  FilerPb__SubscribeMetadataResponse m;
  filer_pb__subscribe_metadata_response__init(&m);
  m.directory = NULL;
  FilerPb__SubscribeMetadataResponse *events[] = { NULL };
  m.n_events = 1;
  m.events = events;
  assert_json_string(&m.base, "{\"events\":[{}]}");
}

/* Bytes are standard base64 with padding, for 0 to 6 bytes and every byte value. */
static void test_base64(void **state)
{
  static const char *const want[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
  for (size_t n = 0; n < sizeof want / sizeof want[0]; n++) {
    FilerPb__Entry__ExtendedEntry x;
    filer_pb__entry__extended_entry__init(&x);
    x.key = (char *)"k";
    x.value = bin("foobar", n);
    FilerPb__Entry__ExtendedEntry *ext[] = { &x };
    FilerPb__Entry e;
    filer_pb__entry__init(&e);
    e.n_extended = 1;
    e.extended = ext;
    char expected[64];
    snprintf(expected, sizeof expected, "{\"extended\":{\"k\":\"%s\"}}", want[n]);
    assert_json_string(&e.base, expected);

    /* a singular bytes field: empty is the default and is left out */
    FilerPb__KvGetResponse kv;
    filer_pb__kv_get_response__init(&kv);
    kv.value = bin("foobar", n);
    if (n == 0)
      snprintf(expected, sizeof expected, "{}");
    else
      snprintf(expected, sizeof expected, "{\"value\":\"%s\"}", want[n]);
    assert_json_string(&kv.base, expected);
  }

  char all[256];
  for (int i = 0; i < 256; i++)
    all[i] = (char)i;
  FilerPb__KvGetResponse kv;
  filer_pb__kv_get_response__init(&kv);
  kv.value = bin(all, sizeof all);
  assert_json_string(&kv.base,
                     "{\"value\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"
                     "P0BBQkNERUZHSElKS0xN"
                     "Tk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+"
                     "AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOk"
                     "paanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/"
                     "g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7"
                     "/P3+/w==\"}");
}

/* Unknown fields (kept by protobuf-c) are not shown. */
static void test_unknown_fields_skipped(void **state)
{
  /* field 2 "e", then field 15 varint 1, which KvGetResponse does not define */
  static const uint8_t wire[] = { 0x12, 0x01, 'e', 0x78, 0x01 };
  ProtobufCMessage *m = protobuf_c_message_unpack(&filer_pb__kv_get_response__descriptor, NULL, sizeof wire, wire);
  assert_non_null(m);
  assert_int_equal(m->n_unknown_fields, 1);
  assert_json_string(m, "{\"error\":\"e\"}");
  protobuf_c_message_free_unpacked(m, NULL);
}

/* ---------------------------------------------------------------- oneof */

/* grpc.reflection.v1alpha.ServerReflectionRequest.message_request. */
static void test_reflection_oneof_canonical(void **state)
{
  Grpc__Reflection__V1alpha__ExtensionRequest ext;
  grpc__reflection__v1alpha__extension_request__init(&ext);
  Grpc__Reflection__V1alpha__ServerReflectionRequest m;
  grpc__reflection__v1alpha__server_reflection_request__init(&m);
  m.host = (char *)"h";
  m.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
  m.file_containing_extension = &ext;
  assert_json_equal(&m.base, "{\"host\":\"h\",\"fileContainingExtension\":{}}");
  assert_wire_consistent(&m.base);

  grpc__reflection__v1alpha__server_reflection_request__init(&m);
  m.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  m.file_containing_symbol = (char *)"filer_pb.SeaweedFiler";
  assert_json_equal(&m.base, "{\"fileContainingSymbol\":\"filer_pb.SeaweedFiler\"}");
  assert_wire_consistent(&m.base);

  /* a selected member is shown even when it holds the default value */
  m.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  m.list_services = (char *)"";
  assert_json_equal(&m.base, "{\"listServices\":\"\"}");
  assert_wire_consistent(&m.base);

  /* a member whose case is not selected is not shown, whatever the union holds */
  m.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST__NOT_SET;
  m.list_services = (char *)"x";
  assert_json_string(&m.base, "{}");
}

/*
 * protobuf-c does not write a selected oneof string that still points at
 * protobuf_c_empty_string (the descriptor's default_value, what __init
 * stores), so the JSON leaves it out too.
 */
static void test_oneof_default_pointer(void **state)
{
  Grpc__Reflection__V1alpha__ServerReflectionRequest m;
  grpc__reflection__v1alpha__server_reflection_request__init(&m);
  m.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  m.list_services = (char *)protobuf_c_empty_string;
  assert_int_equal(protobuf_c_message_get_packed_size(&m.base), 0);
  assert_json_string(&m.base, "{}");

  m.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
  m.file_containing_extension = NULL;
  assert_json_string(&m.base, "{}");
}

/* ---------------------------------------------------------------- proto2 */

/* google.protobuf.FileDescriptorProto is proto2: optional fields with has_
 * flags are shown when set, even at their default, and required ones always. */
static void test_proto2_descriptor_canonical(void **state)
{
  static const char expected[] =
      "{\"name\":\"x.proto\",\"package\":\"\",\"messageType\":[{\"name\":\"M\",\"field\":[{\"name\":\"a_b\","
      "\"number\":1,\"label\":\"LABEL_OPTIONAL\",\"type\":\"TYPE_INT64\",\"jsonName\":\"aB\"},{\"name\":\"c\","
      "\"number\":0,\"label\":\"LABEL_REPEATED\"}],\"options\":{\"deprecated\":false,\"uninterpretedOption\":[{"
      "\"name\":[{"
      "\"namePart\":\"opt\",\"isExtension\":false}],\"positiveIntValue\":\"18446744073709551615\",\"negativeIntValue\":"
      "\"-9223372036854775808\",\"doubleValue\":0.1,\"stringValue\":\"\"},{\"identifierValue\":\"\",\"doubleValue\":"
      "\"NaN\"},"
      "{\"doubleValue\":\"-Infinity\"},{\"doubleValue\":1.0,\"aggregateValue\":\"a{b}\"}]}}],\"options\":{"
      "\"javaPackage\":"
      "\"com.x\",\"optimizeFor\":\"SPEED\"},\"syntax\":\"proto2\"}";

  Google__Protobuf__FieldDescriptorProto f1, f2;
  google__protobuf__field_descriptor_proto__init(&f1);
  f1.name = (char *)"a_b";
  f1.has_number = 1;
  f1.number = 1;
  f1.has_label = 1;
  f1.label = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL;
  f1.has_type = 1;
  f1.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT64;
  f1.json_name = (char *)"aB";
  google__protobuf__field_descriptor_proto__init(&f2);
  f2.name = (char *)"c";
  f2.has_number = 1;
  f2.number = 0;
  f2.has_label = 1;
  f2.label = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED;
  f2.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING; /* has_type unset: not shown */
  Google__Protobuf__FieldDescriptorProto *fields[] = { &f1, &f2 };

  Google__Protobuf__UninterpretedOption__NamePart np;
  google__protobuf__uninterpreted_option__name_part__init(&np);
  np.name_part = (char *)"opt";
  np.is_extension = 0; /* required: shown although false */
  Google__Protobuf__UninterpretedOption__NamePart *nps[] = { &np };
  Google__Protobuf__UninterpretedOption u1, u2, u3, u4;
  google__protobuf__uninterpreted_option__init(&u1);
  u1.n_name = 1;
  u1.name = nps;
  u1.has_positive_int_value = 1;
  u1.positive_int_value = UINT64_MAX;
  u1.has_negative_int_value = 1;
  u1.negative_int_value = INT64_MIN;
  u1.has_double_value = 1;
  u1.double_value = 0.1;
  u1.has_string_value = 1;
  google__protobuf__uninterpreted_option__init(&u2);
  u2.has_double_value = 1;
  u2.double_value = NAN;
  u2.identifier_value = (char *)"";
  google__protobuf__uninterpreted_option__init(&u3);
  u3.has_double_value = 1;
  u3.double_value = -INFINITY;
  google__protobuf__uninterpreted_option__init(&u4);
  u4.has_double_value = 1;
  u4.double_value = 1.0;
  u4.aggregate_value = (char *)"a{b}";
  Google__Protobuf__UninterpretedOption *uos[] = { &u1, &u2, &u3, &u4 };

  Google__Protobuf__MessageOptions mo;
  google__protobuf__message_options__init(&mo);
  mo.has_deprecated = 1;
  mo.deprecated = 0;
  mo.n_uninterpreted_option = 4;
  mo.uninterpreted_option = uos;
  Google__Protobuf__DescriptorProto d;
  google__protobuf__descriptor_proto__init(&d);
  d.name = (char *)"M";
  d.n_field = 2;
  d.field = fields;
  d.options = &mo;
  Google__Protobuf__DescriptorProto *types[] = { &d };

  Google__Protobuf__FileOptions fo;
  google__protobuf__file_options__init(&fo);
  fo.java_package = (char *)"com.x";
  fo.has_optimize_for = 1;
  fo.optimize_for = GOOGLE__PROTOBUF__FILE_OPTIONS__OPTIMIZE_MODE__SPEED;
  Google__Protobuf__FileDescriptorProto m;
  google__protobuf__file_descriptor_proto__init(&m);
  m.name = (char *)"x.proto";
  m.package = (char *)""; /* set, to its default: a proto2 string has presence */
  m.n_message_type = 1;
  m.message_type = types;
  m.options = &fo;
  m.syntax = (char *)"proto2";
  assert_json_equal(&m.base, expected);
  assert_wire_consistent(&m.base);
}

/* ---------------------------------------------------------------- every type */

/*
 * fmtest.All, a message described by hand below because our .proto files use
 * neither floats nor most of the integer encodings nor non-string map keys. Its
 * schema, for the Python side:
 *
 *   enum SSEType { NONE = 0; SSE_C = 1; SSE_KMS = 2; SSE_S3 = 3; }
 *   message FileId { uint32 volume_id = 1; uint64 file_key = 2; fixed32 cookie = 3; }
 *   message PairEntry { string key = 1; string value = 2; }
 *   message All {
 *     float f = 1; double d = 2; sint32 s32 = 3; sfixed32 sf32 = 4; sint64 s64 = 5;
 *     sfixed64 sf64 = 6; fixed64 fx64 = 7; uint64 u64 = 8; uint32 u32 = 9; int32 i32 = 10;
 *     int64 i64 = 11; repeated float rf = 12; repeated double rd = 13; repeated bool rb = 14;
 *     repeated SSEType rc = 15; repeated bytes rby = 16; repeated string rs = 17;
 *     repeated uint64 ru64 = 18; map<int32, string> by_int = 19; map<bool, sint64> by_bool = 20;
 *     map<uint64, SSEType> by_u64 = 21; map<string, FileId> by_name = 22;
 *     repeated PairEntry pair = 23; SSEType c = 24; bool b = 25; bytes by = 26; string s = 27;
 *     FileId inner = 28;
 *     oneof choice { int32 o_int = 29; string o_str = 30; FileId o_msg = 31; }
 *   }
 *
 * SSEType and FileId are filer_pb's, which have the same shape.
 */
typedef struct {
  ProtobufCMessage base;
  int32_t key;
  char *value;
} ByIntEntry;
typedef struct {
  ProtobufCMessage base;
  protobuf_c_boolean key;
  int64_t value;
} ByBoolEntry;
typedef struct {
  ProtobufCMessage base;
  uint64_t key;
  int value;
} ByU64Entry;
typedef struct {
  ProtobufCMessage base;
  char *key;
  FilerPb__FileId *value;
} ByNameEntry;
typedef struct {
  ProtobufCMessage base;
  char *key;
  char *value;
} PairEntry;

enum { ALL_CHOICE_NOT_SET = 0, ALL_CHOICE_O_INT = 29, ALL_CHOICE_O_STR = 30, ALL_CHOICE_O_MSG = 31 };

typedef struct {
  ProtobufCMessage base;
  float f;
  double d;
  int32_t s32;
  int32_t sf32;
  int64_t s64;
  int64_t sf64;
  uint64_t fx64;
  uint64_t u64;
  uint32_t u32;
  int32_t i32;
  int64_t i64;
  size_t n_rf;
  float *rf;
  size_t n_rd;
  double *rd;
  size_t n_rb;
  protobuf_c_boolean *rb;
  size_t n_rc;
  int *rc;
  size_t n_rby;
  ProtobufCBinaryData *rby;
  size_t n_rs;
  char **rs;
  size_t n_ru64;
  uint64_t *ru64;
  size_t n_by_int;
  ByIntEntry **by_int;
  size_t n_by_bool;
  ByBoolEntry **by_bool;
  size_t n_by_u64;
  ByU64Entry **by_u64;
  size_t n_by_name;
  ByNameEntry **by_name;
  size_t n_pair;
  PairEntry **pair;
  int c;
  protobuf_c_boolean b;
  ProtobufCBinaryData by;
  char *s;
  FilerPb__FileId *inner;
  uint32_t choice_case;
  union {
    int32_t o_int;
    char *o_str;
    FilerPb__FileId *o_msg;
  };
} All;

#define FIELD(st, nm, num, lab, typ, q, mem, desc, flags)                                                              \
  {                                                                                                                    \
    nm, num, PROTOBUF_C_LABEL_##lab, PROTOBUF_C_TYPE_##typ, q, offsetof(st, mem), desc, NULL, flags, 0, NULL, NULL     \
  }
#define SINGLE(nm, num, typ, desc) FIELD(All, #nm, num, NONE, typ, 0, nm, desc, 0)
#define REPEATED(nm, num, typ, desc) FIELD(All, #nm, num, REPEATED, typ, offsetof(All, n_##nm), nm, desc, 0)
#define ONEOF(nm, num, typ, desc)                                                                                      \
  FIELD(All, #nm, num, NONE, typ, offsetof(All, choice_case), nm, desc, PROTOBUF_C_FIELD_FLAG_ONEOF)
#define MESSAGE_DESC(cname, full, shortn, st, flds)                                                                    \
  static const ProtobufCMessageDescriptor cname = {                                                                    \
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,                                                                     \
    .name = full,                                                                                                      \
    .short_name = shortn,                                                                                              \
    .c_name = shortn,                                                                                                  \
    .package_name = "fmtest",                                                                                          \
    .sizeof_message = sizeof(st),                                                                                      \
    .n_fields = sizeof(flds) / sizeof(flds[0]),                                                                        \
    .fields = flds,                                                                                                    \
  }

#define ENTRY_FIELDS(cname, st, ktyp, vtyp, vdesc)                                                                     \
  static const ProtobufCFieldDescriptor cname[] = {                                                                    \
    FIELD(st, "key", 1, NONE, ktyp, 0, key, NULL, 0),                                                                  \
    FIELD(st, "value", 2, NONE, vtyp, 0, value, vdesc, 0),                                                             \
  }

ENTRY_FIELDS(by_int_fields, ByIntEntry, INT32, STRING, NULL);
ENTRY_FIELDS(by_bool_fields, ByBoolEntry, BOOL, SINT64, NULL);
ENTRY_FIELDS(by_u64_fields, ByU64Entry, UINT64, ENUM, &filer_pb__ssetype__descriptor);
ENTRY_FIELDS(by_name_fields, ByNameEntry, STRING, MESSAGE, &filer_pb__file_id__descriptor);
ENTRY_FIELDS(pair_fields, PairEntry, STRING, STRING, NULL);
MESSAGE_DESC(by_int_desc, "fmtest.All.ByIntEntry", "ByIntEntry", ByIntEntry, by_int_fields);
MESSAGE_DESC(by_bool_desc, "fmtest.All.ByBoolEntry", "ByBoolEntry", ByBoolEntry, by_bool_fields);
MESSAGE_DESC(by_u64_desc, "fmtest.All.ByU64Entry", "ByU64Entry", ByU64Entry, by_u64_fields);
MESSAGE_DESC(by_name_desc, "fmtest.All.ByNameEntry", "ByNameEntry", ByNameEntry, by_name_fields);
/* Looks like the entry of a map field `pair`, but is not nested in All: a list. */
MESSAGE_DESC(pair_desc, "fmtest.PairEntry", "PairEntry", PairEntry, pair_fields);

static const ProtobufCFieldDescriptor all_fields[] = {
  SINGLE(f, 1, FLOAT, NULL),
  SINGLE(d, 2, DOUBLE, NULL),
  SINGLE(s32, 3, SINT32, NULL),
  SINGLE(sf32, 4, SFIXED32, NULL),
  SINGLE(s64, 5, SINT64, NULL),
  SINGLE(sf64, 6, SFIXED64, NULL),
  SINGLE(fx64, 7, FIXED64, NULL),
  SINGLE(u64, 8, UINT64, NULL),
  SINGLE(u32, 9, UINT32, NULL),
  SINGLE(i32, 10, INT32, NULL),
  SINGLE(i64, 11, INT64, NULL),
  REPEATED(rf, 12, FLOAT, NULL),
  REPEATED(rd, 13, DOUBLE, NULL),
  REPEATED(rb, 14, BOOL, NULL),
  REPEATED(rc, 15, ENUM, &filer_pb__ssetype__descriptor),
  REPEATED(rby, 16, BYTES, NULL),
  REPEATED(rs, 17, STRING, NULL),
  REPEATED(ru64, 18, UINT64, NULL),
  REPEATED(by_int, 19, MESSAGE, &by_int_desc),
  REPEATED(by_bool, 20, MESSAGE, &by_bool_desc),
  REPEATED(by_u64, 21, MESSAGE, &by_u64_desc),
  REPEATED(by_name, 22, MESSAGE, &by_name_desc),
  REPEATED(pair, 23, MESSAGE, &pair_desc),
  SINGLE(c, 24, ENUM, &filer_pb__ssetype__descriptor),
  SINGLE(b, 25, BOOL, NULL),
  SINGLE(by, 26, BYTES, NULL),
  SINGLE(s, 27, STRING, NULL),
  SINGLE(inner, 28, MESSAGE, &filer_pb__file_id__descriptor),
  ONEOF(o_int, 29, INT32, NULL),
  ONEOF(o_str, 30, STRING, NULL),
  ONEOF(o_msg, 31, MESSAGE, &filer_pb__file_id__descriptor),
};
MESSAGE_DESC(all_desc, "fmtest.All", "All", All, all_fields);

static void all_init(All *m)
{
  memset(m, 0, sizeof *m);
  m->base.descriptor = &all_desc;
}

static void test_all_types_canonical(void **state)
{
  static const char expected[] =
      "{\"f\":0.1,\"d\":1e+300,\"s32\":-2147483648,\"sf32\":-1,\"s64\":\"-9223372036854775808\",\"sf64\":"
      "\"9223372036854775807\",\"fx64\":\"18446744073709551615\",\"u64\":\"1\",\"u32\":4294967295,\"i32\":-42,\"i64\":"
      "\"9007199254740992\",\"rf\":[0.1,1.0,-2.5,\"NaN\",\"Infinity\",\"-Infinity\",3.4028235e+38,1.4013e-45,0.0],"
      "\"rd\":["
      "0.1,1.0,-0.5,5e-324,1.7976931348623157e+308,123456789.125,0.0],\"rb\":[true,false],\"rc\":[\"NONE\",\"SSE_S3\","
      "7],"
      "\"rby\":[\"\",\"Zg==\",\"Zm8=\",\"Zm9v\",\"Zm9vYg==\",\"Zm9vYmE=\",\"Zm9vYmFy\",\"+/+/\"],\"rs\":[\"\",\"a\","
      "\"tab\\tnl\\n\"],\"ru64\":[\"0\",\"18446744073709551615\"],\"byInt\":{\"0\":\"\",\"-1\":\"minus\"},\"byBool\":{"
      "\"false\":\"0\",\"true\":\"-5\"},\"byU64\":{\"5\":9,\"18446744073709551615\":\"SSE_KMS\",\"0\":\"NONE\"},"
      "\"byName\":{\"y\":{},\"x\":{\"volumeId\":1}},\"pair\":[{\"key\":\"k\",\"value\":\"v\"}],\"c\":\"SSE_S3\",\"b\":"
      "true,"
      "\"by\":\"AA==\",\"s\":\"s\",\"inner\":{},\"oStr\":\"\"}";

  float rf[] = { 0.1f, 1.0f, -2.5f, NAN, INFINITY, -INFINITY, 3.4028234663852886e38f, 1e-45f, 0.0f };
  double rd[] = { 0.1, 1.0, -0.5, 5e-324, 1.7976931348623157e308, 123456789.125, 0.0 };
  protobuf_c_boolean rb[] = { 1, 0 };
  int rc[] = { 0, 3, 7 };
  ProtobufCBinaryData rby[] = { bin("", 0),     bin("f", 1),     bin("fo", 2),     bin("foo", 3),
                                bin("foob", 4), bin("fooba", 5), bin("foobar", 6), bin("\xfb\xff\xbf", 3) };
  char *rs[] = { (char *)"", (char *)"a", (char *)"tab\tnl\n" };
  uint64_t ru64[] = { 0, UINT64_MAX };

  ByIntEntry bi1 = { { &by_int_desc, 0, NULL }, -1, (char *)"minus" };
  ByIntEntry bi2 = { { &by_int_desc, 0, NULL }, 0, (char *)"" };
  ByIntEntry *by_int[] = { &bi1, &bi2 };
  ByBoolEntry bb1 = { { &by_bool_desc, 0, NULL }, 1, -5 };
  ByBoolEntry bb2 = { { &by_bool_desc, 0, NULL }, 0, 0 };
  ByBoolEntry *by_bool[] = { &bb1, &bb2 };
  ByU64Entry bu1 = { { &by_u64_desc, 0, NULL }, UINT64_MAX, 2 };
  ByU64Entry bu2 = { { &by_u64_desc, 0, NULL }, 0, 0 };
  ByU64Entry bu3 = { { &by_u64_desc, 0, NULL }, 5, 9 };
  ByU64Entry *by_u64[] = { &bu1, &bu2, &bu3 };
  FilerPb__FileId fx, fy, inner;
  filer_pb__file_id__init(&fx);
  fx.volume_id = 1;
  filer_pb__file_id__init(&fy);
  filer_pb__file_id__init(&inner);
  ByNameEntry bn1 = { { &by_name_desc, 0, NULL }, (char *)"x", &fx };
  ByNameEntry bn2 = { { &by_name_desc, 0, NULL }, (char *)"y", &fy };
  ByNameEntry *by_name[] = { &bn1, &bn2 };
  PairEntry p1 = { { &pair_desc, 0, NULL }, (char *)"k", (char *)"v" };
  PairEntry *pair[] = { &p1 };

  All m;
  all_init(&m);
  m.f = 0.1f;
  m.d = 1e300;
  m.s32 = INT32_MIN;
  m.sf32 = -1;
  m.s64 = INT64_MIN;
  m.sf64 = INT64_MAX;
  m.fx64 = UINT64_MAX;
  m.u64 = 1;
  m.u32 = UINT32_MAX;
  m.i32 = -42;
  m.i64 = INT64_C(1) << 53;
  m.n_rf = sizeof rf / sizeof rf[0];
  m.rf = rf;
  m.n_rd = sizeof rd / sizeof rd[0];
  m.rd = rd;
  m.n_rb = 2;
  m.rb = rb;
  m.n_rc = 3;
  m.rc = rc;
  m.n_rby = sizeof rby / sizeof rby[0];
  m.rby = rby;
  m.n_rs = 3;
  m.rs = rs;
  m.n_ru64 = 2;
  m.ru64 = ru64;
  m.n_by_int = 2;
  m.by_int = by_int;
  m.n_by_bool = 2;
  m.by_bool = by_bool;
  m.n_by_u64 = 3;
  m.by_u64 = by_u64;
  m.n_by_name = 2;
  m.by_name = by_name;
  m.n_pair = 1;
  m.pair = pair;
  m.c = 3;
  m.b = 1;
  m.by = bin("\x00", 1);
  m.s = (char *)"s";
  m.inner = &inner;
  m.choice_case = ALL_CHOICE_O_STR;
  m.o_str = (char *)"";
  assert_json_equal(&m.base, expected);
}

/* Floats print in their shortest round-trip form; NaN and infinities as strings. */
static void test_float_format(void **state)
{
  float rf[] = { 0.1f, 1.0f, NAN, -0.0f, 16777216.0f };
  double rd[] = { 0.1, 100.0, 1e21, -INFINITY };
  All m;
  all_init(&m);
  m.n_rf = sizeof rf / sizeof rf[0];
  m.rf = rf;
  m.n_rd = sizeof rd / sizeof rd[0];
  m.rd = rd;
  assert_json_string(&m.base, "{\"rf\":[0.1,1.0,\"NaN\",-0.0,16777216.0],\"rd\":[0.1,100.0,1e+21,\"-Infinity\"]}");

  /* -0.0 compares equal to 0: a singular one is the default and left out, as protobuf-c does */
  all_init(&m);
  m.d = -0.0;
  m.f = -0.0f;
  assert_json_string(&m.base, "{}");
}

/* A selected oneof member at its zero value is still shown. */
static void test_all_oneof_canonical(void **state)
{
  All m;
  all_init(&m);
  m.choice_case = ALL_CHOICE_O_INT;
  m.o_int = 0;
  assert_json_equal(&m.base, "{\"oInt\":0}");

  FilerPb__FileId id;
  filer_pb__file_id__init(&id);
  id.cookie = 1;
  all_init(&m);
  m.choice_case = ALL_CHOICE_O_MSG;
  m.o_msg = &id;
  assert_json_equal(&m.base, "{\"oMsg\":{\"cookie\":1}}");
}

/* A map key that repeats keeps the last value, as a protobuf parser does. */
static void test_map_duplicate_key(void **state)
{
  FilerPb__Entry__ExtendedEntry x1, x2;
  filer_pb__entry__extended_entry__init(&x1);
  x1.key = (char *)"k";
  x1.value = bin("a", 1);
  filer_pb__entry__extended_entry__init(&x2);
  x2.key = (char *)"k";
  x2.value = bin("b", 1);
  FilerPb__Entry__ExtendedEntry *ext[] = { &x1, NULL, &x2 };
  FilerPb__Entry e;
  filer_pb__entry__init(&e);
  e.n_extended = 3;
  e.extended = ext;
  assert_json_string(&e.base, "{\"extended\":{\"k\":\"Yg==\"}}");
}

/*
 * protobuf-c drops the map_entry option, so a map is recognised by shape and
 * name. fmtest.Lists { message OtherEntry { string key = 1; string value = 2; }
 * repeated OtherEntry items = 1; map<string, string> things = 2; }: only
 * `things` has the entry protoc generates for a map (ThingsEntry).
 */
typedef struct {
  ProtobufCMessage base;
  size_t n_items;
  PairEntry **items;
  size_t n_things;
  PairEntry **things;
} Lists;
MESSAGE_DESC(other_entry_desc, "fmtest.Lists.OtherEntry", "OtherEntry", PairEntry, pair_fields);
MESSAGE_DESC(things_entry_desc, "fmtest.Lists.ThingsEntry", "ThingsEntry", PairEntry, pair_fields);
static const ProtobufCFieldDescriptor lists_fields[] = {
  FIELD(Lists, "items", 1, REPEATED, MESSAGE, offsetof(Lists, n_items), items, &other_entry_desc, 0),
  FIELD(Lists, "things", 2, REPEATED, MESSAGE, offsetof(Lists, n_things), things, &things_entry_desc, 0),
};
MESSAGE_DESC(lists_desc, "fmtest.Lists", "Lists", Lists, lists_fields);

static void test_map_detection(void **state)
{
  PairEntry item = { { &other_entry_desc, 0, NULL }, (char *)"k", (char *)"v" };
  PairEntry thing = { { &things_entry_desc, 0, NULL }, (char *)"k", (char *)"v" };
  PairEntry *items[] = { &item };
  PairEntry *things[] = { &thing };
  Lists m = { { &lists_desc, 0, NULL }, 1, items, 1, things };
  assert_json_string(&m.base, "{\"items\":[{\"key\":\"k\",\"value\":\"v\"}],\"things\":{\"k\":\"v\"}}");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_subscribe_response_canonical),
    cmocka_unit_test(test_lookup_volume_map_canonical),
    cmocka_unit_test(test_create_entry_response_enum_canonical),
    cmocka_unit_test(test_list_entries_request_names_canonical),
    cmocka_unit_test(test_create_entry_request_condition_canonical),
    cmocka_unit_test(test_event_notification_presence),
    cmocka_unit_test(test_defaults_omitted),
    cmocka_unit_test(test_base64),
    cmocka_unit_test(test_unknown_fields_skipped),
    cmocka_unit_test(test_reflection_oneof_canonical),
    cmocka_unit_test(test_oneof_default_pointer),
    cmocka_unit_test(test_proto2_descriptor_canonical),
    cmocka_unit_test(test_all_types_canonical),
    cmocka_unit_test(test_float_format),
    cmocka_unit_test(test_all_oneof_canonical),
    cmocka_unit_test(test_map_duplicate_key),
    cmocka_unit_test(test_map_detection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
