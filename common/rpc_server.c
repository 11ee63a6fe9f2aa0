/*
 * The server side of the RPC layer.
 *
 * Each completion queue has one thread. A call is requested on a queue and all
 * its batches complete on that queue, so a call's callbacks never run
 * concurrently; other threads may still send or finish, which is why the
 * call's flags live under its own mutex. Tags are pointers to small structs
 * embedded in the call; their first field says which batch completed.
 */
#include "rpc_server.h"

#include <errno.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "net_addr.h"
#include "rpc_codec.h"
#include "rpc_core.h"

#define DEFAULT_MAX_RECV (4 * 1024 * 1024)
#define DEFAULT_REQUESTS_PER_CQ 32

/* Status codes 0 (OK) .. 16 (UNAUTHENTICATED): one count per code per method. */
#define NUM_CODES 17

typedef enum tag_kind {
  TAG_NEW,      /* grpc_server_request_call completed */
  TAG_RECV,     /* RECV_MESSAGE */
  TAG_SEND,     /* SEND_MESSAGE, or the final status batch */
  TAG_CLOSE,    /* RECV_CLOSE_ON_SERVER */
  TAG_SHUTDOWN, /* grpc_server_shutdown_and_notify */
} tag_kind;

typedef struct call_tag {
  tag_kind kind; /* first field: the completion says which batch this was */
  fm_rpc_call *call;
} call_tag;

typedef struct cq_worker {
  fm_rpc_server *srv;
  grpc_completion_queue *cq;
  pthread_t thread;
  bool started;
} cq_worker;

struct fm_rpc_server {
  grpc_server *server;
  const fm_rpc_methods *methods;
  cq_worker *workers;
  int nworkers;
  int requests_per_cq;
  int port;
  atomic_bool shutting_down;
  bool started;
  call_tag shutdown_tag;

  pthread_mutex_t mu; /* guards live list, ncalls and shutdown_notified */
  pthread_cond_t cv;
  bool shutdown_notified;
  fm_rpc_call *live;  /* calls between TAG_NEW and on_done */
  size_t ncalls;      /* calls not yet destroyed (holders may outlive on_done) */
  bool all_started;   /* every completion-queue thread is running */
  bool calls_stopped; /* fm_rpc_server_shutdown has run */

  /* counts[row * NUM_CODES + code]: row i is method i of the table (as it
   * was when the server was created), the last row every other path */
  atomic_uint_fast64_t *counts;
  size_t count_rows;
};

struct fm_rpc_call {
  call_tag t_new, t_recv, t_send, t_close;
  fm_rpc_server *srv;
  cq_worker *worker;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array request_md;
  const fm_rpc_method *method;
  size_t count_row; /* srv->counts row */
  void *user;
  atomic_int refs;

  pthread_mutex_t mu; /* guards everything below */
  int pending;        /* batches started and not yet completed */
  bool md_sent;       /* initial metadata is out (or in flight) */
  bool recv_busy, send_busy;
  bool status_started; /* the final status batch was started */
  bool finish_deferred;
  grpc_status_code deferred_code;
  char *deferred_msg;
  bool closed; /* RECV_CLOSE_ON_SERVER completed */
  bool done;   /* on_done ran (or is running) */
  int close_cancelled;
  bool keep_request; /* set by the handler inside on_request; CQ thread only */
  bool counted;      /* included in srv->ncalls */
  grpc_byte_buffer *recv_buf, *send_buf;
  grpc_slice status_details;
  bool has_status_details;
  char *peer;

  fm_rpc_call *prev, *next; /* srv->live */
};

/* ================================================================ calls */

static void call_destroy(fm_rpc_call *c)
{
  if (c->call != NULL)
    grpc_call_unref(c->call);
  if (c->counted) {
    /* the server's queues are released only once no call object is left */
    fm_rpc_server *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    if (--srv->ncalls == 0)
      pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
  }
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->request_md);
  if (c->recv_buf != NULL)
    grpc_byte_buffer_destroy(c->recv_buf);
  if (c->send_buf != NULL)
    grpc_byte_buffer_destroy(c->send_buf);
  if (c->has_status_details)
    grpc_slice_unref(c->status_details);
  free(c->deferred_msg);
  if (c->peer != NULL)
    gpr_free(c->peer);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

void fm_rpc_call_ref(fm_rpc_call *c)
{
  atomic_fetch_add(&c->refs, 1);
}

void fm_rpc_call_unref(fm_rpc_call *c)
{
  if (atomic_fetch_sub(&c->refs, 1) == 1)
    call_destroy(c);
}

static fm_rpc_call *call_new(cq_worker *w)
{
  fm_rpc_call *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->t_new = (call_tag){ TAG_NEW, c };
  c->t_recv = (call_tag){ TAG_RECV, c };
  c->t_send = (call_tag){ TAG_SEND, c };
  c->t_close = (call_tag){ TAG_CLOSE, c };
  c->srv = w->srv;
  c->worker = w;
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->mu, NULL);
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->request_md);
  return c;
}

/* Asks gRPC for the next incoming call on worker w's queue. */
static int request_call(cq_worker *w)
{
  fm_rpc_call *c = call_new(w);
  if (c == NULL)
    return FM_ENOMEM;
  grpc_call_error e =
      grpc_server_request_call(w->srv->server, &c->call, &c->details, &c->request_md, w->cq, w->cq, &c->t_new);
  if (e != GRPC_CALL_OK) {
    fm_log_error("grpc_server_request_call: error %d", (int)e);
    call_destroy(c);
    return FM_EIO;
  }
  return 0;
}

/* Starts a batch. Holds c->mu. */
static int start_batch_locked(fm_rpc_call *c, const grpc_op *ops, size_t n, call_tag *tag)
{
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
  if (e != GRPC_CALL_OK) {
    fm_log_error("grpc_call_start_batch(%d ops): error %d", (int)n, (int)e);
    return FM_EIO;
  }
  c->pending++;
  return 0;
}

/* Counts the end of call c with `code`. Each call comes here once: from
 * start_status_locked, or from maybe_done for a call that got no status. */
static void count_call(fm_rpc_call *c, grpc_status_code code)
{
  size_t i = (size_t)code < NUM_CODES ? (size_t)code : (size_t)GRPC_STATUS_UNKNOWN;
  atomic_fetch_add_explicit(&c->srv->counts[c->count_row * NUM_CODES + i], 1, memory_order_relaxed);
}

/* Starts the final batch: initial metadata if not yet sent, an optional reply
 * message (ownership taken), and the status. Holds c->mu. */
static int start_status_locked(fm_rpc_call *c, grpc_status_code code, const char *msg, grpc_byte_buffer *reply)
{
  count_call(c, code);
  grpc_op ops[3];
  size_t n = 0;
  memset(ops, 0, sizeof ops);
  if (!c->md_sent) {
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->md_sent = true;
  }
  if (reply != NULL) {
    c->send_buf = reply;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = reply;
  }
  c->status_details = grpc_slice_from_copied_string(msg != NULL ? msg : "");
  c->has_status_details = true;
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n++].data.send_status_from_server.status_details = &c->status_details;
  c->status_started = true;
  c->send_busy = true;
  int rc = start_batch_locked(c, ops, n, &c->t_send);
  if (rc != 0) {
    /* the client must still learn how the call ended: this needs no batch */
    c->send_busy = false;
    grpc_call_cancel_with_status(c->call, code, msg != NULL ? msg : "", NULL);
  }
  return rc;
}

int fm_rpc_call_finish(fm_rpc_call *c, grpc_status_code code, const char *message)
{
  int rc;
  pthread_mutex_lock(&c->mu);
  if (c->status_started || c->finish_deferred || c->closed) {
    rc = FM_ECANCELED;
  } else if (c->send_busy) {
    c->finish_deferred = true;
    c->deferred_code = code;
    c->deferred_msg = strdup(message != NULL ? message : "");
    rc = c->deferred_msg != NULL ? 0 : FM_ENOMEM;
  } else {
    rc = start_status_locked(c, code, message, NULL);
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int fm_rpc_call_finishf(fm_rpc_call *c, grpc_status_code code, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fm_rpc_call_finish(c, code, msg);
}

int fm_rpc_call_send_buffer(fm_rpc_call *c, grpc_byte_buffer *bb, uint32_t flags)
{
  if (bb == NULL)
    return FM_ENOMEM;
  int rc;
  pthread_mutex_lock(&c->mu);
  if (c->status_started || c->finish_deferred || c->closed) {
    rc = FM_ECANCELED;
  } else if (c->send_busy) {
    rc = FM_EBUSY;
  } else {
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->md_sent) {
      ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
      c->md_sent = true;
      /* gRPC 1.51's chttp2 starts no write for initial metadata sent with a hinted message: the stream can stall
       * there (seen in 1 of 6 runs, and in every ASan run). The first message goes unhinted. */
      flags &= ~(uint32_t)GRPC_WRITE_BUFFER_HINT;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].flags = flags;
    ops[n++].data.send_message.send_message = bb;
    c->send_buf = bb;
    c->send_busy = true;
    rc = start_batch_locked(c, ops, n, &c->t_send);
    if (rc != 0) {
      c->send_buf = NULL;
      c->send_busy = false;
    } else {
      bb = NULL; /* owned by the call until TAG_SEND */
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (bb != NULL)
    grpc_byte_buffer_destroy(bb);
  return rc;
}

int fm_rpc_call_send(fm_rpc_call *c, const ProtobufCMessage *msg, uint32_t flags)
{
  return fm_rpc_call_send_buffer(c, fm_rpc_encode(msg), flags);
}

int fm_rpc_call_reply(fm_rpc_call *c, const ProtobufCMessage *msg)
{
  grpc_byte_buffer *bb = fm_rpc_encode(msg);
  if (bb == NULL)
    return FM_ENOMEM;
  int rc;
  pthread_mutex_lock(&c->mu);
  if (c->status_started || c->finish_deferred || c->closed)
    rc = FM_ECANCELED;
  else if (c->send_busy)
    rc = FM_EBUSY;
  else
    rc = start_status_locked(c, GRPC_STATUS_OK, "", bb);
  if (rc == 0)
    bb = NULL;
  else if (c->send_buf == bb)
    c->send_buf = NULL; /* batch failed to start; we still own bb */
  pthread_mutex_unlock(&c->mu);
  if (bb != NULL)
    grpc_byte_buffer_destroy(bb);
  return rc;
}

/* Starts a RECV_MESSAGE batch. Holds c->mu. */
static int start_recv_locked(fm_rpc_call *c)
{
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_buf;
  c->recv_busy = true;
  int rc = start_batch_locked(c, &op, 1, &c->t_recv);
  if (rc != 0)
    c->recv_busy = false;
  return rc;
}

int fm_rpc_call_recv_next(fm_rpc_call *c)
{
  int rc;
  pthread_mutex_lock(&c->mu);
  if (c->closed || c->status_started)
    rc = FM_ECANCELED;
  else if (c->recv_busy)
    rc = FM_EBUSY;
  else
    rc = start_recv_locked(c);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

bool fm_rpc_call_cancelled(fm_rpc_call *c)
{
  pthread_mutex_lock(&c->mu);
  bool r = c->closed && c->close_cancelled;
  pthread_mutex_unlock(&c->mu);
  return r;
}

void fm_rpc_call_keep_request(fm_rpc_call *c)
{
  c->keep_request = true;
}

void fm_rpc_call_set_user(fm_rpc_call *c, void *user)
{
  c->user = user;
}

void *fm_rpc_call_user(const fm_rpc_call *c)
{
  return c->user;
}

void *fm_rpc_call_ctx(const fm_rpc_call *c)
{
  return c->method != NULL ? c->method->ctx : NULL;
}

fm_rpc_server *fm_rpc_call_server(const fm_rpc_call *c)
{
  return c->srv;
}

const char *fm_rpc_call_peer(fm_rpc_call *c)
{
  pthread_mutex_lock(&c->mu);
  if (c->peer == NULL)
    c->peer = grpc_call_get_peer(c->call);
  const char *p = c->peer;
  pthread_mutex_unlock(&c->mu);
  return p;
}

gpr_timespec fm_rpc_call_deadline(const fm_rpc_call *c)
{
  return c->details.deadline;
}

/* ================================================================ completions */

static void live_add(fm_rpc_server *srv, fm_rpc_call *c)
{
  pthread_mutex_lock(&srv->mu);
  c->prev = NULL;
  c->next = srv->live;
  if (srv->live != NULL)
    srv->live->prev = c;
  srv->live = c;
  pthread_mutex_unlock(&srv->mu);
}

static void live_remove(fm_rpc_server *srv, fm_rpc_call *c)
{
  pthread_mutex_lock(&srv->mu);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    srv->live = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (srv->live == NULL)
    pthread_cond_broadcast(&srv->cv); /* a shutdown may be waiting for this */
  pthread_mutex_unlock(&srv->mu);
}

/* Runs on_done once the client side is closed and no batch is pending, then
 * drops the layer's reference. */
static void maybe_done(fm_rpc_call *c)
{
  pthread_mutex_lock(&c->mu);
  bool now = c->closed && c->pending == 0 && !c->done;
  if (now)
    c->done = true;
  bool no_status = !c->status_started;
  pthread_mutex_unlock(&c->mu);
  if (!now)
    return;
  if (no_status)
    count_call(c, GRPC_STATUS_CANCELLED);
  live_remove(c->srv, c);
  if (c->method != NULL && c->method->on_done != NULL)
    c->method->on_done(c);
  fm_rpc_call_unref(c);
}

static void on_new_call(cq_worker *w, fm_rpc_call *c, bool ok)
{
  fm_rpc_server *srv = w->srv;
  if (!ok) {
    /* the server is shutting down: this request slot will never be filled */
    call_destroy(c);
    return;
  }
  bool stopping = atomic_load(&srv->shutting_down);
  if (!stopping)
    request_call(w); /* re-arm at once so the next call is not kept waiting */

  long at = fm_rpc_methods_find_index(srv->methods, (const char *)GRPC_SLICE_START_PTR(c->details.method),
                                      GRPC_SLICE_LENGTH(c->details.method));
  c->method = at >= 0 ? fm_rpc_methods_at(srv->methods, (size_t)at) : NULL;
  c->count_row = at >= 0 && (size_t)at < srv->count_rows - 1 ? (size_t)at : srv->count_rows - 1;
  pthread_mutex_lock(&srv->mu);
  srv->ncalls++;
  c->counted = true;
  pthread_mutex_unlock(&srv->mu);
  live_add(srv, c);
  pthread_mutex_lock(&c->mu);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  int rc = start_batch_locked(c, &op, 1, &c->t_close);
  if (rc != 0) {
    /* cannot happen on a fresh call; without a close batch the call could
     * never complete, so give it up now */
    pthread_mutex_unlock(&c->mu);
    live_remove(srv, c);
    fm_rpc_call_unref(c);
    return;
  }
  if (stopping) {
    start_status_locked(c, GRPC_STATUS_UNAVAILABLE, "server shutting down", NULL);
  } else if (c->method == NULL) {
    char msg[300];
    snprintf(msg, sizeof msg, "unknown method %.*s", (int)GRPC_SLICE_LENGTH(c->details.method),
             (const char *)GRPC_SLICE_START_PTR(c->details.method));
    start_status_locked(c, GRPC_STATUS_UNIMPLEMENTED, msg, NULL);
  } else {
    start_recv_locked(c);
  }
  pthread_mutex_unlock(&c->mu);
}

static void on_recv(fm_rpc_call *c, bool ok)
{
  pthread_mutex_lock(&c->mu);
  c->pending--;
  c->recv_busy = false;
  grpc_byte_buffer *bb = c->recv_buf;
  c->recv_buf = NULL;
  pthread_mutex_unlock(&c->mu);

  const fm_rpc_method *m = c->method;
  if (!ok) {
    /* the call is broken; the close batch reports why */
  } else if (bb == NULL) {
    if (m->kind == FM_RPC_BIDI_STREAMING)
      m->on_request(c, NULL);
    else
      fm_rpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "request message missing");
  } else {
    ProtobufCMessage *req = NULL;
    char why[300];
    int rc = fm_rpc_decode_request(bb, m->request, &req, why, sizeof why);
    if (rc == FM_EINVAL) {
      fm_rpc_call_finishf(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: %s", m->request->name, why);
    } else if (rc != 0) {
      fm_rpc_call_finishf(c, GRPC_STATUS_INVALID_ARGUMENT, "request does not decode as %s", m->request->name);
    } else {
      c->keep_request = false;
      m->on_request(c, req);
      if (!c->keep_request)
        fm_rpc_request_free(req);
    }
  }
  if (bb != NULL)
    grpc_byte_buffer_destroy(bb);
  maybe_done(c);
}

static void on_send(fm_rpc_call *c, bool ok)
{
  pthread_mutex_lock(&c->mu);
  c->pending--;
  c->send_busy = false;
  if (c->send_buf != NULL) {
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
  }
  bool notify = false;
  if (c->status_started) {
    /* the final batch completed; nothing more to tell the handler */
  } else if (c->finish_deferred) {
    c->finish_deferred = false;
    if (ok && !c->closed)
      start_status_locked(c, c->deferred_code, c->deferred_msg, NULL);
  } else {
    notify = true;
  }
  pthread_mutex_unlock(&c->mu);
  if (notify && c->method != NULL && c->method->on_sent != NULL)
    c->method->on_sent(c, ok);
  maybe_done(c);
}

static void on_close(fm_rpc_call *c)
{
  pthread_mutex_lock(&c->mu);
  c->pending--;
  c->closed = true;
  pthread_mutex_unlock(&c->mu);
  maybe_done(c);
}

/* Dispatches one completion. Runs on the queue's thread (or, for a queue whose
 * thread never started, on the thread draining it at shutdown). */
static void handle_event(cq_worker *w, grpc_event ev)
{
  fm_rpc_server *srv = w->srv;
  if (ev.type != GRPC_OP_COMPLETE)
    return;
  call_tag *tag = ev.tag;
  switch (tag->kind) {
  case TAG_NEW:
    on_new_call(w, tag->call, ev.success != 0);
    break;
  case TAG_RECV:
    on_recv(tag->call, ev.success != 0);
    break;
  case TAG_SEND:
    on_send(tag->call, ev.success != 0);
    break;
  case TAG_CLOSE:
    on_close(tag->call);
    break;
  case TAG_SHUTDOWN:
    pthread_mutex_lock(&srv->mu);
    srv->shutdown_notified = true;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    break;
  }
}

/* Runs w's queue until it is shut down and drained. */
static void drain(cq_worker *w)
{
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      return;
    handle_event(w, ev);
  }
}

static void *cq_thread(void *arg)
{
  drain(arg);
  return NULL;
}

/* ================================================================ server */

int fm_rpc_server_new(const fm_rpc_server_config *cfg, const fm_rpc_methods *methods, fm_rpc_server **out, char *err,
                      size_t errlen)
{
  int rc = FM_ENOMEM;
  fm_rpc_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return FM_ENOMEM;
  fm_rpc_core_init();
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->cv, NULL);
  srv->methods = methods;
  srv->shutdown_tag = (call_tag){ TAG_SHUTDOWN, NULL };
  atomic_init(&srv->shutting_down, false);
  srv->requests_per_cq = cfg->requests_per_cq > 0 ? cfg->requests_per_cq : DEFAULT_REQUESTS_PER_CQ;
  srv->nworkers = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (srv->nworkers < 1)
    srv->nworkers = 1;
  srv->count_rows = fm_rpc_methods_count(methods) + 1;
  srv->counts = calloc(srv->count_rows * NUM_CODES, sizeof *srv->counts);
  if (srv->counts == NULL)
    goto err;

  static char k_max_recv[] = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  static char k_max_send[] = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  /* gRPC sets SO_REUSEPORT by default, which would let a second server share
   * our port silently instead of failing with "address in use". */
  static char k_reuseport[] = GRPC_ARG_ALLOW_REUSEPORT;
  grpc_arg args[3];
  memset(args, 0, sizeof args);
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = k_max_recv;
  args[0].value.integer = cfg->max_recv_bytes > 0 ? cfg->max_recv_bytes : DEFAULT_MAX_RECV;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = k_max_send;
  args[1].value.integer = -1;
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = k_reuseport;
  args[2].value.integer = 0;
  grpc_channel_args ca = { 3, args };
  srv->server = grpc_server_create(&ca, NULL);
  if (srv->server == NULL)
    goto err;

  srv->workers = calloc((size_t)srv->nworkers, sizeof *srv->workers);
  if (srv->workers == NULL)
    goto err;
  for (int i = 0; i < srv->nworkers; i++) {
    srv->workers[i].srv = srv;
    srv->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->workers[i].cq, NULL);
  }

  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  srv->port = grpc_server_add_http2_port(srv->server, cfg->addr, creds);
  grpc_server_credentials_release(creds);
  if (srv->port <= 0) {
    char why[FM_ERR_LEN];
    fm_net_bind_reason(cfg->addr, why, sizeof why);
    snprintf(err, errlen, "cannot listen for gRPC on %s: %s", cfg->addr, why);
    rc = FM_EADDR;
    goto err;
  }
  *out = srv;
  return 0;
err:
  fm_rpc_server_free(srv);
  return rc;
}

int fm_rpc_server_port(const fm_rpc_server *srv)
{
  return srv->port;
}

int fm_rpc_server_start(fm_rpc_server *srv)
{
  grpc_server_start(srv->server);
  srv->started = true;
  for (int i = 0; i < srv->nworkers; i++) {
    cq_worker *w = &srv->workers[i];
    for (int j = 0; j < srv->requests_per_cq; j++) {
      int rc = request_call(w);
      if (rc != 0)
        return rc;
    }
    int e = pthread_create(&w->thread, NULL, cq_thread, w);
    if (e != 0) {
      fm_log_error("cannot start completion-queue thread: %s", strerror(e));
      return FM_EIO;
    }
    w->started = true;
  }
  srv->all_started = true;
  return 0;
}

bool fm_rpc_server_shutting_down(const fm_rpc_server *srv)
{
  return atomic_load(&srv->shutting_down);
}

/* Tells every open stream that the server is going away. */
static void end_streams(fm_rpc_server *srv)
{
  size_t n = 0, cap = 0;
  fm_rpc_call **calls = NULL;
  pthread_mutex_lock(&srv->mu);
  for (fm_rpc_call *c = srv->live; c != NULL; c = c->next) {
    if (c->method == NULL || c->method->kind == FM_RPC_UNARY)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      fm_rpc_call **grown = realloc(calls, cap * sizeof *grown);
      if (grown == NULL)
        break; /* the grace period and cancel_all_calls still end them */
      calls = grown;
    }
    fm_rpc_call_ref(c);
    calls[n++] = c;
  }
  pthread_mutex_unlock(&srv->mu);
  for (size_t i = 0; i < n; i++) {
    fm_rpc_call *c = calls[i];
    if (c->method->on_shutdown != NULL)
      c->method->on_shutdown(c);
    else
      fm_rpc_call_finish(c, GRPC_STATUS_UNAVAILABLE, "server shutting down");
    fm_rpc_call_unref(c);
  }
  free(calls);
}

/* Waits until the shutdown tag fired, or (if calls_only) until no call is
 * live, or until `deadline` passed; returns whether the wait was satisfied. */
/* At shutdown, how long connections may take to flush the statuses of calls that just ended before they are closed. */
#define STATUS_FLUSH_MS 200

static bool wait_shutdown(fm_rpc_server *srv, gpr_timespec deadline, bool calls_only)
{
  struct timespec ts;
  gpr_timespec rt = gpr_convert_clock_type(deadline, GPR_CLOCK_REALTIME);
  ts.tv_sec = rt.tv_sec;
  ts.tv_nsec = rt.tv_nsec;
  pthread_mutex_lock(&srv->mu);
  while (!srv->shutdown_notified && !(calls_only && srv->live == NULL)) {
    if (pthread_cond_timedwait(&srv->cv, &srv->mu, &ts) == ETIMEDOUT)
      break;
  }
  bool done = srv->shutdown_notified || (calls_only && srv->live == NULL);
  pthread_mutex_unlock(&srv->mu);
  return done;
}

void fm_rpc_server_shutdown(fm_rpc_server *srv, int64_t grace_ms)
{
  if (srv == NULL || srv->calls_stopped || srv->server == NULL)
    return;
  srv->calls_stopped = true;
  atomic_store(&srv->shutting_down, true);
  if (!srv->started) {
    /* a server that never started still needs the shutdown handshake; the
     * tag is collected when its queue is drained */
    grpc_server_shutdown_and_notify(srv->server, srv->workers[0].cq, &srv->shutdown_tag);
    return;
  }
  end_streams(srv);
  grpc_server_shutdown_and_notify(srv->server, srv->workers[0].cq, &srv->shutdown_tag);
  if (!srv->all_started) {
    /* a queue nobody reads cannot report anything: cancel, and let the
     * drain in fm_rpc_server_free collect what is left */
    grpc_server_cancel_all_calls(srv->server);
    return;
  }
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(grace_ms, GPR_TIMESPAN));
  /* The grace is for calls in progress. Idle client connections would hold
   * the shutdown notification until they close, so once no call is left
   * (or the grace is over) cancel_all_calls also disconnects them. */
  if (!wait_shutdown(srv, deadline, true)) {
    fm_log_warn("calls still running after %lld ms; cancelling them", (long long)grace_ms);
  } else {
    /* Every call has sent its status, but a status handed to the transport may not be on the wire yet, and
     * cancel_all_calls closes the connections at once: a client would see CANCELLED instead of the status (seen
     * under load with 20 streams ending UNAVAILABLE). Connections whose clients go away close by themselves; give
     * the rest a moment to flush before forcing them. */
    gpr_timespec flush =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(STATUS_FLUSH_MS, GPR_TIMESPAN));
    wait_shutdown(srv, gpr_time_cmp(flush, deadline) < 0 ? flush : deadline, false);
  }
  grpc_server_cancel_all_calls(srv->server);
  wait_shutdown(srv, gpr_inf_future(GPR_CLOCK_MONOTONIC), false);
}

/* Waits until every call object is gone (holders on other threads, such as
 * the filer's committer, must have released theirs), then shuts down, drains
 * and joins the completion queues. */
static void release_queues(fm_rpc_server *srv)
{
  if (srv->all_started) {
    pthread_mutex_lock(&srv->mu);
    while (srv->ncalls > 0)
      pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
  }
  for (int i = 0; i < srv->nworkers; i++)
    grpc_completion_queue_shutdown(srv->workers[i].cq);
  for (int i = 0; i < srv->nworkers; i++) {
    if (srv->workers[i].started) {
      pthread_join(srv->workers[i].thread, NULL);
      srv->workers[i].started = false;
    } else {
      /* never started: drain the queue here so that what it holds is released */
      drain(&srv->workers[i]);
    }
  }
}

void fm_rpc_server_free(fm_rpc_server *srv)
{
  if (srv == NULL)
    return;
  if (srv->server != NULL && srv->workers != NULL) {
    fm_rpc_server_shutdown(srv, 0);
    release_queues(srv);
    if (srv->live != NULL || srv->ncalls > 0)
      fm_log_error("rpc server freed with calls still referenced");
    grpc_server_destroy(srv->server);
  } else if (srv->server != NULL) {
    grpc_server_destroy(srv->server);
  }
  if (srv->workers != NULL) {
    for (int i = 0; i < srv->nworkers; i++)
      if (srv->workers[i].cq != NULL)
        grpc_completion_queue_destroy(srv->workers[i].cq);
    free(srv->workers);
  }
  free(srv->counts);
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->cv);
  free(srv);
  fm_rpc_core_shutdown();
}

void fm_rpc_server_each_count(const fm_rpc_server *srv, fm_rpc_count_fn fn, void *arg)
{
  for (size_t row = 0; row < srv->count_rows; row++) {
    const fm_rpc_method *m = fm_rpc_methods_at(srv->methods, row);
    const char *name = row < srv->count_rows - 1 && m != NULL ? m->path : FM_RPC_UNKNOWN_METHOD;
    for (size_t code = 0; code < NUM_CODES; code++) {
      uint64_t n = atomic_load_explicit(&srv->counts[row * NUM_CODES + code], memory_order_relaxed);
      if (n > 0)
        fn(arg, name, (grpc_status_code)code, n);
    }
  }
}
