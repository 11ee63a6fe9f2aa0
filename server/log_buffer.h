/* The MetaLogBuffer: recent encoded events (opaque bytes, ordered by ts_ns) in fixed-capacity segments, bounded in
 * bytes. The filer's event hook appends (under the filer's write lock; an append never waits for readers); one
 * reader per subscription follows with a cursor; the flusher seals segments and advances the flushed watermark.
 * Any thread may call any function: one mutex guards the buffer, one condition variable is broadcast on every
 * append and on shutdown. A cursor belongs to one thread. */
#ifndef FM_LOG_BUFFER_H
#define FM_LOG_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct fm_logbuf fm_logbuf;

/*
 * What fm_logbuf_read answers when events newer than the cursor are no longer in memory (or never were: see
 * fm_logbuf_set_start_ts). The caller reads them from disk and comes back with a newer cursor; see "Going to disk"
 * below.
 */
#define FM_LOGBUF_GO_TO_DISK FM_ENOTFOUND

/* Default size_bytes: -metaLogBuffer.sizeMB 64. */
#define FM_LOGBUF_SIZE_DEFAULT ((size_t)64 << 20)

/* The longest event fm_logbuf_append accepts (upstream rejects log records over 1 GiB). */
#define FM_LOGBUF_EVENT_MAX ((size_t)1 << 30)

typedef struct fm_logbuf_options {
  /* Bound on the bytes of memory the segments take (their capacity, not just their contents); 0 means
   * FM_LOGBUF_SIZE_DEFAULT. It is a target, not a hard limit: only segments that are sealed and wholly flushed
   * (every event <= the flushed watermark) are evicted, so while the flusher lags the buffer grows past the bound
   * rather than lose an event nobody persisted. fm_logbuf_stats reports the overshoot. */
  size_t size_bytes;
  /* Capacity of one segment; 0 means size_bytes / 64 clamped to [64 KiB, 1 MiB], less the segment's header. An event
   * that does not fit in an empty segment gets a segment sized for it alone. Eviction works in whole segments. */
  size_t segment_bytes;
} fm_logbuf_options;

/* Creates an empty buffer; `opt` may be NULL (all defaults). Returns 0, FM_EINVAL, or FM_ENOMEM. Caller frees with
 * fm_logbuf_free. */
int fm_logbuf_new(const fm_logbuf_options *opt, fm_logbuf **out);

/* Frees the buffer and every segment. Every cursor must have been destroyed first. NULL is a no-op. */
void fm_logbuf_free(fm_logbuf *b);

/* ================================================================ writing */

/*
 * Appends one event: `ts_ns` must be greater than fm_logbuf_newest_ts (else FM_EINVAL and nothing changes); `event`
 * (len bytes, borrowed for the call; NULL if len is 0) is copied into the current segment. Starts a new segment when
 * the current one is sealed or full, then evicts the oldest sealed, flushed segments while the buffer is over its
 * bound. Wakes every waiting reader. Never waits for a reader: a segment a reader still looks at is unlinked now and
 * freed by its last reader.
 *
 * Returns 0; FM_EINVAL (ts not increasing); FM_ETOOBIG (len > FM_LOGBUF_EVENT_MAX: nothing changes); FM_ENOMEM (a
 * new segment could not be allocated). After FM_ENOMEM the event is lost to memory but not to the caller's disk (the
 * filer wrote it to its write-ahead records first), so the buffer stops vouching for it: newest_ts and the floor
 * (fm_logbuf_floor_ts) rise to ts_ns, and every cursor older than that is sent to disk rather than skip it.
 * Appends keep working after fm_logbuf_shutdown, so that the flusher can drain the last events.
 */
int fm_logbuf_append(fm_logbuf *b, int64_t ts_ns, const void *event, size_t len);

/* fm_logbuf_append with the signature of fm_filer_event_hook (`arg` is the fm_logbuf), for
 * fm_filer_set_event_hook. A failed append is logged: the hook has no way to report it. */
void fm_logbuf_event_hook(void *arg, int64_t ts_ns, const uint8_t *event, size_t len);

/*
 * Seals the current segment: the next append starts a new one. The flusher calls it every flush interval so that
 * a minute's events become evictable once flushed (only sealed segments are evicted). No-op when the current
 * segment is already sealed or there is none.
 */
void fm_logbuf_seal(fm_logbuf *b);

/*
 * Declares that every event with ts <= ts_ns is persisted (in log files). Monotonic: a lower value is ignored; a
 * value above fm_logbuf_newest_ts is taken as newest_ts (an event appended later is not persisted yet).
 * Evicts what it makes evictable. Wakes nobody: a reader never waits for a flush here, because nothing unflushed is
 * ever evicted (upstream parks readers on an unflushed gap, and must store the watermark before waking them; we
 * have no such gap). Called by the flusher after the log file entry covering those events is written.
 */
void fm_logbuf_set_flushed(fm_logbuf *b, int64_t ts_ns);

/*
 * Declares that every event with ts <= ts_ns is on disk and will never be in this buffer: the point where a
 * restarted server's memory begins. Sets the flushed watermark and the floor to ts_ns, so cursors below it get
 * FM_LOGBUF_GO_TO_DISK, and later appends need ts > ts_ns. Without it a buffer holds everything from ts 0 (right
 * for a buffer that has seen every event since the beginning of time, as in tests). Call before the first append:
 * returns 0, or FM_EINVAL once anything was appended or when ts_ns < 0.
 */
int fm_logbuf_set_start_ts(fm_logbuf *b, int64_t ts_ns);

/*
 * Declares that memory will not hold the events with ts <= ts_ns although they are not flushed: they are only in the
 * write-ahead records (recovery with a backlog larger than the buffer loads just its newest part). Raises the floor,
 * as a lost append does: cursors below it get FM_LOGBUF_GO_TO_DISK while the flushed watermark stays, so readers wait
 * for the flusher there. Call after fm_logbuf_set_start_ts and before the first append: returns 0, or FM_EINVAL once
 * anything was appended or when ts_ns is below the floor.
 */
int fm_logbuf_set_floor_ts(fm_logbuf *b, int64_t ts_ns);

/* Wakes every waiting reader; from now on fm_logbuf_read answers FM_ESHUTDOWN (except to a drain cursor, below).
 * Idempotent. */
void fm_logbuf_shutdown(fm_logbuf *b);

/* ================================================================ watermarks */

/* The flushed watermark: every event with ts <= this is persisted. 0 when nothing is. */
int64_t fm_logbuf_flushed_ts(fm_logbuf *b);

/* The ts of the newest event appended; the start ts (or 0) before the first append. */
int64_t fm_logbuf_newest_ts(fm_logbuf *b);

/* The ts of the oldest event still in memory; 0 when memory holds none. */
int64_t fm_logbuf_oldest_ts(fm_logbuf *b);

/* The floor: memory holds every event with ts > floor, and a cursor below it gets FM_LOGBUF_GO_TO_DISK. It is the
 * greatest of the start ts, the newest evicted event and a lost append (fm_logbuf_append); never above the flushed
 * watermark except after a lost append. */
int64_t fm_logbuf_floor_ts(fm_logbuf *b);

/* ================================================================ reading */

/*
 * A reader's position: the ts of the last event it has seen, plus the segment and offset of the next one, so that
 * steady reading costs O(1) per event. Embedded in the reader's state; its fields are private. Every
 * fm_logbuf_cursor_init is paired with fm_logbuf_cursor_destroy (the cursor may hold a segment).
 */
typedef struct fm_logbuf_cursor {
  int64_t ts;                /* events with ts > this come next */
  struct fm_logbuf_seg *seg; /* the segment held (pinned), or NULL */
  size_t off;                /* offset of the next record in seg */
  bool drain;                /* keeps reading after shutdown */
} fm_logbuf_cursor;

/* One event as fm_logbuf_read returns it: a view into the buffer. */
typedef struct fm_logbuf_event {
  int64_t ts_ns;
  const uint8_t *data; /* borrowed, valid until the next call on the cursor (read or destroy) */
  size_t len;
} fm_logbuf_event;

/* Positions `cur` after `after_ts`: the first read returns events with ts > after_ts. Needs no buffer; the cursor
 * holds nothing until it reads. */
void fm_logbuf_cursor_init(fm_logbuf_cursor *cur, int64_t after_ts);

/* As fm_logbuf_cursor_init, for the flusher's final pass: after fm_logbuf_shutdown this cursor still returns the
 * events in memory, and FM_ESHUTDOWN only when there are none (instead of waiting). */
void fm_logbuf_cursor_init_drain(fm_logbuf_cursor *cur, int64_t after_ts);

/* Releases what the cursor holds; its views become invalid. The cursor may then be initialised again. */
void fm_logbuf_cursor_destroy(fm_logbuf *b, fm_logbuf_cursor *cur);

/*
 * Lets go of the segment the cursor holds (its views become invalid) but keeps its position: the next read looks
 * it up again by ts, once, and may then answer FM_LOGBUF_GO_TO_DISK. A pinned segment that was evicted stays
 * allocated until its cursors move on (at most one segment per cursor, reported as pinned_bytes), so a reader about
 * to stop reading for long (its ring is full behind a slow client) calls this first.
 */
void fm_logbuf_cursor_release(fm_logbuf *b, fm_logbuf_cursor *cur);

/* The ts of the last event the cursor returned, or its after_ts if none yet. */
int64_t fm_logbuf_cursor_ts(const fm_logbuf_cursor *cur);

/*
 * Reads the next events after the cursor, in ts order, each exactly once, never skipping one. Returns:
 *   0                     n (1..max_events) events in out[], all from one segment (a read never spans two; call
 *                         again for more). Their bytes are borrowed, valid until the next call on this cursor: the
 *                         cursor pins the segment, which eviction unlinks but never frees under it;
 *   FM_ETIMEDOUT          nothing new within timeout_ms (0: do not wait; negative: wait until an event or shutdown);
 *   FM_LOGBUF_GO_TO_DISK  events newer than the cursor may have left memory (the cursor is below the floor); the
 *                         cursor now holds nothing;
 *   FM_ESHUTDOWN          fm_logbuf_shutdown was called (a drain cursor: and nothing is left to read);
 *   FM_EINVAL             max_events is 0.
 * *n is 0 unless 0 is returned. A cursor newer than every event waits for one.
 *
 * Going to disk: on FM_LOGBUF_GO_TO_DISK, take W = fm_logbuf_flushed_ts (read after the refusal, W >= the floor),
 * read every persisted event with cursor ts < ts <= W from disk, then fm_logbuf_cursor_destroy and
 * fm_logbuf_cursor_init(cur, W) and read memory again. Memory holds everything above the floor and the floor only
 * rises, so the hand-off has no gap and no duplicate; if more was evicted meanwhile, the read answers GO_TO_DISK
 * again and the loop repeats from W.
 *
 * The flusher should use an ordinary cursor (fm_logbuf_cursor_init at the flushed watermark; read with timeout 0
 * until FM_ETIMEDOUT, write, then fm_logbuf_set_flushed): since only flushed segments are evicted, that cursor is
 * never sent to disk (except after a lost append, which it must then fetch from the write-ahead records).
 */
int fm_logbuf_read(fm_logbuf *b, fm_logbuf_cursor *cur, fm_logbuf_event *out, size_t max_events, size_t *n,
                   int64_t timeout_ms);

/* ================================================================ stats */

typedef struct fm_logbuf_stats {
  uint64_t events_appended;   /* since creation */
  uint64_t bytes_appended;    /* event bytes since creation, framing not counted */
  uint64_t append_failures;   /* appends lost to FM_ENOMEM */
  uint64_t evictions;         /* segments evicted */
  size_t events;              /* events in memory */
  size_t bytes;               /* bytes of records in memory (events and their framing) */
  size_t alloc_bytes;         /* capacity of the segments in the buffer: what size_bytes bounds */
  size_t size_bytes;          /* the bound */
  size_t overshoot_bytes;     /* alloc_bytes beyond size_bytes, kept because not yet flushed */
  size_t max_overshoot_bytes; /* the largest overshoot seen */
  size_t pinned_bytes;        /* capacity of evicted segments that readers still hold */
  size_t segments;            /* segments in the buffer (pinned evicted ones not counted) */
  int64_t oldest_ts, newest_ts, flushed_ts, floor_ts;
} fm_logbuf_stats;

/* A consistent snapshot of the counters, for /metrics and /debug/logbuffer. */
void fm_logbuf_get_stats(fm_logbuf *b, fm_logbuf_stats *out);

#endif
