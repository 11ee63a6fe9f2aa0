/* One subscription stream (SubscribeMetadata / SubscribeLocalMetadata): a reader that reads events (sub_reader),
 * filters them (sub_filter) and queues them in a 1024-slot ring, on a thread of its own while catching up and on the
 * live set's dispatcher (sub_live) once caught up, and a sender that keeps exactly one gRPC send in flight, batching
 * (sub_batch) while the stream is far behind. Started by the service handlers (sub_service.c) from a completion-queue
 * thread; the ring's mutex is the only lock the two halves share. */
#ifndef FM_SUB_STREAM_H
#define FM_SUB_STREAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "chunk_store.h"
#include "filer.h"
#include "filer.pb-c.h"
#include "log_buffer.h"
#include "rpc_server.h"
#include "store.h"
#include "sub_live.h"
#include "sub_registry.h"

/* Slots between a stream's reader and its sender. */
#define FM_SUB_RING_SLOTS 1024
/* Events in one batched response at most. */
#define FM_SUB_BATCH_MAX 256

/* The reader threads of all streams, counted so that the server's shutdown can wait for the last one to be gone
 * before it frees what they use (the filer, the buffer, the stores). */
typedef struct fm_sub_threads {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int live;
} fm_sub_threads;

void fm_sub_threads_init(fm_sub_threads *t);
/* Waits until no reader thread is left. Call once no stream can start (the RPC server is shut down) and every
 * stream has been told to end (calls finished, the MetaLogBuffer shut down). */
void fm_sub_threads_wait(fm_sub_threads *t);
void fm_sub_threads_destroy(fm_sub_threads *t);

/* Bytes a stream's ring may hold (besides its slot count): a client that stops reading pins at most this. */
#define FM_SUB_RING_BYTES ((size_t)4 << 20)

typedef struct fm_sub_stream_config {
  fm_store *store; /* borrowed, as are the next two; they outlive every stream (main.c frees them after the RPC
                      server, which waits for every call, and so for every stream, to end) */
  fm_chunk_store *chunks;
  fm_logbuf *logbuf;
  fm_filer *filer;         /* borrowed: the fence for local heartbeats */
  int32_t signature;       /* this filer's, appended to delivered events that lack it */
  bool local;              /* SubscribeLocalMetadata: heartbeats carry the flushed watermark */
  int64_t batch_behind_ns; /* batch while the next event is older than this (-metaLog.batchBehind) */
  int64_t heartbeat_ns;    /* idle heartbeat interval for clients that asked for it */
  int64_t flush_report_ns; /* local streams of those clients: the flushed watermark this often (0: never) */
  fm_subreg *registry;     /* borrowed: where the stream is listed (and superseded) */
  fm_sub_threads *threads; /* borrowed: counts the reader thread */
  fm_sub_live *live;       /* borrowed (may be NULL: every stream keeps its reader thread): where caught-up streams
                              are served */
} fm_sub_stream_config;

/*
 * Starts a stream for `call` (a server-streaming call whose on_sent and on_done are fm_sub_stream_on_sent and
 * fm_sub_stream_on_done) serving `req`, which the call keeps (fm_rpc_call_keep_request) and the stream frees. Returns
 * 0 (the stream owns the call from now on and ends it), or FM_EINVAL with the reason in `err` (a bad request: the
 * caller ends the call with INVALID_ARGUMENT), FM_EEXIST with upstream's text (a client id registered with an epoch
 * as new: ALREADY_EXISTS), or FM_ENOMEM / FM_EIO (RESOURCE_EXHAUSTED / INTERNAL). On an error the caller still owns
 * `req`.
 */
int fm_sub_stream_start(fm_rpc_call *call, FilerPb__SubscribeMetadataRequest *req, const fm_sub_stream_config *cfg,
                        char *err, size_t errlen);

/* The call's on_sent and on_done (fm_rpc_method). */
void fm_sub_stream_on_sent(fm_rpc_call *call, bool ok);
void fm_sub_stream_on_done(fm_rpc_call *call);

#endif
