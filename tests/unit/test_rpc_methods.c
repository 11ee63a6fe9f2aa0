/* Unit tests for common/rpc_methods.h: the sorted method table, lookup by
 * length-delimited path, path validation and the derived service list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rpc_methods.h"
#include "rpc_server.h"

static const fm_rpc_method m_ping = { .path = "/filer_pb.SeaweedFiler/Ping" };
static const fm_rpc_method m_pingpong = { .path = "/filer_pb.SeaweedFiler/PingPong" };
static const fm_rpc_method m_conf = { .path = "/filer_pb.SeaweedFiler/GetFilerConfiguration" };
static const fm_rpc_method m_check = { .path = "/grpc.health.v1.Health/Check" };
static const fm_rpc_method m_watch = { .path = "/grpc.health.v1.Health/Watch" };
static const fm_rpc_method m_refl = { .path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" };

static int setup(void **state)
{
  fm_rpc_methods *t = NULL;
  if (fm_rpc_methods_new(&t) != 0 || t == NULL)
    return -1;
  *state = t;
  return 0;
}

static int teardown(void **state)
{
  fm_rpc_methods_free(*state);
  return 0;
}

/* Looks a NUL-terminated path up by its length. */
static const fm_rpc_method *find(const fm_rpc_methods *t, const char *path)
{
  return fm_rpc_methods_find(t, path, strlen(path));
}

static void test_empty_table(void **state)
{
  fm_rpc_methods *t = *state;
  assert_null(find(t, "/filer_pb.SeaweedFiler/Ping"));
  assert_null(fm_rpc_methods_find(t, "", 0));
  assert_int_equal(fm_rpc_methods_service_count(t), 0);
  assert_null(fm_rpc_methods_service(t, 0));
}

static void test_add_and_find(void **state)
{
  fm_rpc_methods *t = *state;
  /* Added out of order, so the table has to sort. */
  assert_int_equal(fm_rpc_methods_add(t, &m_watch), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_ping), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_refl), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_conf), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_check), 0);
  assert_ptr_equal(find(t, m_ping.path), &m_ping);
  assert_ptr_equal(find(t, m_conf.path), &m_conf);
  assert_ptr_equal(find(t, m_check.path), &m_check);
  assert_ptr_equal(find(t, m_watch.path), &m_watch);
  assert_ptr_equal(find(t, m_refl.path), &m_refl);
  assert_null(find(t, "/grpc.health.v1.Health/List"));
  assert_null(find(t, "/filer_pb.SeaweedFiler/ping"));
}

/* gRPC hands the path over as a slice: the bytes after `len` are not part of it. */
static void test_find_is_length_delimited(void **state)
{
  fm_rpc_methods *t = *state;
  assert_int_equal(fm_rpc_methods_add(t, &m_ping), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_check), 0);

  char buf[64];
  memcpy(buf, "/filer_pb.SeaweedFiler/PingGARBAGE", sizeof "/filer_pb.SeaweedFiler/PingGARBAGE");
  size_t plen = strlen(m_ping.path);
  assert_ptr_equal(fm_rpc_methods_find(t, buf, plen), &m_ping);
  assert_null(fm_rpc_methods_find(t, buf, strlen(buf)));

  /* A buffer without any terminating NUL, sized exactly. */
  char *exact = malloc(plen);
  assert_non_null(exact);
  memcpy(exact, m_ping.path, plen);
  assert_ptr_equal(fm_rpc_methods_find(t, exact, plen), &m_ping);
  free(exact);

  /* An embedded NUL right after the path makes it longer, not equal. */
  char withnul[64];
  memcpy(withnul, m_check.path, strlen(m_check.path) + 1);
  assert_null(fm_rpc_methods_find(t, withnul, strlen(m_check.path) + 1));
}

/* Keys that are prefixes of stored paths, and stored paths that are prefixes
 * of keys, must not match. */
static void test_prefix_keys(void **state)
{
  fm_rpc_methods *t = *state;
  assert_int_equal(fm_rpc_methods_add(t, &m_ping), 0);
  assert_null(find(t, "/filer_pb.SeaweedFiler/Pin"));
  assert_null(find(t, "/filer_pb.SeaweedFiler/"));
  assert_null(find(t, "/filer_pb.SeaweedFiler/PingPong"));
  assert_null(find(t, "/filer_pb.SeaweedFiler/Ping/"));

  /* With both a path and its extension stored, each finds itself. */
  assert_int_equal(fm_rpc_methods_add(t, &m_pingpong), 0);
  assert_ptr_equal(find(t, m_ping.path), &m_ping);
  assert_ptr_equal(find(t, m_pingpong.path), &m_pingpong);
  assert_null(find(t, "/filer_pb.SeaweedFiler/PingP"));
  assert_null(find(t, "/filer_pb.SeaweedFiler/PingPongX"));
}

static void test_duplicate(void **state)
{
  fm_rpc_methods *t = *state;
  /* Same path, different struct: the first registration must stay. */
  static const fm_rpc_method other = { .path = "/filer_pb.SeaweedFiler/Ping", .kind = FM_RPC_BIDI_STREAMING };
  assert_int_equal(fm_rpc_methods_add(t, &m_ping), 0);
  assert_int_equal(fm_rpc_methods_add(t, &other), FM_EEXIST);
  assert_int_equal(fm_rpc_methods_add(t, &m_ping), FM_EEXIST);
  assert_ptr_equal(find(t, m_ping.path), &m_ping);
  assert_int_equal(fm_rpc_methods_service_count(t), 1);
}

static void test_invalid_paths(void **state)
{
  fm_rpc_methods *t = *state;
  static const char *const bad[] = { "", "x", "/a", "/a/", "//m", "/a/b/c", "a/b", "/", "//" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fm_rpc_method m = { .path = bad[i] };
    assert_false(fm_rpc_methods_valid_path(bad[i]));
    assert_int_equal(fm_rpc_methods_add(t, &m), FM_EINVAL);
  }
  assert_false(fm_rpc_methods_valid_path(NULL));
  /* Rejected paths leave nothing behind. */
  assert_int_equal(fm_rpc_methods_service_count(t), 0);
  assert_null(find(t, "/a/b/c"));

  assert_true(fm_rpc_methods_valid_path("/a/b"));
  assert_true(fm_rpc_methods_valid_path(m_refl.path));
}

static void test_services_sorted_distinct(void **state)
{
  fm_rpc_methods *t = *state;
  /* "grpc.health.v1.Health" is a prefix of "grpc.health.v1.HealthX", and
   * "Z.S" sorts before "a.S" in byte order. */
  static const fm_rpc_method extra[] = {
    { .path = "/grpc.health.v1.HealthX/Check" },
    { .path = "/Z.S/M" },
    { .path = "/a.S/M" },
  };
  assert_int_equal(fm_rpc_methods_add(t, &m_refl), 0);
  assert_int_equal(fm_rpc_methods_add(t, &extra[0]), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_watch), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_ping), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_check), 0);
  assert_int_equal(fm_rpc_methods_add(t, &extra[2]), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_conf), 0);
  assert_int_equal(fm_rpc_methods_add(t, &extra[1]), 0);

  static const char *const want[] = {
    "Z.S",
    "a.S",
    "filer_pb.SeaweedFiler",
    "grpc.health.v1.Health",
    "grpc.health.v1.HealthX",
    "grpc.reflection.v1alpha.ServerReflection",
  };
  size_t n = sizeof want / sizeof want[0];
  assert_int_equal(fm_rpc_methods_service_count(t), n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(fm_rpc_methods_service(t, i), want[i]);
  assert_null(fm_rpc_methods_service(t, n));
}

/* Enough methods to make the array grow several times, added in a scrambled
 * order; every one must still be found. */
static void test_many_methods(void **state)
{
  fm_rpc_methods *t = *state;
  enum { N = 200 };
  static fm_rpc_method ms[N];
  static char paths[N][32];
  for (size_t i = 0; i < N; i++) {
    snprintf(paths[i], sizeof paths[i], "/svc%zu.S/M%zu", i % 7, i);
    ms[i] = (fm_rpc_method){ .path = paths[i] };
  }
  /* 7 is coprime with N, so this visits every index once. */
  for (size_t k = 0; k < N; k++)
    assert_int_equal(fm_rpc_methods_add(t, &ms[(k * 7 + 3) % N]), 0);
  for (size_t i = 0; i < N; i++)
    assert_ptr_equal(find(t, paths[i]), &ms[i]);
  assert_int_equal(fm_rpc_methods_service_count(t), 7);
  for (size_t i = 0; i < 7; i++) {
    char want[16];
    snprintf(want, sizeof want, "svc%zu.S", i);
    assert_string_equal(fm_rpc_methods_service(t, i), want);
  }
}

/* Indexes follow path order and match what find returns; -1 when absent. */
static void test_index_and_at(void **state)
{
  fm_rpc_methods *t = *state;
  assert_int_equal(fm_rpc_methods_count(t), 0);
  assert_null(fm_rpc_methods_at(t, 0));
  assert_int_equal(fm_rpc_methods_find_index(t, m_ping.path, strlen(m_ping.path)), -1);
  assert_int_equal(fm_rpc_methods_add(t, &m_watch), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_ping), 0);
  assert_int_equal(fm_rpc_methods_add(t, &m_conf), 0);
  assert_int_equal(fm_rpc_methods_count(t), 3);
  /* "/filer_pb.SeaweedFiler/GetFilerConfiguration" < ".../Ping" < "/grpc..." */
  assert_ptr_equal(fm_rpc_methods_at(t, 0), &m_conf);
  assert_ptr_equal(fm_rpc_methods_at(t, 1), &m_ping);
  assert_ptr_equal(fm_rpc_methods_at(t, 2), &m_watch);
  assert_null(fm_rpc_methods_at(t, 3));
  for (size_t i = 0; i < 3; i++) {
    const char *p = fm_rpc_methods_at(t, i)->path;
    assert_int_equal(fm_rpc_methods_find_index(t, p, strlen(p)), (long)i);
  }
  assert_int_equal(fm_rpc_methods_find_index(t, m_check.path, strlen(m_check.path)), -1);
}

static void test_free_null(void **state)
{
  fm_rpc_methods_free(NULL);
  /* A fresh table with nothing added frees cleanly too (checked by ASan). */
  fm_rpc_methods *t = NULL;
  assert_int_equal(fm_rpc_methods_new(&t), 0);
  assert_non_null(t);
  fm_rpc_methods_free(t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
    T(test_empty_table),
    T(test_add_and_find),
    T(test_find_is_length_delimited),
    T(test_prefix_keys),
    T(test_duplicate),
    T(test_invalid_paths),
    T(test_services_sorted_distinct),
    T(test_many_methods),
    T(test_index_and_at),
    cmocka_unit_test(test_free_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
