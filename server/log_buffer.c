/*
 * The MetaLogBuffer.
 *
 * Memory is a list of segments, oldest first. A segment is one allocation holding records back to back, each
 * [ts 8][len 4][len bytes] in host byte order (memory only: the disk format is log_record.h's). Records below a
 * segment's `len` never change and the segment never moves, so a reader that learnt `len` under the mutex may read
 * those bytes after dropping it, and hands them out as views without copying. The appender writes only above `len`.
 *
 * Eviction and readers: a cursor pins the segment it reads (a count under the mutex). Evicting a pinned segment
 * unlinks it from the list into `limbo` and leaves it to the last cursor that lets go of it, so an append never waits
 * for a reader and a reader never sees memory freed under it. A cursor may finish a pinned segment after its
 * eviction (its bytes are intact), but it does not follow an evicted segment's successor: it looks its position up
 * again by ts, which sends it to disk when the ts is below the floor.
 *
 * The floor: memory holds every event with ts > floor. It starts at the start ts (fm_logbuf_set_start_ts) and rises
 * to the last ts of each evicted segment, and to the ts of an append lost to ENOMEM. Only sealed segments whose
 * events are all flushed are evicted, so the floor never passes the flushed watermark (a lost append aside), and a
 * reader sent to disk always finds there what memory no longer has (SEAWEEDFS-REFERENCE §10 item 7). Every decision
 * is taken under the one mutex, so a racing append cannot send a reader to disk needlessly (item 14).
 */
#include "log_buffer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

/* Bytes of a record's header: the ts, then the length. */
#define REC_TS 8
#define REC_HDR 12

/* A timeout beyond this (about 30 years) is a wait without deadline, and keeps the deadline arithmetic in range. */
#define WAIT_FOREVER_MS ((int64_t)1000000000000)

#define SEGMENT_MIN_DEFAULT ((size_t)64 << 10)
#define SEGMENT_MAX_DEFAULT ((size_t)1 << 20)

typedef struct fm_logbuf_seg fm_logbuf_seg;
struct fm_logbuf_seg {
  fm_logbuf_seg *prev, *next; /* in the buffer's list, or in limbo once evicted; under mu */
  int64_t first_ts, last_ts;  /* under mu */
  size_t len;                 /* bytes of records; [0, len) is immutable; under mu */
  size_t cap;
  size_t nevents; /* under mu */
  unsigned pins;  /* cursors holding the segment; under mu */
  bool sealed;    /* no more appends; under mu */
  bool evicted;   /* unlinked into limbo, freed by its last cursor; under mu */
  bool gap_after; /* an append after this one was lost: cursors look up by ts, never follow next; under mu */
  uint8_t data[]; /* cap bytes */
};

struct fm_logbuf {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* broadcast on every append (and a lost one) and on shutdown */
  size_t size_bytes;
  size_t segment_bytes;

  /* under mu */
  fm_logbuf_seg *head, *tail; /* oldest, newest */
  fm_logbuf_seg *limbo;       /* evicted segments still pinned */
  int64_t newest_ts;
  int64_t flushed_ts;
  int64_t floor_ts;
  bool shutdown;
  size_t nsegments;
  size_t nevents;
  size_t bytes;
  size_t alloc_bytes;
  size_t pinned_bytes;
  size_t max_overshoot;
  uint64_t events_appended;
  uint64_t bytes_appended;
  uint64_t append_failures;
  uint64_t evictions;
};

/* ================================================================ segments */

static fm_logbuf_seg *seg_new(size_t cap)
{
  if (cap > SIZE_MAX - sizeof(fm_logbuf_seg))
    return NULL;
  fm_logbuf_seg *s = malloc(sizeof(fm_logbuf_seg) + cap);
  if (s == NULL)
    return NULL;
  memset(s, 0, sizeof *s);
  s->cap = cap;
  return s;
}

/* Frees a chain linked through `next` (segments no longer reachable from the buffer). Called without mu. */
static void seg_free_chain(fm_logbuf_seg *s)
{
  while (s != NULL) {
    fm_logbuf_seg *next = s->next;
    free(s);
    s = next;
  }
}

/* Holds mu. Drops one pin; a segment evicted meanwhile whose last pin this was leaves limbo for `*dead`. */
static void seg_unpin_locked(fm_logbuf *b, fm_logbuf_seg *s, fm_logbuf_seg **dead)
{
  if (--s->pins > 0 || !s->evicted)
    return;
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    b->limbo = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  b->pinned_bytes -= s->cap;
  s->prev = NULL;
  s->next = *dead;
  *dead = s;
}

/*
 * Holds mu. Evicts the oldest segments while the buffer is over its bound and the oldest is sealed and wholly
 * flushed; a pinned one goes to limbo, the others to `*dead` for the caller to free after unlocking. Stopping at the
 * first segment that is not evictable keeps memory one contiguous range of ts.
 */
static void evict_locked(fm_logbuf *b, fm_logbuf_seg **dead)
{
  while (b->alloc_bytes > b->size_bytes && b->head != NULL && b->head->sealed && b->head->last_ts <= b->flushed_ts) {
    fm_logbuf_seg *s = b->head;
    b->head = s->next;
    if (b->head != NULL)
      b->head->prev = NULL;
    else
      b->tail = NULL;
    b->alloc_bytes -= s->cap;
    b->bytes -= s->len;
    b->nevents -= s->nevents;
    b->nsegments--;
    b->evictions++;
    if (s->last_ts > b->floor_ts)
      b->floor_ts = s->last_ts;
    s->prev = NULL;
    if (s->pins > 0) {
      s->evicted = true;
      s->next = b->limbo;
      if (b->limbo != NULL)
        b->limbo->prev = s;
      b->limbo = s;
      b->pinned_bytes += s->cap;
    } else {
      s->next = *dead;
      *dead = s;
    }
  }
  if (b->alloc_bytes > b->size_bytes && b->alloc_bytes - b->size_bytes > b->max_overshoot)
    b->max_overshoot = b->alloc_bytes - b->size_bytes;
}

static inline int64_t rec_ts(const uint8_t *p)
{
  int64_t ts;
  memcpy(&ts, p, sizeof ts);
  return ts;
}

static inline size_t rec_len(const uint8_t *p)
{
  uint32_t len;
  memcpy(&len, p + REC_TS, sizeof len);
  return len;
}

/* ================================================================ lifecycle */

int fm_logbuf_new(const fm_logbuf_options *opt, fm_logbuf **out)
{
  *out = NULL;
  size_t size = opt != NULL && opt->size_bytes > 0 ? opt->size_bytes : FM_LOGBUF_SIZE_DEFAULT;
  size_t segment = opt != NULL ? opt->segment_bytes : 0;
  if (segment == 0) {
    segment = size / 64;
    if (segment < SEGMENT_MIN_DEFAULT)
      segment = SEGMENT_MIN_DEFAULT;
    if (segment > SEGMENT_MAX_DEFAULT)
      segment = SEGMENT_MAX_DEFAULT;
    /* so that header and data are one allocator size class: a header on top of 1 MiB would take jemalloc's
     * 1.25 MiB class, a quarter of the buffer's memory wasted (measured: 84 MB allocated for a 64 MiB bound) */
    segment -= sizeof(fm_logbuf_seg);
  }

  fm_logbuf *b = calloc(1, sizeof *b);
  if (b == NULL)
    return FM_ENOMEM;
  b->size_bytes = size;
  b->segment_bytes = segment;
  pthread_condattr_t ca;
  if (pthread_mutex_init(&b->mu, NULL) != 0)
    goto err_mu;
  /* deadlines are on CLOCK_MONOTONIC, so a wall-clock step does not stretch or cut a wait */
  if (pthread_condattr_init(&ca) != 0)
    goto err_ca;
  if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&b->cv, &ca) != 0) {
    pthread_condattr_destroy(&ca);
    goto err_ca;
  }
  pthread_condattr_destroy(&ca);
  *out = b;
  return 0;

err_ca:
  pthread_mutex_destroy(&b->mu);
err_mu:
  free(b);
  return FM_ENOMEM;
}

void fm_logbuf_free(fm_logbuf *b)
{
  if (b == NULL)
    return;
  /* limbo is empty when every cursor was destroyed; freeing it anyway keeps a caller's bug from leaking */
  seg_free_chain(b->head);
  seg_free_chain(b->limbo);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

/* ================================================================ writing */

int fm_logbuf_append(fm_logbuf *b, int64_t ts_ns, const void *event, size_t len)
{
  if (len > FM_LOGBUF_EVENT_MAX)
    return FM_ETOOBIG;
  if (len > 0 && event == NULL)
    return FM_EINVAL;
  size_t rec = REC_HDR + len;
  fm_logbuf_seg *dead = NULL;

  pthread_mutex_lock(&b->mu);
  if (ts_ns <= b->newest_ts) {
    pthread_mutex_unlock(&b->mu);
    return FM_EINVAL;
  }
  fm_logbuf_seg *s = b->tail;
  if (s == NULL || s->sealed || s->cap - s->len < rec) {
    /* Allocated under mu: the appender is the filer's one writer, so this only delays readers, and a segment is
     * allocated once per segment_bytes of events. */
    fm_logbuf_seg *fresh = seg_new(rec > b->segment_bytes ? rec : b->segment_bytes);
    if (fresh == NULL) {
      /* The event exists (on disk) but not here: stop vouching for anything up to it. */
      if (s != NULL) {
        s->sealed = true;
        s->gap_after = true;
      }
      b->newest_ts = ts_ns;
      b->floor_ts = ts_ns;
      b->append_failures++;
      pthread_mutex_unlock(&b->mu);
      pthread_cond_broadcast(&b->cv); /* caught-up readers must learn they are now below the floor */
      return FM_ENOMEM;
    }
    if (s != NULL)
      s->sealed = true;
    fresh->prev = s;
    if (s != NULL)
      s->next = fresh;
    else
      b->head = fresh;
    b->tail = fresh;
    b->nsegments++;
    b->alloc_bytes += fresh->cap;
    fresh->first_ts = ts_ns;
    s = fresh;
    evict_locked(b, &dead);
  }
  uint8_t *p = s->data + s->len;
  uint32_t len32 = (uint32_t)len;
  memcpy(p, &ts_ns, REC_TS);
  memcpy(p + REC_TS, &len32, sizeof len32);
  if (len > 0)
    memcpy(p + REC_HDR, event, len);
  s->len += rec;
  s->last_ts = ts_ns;
  s->nevents++;
  b->newest_ts = ts_ns;
  b->nevents++;
  b->bytes += rec;
  b->events_appended++;
  b->bytes_appended += len;
  pthread_mutex_unlock(&b->mu);
  /* after unlocking, so that woken readers do not queue on the mutex behind us */
  pthread_cond_broadcast(&b->cv);
  seg_free_chain(dead);
  return 0;
}

void fm_logbuf_event_hook(void *arg, int64_t ts_ns, const uint8_t *event, size_t len)
{
  int rc = fm_logbuf_append(arg, ts_ns, event, len);
  if (rc != 0)
    fm_log_error("metalog buffer: event %lld (%zu bytes) not buffered: %s", (long long)ts_ns, len, fm_strerror(rc));
}

void fm_logbuf_seal(fm_logbuf *b)
{
  fm_logbuf_seg *dead = NULL;
  pthread_mutex_lock(&b->mu);
  if (b->tail != NULL && !b->tail->sealed) {
    b->tail->sealed = true;
    evict_locked(b, &dead);
  }
  pthread_mutex_unlock(&b->mu);
  seg_free_chain(dead);
}

void fm_logbuf_set_flushed(fm_logbuf *b, int64_t ts_ns)
{
  fm_logbuf_seg *dead = NULL;
  pthread_mutex_lock(&b->mu);
  if (ts_ns > b->newest_ts)
    ts_ns = b->newest_ts; /* the buffer vouches only for events it has seen: a later append must stay unflushed */
  if (ts_ns > b->flushed_ts) {
    b->flushed_ts = ts_ns;
    evict_locked(b, &dead);
  }
  pthread_mutex_unlock(&b->mu);
  seg_free_chain(dead);
}

int fm_logbuf_set_floor_ts(fm_logbuf *b, int64_t ts_ns)
{
  pthread_mutex_lock(&b->mu);
  if (b->events_appended > 0 || b->append_failures > 0 || ts_ns < b->floor_ts) {
    pthread_mutex_unlock(&b->mu);
    return FM_EINVAL;
  }
  b->floor_ts = ts_ns;
  if (ts_ns > b->newest_ts)
    b->newest_ts = ts_ns;
  pthread_mutex_unlock(&b->mu);
  return 0;
}

int fm_logbuf_set_start_ts(fm_logbuf *b, int64_t ts_ns)
{
  if (ts_ns < 0)
    return FM_EINVAL;
  pthread_mutex_lock(&b->mu);
  if (b->events_appended > 0 || b->append_failures > 0) {
    pthread_mutex_unlock(&b->mu);
    return FM_EINVAL;
  }
  if (ts_ns > b->floor_ts)
    b->floor_ts = ts_ns;
  if (ts_ns > b->flushed_ts)
    b->flushed_ts = ts_ns;
  if (ts_ns > b->newest_ts)
    b->newest_ts = ts_ns;
  pthread_mutex_unlock(&b->mu);
  return 0;
}

void fm_logbuf_shutdown(fm_logbuf *b)
{
  pthread_mutex_lock(&b->mu);
  b->shutdown = true;
  pthread_mutex_unlock(&b->mu);
  pthread_cond_broadcast(&b->cv);
}

/* ================================================================ watermarks */

int64_t fm_logbuf_flushed_ts(fm_logbuf *b)
{
  pthread_mutex_lock(&b->mu);
  int64_t ts = b->flushed_ts;
  pthread_mutex_unlock(&b->mu);
  return ts;
}

int64_t fm_logbuf_newest_ts(fm_logbuf *b)
{
  pthread_mutex_lock(&b->mu);
  int64_t ts = b->newest_ts;
  pthread_mutex_unlock(&b->mu);
  return ts;
}

int64_t fm_logbuf_oldest_ts(fm_logbuf *b)
{
  pthread_mutex_lock(&b->mu);
  int64_t ts = b->head != NULL ? b->head->first_ts : 0;
  pthread_mutex_unlock(&b->mu);
  return ts;
}

int64_t fm_logbuf_floor_ts(fm_logbuf *b)
{
  pthread_mutex_lock(&b->mu);
  int64_t ts = b->floor_ts;
  pthread_mutex_unlock(&b->mu);
  return ts;
}

/* ================================================================ reading */

void fm_logbuf_cursor_init(fm_logbuf_cursor *cur, int64_t after_ts)
{
  memset(cur, 0, sizeof *cur);
  cur->ts = after_ts;
}

void fm_logbuf_cursor_init_drain(fm_logbuf_cursor *cur, int64_t after_ts)
{
  fm_logbuf_cursor_init(cur, after_ts);
  cur->drain = true;
}

void fm_logbuf_cursor_destroy(fm_logbuf *b, fm_logbuf_cursor *cur)
{
  fm_logbuf_cursor_release(b, cur);
}

void fm_logbuf_cursor_release(fm_logbuf *b, fm_logbuf_cursor *cur)
{
  if (cur->seg == NULL)
    return;
  fm_logbuf_seg *dead = NULL;
  pthread_mutex_lock(&b->mu);
  seg_unpin_locked(b, cur->seg, &dead);
  pthread_mutex_unlock(&b->mu);
  cur->seg = NULL;
  cur->off = 0;
  seg_free_chain(dead);
}

int64_t fm_logbuf_cursor_ts(const fm_logbuf_cursor *cur)
{
  return cur->ts;
}

/*
 * Holds mu. Attaches a cursor that holds no segment to the first event after cur->ts: in the oldest segment with a
 * newer event, or at the end of the newest segment when the cursor is exactly at the newest event (so that it
 * follows appends in O(1)), or to nothing when memory is empty or the cursor is ahead of every event (it then
 * looks again after each wake-up, in O(1) until an event passes it). Returns FM_LOGBUF_GO_TO_DISK when the cursor
 * is below the floor. Walks from the newest segment because readers are mostly near it; the scan inside a segment
 * is linear, paid once per lookup, not per event.
 */
static int cursor_attach_locked(fm_logbuf *b, fm_logbuf_cursor *cur)
{
  if (cur->ts < b->floor_ts)
    return FM_LOGBUF_GO_TO_DISK;
  fm_logbuf_seg *s = b->tail;
  /* Ahead of every event: stay detached, or the cursor would see later appends at or below its ts. */
  if (s == NULL || cur->ts > s->last_ts)
    return 0;
  size_t off = s->len;
  if (cur->ts < s->last_ts) {
    while (s->prev != NULL && s->prev->last_ts > cur->ts)
      s = s->prev;
    off = 0;
    while (rec_ts(s->data + off) <= cur->ts)
      off += REC_HDR + rec_len(s->data + off);
  }
  s->pins++;
  cur->seg = s;
  cur->off = off;
  return 0;
}

int fm_logbuf_read(fm_logbuf *b, fm_logbuf_cursor *cur, fm_logbuf_event *out, size_t max_events, size_t *n,
                   int64_t timeout_ms)
{
  *n = 0;
  if (max_events == 0)
    return FM_EINVAL;
  fm_logbuf_seg *dead = NULL;
  struct timespec deadline = { 0, 0 };
  if (timeout_ms > WAIT_FOREVER_MS)
    timeout_ms = -1;
  if (timeout_ms > 0) {
    int64_t at = fm_mono_ns() + timeout_ms * 1000000;
    deadline.tv_sec = (time_t)(at / 1000000000);
    deadline.tv_nsec = (long)(at % 1000000000);
  }
  bool timed_out = false;
  size_t end = 0;
  int rc;

  pthread_mutex_lock(&b->mu);
  for (;;) {
    if (b->shutdown && !cur->drain) {
      rc = FM_ESHUTDOWN;
      break;
    }
    fm_logbuf_seg *s = cur->seg;
    if (s != NULL && cur->off == s->len) {
      if (s->evicted || s->gap_after) {
        /* its successor may be gone (or missing an event): look the position up again */
        seg_unpin_locked(b, s, &dead);
        cur->seg = NULL;
      } else if (s->next != NULL) {
        s->next->pins++;
        cur->seg = s->next;
        cur->off = 0;
        seg_unpin_locked(b, s, &dead);
      }
    }
    if (cur->seg == NULL) {
      rc = cursor_attach_locked(b, cur);
      if (rc != 0)
        break;
    }
    s = cur->seg;
    if (s != NULL && cur->off < s->len) {
      end = s->len;
      rc = 0;
      break;
    }
    if (b->shutdown) { /* a drain cursor with nothing left */
      rc = FM_ESHUTDOWN;
      break;
    }
    if (timeout_ms == 0 || timed_out) {
      rc = FM_ETIMEDOUT;
      break;
    }
    if (timeout_ms < 0)
      pthread_cond_wait(&b->cv, &b->mu);
    else if (pthread_cond_timedwait(&b->cv, &b->mu, &deadline) == ETIMEDOUT)
      timed_out = true; /* one more look, then give up */
  }
  pthread_mutex_unlock(&b->mu);
  seg_free_chain(dead);
  if (rc != 0)
    return rc;

  /* [cur->off, end) is immutable and the segment is pinned: parse it without the lock */
  const uint8_t *data = cur->seg->data;
  size_t off = cur->off, k = 0;
  while (k < max_events && off < end) {
    const uint8_t *p = data + off;
    size_t len = rec_len(p);
    out[k].ts_ns = rec_ts(p);
    out[k].data = p + REC_HDR;
    out[k].len = len;
    off += REC_HDR + len;
    k++;
  }
  cur->off = off;
  cur->ts = out[k - 1].ts_ns;
  *n = k;
  return 0;
}

/* ================================================================ stats */

void fm_logbuf_get_stats(fm_logbuf *b, fm_logbuf_stats *out)
{
  pthread_mutex_lock(&b->mu);
  out->events_appended = b->events_appended;
  out->bytes_appended = b->bytes_appended;
  out->append_failures = b->append_failures;
  out->evictions = b->evictions;
  out->events = b->nevents;
  out->bytes = b->bytes;
  out->alloc_bytes = b->alloc_bytes;
  out->size_bytes = b->size_bytes;
  out->overshoot_bytes = b->alloc_bytes > b->size_bytes ? b->alloc_bytes - b->size_bytes : 0;
  out->max_overshoot_bytes = b->max_overshoot;
  out->pinned_bytes = b->pinned_bytes;
  out->segments = b->nsegments;
  out->oldest_ts = b->head != NULL ? b->head->first_ts : 0;
  out->newest_ts = b->newest_ts;
  out->flushed_ts = b->flushed_ts;
  out->floor_ts = b->floor_ts;
  pthread_mutex_unlock(&b->mu);
}
