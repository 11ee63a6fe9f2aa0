/* Unit tests for common/net_addr.h: joining and splitting host:port text, the
 * SeaweedFS filer-address to gRPC-target rule, and bind failure reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "net_addr.h"

static void test_join(void **state)
{
  char buf[64];
  assert_int_equal(fm_net_join("127.0.0.1", 80, buf, sizeof buf), 0);
  assert_string_equal(buf, "127.0.0.1:80");
  assert_int_equal(fm_net_join("localhost", 65535, buf, sizeof buf), 0);
  assert_string_equal(buf, "localhost:65535");
  /* IPv6 literals are bracketed so the port stays unambiguous. */
  assert_int_equal(fm_net_join("::1", 8080, buf, sizeof buf), 0);
  assert_string_equal(buf, "[::1]:8080");
  assert_int_equal(fm_net_join("fe80::1:2", 0, buf, sizeof buf), 0);
  assert_string_equal(buf, "[fe80::1:2]:0");
  /* An empty host means "any address". */
  assert_int_equal(fm_net_join("", 18888, buf, sizeof buf), 0);
  assert_string_equal(buf, ":18888");
}

static void test_join_truncation(void **state)
{
  char buf[32];
  /* "host:80" needs 8 bytes with its NUL: 8 fits, 7 does not. */
  assert_int_equal(fm_net_join("host", 80, buf, 8), 0);
  assert_string_equal(buf, "host:80");
  assert_int_equal(fm_net_join("host", 80, buf, 7), FM_ETOOBIG);
  /* The brackets count: "[::1]:80" needs 9. */
  assert_int_equal(fm_net_join("::1", 80, buf, 9), 0);
  assert_string_equal(buf, "[::1]:80");
  assert_int_equal(fm_net_join("::1", 80, buf, 8), FM_ETOOBIG);
  assert_int_equal(fm_net_join("host", 80, buf, 0), FM_ETOOBIG);
}

static void test_split(void **state)
{
  char host[64];
  int port = -1;
  assert_int_equal(fm_net_split("localhost:8888", host, sizeof host, &port), 0);
  assert_string_equal(host, "localhost");
  assert_int_equal(port, 8888);
  assert_int_equal(fm_net_split("10.0.0.1:0", host, sizeof host, &port), 0);
  assert_string_equal(host, "10.0.0.1");
  assert_int_equal(port, 0);
  assert_int_equal(fm_net_split("[::1]:80", host, sizeof host, &port), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 80);
  assert_int_equal(fm_net_split("[fe80::1%eth0]:65535", host, sizeof host, &port), 0);
  assert_string_equal(host, "fe80::1%eth0");
  assert_int_equal(port, 65535);
  assert_int_equal(fm_net_split(":18888", host, sizeof host, &port), 0);
  assert_string_equal(host, "");
  assert_int_equal(port, 18888);
}

static void test_split_invalid(void **state)
{
  char host[64];
  int port = 0;
  static const char *const bad[] = {
    "localhost",              /* no port */
    "localhost:",             /* empty port */
    "h:65536",                /* port too large */
    "h:99999999999999999999", /* port overflows long */
    "h:-1",                   /* negative port */
    "h:80x",                  /* trailing junk */
    "h:http",                 /* not a number */
    "[::1]",                  /* bracketed host, no port */
    "::1:80",                 /* unbracketed IPv6: ambiguous */
    "fe80::1:8080",           /* unbracketed IPv6: ambiguous */
    "h: 80",                  /* space before the port */
    "h:+80",                  /* sign before the port */
    "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(fm_net_split(bad[i], host, sizeof host, &port), FM_EINVAL);
}

static void test_split_host_buffer(void **state)
{
  char host[16];
  int port = 0;
  /* The host "abcdefghijklmno" is 15 bytes plus its NUL: it fits in 16, not in 15. */
  assert_int_equal(fm_net_split("abcdefghijklmno:1", host, 16, &port), 0);
  assert_string_equal(host, "abcdefghijklmno");
  assert_int_equal(port, 1);
  assert_int_equal(fm_net_split("abcdefghijklmno:1", host, 15, &port), FM_EINVAL);
}

static void test_filer_grpc_target(void **state)
{
  char buf[128];
  assert_int_equal(fm_net_filer_grpc_target("localhost:8888", buf, sizeof buf), 0);
  assert_string_equal(buf, "localhost:18888");
  assert_int_equal(fm_net_filer_grpc_target("h:8888.19999", buf, sizeof buf), 0);
  assert_string_equal(buf, "h:19999");
  assert_int_equal(fm_net_filer_grpc_target("[::1]:8888", buf, sizeof buf), 0);
  assert_string_equal(buf, "[::1]:18888");
  assert_int_equal(fm_net_filer_grpc_target("[::1]:8888.19000", buf, sizeof buf), 0);
  assert_string_equal(buf, "[::1]:19000");
  /* Dots in the host are not the port separator. */
  assert_int_equal(fm_net_filer_grpc_target("filer.example.com:8888", buf, sizeof buf), 0);
  assert_string_equal(buf, "filer.example.com:18888");
  assert_int_equal(fm_net_filer_grpc_target("10.1.2.3:8888.18889", buf, sizeof buf), 0);
  assert_string_equal(buf, "10.1.2.3:18889");
  /* The largest HTTP port whose +10000 is still a port. */
  assert_int_equal(fm_net_filer_grpc_target("h:55535", buf, sizeof buf), 0);
  assert_string_equal(buf, "h:65535");
}

static void test_filer_grpc_target_invalid(void **state)
{
  char buf[128];
  static const char *const bad[] = {
    "nohost",   "h:",           "h:60000", "h:55536",  "h:1.x",      "h:0",
    "h:8888.0", "h:8888.65536", "h:8888.", "h:.19999", "h:8888.1.2", "h:x",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = fm_net_filer_grpc_target(bad[i], buf, sizeof buf);
    if (rc != FM_EINVAL)
      fail_msg("fm_net_filer_grpc_target(\"%s\") = %d, want FM_EINVAL", bad[i], rc);
  }
}

static void test_filer_grpc_target_small_buffer(void **state)
{
  char buf[16];
  /* "localhost:18888" needs 16 bytes; 15 must fail rather than truncate. */
  assert_int_equal(fm_net_filer_grpc_target("localhost:8888", buf, 16), 0);
  assert_string_equal(buf, "localhost:18888");
  assert_int_not_equal(fm_net_filer_grpc_target("localhost:8888", buf, 15), 0);
}

/* Holds a listening socket on a loopback port, then asks why that port
 * cannot be bound. */
static void test_bind_reason_in_use(void **state)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t sl = sizeof sa;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  assert_int_equal(listen(fd, 4), 0);

  char addr[64], why[256];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
  why[0] = '\0';
  int rc = fm_net_bind_reason(addr, why, sizeof why);
  close(fd);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(why, "in use"));
}

static void test_bind_reason_ok(void **state)
{
  char why[256];
  /* Port 0 always binds. */
  assert_int_equal(fm_net_bind_reason("127.0.0.1:0", why, sizeof why), 0);
  assert_true(strlen(why) > 0);
}

static void test_bind_reason_errors(void **state)
{
  char why[256];
  why[0] = '\0';
  assert_int_equal(fm_net_bind_reason("nohost", why, sizeof why), FM_EINVAL);
  assert_true(strlen(why) > 0);
  /* 192.0.2.1 (TEST-NET-1) is never a local address, so bind fails without
   * any name lookup. */
  why[0] = '\0';
  assert_int_equal(fm_net_bind_reason("192.0.2.1:80", why, sizeof why), FM_EADDR);
  assert_true(strlen(why) > 0);
  /* A small `why` is truncated, not overrun. */
  char tiny[4];
  memset(tiny, 'x', sizeof tiny);
  assert_int_equal(fm_net_bind_reason("nohost", tiny, sizeof tiny), FM_EINVAL);
  assert_int_equal(tiny[3], '\0');
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_join),
    cmocka_unit_test(test_join_truncation),
    cmocka_unit_test(test_split),
    cmocka_unit_test(test_split_invalid),
    cmocka_unit_test(test_split_host_buffer),
    cmocka_unit_test(test_filer_grpc_target),
    cmocka_unit_test(test_filer_grpc_target_invalid),
    cmocka_unit_test(test_filer_grpc_target_small_buffer),
    cmocka_unit_test(test_bind_reason_in_use),
    cmocka_unit_test(test_bind_reason_ok),
    cmocka_unit_test(test_bind_reason_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
