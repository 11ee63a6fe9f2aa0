/* Unit tests for server/http_side.h with a real chunk store and MetaLogBuffer
 * (the server does not wire the latter in yet): /debug/logbuffer and the
 * buffer's /metrics families, a stalled connection that holds up nobody, and
 * a clean stop with a connection open. Requests go over a plain socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "chunk_store.h"
#include "error.h"
#include "http_side.h"
#include "log_buffer.h"

typedef struct fixture {
  char dir[64];
  fm_chunk_store *chunks;
  fm_logbuf *logbuf;
  fm_http_side *http;
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/fm_test_http_side.XXXXXX");
  if (mkdtemp(f->dir) == NULL) {
    free(f);
    return -1;
  }
  char vdir[96], err[FM_ERR_LEN] = "";
  snprintf(vdir, sizeof vdir, "%s/volumes", f->dir);
  if (fm_chunk_store_open(vdir, 0, NULL, &f->chunks, err, sizeof err) != 0 || fm_logbuf_new(NULL, &f->logbuf) != 0)
    return -1;
  fm_http_side_config cfg = {
    .ip = "127.0.0.1",
    .port = 0,
    .chunks = f->chunks,
    .logbuf = f->logbuf,
    .max_upload_bytes = 1024,
    .max_connections = 8,
  };
  if (fm_http_side_start(&cfg, &f->http, err, sizeof err) != 0) {
    fprintf(stderr, "fm_http_side_start: %s\n", err);
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
  fm_http_side_free(f->http);
  fm_logbuf_free(f->logbuf);
  fm_chunk_store_free(f->chunks);
  int rc = nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return rc == 0 ? 0 : -1;
}

static int connect_to(const fixture *f)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)fm_http_side_port(f->http)) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = { .tv_sec = 10 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* Sends an HTTP/1.0 GET and reads the whole answer; returns the status and
 * the body (caller frees). */
static int get(const fixture *f, const char *path, char **body)
{
  int fd = connect_to(f);
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
  assert_int_equal(write(fd, req, (size_t)n), n);
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap);
  assert_non_null(buf);
  ssize_t r;
  while ((r = read(fd, buf + len, cap - 1 - len)) > 0) {
    len += (size_t)r;
    if (len == cap - 1) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  close(fd);
  buf[len] = '\0';
  int status = 0;
  assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &status), 1);
  char *sep = strstr(buf, "\r\n\r\n");
  assert_non_null(sep);
  *body = strdup(sep + 4);
  free(buf);
  return status;
}

static void test_debug_logbuffer(void **state)
{
  fixture *f = *state;
  assert_int_equal(fm_logbuf_append(f->logbuf, 100, "abc", 3), 0);
  assert_int_equal(fm_logbuf_append(f->logbuf, 200, "defgh", 5), 0);
  fm_logbuf_set_flushed(f->logbuf, 100);
  char *body = NULL;
  assert_int_equal(get(f, "/debug/logbuffer", &body), 200);
  json_object *o = json_tokener_parse(body);
  assert_non_null(o);
  json_object *v;
  assert_true(json_object_object_get_ex(o, "events_appended", &v));
  assert_int_equal(json_object_get_int64(v), 2);
  assert_true(json_object_object_get_ex(o, "bytes_appended", &v));
  assert_int_equal(json_object_get_int64(v), 8);
  assert_true(json_object_object_get_ex(o, "newest_ts_ns", &v));
  assert_int_equal(json_object_get_int64(v), 200);
  assert_true(json_object_object_get_ex(o, "flushed_ts_ns", &v));
  assert_int_equal(json_object_get_int64(v), 100);
  assert_true(json_object_object_get_ex(o, "size_bytes", &v));
  assert_int_equal(json_object_get_int64(v), (int64_t)FM_LOGBUF_SIZE_DEFAULT);
  json_object_put(o);
  free(body);
}

static void test_metrics_logbuf(void **state)
{
  fixture *f = *state;
  assert_int_equal(fm_logbuf_append(f->logbuf, 1700000000123456789, "abc", 3), 0);
  char *body = NULL;
  assert_int_equal(get(f, "/metrics", &body), 200);
  assert_non_null(strstr(body, "# TYPE filermeta_logbuf_events_appended_total counter\n"
                               "filermeta_logbuf_events_appended_total 1\n"));
  assert_non_null(strstr(body, "\nfilermeta_logbuf_bytes_appended_total 3\n"));
  assert_non_null(strstr(body, "\nfilermeta_logbuf_events 1\n"));
  assert_non_null(strstr(body, "\nfilermeta_logbuf_newest_event_timestamp_seconds 1700000000.123456789\n"));
  assert_non_null(strstr(body, "\nfilermeta_logbuf_flushed_timestamp_seconds 0.000000000\n"));
  assert_non_null(strstr(body, "\nfilermeta_chunk_volumes 0\n"));
  /* no RPC server in this configuration: no RPC family */
  assert_null(strstr(body, "grpc_calls"));
  free(body);
}

/* A client that sent half its headers holds its own thread only. */
static void test_stalled_connection_blocks_nobody(void **state)
{
  fixture *f = *state;
  int stalled = connect_to(f);
  const char *half = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  assert_int_equal(write(stalled, half, strlen(half)), (ssize_t)strlen(half));
  char *body = NULL;
  assert_int_equal(get(f, "/healthz", &body), 200);
  assert_string_equal(body, "ok\n");
  free(body);
  fm_http_side_set_stopping(f->http);
  assert_int_equal(get(f, "/healthz", &body), 503);
  free(body);
  /* the stalled connection is still open: teardown must stop cleanly anyway */
  fm_http_side_free(f->http);
  f->http = NULL;
  close(stalled);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_debug_logbuffer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_metrics_logbuf, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stalled_connection_blocks_nobody, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
