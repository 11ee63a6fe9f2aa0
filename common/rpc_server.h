/* The thin server layer over gRPC core: completion-queue threads, per-call state,
 * dispatch through the method table, one send in flight per call, ordered shutdown.
 * Created and shut down by server/main.c; handlers run on the CQ threads. */
#ifndef FM_RPC_SERVER_H
#define FM_RPC_SERVER_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc_methods.h"

typedef struct fm_rpc_server fm_rpc_server;
typedef struct fm_rpc_call fm_rpc_call;

typedef enum fm_rpc_kind {
  FM_RPC_UNARY,            /* one request, one response */
  FM_RPC_SERVER_STREAMING, /* one request, a stream of responses */
  FM_RPC_BIDI_STREAMING,   /* a stream each way; the handler asks for each next request */
} fm_rpc_kind;

/*
 * A method handler. Callbacks run on the completion-queue thread that owns
 * the call, one at a time for a given call, except on_shutdown (see below).
 *
 * on_request: a decoded request (borrowed, valid until the callback returns).
 *   Unary: must lead, now or later from any thread, to exactly one
 *   fm_rpc_call_reply or fm_rpc_call_finish. Bidi: called once per message
 *   and once with req == NULL when the client half-closes; the next message
 *   is read only after fm_rpc_call_recv_next.
 * on_sent (streams, optional): the send started by fm_rpc_call_send* completed;
 *   ok == false means the call is broken and no further send will succeed.
 * on_shutdown (optional): the server is stopping; called from the shutting-down
 *   thread, concurrently with the call's own callbacks. Default for streams:
 *   fm_rpc_call_finish(UNAVAILABLE, "server shutting down").
 * on_done (optional): the call is over (status sent and the client closed, or
 *   the client cancelled / the deadline passed / the connection dropped).
 *   Always the last callback; release per-call state here.
 */
struct fm_rpc_method {
  const char *path; /* "/package.Service/Method" */
  fm_rpc_kind kind;
  const ProtobufCMessageDescriptor *request;
  void (*on_request)(fm_rpc_call *call, const ProtobufCMessage *req);
  void (*on_sent)(fm_rpc_call *call, bool ok);
  void (*on_shutdown)(fm_rpc_call *call);
  void (*on_done)(fm_rpc_call *call);
  void *ctx; /* handler context, returned by fm_rpc_call_ctx */
};

typedef struct fm_rpc_server_config {
  const char *addr;    /* "host:port"; port 0 picks a free port */
  int threads;         /* completion-queue threads; 0 = one per online core */
  int max_recv_bytes;  /* largest request message; 0 = 4 MiB */
  int requests_per_cq; /* calls requested ahead on each queue; 0 = 32 */
} fm_rpc_server_config;

/*
 * Creates a server bound to cfg->addr that dispatches through `methods`
 * (borrowed, must outlive the server). Does not start serving. Returns 0,
 * or FM_EADDR with a one-line reason in `err` when the address cannot be
 * bound. Caller frees with fm_rpc_server_free.
 */
int fm_rpc_server_new(const fm_rpc_server_config *cfg, const fm_rpc_methods *methods, fm_rpc_server **out, char *err,
                      size_t errlen);

/* The bound port (useful when cfg->addr asked for port 0). */
int fm_rpc_server_port(const fm_rpc_server *srv);

/* Starts the completion-queue threads and begins accepting calls. */
int fm_rpc_server_start(fm_rpc_server *srv);

/* True once fm_rpc_server_shutdown has begun. Any thread. */
bool fm_rpc_server_shutting_down(const fm_rpc_server *srv);

/*
 * Ordered shutdown, part one, from one thread: stop accepting calls, end open
 * streams (on_shutdown), grpc_server_shutdown_and_notify, wait up to grace_ms
 * for calls in progress, grpc_server_cancel_all_calls. The completion queues
 * keep running, so that threads holding call references (e.g. the filer
 * finishing queued mutations) can still complete and release them. Part two
 * is fm_rpc_server_free.
 */
void fm_rpc_server_shutdown(fm_rpc_server *srv, int64_t grace_ms);

/* Shuts down (if not yet), waits until every call reference is released,
 * drains and joins the completion queues, and releases the server. NULL is a
 * no-op. */
void fm_rpc_server_free(fm_rpc_server *srv);

/* ---- call counts (for /metrics) ---- */

/* The method label of calls to paths not in the method table: one label for
 * all of them keeps the number of series bounded whatever clients send. */
#define FM_RPC_UNKNOWN_METHOD "unknown"

/* One (method, status code) pair and its count; `method` is borrowed for the call. */
typedef void (*fm_rpc_count_fn)(void *arg, const char *method, grpc_status_code code, uint64_t count);

/*
 * Calls fn for every (method, code) pair whose count is not zero: methods in
 * path order, then FM_RPC_UNKNOWN_METHOD; codes ascending. Each call counts
 * once: with the status it was sent, or as CANCELLED when it ended without
 * one (the client cancelled, the deadline passed, the connection dropped).
 * Any thread; each count is read atomically, the set is not a snapshot.
 */
void fm_rpc_server_each_count(const fm_rpc_server *srv, fm_rpc_count_fn fn, void *arg);

/* ---- per-call operations: thread-safe unless noted ---- */

/* Encodes `msg` and sends it with grpc write flags (e.g. GRPC_WRITE_BUFFER_HINT, which the call's first message,
 * carrying the initial metadata, never gets: gRPC 1.51 may then never write it).
 * Returns FM_EBUSY if a send is in flight, FM_ECANCELED if the call is over
 * or finishing, FM_ENOMEM. */
int fm_rpc_call_send(fm_rpc_call *call, const ProtobufCMessage *msg, uint32_t flags);

/* Sends an already-encoded message; takes ownership of `bb` on every path. */
int fm_rpc_call_send_buffer(fm_rpc_call *call, grpc_byte_buffer *bb, uint32_t flags);

/* Sends `msg` and status OK in one batch (unary). Same returns as fm_rpc_call_send. */
int fm_rpc_call_reply(fm_rpc_call *call, const ProtobufCMessage *msg);

/* Ends the call with `code` and `message` (copied). If a send is in flight the
 * status follows when it completes. Returns FM_ECANCELED if already ending. */
int fm_rpc_call_finish(fm_rpc_call *call, grpc_status_code code, const char *message);

/* printf-style fm_rpc_call_finish. */
int fm_rpc_call_finishf(fm_rpc_call *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* From inside on_request only: the handler keeps the decoded request beyond
 * the callback (e.g. to finish the call from another thread) and frees it
 * itself with fm_rpc_request_free (rpc_codec.h). */
void fm_rpc_call_keep_request(fm_rpc_call *call);

/* Bidi: read the next request (delivered through on_request). */
int fm_rpc_call_recv_next(fm_rpc_call *call);

/* Keeps `call` alive for a holder on another thread; drop with fm_rpc_call_unref. */
void fm_rpc_call_ref(fm_rpc_call *call);
void fm_rpc_call_unref(fm_rpc_call *call);

/* True once the client cancelled, the deadline passed or the connection dropped. */
bool fm_rpc_call_cancelled(fm_rpc_call *call);

/* Per-call handler state; not locked: set and read it from the call's callbacks. */
void fm_rpc_call_set_user(fm_rpc_call *call, void *user);
void *fm_rpc_call_user(const fm_rpc_call *call);

/* The method's ctx. */
void *fm_rpc_call_ctx(const fm_rpc_call *call);

/* The server the call arrived on. */
fm_rpc_server *fm_rpc_call_server(const fm_rpc_call *call);

/* Peer address as gRPC reports it ("ipv4:127.0.0.1:40000"); borrowed, valid
 * while the call is referenced. */
const char *fm_rpc_call_peer(fm_rpc_call *call);

/* The call's deadline (gpr_inf_future when the client set none). */
gpr_timespec fm_rpc_call_deadline(const fm_rpc_call *call);

#endif
