/* Unit tests for common/descriptor_index.h over the compiled-in descriptor
 * set (and small hand-built sets), plus a check of filer.proto's wire
 * contract: the field numbers SeaweedFS clients depend on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.pb-c.h"
#include "descriptor_index.h"
#include "descriptor_set.h"
#include "error.h"

static int group_setup(void **state)
{
  fm_descriptor_index *idx = NULL;
  if (fm_descriptor_index_new(fm_descriptor_set, fm_descriptor_set_len, &idx) != 0 || idx == NULL)
    return -1;
  *state = idx;
  return 0;
}

static int group_teardown(void **state)
{
  fm_descriptor_index_free(*state);
  return 0;
}

/* Index of `name`, failing the test if it is missing. */
static size_t must_find_file(const fm_descriptor_index *idx, const char *name)
{
  int i = fm_descriptor_index_find_file(idx, name);
  if (i < 0)
    fail_msg("file %s is not in the descriptor set", name);
  return (size_t)i;
}

static void test_files_present(void **state)
{
  const fm_descriptor_index *idx = *state;
  static const char *const names[] = { "filer.proto", "health.proto", "reflection_v1alpha.proto",
                                       "reflection_v1.proto" };
  size_t n = fm_descriptor_index_file_count(idx);
  assert_true(n >= 4);
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    size_t i = must_find_file(idx, names[k]);
    assert_true(i < n);
    assert_string_equal(fm_descriptor_index_file_name(idx, i), names[k]);
  }
  assert_int_equal(fm_descriptor_index_find_file(idx, "nope.proto"), -1);
  assert_int_equal(fm_descriptor_index_find_file(idx, "filer"), -1);
  assert_int_equal(fm_descriptor_index_find_file(idx, ""), -1);
  assert_null(fm_descriptor_index_file_name(idx, n));
  size_t len = 12345;
  assert_null(fm_descriptor_index_file_bytes(idx, n, &len));
}

static void test_symbols(void **state)
{
  const fm_descriptor_index *idx = *state;
  static const struct {
    const char *symbol, *file;
    bool is_message;
  } cases[] = {
    { "filer_pb.SeaweedFiler", "filer.proto", false },
    { "filer_pb.SeaweedFiler.SubscribeMetadata", "filer.proto", false },
    { "filer_pb.SeaweedFiler.Ping", "filer.proto", false },
    { "filer_pb.SubscribeMetadataRequest", "filer.proto", true },
    { "filer_pb.SubscribeMetadataRequest.client_epoch", "filer.proto", false },
    { "filer_pb.SubscribeMetadataResponse", "filer.proto", true },
    { "filer_pb.WriteCondition", "filer.proto", true },
    { "filer_pb.WriteCondition.Clause", "filer.proto", true },
    { "filer_pb.WriteCondition.Clause.etags", "filer.proto", false },
    { "filer_pb.WriteCondition.Kind", "filer.proto", false },
    /* enum values sit beside their enum, as protobuf scopes them */
    { "filer_pb.WriteCondition.IF_EXISTS", "filer.proto", false },
    { "filer_pb.ENTRY_NAME_TOO_LONG", "filer.proto", false },
    { "grpc.health.v1.HealthCheckResponse.SERVING", "health.proto", false },
    { "filer_pb.FilerError", "filer.proto", false },
    { "filer_pb.FileId", "filer.proto", true },
    { "grpc.health.v1.Health", "health.proto", false },
    { "grpc.health.v1.Health.Check", "health.proto", false },
    { "grpc.health.v1.HealthCheckRequest", "health.proto", true },
    { "grpc.reflection.v1.ServerReflection", "reflection_v1.proto", false },
    { "grpc.reflection.v1alpha.ServerReflection", "reflection_v1alpha.proto", false },
    { "grpc.reflection.v1alpha.ServerReflectionRequest", "reflection_v1alpha.proto", true },
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    size_t want = must_find_file(idx, cases[k].file);
    /* Start from the wrong answer so an untouched flag is caught. */
    bool is_message = !cases[k].is_message;
    int got = fm_descriptor_index_find_symbol(idx, cases[k].symbol, &is_message);
    if (got != (int)want)
      fail_msg("%s: file index %d, want %zu (%s)", cases[k].symbol, got, want, cases[k].file);
    if (is_message != cases[k].is_message)
      fail_msg("%s: is_message %d, want %d", cases[k].symbol, is_message, cases[k].is_message);
    /* is_message may be NULL. */
    assert_int_equal(fm_descriptor_index_find_symbol(idx, cases[k].symbol, NULL), (int)want);
  }
}

static void test_unknown_symbols(void **state)
{
  const fm_descriptor_index *idx = *state;
  static const char *const unknown[] = {
    "filer_pb.NoSuchMessage",
    "",
    ".filer_pb.SeaweedFiler",
    "filer_pb.SeaweedFile",
    "filer_pb.SeaweedFilerX",
    "SeaweedFiler",
    "filer_pb.SubscribeMetadataRequest.no_such_field",
  };
  for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
    bool is_message = false;
    int got = fm_descriptor_index_find_symbol(idx, unknown[k], &is_message);
    if (got != -1)
      fail_msg("\"%s\" resolved to file %d, want -1", unknown[k], got);
  }
}

/* The re-packed bytes served to reflection clients must decode to the same file. */
static void test_file_bytes_decode(void **state)
{
  const fm_descriptor_index *idx = *state;
  size_t n = fm_descriptor_index_file_count(idx);
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    const uint8_t *bytes = fm_descriptor_index_file_bytes(idx, i, &len);
    assert_non_null(bytes);
    assert_true(len > 0);
    Google__Protobuf__FileDescriptorProto *f = google__protobuf__file_descriptor_proto__unpack(NULL, len, bytes);
    assert_non_null(f);
    assert_string_equal(f->name, fm_descriptor_index_file_name(idx, i));
    google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
  }
}

static void test_closure_without_deps(void **state)
{
  const fm_descriptor_index *idx = *state;
  size_t fi = must_find_file(idx, "filer.proto");
  size_t len = 0;
  const uint8_t *bytes = fm_descriptor_index_file_bytes(idx, fi, &len);
  Google__Protobuf__FileDescriptorProto *f = google__protobuf__file_descriptor_proto__unpack(NULL, len, bytes);
  assert_non_null(f);
  /* The premise of this test: filer.proto imports nothing. */
  assert_int_equal(f->n_dependency, 0);
  google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);

  size_t out[8] = { 99, 99, 99, 99, 99, 99, 99, 99 };
  assert_int_equal(fm_descriptor_index_closure(idx, fi, out, 8), 1);
  assert_int_equal(out[0], fi);
  assert_int_equal(out[1], 99);
  /* Nothing is written with cap 0, or for a file that does not exist. */
  assert_int_equal(fm_descriptor_index_closure(idx, fi, out, 0), 0);
  assert_int_equal(fm_descriptor_index_closure(idx, fm_descriptor_index_file_count(idx), out, 8), 0);
}

/* ---- wire contract of filer.proto ---- */

static const Google__Protobuf__DescriptorProto *find_message(const Google__Protobuf__FileDescriptorProto *f,
                                                             const char *name)
{
  for (size_t i = 0; i < f->n_message_type; i++)
    if (strcmp(f->message_type[i]->name, name) == 0)
      return f->message_type[i];
  fail_msg("message %s not in %s", name, f->name);
  return NULL;
}

static const Google__Protobuf__FieldDescriptorProto *find_field(const Google__Protobuf__DescriptorProto *m,
                                                                const char *name)
{
  for (size_t i = 0; i < m->n_field; i++)
    if (strcmp(m->field[i]->name, name) == 0)
      return m->field[i];
  fail_msg("field %s not in message %s", name, m->name);
  return NULL;
}

typedef struct field_number {
  const char *name;
  int32_t number;
} field_number;

static void assert_numbers(const Google__Protobuf__DescriptorProto *m, const field_number *want, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const Google__Protobuf__FieldDescriptorProto *fd = find_field(m, want[i].name);
    assert_true(fd->has_number);
    if (fd->number != want[i].number)
      fail_msg("%s.%s is field %d, want %d", m->name, want[i].name, fd->number, want[i].number);
  }
}

static void test_filer_wire_contract(void **state)
{
  const fm_descriptor_index *idx = *state;
  size_t fi = must_find_file(idx, "filer.proto");
  size_t len = 0;
  const uint8_t *bytes = fm_descriptor_index_file_bytes(idx, fi, &len);
  Google__Protobuf__FileDescriptorProto *f = google__protobuf__file_descriptor_proto__unpack(NULL, len, bytes);
  assert_non_null(f);
  assert_string_equal(f->package, "filer_pb");

  static const field_number req[] = {
    { "client_name", 1 },
    { "path_prefix", 2 },
    { "since_ns", 3 },
    { "signature", 4 },
    { "path_prefixes", 6 },
    { "client_id", 7 },
    { "until_ns", 8 },
    { "client_epoch", 9 },
    { "directories", 10 },
    { "client_supports_batching", 11 },
    { "client_supports_metadata_chunks", 12 },
    { "client_supports_idle_heartbeat", 13 },
  };
  const Google__Protobuf__DescriptorProto *m = find_message(f, "SubscribeMetadataRequest");
  assert_numbers(m, req, sizeof req / sizeof req[0]);
  assert_int_equal(find_field(m, "since_ns")->type, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT64);
  assert_int_equal(find_field(m, "client_epoch")->type, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32);
  assert_int_equal(find_field(m, "path_prefixes")->label,
                   GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED);

  static const field_number resp[] = {
    { "directory", 1 }, { "event_notification", 2 }, { "ts_ns", 3 },
    { "events", 4 },    { "log_file_refs", 5 },      { "flushed_ts_ns", 6 },
  };
  m = find_message(f, "SubscribeMetadataResponse");
  assert_numbers(m, resp, sizeof resp / sizeof resp[0]);
  assert_int_equal(find_field(m, "events")->label, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED);
  assert_string_equal(find_field(m, "events")->type_name, ".filer_pb.SubscribeMetadataResponse");

  /* The cookie is fixed32 on the wire, not a varint. */
  static const field_number fid[] = { { "volume_id", 1 }, { "file_key", 2 }, { "cookie", 3 } };
  m = find_message(f, "FileId");
  assert_numbers(m, fid, sizeof fid / sizeof fid[0]);
  const Google__Protobuf__FieldDescriptorProto *cookie = find_field(m, "cookie");
  assert_true(cookie->has_type);
  assert_int_equal(cookie->type, GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED32);

  google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
}

/* ---- hand-built descriptor sets ---- */

/* Packs `files` into a FileDescriptorSet; caller frees the result. */
static uint8_t *pack_set(Google__Protobuf__FileDescriptorProto **files, size_t n, size_t *len)
{
  Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  set.n_file = n;
  set.file = files;
  *len = google__protobuf__file_descriptor_set__get_packed_size(&set);
  uint8_t *buf = malloc(*len ? *len : 1);
  assert_non_null(buf);
  assert_int_equal(google__protobuf__file_descriptor_set__pack(&set, buf), *len);
  return buf;
}

/* a.proto imports b.proto and c.proto, b.proto imports c.proto: the closure
 * of a.proto names each of the three once, a.proto first. */
static void test_closure_diamond(void **state)
{
  Google__Protobuf__FileDescriptorProto a = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__FileDescriptorProto b = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__FileDescriptorProto c = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  char *a_deps[] = { (char *)"b.proto", (char *)"c.proto" };
  char *b_deps[] = { (char *)"c.proto" };
  a.name = (char *)"a.proto";
  a.n_dependency = 2;
  a.dependency = a_deps;
  b.name = (char *)"b.proto";
  b.n_dependency = 1;
  b.dependency = b_deps;
  c.name = (char *)"c.proto";
  /* c.proto first, so file order differs from dependency order. */
  Google__Protobuf__FileDescriptorProto *files[] = { &c, &b, &a };
  size_t len = 0;
  uint8_t *buf = pack_set(files, 3, &len);

  fm_descriptor_index *idx = NULL;
  assert_int_equal(fm_descriptor_index_new(buf, len, &idx), 0);
  assert_int_equal(fm_descriptor_index_file_count(idx), 3);
  size_t ia = must_find_file(idx, "a.proto"), ib = must_find_file(idx, "b.proto"), ic = must_find_file(idx, "c.proto");

  size_t out[8];
  size_t n = fm_descriptor_index_closure(idx, ia, out, 8);
  assert_int_equal(n, 3);
  assert_int_equal(out[0], ia);
  bool seen_b = false, seen_c = false;
  for (size_t k = 1; k < n; k++) {
    seen_b |= out[k] == ib;
    seen_c |= out[k] == ic;
  }
  assert_true(seen_b && seen_c);

  assert_int_equal(fm_descriptor_index_closure(idx, ib, out, 8), 2);
  assert_int_equal(out[0], ib);
  assert_int_equal(out[1], ic);
  assert_int_equal(fm_descriptor_index_closure(idx, ic, out, 8), 1);

  /* A short `out` is filled, not overrun. */
  size_t two[3] = { 77, 77, 77 };
  assert_int_equal(fm_descriptor_index_closure(idx, ia, two, 2), 2);
  assert_int_equal(two[0], ia);
  assert_int_equal(two[2], 77);
  fm_descriptor_index_free(idx);
  free(buf);
}

/* A file without a package: symbols have no leading dot, and nesting,
 * services and methods are still qualified. */
static void test_no_package_symbols(void **state)
{
  Google__Protobuf__FileDescriptorProto f = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__DescriptorProto top = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__DescriptorProto inner = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__ServiceDescriptorProto svc = GOOGLE__PROTOBUF__SERVICE_DESCRIPTOR_PROTO__INIT;
  Google__Protobuf__MethodDescriptorProto meth = GOOGLE__PROTOBUF__METHOD_DESCRIPTOR_PROTO__INIT;
  inner.name = (char *)"Inner";
  Google__Protobuf__DescriptorProto *nested[] = { &inner };
  top.name = (char *)"Top";
  top.n_nested_type = 1;
  top.nested_type = nested;
  meth.name = (char *)"Do";
  Google__Protobuf__MethodDescriptorProto *methods[] = { &meth };
  svc.name = (char *)"Svc";
  svc.n_method = 1;
  svc.method = methods;
  Google__Protobuf__DescriptorProto *msgs[] = { &top };
  Google__Protobuf__ServiceDescriptorProto *svcs[] = { &svc };
  f.name = (char *)"plain.proto";
  f.n_message_type = 1;
  f.message_type = msgs;
  f.n_service = 1;
  f.service = svcs;
  Google__Protobuf__FileDescriptorProto *files[] = { &f };
  size_t len = 0;
  uint8_t *buf = pack_set(files, 1, &len);

  fm_descriptor_index *idx = NULL;
  assert_int_equal(fm_descriptor_index_new(buf, len, &idx), 0);
  bool is_message = false;
  assert_int_equal(fm_descriptor_index_find_symbol(idx, "Top", &is_message), 0);
  assert_true(is_message);
  assert_int_equal(fm_descriptor_index_find_symbol(idx, "Top.Inner", &is_message), 0);
  assert_true(is_message);
  assert_int_equal(fm_descriptor_index_find_symbol(idx, "Svc", &is_message), 0);
  assert_false(is_message);
  assert_int_equal(fm_descriptor_index_find_symbol(idx, "Svc.Do", &is_message), 0);
  assert_false(is_message);
  assert_int_equal(fm_descriptor_index_find_symbol(idx, ".Top", NULL), -1);
  assert_int_equal(fm_descriptor_index_find_symbol(idx, "Inner", NULL), -1);
  fm_descriptor_index_free(idx);
  free(buf);
}

/* A set that names an import it does not contain is not closed: rejected. */
static void test_missing_dependency(void **state)
{
  Google__Protobuf__FileDescriptorProto f = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  char *deps[] = { (char *)"missing.proto" };
  f.name = (char *)"x.proto";
  f.n_dependency = 1;
  f.dependency = deps;
  Google__Protobuf__FileDescriptorProto *files[] = { &f };
  size_t len = 0;
  uint8_t *buf = pack_set(files, 1, &len);
  fm_descriptor_index *const sentinel = (fm_descriptor_index *)(uintptr_t)0x1;
  fm_descriptor_index *idx = sentinel;
  assert_int_equal(fm_descriptor_index_new(buf, len, &idx), FM_EDECODE);
  assert_ptr_equal(idx, sentinel);
  free(buf);
}

static void test_garbage(void **state)
{
  static const unsigned char garbage[] = { 0xff, 0xff, 0xff, 0xff };
  fm_descriptor_index *const sentinel = (fm_descriptor_index *)(uintptr_t)0x1;
  fm_descriptor_index *idx = sentinel;
  assert_int_equal(fm_descriptor_index_new(garbage, sizeof garbage, &idx), FM_EDECODE);
  assert_ptr_equal(idx, sentinel);
  /* A truncated copy of the real set does not decode either. */
  assert_true(fm_descriptor_set_len > 10);
  assert_int_equal(fm_descriptor_index_new(fm_descriptor_set, fm_descriptor_set_len - 3, &idx), FM_EDECODE);
  assert_ptr_equal(idx, sentinel);
}

/* An empty input is an empty FileDescriptorSet: no files, no symbols. */
static void test_empty_set(void **state)
{
  static const unsigned char none[1] = { 0 };
  fm_descriptor_index *idx = NULL;
  assert_int_equal(fm_descriptor_index_new(none, 0, &idx), 0);
  assert_non_null(idx);
  assert_int_equal(fm_descriptor_index_file_count(idx), 0);
  assert_int_equal(fm_descriptor_index_find_file(idx, "filer.proto"), -1);
  assert_int_equal(fm_descriptor_index_find_symbol(idx, "filer_pb.SeaweedFiler", NULL), -1);
  size_t out[2];
  assert_int_equal(fm_descriptor_index_closure(idx, 0, out, 2), 0);
  fm_descriptor_index_free(idx);
}

static void test_free_null(void **state)
{
  fm_descriptor_index_free(NULL);
  /* Reaching here without a crash is the test; ASan watches the rest. */
  assert_true(fm_descriptor_set_len > 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_files_present),
    cmocka_unit_test(test_symbols),
    cmocka_unit_test(test_unknown_symbols),
    cmocka_unit_test(test_file_bytes_decode),
    cmocka_unit_test(test_closure_without_deps),
    cmocka_unit_test(test_filer_wire_contract),
    cmocka_unit_test(test_closure_diamond),
    cmocka_unit_test(test_no_package_symbols),
    cmocka_unit_test(test_missing_dependency),
    cmocka_unit_test(test_garbage),
    cmocka_unit_test(test_empty_set),
    cmocka_unit_test(test_free_null),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
