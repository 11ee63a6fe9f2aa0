/* Unit tests for common/rpc_codec.h: protobuf-c messages to and from gRPC
 * byte buffers, including fragmented buffers and undecodable bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "rpc_codec.h"

static int group_setup(void **state)
{
  grpc_init();
  return 0;
}

static int group_teardown(void **state)
{
  grpc_shutdown();
  return 0;
}

/* A configuration response with every kind of field set, including a
 * negative int32 (ten bytes on the wire) and a repeated string. */
static void fill_config(FilerPb__GetFilerConfigurationResponse *m, char **masters)
{
  filer_pb__get_filer_configuration_response__init(m);
  masters[0] = (char *)"m1:9333";
  masters[1] = (char *)"m2:9333";
  masters[2] = (char *)"";
  m->n_masters = 3;
  m->masters = masters;
  m->replication = (char *)"001";
  m->collection = (char *)"pictures";
  m->max_mb = 4;
  m->dir_buckets = (char *)"/buckets";
  m->cipher = 1;
  m->signature = -123456789;
  m->metrics_address = (char *)"pushgw:9091";
  m->metrics_interval_sec = 15;
  m->version = (char *)"30GB 3.80";
  m->cluster_id = (char *)"cluster-7";
  m->filer_group = (char *)"g1";
  m->major_version = 3;
  m->minor_version = 80;
}

static void assert_config_equal(const FilerPb__GetFilerConfigurationResponse *a,
                                const FilerPb__GetFilerConfigurationResponse *b)
{
  assert_int_equal(a->n_masters, b->n_masters);
  for (size_t i = 0; i < a->n_masters; i++)
    assert_string_equal(a->masters[i], b->masters[i]);
  assert_string_equal(a->replication, b->replication);
  assert_string_equal(a->collection, b->collection);
  assert_int_equal(a->max_mb, b->max_mb);
  assert_string_equal(a->dir_buckets, b->dir_buckets);
  assert_int_equal(a->cipher, b->cipher);
  assert_int_equal(a->signature, b->signature);
  assert_string_equal(a->metrics_address, b->metrics_address);
  assert_int_equal(a->metrics_interval_sec, b->metrics_interval_sec);
  assert_string_equal(a->version, b->version);
  assert_string_equal(a->cluster_id, b->cluster_id);
  assert_string_equal(a->filer_group, b->filer_group);
  assert_int_equal(a->major_version, b->major_version);
  assert_int_equal(a->minor_version, b->minor_version);
}

/* Reads a whole byte buffer into a malloc'ed copy; *len gets its size. */
static uint8_t *buffer_bytes(grpc_byte_buffer *bb, size_t *len)
{
  grpc_byte_buffer_reader r;
  assert_true(grpc_byte_buffer_reader_init(&r, bb));
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  *len = GRPC_SLICE_LENGTH(s);
  uint8_t *out = malloc(*len ? *len : 1);
  assert_non_null(out);
  memcpy(out, GRPC_SLICE_START_PTR(s), *len);
  grpc_slice_unref(s);
  return out;
}

static void test_ping_roundtrip(void **state)
{
  FilerPb__PingResponse m = FILER_PB__PING_RESPONSE__INIT;
  m.start_time_ns = 1700000000123456789LL;
  m.remote_time_ns = -1;
  m.stop_time_ns = INT64_MAX;
  grpc_byte_buffer *bb = fm_rpc_encode(&m.base);
  assert_non_null(bb);
  assert_int_equal(grpc_byte_buffer_length(bb), filer_pb__ping_response__get_packed_size(&m));

  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__ping_response__descriptor, NULL, &out), 0);
  assert_non_null(out);
  assert_ptr_equal(out->descriptor, &filer_pb__ping_response__descriptor);
  const FilerPb__PingResponse *got = (const FilerPb__PingResponse *)out;
  assert_true(got->start_time_ns == m.start_time_ns);
  assert_true(got->remote_time_ns == m.remote_time_ns);
  assert_true(got->stop_time_ns == m.stop_time_ns);
  protobuf_c_message_free_unpacked(out, NULL);
  grpc_byte_buffer_destroy(bb);
}

static void test_config_roundtrip(void **state)
{
  FilerPb__GetFilerConfigurationResponse m;
  char *masters[3];
  fill_config(&m, masters);
  grpc_byte_buffer *bb = fm_rpc_encode(&m.base);
  assert_non_null(bb);

  /* The buffer holds exactly what protobuf-c packs. */
  size_t want_len = filer_pb__get_filer_configuration_response__get_packed_size(&m);
  uint8_t *want = malloc(want_len);
  assert_non_null(want);
  assert_int_equal(filer_pb__get_filer_configuration_response__pack(&m, want), want_len);
  size_t got_len = 0;
  uint8_t *got_bytes = buffer_bytes(bb, &got_len);
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got_bytes, want, want_len);
  free(got_bytes);
  free(want);

  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__get_filer_configuration_response__descriptor, NULL, &out), 0);
  assert_config_equal((const FilerPb__GetFilerConfigurationResponse *)out, &m);
  protobuf_c_message_free_unpacked(out, NULL);
  grpc_byte_buffer_destroy(bb);
}

/* A received message may arrive as several slices; every split point must
 * decode to the same message. */
static void test_multi_slice(void **state)
{
  FilerPb__GetFilerConfigurationResponse m;
  char *masters[3];
  fill_config(&m, masters);
  size_t len = filer_pb__get_filer_configuration_response__get_packed_size(&m);
  uint8_t *bytes = malloc(len);
  assert_non_null(bytes);
  assert_int_equal(filer_pb__get_filer_configuration_response__pack(&m, bytes), len);
  assert_true(len > 20);

  for (size_t cut = 1; cut < len; cut++) {
    grpc_slice s[2];
    s[0] = grpc_slice_from_copied_buffer((const char *)bytes, cut);
    s[1] = grpc_slice_from_copied_buffer((const char *)bytes + cut, len - cut);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, 2);
    grpc_slice_unref(s[0]);
    grpc_slice_unref(s[1]);
    ProtobufCMessage *out = NULL;
    assert_int_equal(fm_rpc_decode(bb, &filer_pb__get_filer_configuration_response__descriptor, NULL, &out), 0);
    assert_config_equal((const FilerPb__GetFilerConfigurationResponse *)out, &m);
    protobuf_c_message_free_unpacked(out, NULL);
    grpc_byte_buffer_destroy(bb);
  }

  /* Three slices, one of them empty. */
  grpc_slice s[3];
  s[0] = grpc_slice_from_copied_buffer((const char *)bytes, 7);
  s[1] = grpc_slice_from_copied_buffer((const char *)bytes + 7, 0);
  s[2] = grpc_slice_from_copied_buffer((const char *)bytes + 7, len - 7);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(s, 3);
  for (size_t i = 0; i < 3; i++)
    grpc_slice_unref(s[i]);
  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__get_filer_configuration_response__descriptor, NULL, &out), 0);
  assert_config_equal((const FilerPb__GetFilerConfigurationResponse *)out, &m);
  protobuf_c_message_free_unpacked(out, NULL);
  grpc_byte_buffer_destroy(bb);
  free(bytes);
}

static void test_garbage(void **state)
{
  static const char garbage[] = "\xff\xff\xff\xff";
  ProtobufCMessage *const sentinel = (ProtobufCMessage *)(uintptr_t)0x1;
  ProtobufCMessage *out = sentinel;

  grpc_byte_buffer *bb = fm_rpc_buffer_from_bytes(garbage, 4);
  assert_non_null(bb);
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__ping_response__descriptor, NULL, &out), FM_EDECODE);
  assert_ptr_equal(out, sentinel);
  grpc_byte_buffer_destroy(bb);

  assert_int_equal(fm_rpc_decode_bytes(garbage, 4, &filer_pb__ping_response__descriptor, NULL, &out), FM_EDECODE);
  assert_ptr_equal(out, sentinel);

  /* The same bytes split over two slices take the joining path. */
  grpc_slice s[2] = { grpc_slice_from_copied_buffer(garbage, 2), grpc_slice_from_copied_buffer(garbage + 2, 2) };
  bb = grpc_raw_byte_buffer_create(s, 2);
  grpc_slice_unref(s[0]);
  grpc_slice_unref(s[1]);
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__ping_response__descriptor, NULL, &out), FM_EDECODE);
  assert_ptr_equal(out, sentinel);
  grpc_byte_buffer_destroy(bb);
}

/* A valid encoding cut short (inside a length-delimited string) must not decode. */
static void test_truncated(void **state)
{
  FilerPb__GetFilerConfigurationResponse m;
  char *masters[3];
  fill_config(&m, masters);
  size_t len = filer_pb__get_filer_configuration_response__get_packed_size(&m);
  uint8_t *bytes = malloc(len);
  assert_non_null(bytes);
  filer_pb__get_filer_configuration_response__pack(&m, bytes);
  /* Byte 0 is the tag of field 1 and byte 1 its length; stop inside the value. */
  assert_int_equal(bytes[0], (1 << 3) | 2);
  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode_bytes(bytes, 4, &filer_pb__get_filer_configuration_response__descriptor, NULL, &out),
                   FM_EDECODE);
  assert_null(out);
  free(bytes);
}

/* Field number 0 is invalid protobuf. An over-long tag ("80 00") smuggles it
 * past protobuf-c as an unknown field; it must be refused at any depth, since
 * it could not be read back once re-encoded. */
static void test_field_zero(void **state)
{
  static const struct {
    const char *what;
    const ProtobufCMessageDescriptor *desc;
    uint8_t bytes[8];
    size_t len;
  } cases[] = {
    { "short tag 0", &filer_pb__ping_response__descriptor, { 0x00, 0x00 }, 2 },
    { "over-long tag 0", &filer_pb__ping_response__descriptor, { 0x80, 0x00, 0x00 }, 3 },
    /* event_notification (2) holding field 0 */
    { "nested", &filer_pb__subscribe_metadata_response__descriptor, { 0x12, 0x03, 0x80, 0x00, 0x00 }, 5 },
    /* events (4, repeated) holding field 0 */
    { "repeated", &filer_pb__subscribe_metadata_response__descriptor, { 0x22, 0x03, 0x80, 0x00, 0x00 }, 5 },
    /* events[0].event_notification holding field 0 */
    { "two deep", &filer_pb__subscribe_metadata_response__descriptor, { 0x22, 0x05, 0x12, 0x03, 0x80, 0x00, 0x00 }, 7 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ProtobufCMessage *out = NULL;
    int rc = fm_rpc_decode_bytes(cases[i].bytes, cases[i].len, cases[i].desc, NULL, &out);
    if (rc != FM_EDECODE)
      fail_msg("%s: fm_rpc_decode_bytes = %d, want FM_EDECODE", cases[i].what, rc);
    assert_null(out);

    /* The same through a two-slice buffer. */
    grpc_slice sl[2] = { grpc_slice_from_copied_buffer((const char *)cases[i].bytes, 1),
                         grpc_slice_from_copied_buffer((const char *)cases[i].bytes + 1, cases[i].len - 1) };
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, 2);
    grpc_slice_unref(sl[0]);
    grpc_slice_unref(sl[1]);
    rc = fm_rpc_decode(bb, cases[i].desc, NULL, &out);
    grpc_byte_buffer_destroy(bb);
    if (rc != FM_EDECODE)
      fail_msg("%s: fm_rpc_decode = %d, want FM_EDECODE", cases[i].what, rc);
    assert_null(out);
  }
}

/* Unknown fields with a real number are fine: newer clients send them. */
static void test_unknown_field_accepted(void **state)
{
  /* field 15, varint 1; then stop_time_ns (3) = 5 */
  static const uint8_t bytes[] = { 0x78, 0x01, 0x18, 0x05 };
  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode_bytes(bytes, sizeof bytes, &filer_pb__ping_response__descriptor, NULL, &out), 0);
  assert_non_null(out);
  assert_true(((const FilerPb__PingResponse *)out)->stop_time_ns == 5);
  assert_int_equal(out->n_unknown_fields, 1);
  assert_int_equal(out->unknown_fields[0].tag, 15);
  protobuf_c_message_free_unpacked(out, NULL);
}

static void test_empty(void **state)
{
  /* A buffer with no slices at all. */
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(NULL, 0);
  assert_non_null(bb);
  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__ping_response__descriptor, NULL, &out), 0);
  assert_non_null(out);
  const FilerPb__PingResponse *p = (const FilerPb__PingResponse *)out;
  assert_true(p->start_time_ns == 0 && p->remote_time_ns == 0 && p->stop_time_ns == 0);
  protobuf_c_message_free_unpacked(out, NULL);
  grpc_byte_buffer_destroy(bb);

  /* One empty slice. */
  static const char nothing[1] = { 0 };
  bb = fm_rpc_buffer_from_bytes(nothing, 0);
  assert_non_null(bb);
  assert_int_equal(grpc_byte_buffer_length(bb), 0);
  out = NULL;
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__get_filer_configuration_response__descriptor, NULL, &out), 0);
  assert_non_null(out);
  const FilerPb__GetFilerConfigurationResponse *c = (const FilerPb__GetFilerConfigurationResponse *)out;
  assert_int_equal(c->n_masters, 0);
  assert_string_equal(c->version, "");
  protobuf_c_message_free_unpacked(out, NULL);
  grpc_byte_buffer_destroy(bb);

  /* An all-default message encodes to zero bytes. */
  FilerPb__PingResponse m = FILER_PB__PING_RESPONSE__INIT;
  bb = fm_rpc_encode(&m.base);
  assert_non_null(bb);
  assert_int_equal(grpc_byte_buffer_length(bb), 0);
  grpc_byte_buffer_destroy(bb);
}

static void test_buffer_from_bytes(void **state)
{
  FilerPb__PingResponse m = FILER_PB__PING_RESPONSE__INIT;
  m.start_time_ns = 42;
  m.stop_time_ns = 43;
  uint8_t bytes[64];
  size_t len = filer_pb__ping_response__pack(&m, bytes);
  assert_true(len > 0 && len < sizeof bytes);

  grpc_byte_buffer *bb = fm_rpc_buffer_from_bytes(bytes, len);
  assert_non_null(bb);
  /* The buffer holds a copy: clobbering the source must not change it. */
  uint8_t saved[64];
  memcpy(saved, bytes, len);
  memset(bytes, 0xff, len);
  size_t got_len = 0;
  uint8_t *got = buffer_bytes(bb, &got_len);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, saved, len);
  free(got);

  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__ping_response__descriptor, NULL, &out), 0);
  assert_true(((FilerPb__PingResponse *)out)->start_time_ns == 42);
  assert_true(((FilerPb__PingResponse *)out)->stop_time_ns == 43);
  protobuf_c_message_free_unpacked(out, NULL);
  grpc_byte_buffer_destroy(bb);
}

/* A counting allocator, to check that `alloc` is the one decode uses. */
static size_t alloc_calls;

static void *count_alloc(void *data, size_t size)
{
  alloc_calls++;
  return malloc(size);
}

static void count_free(void *data, void *p)
{
  free(p);
}

static void test_custom_allocator(void **state)
{
  ProtobufCAllocator a = { .alloc = count_alloc, .free = count_free, .allocator_data = NULL };
  FilerPb__GetFilerConfigurationResponse m;
  char *masters[3];
  fill_config(&m, masters);
  grpc_byte_buffer *bb = fm_rpc_encode(&m.base);
  assert_non_null(bb);
  alloc_calls = 0;
  ProtobufCMessage *out = NULL;
  assert_int_equal(fm_rpc_decode(bb, &filer_pb__get_filer_configuration_response__descriptor, &a, &out), 0);
  assert_true(alloc_calls > 0);
  assert_config_equal((const FilerPb__GetFilerConfigurationResponse *)out, &m);
  protobuf_c_message_free_unpacked(out, &a);
  grpc_byte_buffer_destroy(bb);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ping_roundtrip),
    cmocka_unit_test(test_config_roundtrip),
    cmocka_unit_test(test_multi_slice),
    cmocka_unit_test(test_garbage),
    cmocka_unit_test(test_truncated),
    cmocka_unit_test(test_field_zero),
    cmocka_unit_test(test_unknown_field_accepted),
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_buffer_from_bytes),
    cmocka_unit_test(test_custom_allocator),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
