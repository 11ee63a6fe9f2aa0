/* Unit tests for the bidi-streaming calls of common/rpc_client.h, against an
 * in-process fm_rpc_server on 127.0.0.1:0 with three bidi methods: Echo (one
 * answer per message, status OK at the client's half-close), Fail (a non-OK
 * status at the first message) and Hold (reads one message, never answers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "health.pb-c.h"
#include "rpc_client.h"
#include "rpc_methods.h"
#include "rpc_server.h"

/* ---------------------------------------------------------------- the server */

/* Echo: answers each request with status = the length of its `service` (0..3). */
static void echo_request(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  if (msg == NULL) { /* the client half-closed */
    fm_rpc_call_finish(call, GRPC_STATUS_OK, "");
    return;
  }
  const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)msg;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)strlen(req->service);
  fm_rpc_call_send(call, &resp.base, 0);
}

static void echo_sent(fm_rpc_call *call, bool ok)
{
  if (ok)
    fm_rpc_call_recv_next(call);
}

static void fail_request(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)msg;
  fm_rpc_call_finishf(call, GRPC_STATUS_INVALID_ARGUMENT, "refused: %s", req != NULL ? req->service : "(none)");
}

static void hold_request(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  (void)call;
  (void)msg;
}

static fm_rpc_method methods[] = {
  { .path = "/test.Bidi/Echo",
    .kind = FM_RPC_BIDI_STREAMING,
    .request = &grpc__health__v1__health_check_request__descriptor,
    .on_request = echo_request,
    .on_sent = echo_sent },
  { .path = "/test.Bidi/Fail",
    .kind = FM_RPC_BIDI_STREAMING,
    .request = &grpc__health__v1__health_check_request__descriptor,
    .on_request = fail_request },
  { .path = "/test.Bidi/Hold",
    .kind = FM_RPC_BIDI_STREAMING,
    .request = &grpc__health__v1__health_check_request__descriptor,
    .on_request = hold_request },
};

typedef struct fixture {
  fm_rpc_methods *methods;
  fm_rpc_server *srv;
  fm_rpc_client *client;
} fixture;

static int setup(void **state)
{
  static fixture f;
  char err[FM_ERR_LEN], target[64];
  memset(&f, 0, sizeof f);
  assert_int_equal(fm_rpc_methods_new(&f.methods), 0);
  assert_int_equal(fm_rpc_methods_add_all(f.methods, methods, sizeof methods / sizeof methods[0], NULL), 0);
  fm_rpc_server_config cfg = { .addr = "127.0.0.1:0", .threads = 1 };
  assert_int_equal(fm_rpc_server_new(&cfg, f.methods, &f.srv, err, sizeof err), 0);
  assert_int_equal(fm_rpc_server_start(f.srv), 0);
  snprintf(target, sizeof target, "127.0.0.1:%d", fm_rpc_server_port(f.srv));
  assert_int_equal(fm_rpc_client_new(target, &f.client), 0);
  *state = &f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  fm_rpc_client_free(f->client);
  fm_rpc_server_shutdown(f->srv, 1000);
  fm_rpc_server_free(f->srv);
  fm_rpc_methods_free(f->methods);
  return 0;
}

/* ---------------------------------------------------------------- helpers */

static int send_service(fm_rpc_bidi *b, const char *service)
{
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(uintptr_t)service;
  return fm_rpc_bidi_send(b, &req.base);
}

/* Receives one message and returns its status, or -1 at the end of the stream. */
static int recv_status(fm_rpc_bidi *b)
{
  ProtobufCMessage *m = NULL;
  assert_int_equal(fm_rpc_bidi_recv(b, &grpc__health__v1__health_check_response__descriptor, &m), 0);
  if (m == NULL)
    return -1;
  int st = (int)((Grpc__Health__V1__HealthCheckResponse *)m)->status;
  protobuf_c_message_free_unpacked(m, NULL);
  return st;
}

/* ---------------------------------------------------------------- cases */

/* Messages each way, in lock-step and with two sends ahead; the half-close ends the stream with OK. */
static void test_echo(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  fm_rpc_bidi *b = NULL;
  assert_int_equal(fm_rpc_bidi_open(f->client, "/test.Bidi/Echo", 10000, &b, err, sizeof err), 0);
  assert_int_equal(send_service(b, "a"), 0);
  assert_int_equal(recv_status(b), 1);
  assert_int_equal(send_service(b, "bb"), 0);
  assert_int_equal(send_service(b, "ccc"), 0);
  assert_int_equal(recv_status(b), 2);
  assert_int_equal(recv_status(b), 3);
  assert_int_equal(fm_rpc_bidi_close_send(b), 0);
  assert_int_equal(send_service(b, "d"), FM_ECANCELED); /* half-closed: no more sends */
  assert_int_equal(recv_status(b), -1);
  assert_int_equal(recv_status(b), -1); /* the end stays the end */
  grpc_status_code st = GRPC_STATUS_UNKNOWN;
  assert_int_equal(fm_rpc_bidi_finish(b, &st, err, sizeof err), 0);
  assert_int_equal(st, GRPC_STATUS_OK);
}

/* A non-OK status from the server ends the stream; finish reports it with its message. */
static void test_server_error(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  fm_rpc_bidi *b = NULL;
  assert_int_equal(fm_rpc_bidi_open(f->client, "/test.Bidi/Fail", 10000, &b, err, sizeof err), 0);
  assert_int_equal(send_service(b, "x"), 0);
  assert_int_equal(recv_status(b), -1);
  assert_int_equal(send_service(b, "y"), FM_ECANCELED);
  grpc_status_code st = GRPC_STATUS_OK;
  assert_int_equal(fm_rpc_bidi_finish(b, &st, err, sizeof err), FM_EIO);
  assert_int_equal(st, GRPC_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(err, "INVALID_ARGUMENT"));
  assert_non_null(strstr(err, "refused: x"));
  assert_non_null(strstr(err, "/test.Bidi/Fail"));
}

/* A method nobody serves: the status is UNIMPLEMENTED, not a hang. */
static void test_unknown_method(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  fm_rpc_bidi *b = NULL;
  assert_int_equal(fm_rpc_bidi_open(f->client, "/test.Bidi/Nope", 10000, &b, err, sizeof err), 0);
  send_service(b, "x"); /* may already fail: the server can end the call first */
  assert_int_equal(recv_status(b), -1);
  grpc_status_code st = GRPC_STATUS_OK;
  assert_int_equal(fm_rpc_bidi_finish(b, &st, err, sizeof err), FM_EIO);
  assert_int_equal(st, GRPC_STATUS_UNIMPLEMENTED);
}

typedef struct receiver {
  fm_rpc_bidi *b;
  int result;
} receiver;

static void *receive_one(void *arg)
{
  receiver *r = arg;
  r->result = recv_status(r->b);
  return NULL;
}

/* Another thread's cancel ends a recv that waits for a message that never comes; finish returns 0 (the client's
 * own choice) with status CANCELLED. */
static void test_cancel_from_another_thread(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  fm_rpc_bidi *b = NULL;
  assert_int_equal(fm_rpc_bidi_open(f->client, "/test.Bidi/Hold", 0, &b, err, sizeof err), 0);
  assert_int_equal(send_service(b, "x"), 0);
  receiver r = { .b = b, .result = 99 };
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, receive_one, &r), 0);
  fm_rpc_bidi_cancel(b); /* before or during the recv: either way it must end */
  pthread_join(th, NULL);
  assert_int_equal(r.result, -1);
  grpc_status_code st = GRPC_STATUS_OK;
  assert_int_equal(fm_rpc_bidi_finish(b, &st, err, sizeof err), 0);
  assert_int_equal(st, GRPC_STATUS_CANCELLED);
}

/* Finishing a stream the server would keep open cancels it, and that is not an error. */
static void test_finish_open_stream(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  fm_rpc_bidi *b = NULL;
  assert_int_equal(fm_rpc_bidi_open(f->client, "/test.Bidi/Echo", 10000, &b, err, sizeof err), 0);
  assert_int_equal(send_service(b, "ab"), 0);
  assert_int_equal(recv_status(b), 2);
  grpc_status_code st = GRPC_STATUS_OK;
  assert_int_equal(fm_rpc_bidi_finish(b, &st, err, sizeof err), 0);
  assert_int_equal(st, GRPC_STATUS_CANCELLED);
  assert_int_equal(fm_rpc_bidi_finish(NULL, NULL, err, sizeof err), 0);
  /* the client serves the next call as before */
  assert_int_equal(fm_rpc_bidi_open(f->client, "/test.Bidi/Echo", 10000, &b, err, sizeof err), 0);
  assert_int_equal(send_service(b, "abc"), 0);
  assert_int_equal(recv_status(b), 3);
  assert_int_equal(fm_rpc_bidi_close_send(b), 0);
  assert_int_equal(recv_status(b), -1);
  assert_int_equal(fm_rpc_bidi_finish(b, &st, err, sizeof err), 0);
  assert_int_equal(st, GRPC_STATUS_OK);
}

/* The deadline ends a stream nobody answers with DEADLINE_EXCEEDED. */
static void test_deadline(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  fm_rpc_bidi *b = NULL;
  assert_int_equal(fm_rpc_bidi_open(f->client, "/test.Bidi/Hold", 200, &b, err, sizeof err), 0);
  assert_int_equal(send_service(b, "x"), 0);
  assert_int_equal(recv_status(b), -1);
  grpc_status_code st = GRPC_STATUS_OK;
  assert_int_equal(fm_rpc_bidi_finish(b, &st, err, sizeof err), FM_EIO);
  assert_int_equal(st, GRPC_STATUS_DEADLINE_EXCEEDED);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_echo),
    cmocka_unit_test(test_server_error),
    cmocka_unit_test(test_unknown_method),
    cmocka_unit_test(test_cancel_from_another_thread),
    cmocka_unit_test(test_finish_open_stream),
    cmocka_unit_test(test_deadline),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
