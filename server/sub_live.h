/* The live set: subscription streams that have caught up with the MetaLogBuffer, served by one dispatcher thread
 * that reads each new event once and hands it to every member, instead of one reader thread per stream woken by
 * every append. A stream's reader thread (sub_stream.c) joins it once caught up and ends; the dispatcher gives a
 * member back to a reader thread of its own when it cannot keep up (its queue is full), through the member's
 * callbacks. Created by main.c; members come and go from any thread. */
#ifndef FM_SUB_LIVE_H
#define FM_SUB_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "log_buffer.h"

typedef struct fm_sub_live fm_sub_live;

/* What the dispatcher does with a member; each runs on the dispatcher thread, without the set's lock. A callback
 * that returns false has let go of the member (ended it, or given it to a reader thread): it leaves the set. */
typedef struct fm_sub_live_ops {
  /* events[0..n) are new (ts ascending, each > the ts the member joined after); the dispatcher has taken every
   * event up to through_ts */
  bool (*deliver)(void *member, const fm_logbuf_event *events, size_t n, int64_t through_ts);
  /* every tick_ms: heartbeats, ends; the member has been given every event up to through_ts */
  bool (*tick)(void *member, int64_t through_ts);
  /* the dispatcher fell out of memory: every event up to through_ts was given; the member leaves and reads on by
   * itself */
  void (*fell_behind)(void *member, int64_t through_ts);
  /* the MetaLogBuffer shut down: end the member; it leaves */
  void (*shutdown)(void *member);
} fm_sub_live_ops;

/* Starts the dispatcher on `logbuf` (borrowed until fm_sub_live_free), reading from its newest event on, ticking
 * every tick_ms. Returns 0, FM_ENOMEM, or FM_EIO (no thread). */
int fm_sub_live_new(fm_logbuf *logbuf, int64_t tick_ms, fm_sub_live **out);

/*
 * Adds `member` (with its ops, borrowed) to the set if it has had every event up to the dispatcher's position:
 * after_ts (the ts of the last event the member has seen) must be at least the ts of the last event the dispatcher
 * took. Returns true when it joined (from now on the dispatcher owns it, giving it every event with ts > after_ts);
 * false when the dispatcher is ahead of it (read on, then try again) or stopped.
 */
bool fm_sub_live_join(fm_sub_live *l, void *member, const fm_sub_live_ops *ops, int64_t after_ts);

/* Members in the set now (for tests and metrics). */
size_t fm_sub_live_count(fm_sub_live *l);

/* Waits for the dispatcher to end, which it does once the MetaLogBuffer is shut down (after ending its members).
 * Joins fail from then on. Call before waiting for the reader threads. Idempotent. */
void fm_sub_live_stop(fm_sub_live *l);

/* Frees the set: after fm_sub_live_stop, once no reader thread can call fm_sub_live_join. NULL is a no-op. */
void fm_sub_live_free(fm_sub_live *l);

#endif
