/* The follow client (DESIGN.md "The bundled client"): subscribes to a filer's metadata feed, delivers its events in
 * ts order to a callback (batches unpacked, log-file refs read directly from the filer's HTTP side), reconnects with
 * backoff after transient failures and resumes after the last delivered ts, with no gap and no duplicate. Used by
 * the tools (tail, bench) and later the server's peer aggregator. fm_follow_run runs on the caller's thread (plus,
 * in refs mode, a few fetch and decode threads of its own); fm_follow_stop may be called from any thread. */
#ifndef FM_FOLLOW_H
#define FM_FOLLOW_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct FilerPb__SubscribeMetadataResponse;

/* What the progress callback is told about. */
typedef enum fm_follow_progress_kind {
  /* a progress marker (§5.3 item 5) or the refs transition marker: everything up to ts_ns was examined, so it is the
   * resume point now; a sync may checkpoint it */
  FM_FOLLOW_MARKER = 0,
  /* an idle heartbeat or flush report (§5.5): ts_ns / flushed_ts_ns as the server sent them; the resume point does
   * not move */
  FM_FOLLOW_HEARTBEAT,
  /* the stream broke with a transient error and will be reopened after a delay; ts_ns is the resume point */
  FM_FOLLOW_RECONNECT,
} fm_follow_progress_kind;

typedef struct fm_follow_progress {
  fm_follow_progress_kind kind;
  int64_t ts_ns;
  int64_t flushed_ts_ns; /* FM_FOLLOW_HEARTBEAT only */
  const char *why;       /* FM_FOLLOW_RECONNECT only: what failed */
} fm_follow_progress;

/* Called for each event in ts order (`ev` borrowed: valid during the call; it has an event_notification with an old
 * or a new entry, and never carries `events`). Return 0 to go on, anything else to stop the follow. */
typedef int (*fm_follow_event_fn)(void *arg, const struct FilerPb__SubscribeMetadataResponse *ev);

/* Called for markers, heartbeats and reconnects (may be NULL). Return 0 to go on, anything else to stop. */
typedef int (*fm_follow_progress_fn)(void *arg, const fm_follow_progress *p);

/* The client-side filter hook (may be NULL): return true to deliver `ev`. An event it rejects still moves the
 * resume point. */
typedef bool (*fm_follow_filter_fn)(void *arg, const struct FilerPb__SubscribeMetadataResponse *ev);

/* Everything a follow is made of. Strings and arrays are copied by fm_follow_new. Zero means default. */
typedef struct fm_follow_options {
  const char *filer; /* SeaweedFS form: "host:port" (gRPC at port+10000) or "host:port.grpcPort"; required */
  /* SubscribeMetadataRequest fields */
  const char *client_name; /* default "filermeta" */
  int32_t client_id;
  int32_t client_epoch; /* raised by one at each reconnect (when client_id != 0), so the new stream replaces the old */
  const char *path_prefix; /* NULL or "": everything (with path_prefixes/directories: see PROTOCOL §5.3) */
  const char *const *path_prefixes;
  size_t n_path_prefixes;
  const char *const *directories;
  size_t n_directories;
  int64_t since_ns; /* deliver events with ts_ns > since_ns */
  int64_t until_ns; /* 0: follow forever; else stop after the last event with ts_ns <= until_ns */
  int32_t signature;
  bool batching;  /* client_supports_batching */
  bool refs;      /* client_supports_metadata_chunks: read persisted history from the log files directly */
  bool heartbeat; /* client_supports_idle_heartbeat */
  bool local;     /* SubscribeLocalMetadata instead of SubscribeMetadata */
  /* callbacks */
  fm_follow_event_fn on_event; /* required */
  fm_follow_progress_fn on_progress;
  fm_follow_filter_fn filter;
  void *arg; /* passed to all three */
  /* reconnects: delays from backoff_initial_ms (default 100) doubling to backoff_max_ms (default 10000), jittered;
   * max_retries consecutive failed attempts (a stream that delivered something resets the count) end the follow
   * (0: never give up) */
  int64_t backoff_initial_ms;
  int64_t backoff_max_ms;
  int max_retries;
  /* refs mode: fetch and decode threads (default 4) and chunks fetched ahead of the one being delivered (default 16:
   * a chunk of our log files is at most 4 MiB by default; up to refs_threads + 1 of them are decoded ahead, ~3x
   * their size) */
  int refs_threads;
  int refs_prefetch;
} fm_follow_options;

typedef struct fm_follow fm_follow;

/* Counters of a follow, for tools and tests. */
typedef struct fm_follow_stats {
  uint64_t events;     /* delivered to on_event */
  uint64_t filtered;   /* rejected by the filter hook, or (refs) by the request's own filter */
  uint64_t messages;   /* responses received */
  uint64_t markers;    /* progress and transition markers */
  uint64_t heartbeats; /* keep-alive messages */
  uint64_t reconnects; /* streams reopened after a transient failure */
  uint64_t refs;       /* log-file refs read */
  uint64_t ref_bytes;  /* bytes of log-file content read over HTTP */
  uint64_t duplicates; /* events dropped because the resume point had already passed them */
} fm_follow_stats;

/* Checks and copies the options. Returns 0 with *out (caller frees with fm_follow_free), FM_EINVAL (a bad filer
 * address, path, time range or missing callback; `err` says which) or FM_ENOMEM. Connects lazily. */
int fm_follow_new(const fm_follow_options *o, fm_follow **out, char *err, size_t errlen);

/* Stops a run in progress (if any) and frees everything. NULL is a no-op. Not while fm_follow_run runs on another
 * thread: stop it and wait for it to return first. */
void fm_follow_free(fm_follow *f);

/*
 * Follows until the feed is over: returns 0 when until_ns was reached (or the server ended the stream with OK, e.g.
 * a newer epoch of the same client_id replaced it), or when stopped (fm_follow_stop or a callback's non-zero
 * return: fm_follow_stopped then says so). Transient failures (UNAVAILABLE, connection errors, refs reads that
 * could not connect) are retried with backoff, resuming after the last delivered ts. Anything else ends the run:
 * FM_EIO with the server's status and message in `err` (fm_follow_status gives the code: OUT_OF_RANGE,
 * INVALID_ARGUMENT, ALREADY_EXISTS, DATA_LOSS, ...), FM_EDECODE for bytes that do not decode, FM_EUNAVAILABLE when
 * max_retries attempts in a row failed. May be called again after it returned (not once stopped: a stopped follow
 * stays stopped); it goes on from the resume point.
 */
int fm_follow_run(fm_follow *f, char *err, size_t errlen);

/* Asks a run to stop at once (a blocked read, a refs fetch or a backoff sleep included). Any thread, any time; also
 * before fm_follow_run, which then returns at once. */
void fm_follow_stop(fm_follow *f);

/* True when the last run ended because of fm_follow_stop or a callback. */
bool fm_follow_stopped(const fm_follow *f);

/* The resume point: the ts of the last event delivered (or filtered) or the last marker; since_ns at first. */
int64_t fm_follow_resume_ns(const fm_follow *f);

/* The gRPC status that ended the last run (GRPC_STATUS_OK when none did). */
grpc_status_code fm_follow_status(const fm_follow *f);

void fm_follow_stats_get(const fm_follow *f, fm_follow_stats *out);

#endif
