/* The client side of the RPC layer: a channel to one server and blocking unary,
 * server-streaming and bidi-streaming calls. Used by tools/ (and later the follow
 * library). A client is used by one thread at a time; open one per thread for
 * parallel calls. */
#ifndef FM_RPC_CLIENT_H
#define FM_RPC_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fm_rpc_client fm_rpc_client;

/* Connects (lazily) to `target` ("host:grpcport"). Caller frees with fm_rpc_client_free. */
int fm_rpc_client_new(const char *target, fm_rpc_client **out);
void fm_rpc_client_free(fm_rpc_client *c);

/*
 * Calls unary method `path` with `req` and waits up to timeout_ms (0: no
 * deadline). Returns 0 when the status is OK and the reply decodes as
 * `resp_desc`; *resp is then caller-owned (protobuf_c_message_free_unpacked).
 * Otherwise returns FM_EIO (non-OK status: *status and `err` say which) or
 * FM_EDECODE. `status` may be NULL.
 */
int fm_rpc_client_unary(fm_rpc_client *c, const char *path, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, ProtobufCMessage **resp,
                        grpc_status_code *status, char *err, size_t errlen);

/* Called per streamed response (borrowed; valid during the call); return
 * false to stop reading (the call is then cancelled, and that is not an error). */
typedef bool (*fm_rpc_client_stream_fn)(void *arg, const ProtobufCMessage *resp);

/*
 * Calls server-streaming method `path` with `req` and hands each response,
 * decoded as `resp_desc`, to fn, until the stream ends. Returns 0 on status OK
 * (or when fn stopped early), FM_EIO on a non-OK status (*status and `err`),
 * FM_EDECODE if a response does not decode. `status` may be NULL.
 */
int fm_rpc_client_stream(fm_rpc_client *c, const char *path, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, fm_rpc_client_stream_fn fn,
                         void *arg, grpc_status_code *status, char *err, size_t errlen);

/* An open server-streaming call, read message by message (the follow library's subscription). Owned by the thread
 * that opened it; only fm_rpc_stream_cancel may be called from another thread, and only while the stream is open
 * (the owner keeps it from being closed meanwhile). */
typedef struct fm_rpc_stream fm_rpc_stream;

/* Starts server-streaming method `path` with `req` (timeout_ms 0: no deadline). Returns 0 with *out (close it with
 * fm_rpc_stream_close), FM_ENOMEM, or FM_EIO when the call cannot start (`err` says so). */
int fm_rpc_stream_open(fm_rpc_client *c, const char *path, const ProtobufCMessage *req, int64_t timeout_ms,
                       fm_rpc_stream **out, char *err, size_t errlen);

/* Waits for the next message: 0 with *msg (caller frees with grpc_byte_buffer_destroy), or FM_ENOTFOUND when the
 * stream is over (ended by the server, failed, or cancelled): fm_rpc_stream_close then gives the status. */
int fm_rpc_stream_read(fm_rpc_stream *s, grpc_byte_buffer **msg);

/* Cancels the call: a read in progress or the next one returns FM_ENOTFOUND, and the status is CANCELLED unless the
 * server's came first. Any thread. */
void fm_rpc_stream_cancel(fm_rpc_stream *s);

/* Ends the stream (cancelling it first when the server has not ended it) and frees it. Returns 0 when the status
 * was OK, FM_EIO otherwise with "<path>: <CODE>: <message>" in `err`; *status gets the code (may be NULL). The
 * message alone (without path and code) is left in `details` when that is non-NULL. */
int fm_rpc_stream_close(fm_rpc_stream *s, grpc_status_code *status, char *err, size_t errlen, char *details,
                        size_t detailslen);

/* ---- bidirectional streams ---- */

typedef struct fm_rpc_bidi fm_rpc_bidi;

/*
 * Starts a bidi-streaming call to `path` on c (deadline timeout_ms from now; 0:
 * none). The stream is driven by one thread: send, close_send and recv each wait
 * for their own operation, one at a time. c makes no other call until
 * fm_rpc_bidi_finish. Returns 0 and *out (ended and freed by fm_rpc_bidi_finish),
 * FM_ENOMEM, or FM_EIO with `err` filled when the call cannot start.
 */
int fm_rpc_bidi_open(fm_rpc_client *c, const char *path, int64_t timeout_ms, fm_rpc_bidi **out, char *err,
                     size_t errlen);

/* Sends one message. Returns 0, FM_ENOMEM, or FM_ECANCELED when the stream is
 * broken or already half-closed (fm_rpc_bidi_finish then says why). */
int fm_rpc_bidi_send(fm_rpc_bidi *b, const ProtobufCMessage *msg);

/* Half-closes: no more sends. Returns 0 or FM_ECANCELED as fm_rpc_bidi_send. */
int fm_rpc_bidi_close_send(fm_rpc_bidi *b);

/*
 * Waits for the next message and decodes it as `desc`. Returns 0 with *out set
 * (caller frees with protobuf_c_message_free_unpacked), 0 with *out NULL when the
 * stream has ended (the server sent its status, the call was cancelled or broke:
 * fm_rpc_bidi_finish gives the status), or FM_EDECODE.
 */
int fm_rpc_bidi_recv(fm_rpc_bidi *b, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);

/* Cancels the call. Any thread, while the stream is open (before
 * fm_rpc_bidi_finish): a waiting or later recv returns the end of the stream. */
void fm_rpc_bidi_cancel(fm_rpc_bidi *b);

/*
 * Ends the stream and frees b: unless a recv already saw the end, the call is
 * cancelled first (that is the client's choice, not an error). Returns 0 when
 * the status is OK or the client cancelled, FM_EIO with *status and `err` filled
 * otherwise. `status` may be NULL; b NULL is a no-op returning 0.
 */
int fm_rpc_bidi_finish(fm_rpc_bidi *b, grpc_status_code *status, char *err, size_t errlen);

/* Name of a gRPC status code ("UNAVAILABLE"). */
const char *fm_rpc_status_name(grpc_status_code code);

#endif
