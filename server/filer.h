/* The filer: the mutation engine over the store. Mutations are applied one at
 * a time, each as one store batch holding the entry changes and their events;
 * then the event hook runs and the mutation completes. With -store.sync a
 * committer thread shares one fsync per group. Submitted from CQ threads;
 * reads bypass it. */
#ifndef FM_FILER_H
#define FM_FILER_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "filer.pb-c.h"
#include "store.h"

typedef struct fm_filer fm_filer;

/* Called with each event after its batch is written (with -store.sync: after
 * the group's fsync, on the committer thread; without: on the submitting
 * thread), in ts order, under the filer's write lock. `event` is an encoded
 * SubscribeMetadataResponse, valid during the call. Registered by the
 * MetaLogBuffer; it must not call back into the filer. */
typedef void (*fm_filer_event_hook)(void *arg, int64_t ts_ns, const uint8_t *event, size_t len);

typedef enum fm_mutation_kind {
  FM_MUT_CREATE, /* req: FilerPb__CreateEntryRequest */
  FM_MUT_UPDATE, /* req: FilerPb__UpdateEntryRequest */
  FM_MUT_DELETE, /* req: FilerPb__DeleteEntryRequest */
  FM_MUT_RENAME, /* req: FilerPb__AtomicRenameEntryRequest */
  FM_MUT_KV_PUT, /* req: FilerPb__KvPutRequest */
  FM_MUT_LOG,    /* log: the flusher's and retention's change to the persisted log; req unused */
} fm_mutation_kind;

/*
 * One change to the persisted metadata log, applied as one batch so that a log file never loses its write-ahead
 * records before it holds them, nor holds them twice: made by the flusher and retention (server/log_flusher.c).
 * Nothing under FM_SYSTEM_LOG_DIR produces events, and neither do the parents created for it.
 */
typedef struct fm_log_change {
  /* Appends `chunks` (offsets relative to the appended bytes; the filer rebases them onto the file's end, in
   * place) to the log file dir/name, creating it and its parents when missing. dir NULL: no file changes. */
  const char *dir;
  const char *name;
  FilerPb__FileChunk **chunks;
  size_t nchunks;
  /* the write-ahead records the file now holds, deleted in the same batch */
  const int64_t *wal_ts;
  size_t nwal;
  /* a day directory's name under FM_SYSTEM_LOG_DIR removed with all it holds (retention), or NULL */
  const char *retire_day;
  /* written as is */
  fm_store_log_state state;
} fm_log_change;

typedef struct fm_staged_event {
  int64_t ts_ns;
  uint8_t *bytes; /* encoded SubscribeMetadataResponse */
  size_t len;
} fm_staged_event;

/*
 * A mutation, owned by the submitter (usually embedded in its per-call state)
 * until `done` has been called. Requests must already be path-validated by
 * the caller (fm_path_check_*); the filer re-checks only what the store
 * decides, and may normalise the request in place (a directory's ttl_sec is
 * cleared). `done` runs under the filer's write lock: it must not call
 * fm_filer_submit or fm_filer_free.
 */
typedef struct fm_mutation fm_mutation;
struct fm_mutation {
  fm_mutation_kind kind;
  const ProtobufCMessage *req;  /* borrowed until done */
  const fm_log_change *log;     /* FM_MUT_LOG only; borrowed until done */
  void (*done)(fm_mutation *m); /* see fm_filer_submit for the thread; results below are valid during it */
  void *arg;

  /* results */
  grpc_status_code status; /* non-OK: the call fails with `message` */
  char message[512];
  char inband_error[512];            /* OK status with the response's `error` text */
  int filer_error;                   /* FilerPb__FilerError for CreateEntryResponse.error_code */
  const fm_staged_event *last_event; /* the mutation's last event, or NULL */

  /* private to the filer */
  fm_mutation *next;
  fm_staged_event *events;
  size_t nevents, capevents;
};

/* Opens the filer over `store` (borrowed) with this filer's signature: recovers
 * the clock and starts the committer. Returns 0 or an FM_E* code with `err`. */
int fm_filer_new(fm_store *store, int32_t signature, fm_filer **out, char *err, size_t errlen);

/* Registers the event hook; call before the first submit. */
void fm_filer_set_event_hook(fm_filer *f, fm_filer_event_hook hook, void *arg);

/* Completes every queued mutation, stops the committer, frees. NULL is a no-op. */
void fm_filer_free(fm_filer *f);

/* Applies `m`: without -store.sync at once on the calling thread (done runs
 * before this returns), with it on the committer thread after the group's
 * fsync. Returns 0, or FM_ESHUTDOWN (done is then never called). Any thread. */
int fm_filer_submit(fm_filer *f, fm_mutation *m);

/* A ts below every event not yet published: raises the clock to just below now when it is behind, so that every
 * later event gets a greater ts even if the wall clock steps back; every event with ts <= the result has been passed
 * to the event hook. For the heartbeats of caught-up subscribers (PROTOCOL.md 5.5). Any thread; takes the write
 * lock briefly. */
int64_t fm_filer_fence_ts(fm_filer *f);

/* The ts of the newest event made durable so far. Any thread. */
int64_t fm_filer_committed_ts(const fm_filer *f);

int32_t fm_filer_signature(const fm_filer *f);
fm_store *fm_filer_store(const fm_filer *f);

/* Upstream's words for a missing entry; Go clients recognise "not found" by
 * this text, so it stays byte-identical (PROTOCOL.md section 6). */
#define FM_NOT_FOUND_TEXT "filer: no entry is found in filer store"

/* The system log directory: mutations under it produce no events. */
#define FM_SYSTEM_LOG_DIR "/topics/.system/log"

#endif
