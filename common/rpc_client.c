/* Blocking calls over gRPC core, completed on the client's own pluck queue:
 * unary (one batch with all six client ops), server-streaming (one receive
 * batch per message) and bidi streams (one batch per send or receive, with the
 * status op started at open so that it completes whenever the call ends). */
#include "rpc_client.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rpc_codec.h"
#include "rpc_core.h"

struct fm_rpc_client {
  grpc_channel *channel;
  grpc_completion_queue *cq;
};

int fm_rpc_client_new(const char *target, fm_rpc_client **out)
{
  fm_rpc_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return FM_ENOMEM;
  fm_rpc_core_init();
  static char k_max_recv[] = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  grpc_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.type = GRPC_ARG_INTEGER;
  arg.key = k_max_recv;
  arg.value.integer = -1;
  grpc_channel_args args = { 1, &arg };
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->channel = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  c->cq = grpc_completion_queue_create_for_pluck(NULL);
  *out = c;
  return 0;
}

void fm_rpc_client_free(fm_rpc_client *c)
{
  if (c == NULL)
    return;
  grpc_channel_destroy(c->channel);
  grpc_completion_queue_shutdown(c->cq);
  while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(c->cq);
  free(c);
  fm_rpc_core_shutdown();
}

/* A call to `path` on the client's queue; timeout_ms 0 means no deadline. */
static grpc_call *create_call(fm_rpc_client *c, const char *path, int64_t timeout_ms)
{
  gpr_timespec deadline =
      timeout_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN))
                     : gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, grpc_slice_from_static_string(path),
                                  NULL, deadline, NULL);
}

int fm_rpc_client_unary(fm_rpc_client *c, const char *path, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, ProtobufCMessage **resp,
                        grpc_status_code *status, char *err, size_t errlen)
{
  grpc_call *call = create_call(c, path, timeout_ms);
  grpc_byte_buffer *send = fm_rpc_encode(req);
  grpc_byte_buffer *recv = NULL;
  grpc_metadata_array md_initial, md_trailing;
  grpc_metadata_array_init(&md_initial);
  grpc_metadata_array_init(&md_trailing);
  grpc_status_code st = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.status = &st;
  ops[5].data.recv_status_on_client.status_details = &details;
  ops[5].data.recv_status_on_client.trailing_metadata = &md_trailing;

  int rc = 0;
  void *tag = &ops; /* any unique address */
  if (grpc_call_start_batch(call, ops, 6, tag, NULL) != GRPC_CALL_OK) {
    snprintf(err, errlen, "cannot start call %s", path);
    rc = FM_EIO;
  } else {
    grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (status != NULL)
      *status = st;
    if (st != GRPC_STATUS_OK) {
      snprintf(err, errlen, "%s: %s: %.*s", path, fm_rpc_status_name(st), (int)GRPC_SLICE_LENGTH(details),
               (const char *)GRPC_SLICE_START_PTR(details));
      rc = FM_EIO;
    } else if (recv == NULL || fm_rpc_decode(recv, resp_desc, NULL, resp) != 0) {
      snprintf(err, errlen, "%s: reply does not decode as %s", path, resp_desc->name);
      rc = FM_EDECODE;
    }
  }
  if (send != NULL)
    grpc_byte_buffer_destroy(send);
  if (recv != NULL)
    grpc_byte_buffer_destroy(recv);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&md_initial);
  grpc_metadata_array_destroy(&md_trailing);
  grpc_call_unref(call);
  return rc;
}

/* Runs one batch and waits for it on the client's queue. */
static bool run_batch(fm_rpc_client *c, grpc_call *call, const grpc_op *ops, size_t n)
{
  void *tag = (void *)ops;
  if (grpc_call_start_batch(call, ops, n, tag, NULL) != GRPC_CALL_OK)
    return false;
  return grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).success != 0;
}

struct fm_rpc_stream {
  fm_rpc_client *c;
  grpc_call *call;
  const char *path; /* static method path */
  grpc_metadata_array md_initial, md_trailing;
  bool ended; /* a read returned the end of the stream */
};

int fm_rpc_stream_open(fm_rpc_client *c, const char *path, const ProtobufCMessage *req, int64_t timeout_ms,
                       fm_rpc_stream **out, char *err, size_t errlen)
{
  fm_rpc_stream *s = calloc(1, sizeof *s);
  grpc_byte_buffer *send = fm_rpc_encode(req);
  if (s == NULL || send == NULL) {
    free(s);
    if (send != NULL)
      grpc_byte_buffer_destroy(send);
    snprintf(err, errlen, "out of memory opening %s", path);
    return FM_ENOMEM;
  }
  s->c = c;
  s->path = path;
  s->call = create_call(c, path, timeout_ms);
  grpc_metadata_array_init(&s->md_initial);
  grpc_metadata_array_init(&s->md_trailing);
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_initial;
  run_batch(c, s->call, ops, 4); /* a failure here shows up in the status */
  grpc_byte_buffer_destroy(send);
  *out = s;
  return 0;
}

int fm_rpc_stream_read(fm_rpc_stream *s, grpc_byte_buffer **msg)
{
  *msg = NULL;
  if (s->ended)
    return FM_ENOTFOUND;
  grpc_byte_buffer *recv = NULL;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &recv;
  if (!run_batch(s->c, s->call, &op, 1) || recv == NULL) {
    if (recv != NULL)
      grpc_byte_buffer_destroy(recv);
    s->ended = true; /* end of stream, or the call failed: the status says which */
    return FM_ENOTFOUND;
  }
  *msg = recv;
  return 0;
}

void fm_rpc_stream_cancel(fm_rpc_stream *s)
{
  grpc_call_cancel(s->call, NULL);
}

int fm_rpc_stream_close(fm_rpc_stream *s, grpc_status_code *status, char *err, size_t errlen, char *details,
                        size_t detailslen)
{
  if (!s->ended)
    grpc_call_cancel(s->call, NULL);
  grpc_status_code st = GRPC_STATUS_UNKNOWN;
  grpc_slice msg = grpc_empty_slice();
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.status = &st;
  op.data.recv_status_on_client.status_details = &msg;
  op.data.recv_status_on_client.trailing_metadata = &s->md_trailing;
  run_batch(s->c, s->call, &op, 1);
  if (status != NULL)
    *status = st;
  int rc = 0;
  if (st != GRPC_STATUS_OK) {
    snprintf(err, errlen, "%s: %s: %.*s", s->path, fm_rpc_status_name(st), (int)GRPC_SLICE_LENGTH(msg),
             (const char *)GRPC_SLICE_START_PTR(msg));
    rc = FM_EIO;
  }
  if (details != NULL && detailslen > 0)
    snprintf(details, detailslen, "%.*s", (int)GRPC_SLICE_LENGTH(msg), (const char *)GRPC_SLICE_START_PTR(msg));
  grpc_slice_unref(msg);
  grpc_metadata_array_destroy(&s->md_initial);
  grpc_metadata_array_destroy(&s->md_trailing);
  grpc_call_unref(s->call);
  free(s);
  return rc;
}

int fm_rpc_client_stream(fm_rpc_client *c, const char *path, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, fm_rpc_client_stream_fn fn,
                         void *arg, grpc_status_code *status, char *err, size_t errlen)
{
  fm_rpc_stream *s = NULL;
  int rc = fm_rpc_stream_open(c, path, req, timeout_ms, &s, err, errlen);
  if (rc != 0)
    return rc;
  bool stopped = false;
  grpc_byte_buffer *recv = NULL;
  while (fm_rpc_stream_read(s, &recv) == 0) {
    ProtobufCMessage *m = NULL;
    int drc = fm_rpc_decode(recv, resp_desc, NULL, &m);
    grpc_byte_buffer_destroy(recv);
    if (drc != 0) {
      snprintf(err, errlen, "%s: a response does not decode as %s", path, resp_desc->name);
      rc = FM_EDECODE;
      stopped = true;
      break;
    }
    bool more = fn(arg, m);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!more) {
      stopped = true;
      break;
    }
  }
  char why[FM_ERR_LEN];
  int crc = fm_rpc_stream_close(s, status, why, sizeof why, NULL, 0);
  if (rc == 0 && !stopped && crc != 0) {
    snprintf(err, errlen, "%s", why);
    rc = FM_EIO;
  }
  return rc;
}

/* ---------------------------------------------------------------- bidi streams */

struct fm_rpc_bidi {
  fm_rpc_client *c;
  grpc_call *call;
  char *path; /* for messages */
  grpc_metadata_array md_initial, md_trailing;
  grpc_status_code st;
  grpc_slice details;
  bool initial_received; /* the first recv asks for the server's initial metadata too */
  bool half_closed;
  bool ended;              /* a recv saw the end of the stream */
  atomic_bool cancelled;   /* the client cancelled (fm_rpc_bidi_cancel or finish) */
  char op_tag, status_tag; /* their addresses tag the one op batch in flight and the status batch */
};

int fm_rpc_bidi_open(fm_rpc_client *c, const char *path, int64_t timeout_ms, fm_rpc_bidi **out, char *err,
                     size_t errlen)
{
  fm_rpc_bidi *b = calloc(1, sizeof *b);
  char *p = strdup(path);
  if (b == NULL || p == NULL) {
    free(b);
    free(p);
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  b->c = c;
  b->path = p;
  b->call = create_call(c, path, timeout_ms);
  grpc_metadata_array_init(&b->md_initial);
  grpc_metadata_array_init(&b->md_trailing);
  b->st = GRPC_STATUS_UNKNOWN;
  b->details = grpc_empty_slice();
  atomic_init(&b->cancelled, false);

  /* The status op completes only when the call is over; it is collected by fm_rpc_bidi_finish. */
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.status = &b->st;
  op.data.recv_status_on_client.status_details = &b->details;
  op.data.recv_status_on_client.trailing_metadata = &b->md_trailing;
  bool status_started = grpc_call_start_batch(b->call, &op, 1, &b->status_tag, NULL) == GRPC_CALL_OK;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  if (!status_started || !run_batch(c, b->call, &op, 1)) {
    snprintf(err, errlen, "cannot start call %s", path);
    if (status_started) {
      grpc_call_cancel(b->call, NULL);
      grpc_completion_queue_pluck(c->cq, &b->status_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    grpc_slice_unref(b->details);
    grpc_metadata_array_destroy(&b->md_initial);
    grpc_metadata_array_destroy(&b->md_trailing);
    grpc_call_unref(b->call);
    free(b->path);
    free(b);
    return FM_EIO;
  }
  *out = b;
  return 0;
}

int fm_rpc_bidi_send(fm_rpc_bidi *b, const ProtobufCMessage *msg)
{
  if (b->half_closed || b->ended)
    return FM_ECANCELED;
  grpc_byte_buffer *bb = fm_rpc_encode(msg);
  if (bb == NULL)
    return FM_ENOMEM;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  bool ok = run_batch(b->c, b->call, &op, 1);
  grpc_byte_buffer_destroy(bb); /* kept until its batch completed */
  return ok ? 0 : FM_ECANCELED;
}

int fm_rpc_bidi_close_send(fm_rpc_bidi *b)
{
  if (b->half_closed || b->ended)
    return FM_ECANCELED;
  b->half_closed = true;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  return run_batch(b->c, b->call, &op, 1) ? 0 : FM_ECANCELED;
}

int fm_rpc_bidi_recv(fm_rpc_bidi *b, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
  *out = NULL;
  if (b->ended)
    return 0;
  grpc_byte_buffer *recv = NULL;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!b->initial_received) {
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &b->md_initial;
    b->initial_received = true;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n++].data.recv_message.recv_message = &recv;
  if (!run_batch(b->c, b->call, ops, n) || recv == NULL) {
    if (recv != NULL)
      grpc_byte_buffer_destroy(recv);
    b->ended = true; /* the status says how */
    return 0;
  }
  int rc = fm_rpc_decode(recv, desc, NULL, out);
  grpc_byte_buffer_destroy(recv);
  return rc == 0 ? 0 : FM_EDECODE;
}

void fm_rpc_bidi_cancel(fm_rpc_bidi *b)
{
  atomic_store(&b->cancelled, true);
  grpc_call_cancel(b->call, NULL);
}

int fm_rpc_bidi_finish(fm_rpc_bidi *b, grpc_status_code *status, char *err, size_t errlen)
{
  if (b == NULL)
    return 0;
  if (!b->ended)
    fm_rpc_bidi_cancel(b);
  grpc_completion_queue_pluck(b->c->cq, &b->status_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (status != NULL)
    *status = b->st;
  int rc = 0;
  if (b->st != GRPC_STATUS_OK && !atomic_load(&b->cancelled)) {
    snprintf(err, errlen, "%s: %s: %.*s", b->path, fm_rpc_status_name(b->st), (int)GRPC_SLICE_LENGTH(b->details),
             (const char *)GRPC_SLICE_START_PTR(b->details));
    rc = FM_EIO;
  }
  grpc_slice_unref(b->details);
  grpc_metadata_array_destroy(&b->md_initial);
  grpc_metadata_array_destroy(&b->md_trailing);
  grpc_call_unref(b->call);
  free(b->path);
  free(b);
  return rc;
}

const char *fm_rpc_status_name(grpc_status_code code)
{
  switch (code) {
  case GRPC_STATUS_OK:
    return "OK";
  case GRPC_STATUS_CANCELLED:
    return "CANCELLED";
  case GRPC_STATUS_UNKNOWN:
    return "UNKNOWN";
  case GRPC_STATUS_INVALID_ARGUMENT:
    return "INVALID_ARGUMENT";
  case GRPC_STATUS_DEADLINE_EXCEEDED:
    return "DEADLINE_EXCEEDED";
  case GRPC_STATUS_NOT_FOUND:
    return "NOT_FOUND";
  case GRPC_STATUS_ALREADY_EXISTS:
    return "ALREADY_EXISTS";
  case GRPC_STATUS_PERMISSION_DENIED:
    return "PERMISSION_DENIED";
  case GRPC_STATUS_UNAUTHENTICATED:
    return "UNAUTHENTICATED";
  case GRPC_STATUS_RESOURCE_EXHAUSTED:
    return "RESOURCE_EXHAUSTED";
  case GRPC_STATUS_FAILED_PRECONDITION:
    return "FAILED_PRECONDITION";
  case GRPC_STATUS_ABORTED:
    return "ABORTED";
  case GRPC_STATUS_OUT_OF_RANGE:
    return "OUT_OF_RANGE";
  case GRPC_STATUS_UNIMPLEMENTED:
    return "UNIMPLEMENTED";
  case GRPC_STATUS_INTERNAL:
    return "INTERNAL";
  case GRPC_STATUS_UNAVAILABLE:
    return "UNAVAILABLE";
  case GRPC_STATUS_DATA_LOSS:
    return "DATA_LOSS";
  case GRPC_STATUS__DO_NOT_USE:
    break;
  }
  return "UNKNOWN_STATUS";
}
