/*
 * A subscription stream (sub_stream.h).
 *
 * Reader half: while catching up, a thread of its own: sub_reader gives events in ts order; sub_filter decides;
 * what is delivered is copied into the next ring slot (its bytes owned by the slot). Markers (§5.3 item 5),
 * heartbeats (§5.5) and the end of the stream are slots too, so the client sees everything in order. A full ring
 * parks the reader (having let go of its buffer segment) until the sender frees a slot: a slow client slows only its
 * own stream. Once it runs dry the thread hands the stream to the live set (sub_live.c) and ends; the dispatcher
 * then does the same per-event work without waiting (handle_event, handle_idle) and hands the stream back to a new
 * reader thread when its ring is full.
 *
 * Sender half (any thread; mostly the completion-queue thread in on_sent): one send in flight. When the send
 * completes it takes the next slots: while batching is allowed and the head event is older than batch_behind, up to
 * FM_SUB_BATCH_MAX event slots in one response (the first event's bytes plus field-4 frames, sub_batch.c); else one.
 * Nothing waits to fill a batch. A message with more queued behind it carries GRPC_WRITE_BUFFER_HINT, the last one
 * does not. An END slot finishes the call with its status.
 *
 * Lifetime: two references, the call's side (dropped in on_done) and the server's, held by the reader thread or the
 * live set, whichever serves the stream (passed along at each hand-over); the last one frees the stream, the reader,
 * the filter, the kept request and the call reference. on_done wakes a reader, which notices within a reader poll
 * (READ_WAIT_MS) at most; the live set notices at its next event or tick.
 */
#include "sub_stream.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "rpc_codec.h"
#include "sub_batch.h"
#include "sub_filter.h"
#include "sub_live.h"
#include "sub_reader.h"
#include "sub_refs.h"

/* How long the reader waits for an event before it looks at its flags (and heartbeats) again. */
#define READ_WAIT_MS 250
#define READER_STACK (256 * 1024)
/* A reader whose ring stays full this long lets go of what it holds in memory. */
#define PARK_AFTER_S 1

/* Only SLOT_EVENT slots (events and markers) are batched; keep-alives and refs go alone. */
typedef enum slot_kind { SLOT_EVENT, SLOT_KEEPALIVE, SLOT_REFS, SLOT_END } slot_kind;

typedef struct slot {
  uint8_t *bytes; /* owned; NULL for END */
  size_t len;
  int64_t ts_ns; /* the event's (0 for keep-alives) */
  slot_kind kind;
  grpc_status_code code; /* END */
  char *message;         /* END, owned */
} slot;

typedef struct stream {
  fm_sub_stream_config cfg;
  fm_rpc_call *call; /* referenced until the stream is freed */
  FilerPb__SubscribeMetadataRequest *req;
  fm_subreg_stream *reg;
  bool batching, heartbeat;
  bool flush_reports; /* a local stream whose client asked for keep-alives: the flushed watermark every 5 s */

  /* whoever serves the stream: its reader thread, or the live set's dispatcher (sub_live.c) once it caught up; the
   * hand-over between them is under the live set's lock or a thread start, so these need no lock of their own */
  fm_sub_filter filter;
  fm_sub_reader *reader;
  int64_t handled_ts;  /* the last event filtered and queued (or dropped by the filter): where a reader resumes */
  int64_t last_out;    /* mono ns of the last message queued: for heartbeats */
  int64_t last_report; /* mono ns of the last flush report */
  uint32_t ticks;
  bool refs_sent; /* refs mode: the refs and the transition marker went out (a resumed reader sends none) */

  pthread_mutex_t mu;
  pthread_cond_t cv; /* the reader waits here for room or the end */
  slot ring[FM_SUB_RING_SLOTS];
  size_t head, count; /* mu */
  size_t bytes;       /* mu: bytes of the queued slots */
  bool superseded;    /* mu: a newer epoch of this client took over (the registry's wake) */
  bool sending;       /* mu: a send is in flight */
  bool finished;      /* mu: the END slot was taken (or the call broke): nothing more is sent */
  bool done;          /* mu: the call is over (on_done) */
  bool kick_due;      /* mu: the reader queued events without a kick and will kick (it is catching up) */
  int refs;           /* mu */
} stream;

static void slot_free(slot *s)
{
  free(s->bytes);
  free(s->message);
  memset(s, 0, sizeof *s);
}

static void stream_unref(stream *st)
{
  pthread_mutex_lock(&st->mu);
  bool last = --st->refs == 0;
  pthread_mutex_unlock(&st->mu);
  if (!last)
    return;
  for (size_t i = 0; i < st->count; i++)
    slot_free(&st->ring[(st->head + i) % FM_SUB_RING_SLOTS]);
  if (st->reg != NULL)
    fm_subreg_unregister(st->cfg.registry, st->reg);
  fm_sub_reader_close(st->reader);
  fm_sub_filter_destroy(&st->filter);
  fm_rpc_request_free(&st->req->base);
  fm_rpc_call_unref(st->call);
  pthread_cond_destroy(&st->cv);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

/* ================================================================ sender */

static void free_block(void *p)
{
  free(p);
}

/* Takes what goes into the next response from the ring. Holds mu. Returns a byte buffer to send (NULL: nothing to
 * send), or the END slot's code and message when it comes up. */
static grpc_byte_buffer *take_locked(stream *st, bool by_sender, bool *end, grpc_status_code *end_code, char **end_msg,
                                     uint64_t *events, uint64_t *bytes, uint32_t *flags)
{
  *flags = 0;
  *end = false;
  *events = *bytes = 0;
  if (st->sending || st->finished || st->count == 0)
    return NULL;
  slot *h = &st->ring[st->head];
  /* a reader catching up will kick with a full batch (or when it runs dry): a completed send leaves a partial batch
   * to it instead of sending it short */
  if (by_sender && st->kick_due && st->count < FM_SUB_BATCH_MAX)
    return NULL;
  if (h->kind == SLOT_END) {
    *end = true;
    *end_code = h->code;
    *end_msg = h->message;
    h->message = NULL;
    st->bytes -= h->len;
    slot_free(h);
    st->head = (st->head + 1) % FM_SUB_RING_SLOTS;
    st->count--;
    st->finished = true;
    return NULL;
  }
  size_t n = 1;
  if (h->kind == SLOT_EVENT && st->batching && h->ts_ns > 0 && fm_now_ns() - h->ts_ns > st->cfg.batch_behind_ns) {
    while (n < st->count && n < FM_SUB_BATCH_MAX && st->ring[(st->head + n) % FM_SUB_RING_SLOTS].kind == SLOT_EVENT)
      n++;
  }
  grpc_slice slice;
  if (n == 1) {
    slice = grpc_slice_new(h->bytes, h->len, free_block); /* the slot's bytes go to gRPC as they are */
    *events = h->kind == SLOT_EVENT;
    *bytes = h->len;
    h->bytes = NULL;
  } else {
    fm_sub_bytes parts[FM_SUB_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
      slot *s = &st->ring[(st->head + i) % FM_SUB_RING_SLOTS];
      parts[i] = (fm_sub_bytes){ s->bytes, s->len };
    }
    size_t size = fm_sub_batch_size(parts, n), written = 0;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL || fm_sub_batch_encode(parts, n, buf, size, &written) != 0) {
      free(buf);
      n = 1; /* send the head alone rather than nothing */
      slice = grpc_slice_new(h->bytes, h->len, free_block);
      *events = 1;
      *bytes = h->len;
      h->bytes = NULL;
    } else {
      slice = grpc_slice_new(buf, written, free_block);
      *events = n;
      *bytes = written;
    }
  }
  for (size_t i = 0; i < n; i++) {
    st->bytes -= st->ring[st->head].len;
    slot_free(&st->ring[st->head]);
    st->head = (st->head + 1) % FM_SUB_RING_SLOTS;
    st->count--;
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  st->sending = true;
  /* more is queued behind this one: gRPC may hold it for the next write instead of a write of its own (the send
   * still completes, so one send in flight keeps moving); the last queued message goes without the hint, so a
   * caught-up stream waits for nothing. Measured: one event per message 75-82k -> 199-207k events/s. */
  if (st->count > 0 && st->ring[st->head].kind != SLOT_END)
    *flags = GRPC_WRITE_BUFFER_HINT;
  /* room for the reader: woken at half empty, not per message (a reader faster than its client otherwise trades a
   * task switch with the sender for every message) */
  if (st->count <= FM_SUB_RING_SLOTS / 2 && st->bytes <= FM_SUB_RING_BYTES / 2)
    pthread_cond_broadcast(&st->cv);
  return bb;
}

/* Sends what is due, if no send is in flight. `by_sender`: called because a send completed (not by the reader's
 * kick). Any thread; takes mu. */
static void pump(stream *st, bool by_sender)
{
  bool end;
  grpc_status_code code = GRPC_STATUS_OK;
  char *msg = NULL;
  uint64_t events, bytes;
  uint32_t flags;
  pthread_mutex_lock(&st->mu);
  if (!by_sender)
    st->kick_due = false;
  grpc_byte_buffer *bb = take_locked(st, by_sender, &end, &code, &msg, &events, &bytes, &flags);
  pthread_mutex_unlock(&st->mu);
  if (end) {
    fm_rpc_call_finish(st->call, code, msg != NULL ? msg : "");
    free(msg);
    return;
  }
  if (bb == NULL)
    return;
  fm_subreg_stream_count_sent(st->reg, events, bytes);
  if (fm_rpc_call_send_buffer(st->call, bb, flags) != 0) {
    /* the call is over or ending: stop sending; on_done ends the rest */
    pthread_mutex_lock(&st->mu);
    st->sending = false;
    st->finished = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
  }
}

void fm_sub_stream_on_sent(fm_rpc_call *call, bool ok)
{
  stream *st = fm_rpc_call_user(call);
  if (st == NULL)
    return;
  pthread_mutex_lock(&st->mu);
  st->sending = false;
  if (!ok)
    st->finished = true;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
  if (ok)
    pump(st, true);
}

void fm_sub_stream_on_done(fm_rpc_call *call)
{
  stream *st = fm_rpc_call_user(call);
  if (st == NULL)
    return;
  fm_rpc_call_set_user(call, NULL);
  pthread_mutex_lock(&st->mu);
  st->done = true;
  st->finished = true;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
  stream_unref(st);
}

/* ================================================================ reader */

/* What queueing a slot came to. */
enum { PUSHED = 0, PUSH_OVER, PUSH_FULL };

/* Holds mu. No room for `len` more bytes: all slots taken, or the byte bound reached (a slot always fits in an empty
 * ring). */
static bool ring_full(const stream *st, size_t len)
{
  return st->count == FM_SUB_RING_SLOTS || (st->count > 0 && st->bytes + len > FM_SUB_RING_BYTES);
}

/* Queues one slot. Takes ownership of bytes and message. `wait`: wait for room (a reader thread); without it a full
 * ring answers PUSH_FULL (the dispatcher, which never waits for one client). `kick`: start a send now if none is in
 * flight; without it the slot waits for the next kick or send completion, so that a reader catching up from far
 * behind queues a batch's worth before the first send takes it (no timer: the reader kicks every
 * FM_SUB_BATCH_MAX events and whenever it has nothing more at hand). PUSH_OVER when the stream is over (the slot is
 * dropped). */
static int push(stream *st, slot_kind kind, uint8_t *bytes, size_t len, int64_t ts, grpc_status_code code,
                char *message, bool kick, bool wait)
{
  pthread_mutex_lock(&st->mu);
  if (ring_full(st, len) && !st->done && !st->finished && !st->superseded) {
    if (!wait) {
      pthread_mutex_unlock(&st->mu);
      pump(st, false); /* a full ring must be moving */
      free(bytes);
      free(message);
      return PUSH_FULL;
    }
    pthread_mutex_unlock(&st->mu);
    pump(st, false); /* a full ring must be moving */
    pthread_mutex_lock(&st->mu);
    /* A reader faster than its client fills the ring all the time: it waits a little with what it holds (dropping
     * its scan each time would re-read and re-check a chunk per ring's worth; measured: CRC checks took a third of
     * the server). A client that stops reading for long gets a reader that holds no buffer segment or readahead. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += PARK_AFTER_S;
    while (ring_full(st, len) && !st->done && !st->finished && !st->superseded)
      if (pthread_cond_timedwait(&st->cv, &st->mu, &until) != 0)
        break;
    if (ring_full(st, len) && !st->done && !st->finished && !st->superseded) {
      pthread_mutex_unlock(&st->mu);
      fm_sub_reader_release(st->reader);
      pthread_mutex_lock(&st->mu);
      while (ring_full(st, len) && !st->done && !st->finished && !st->superseded)
        pthread_cond_wait(&st->cv, &st->mu);
    }
  }
  if (st->done || st->finished || (st->superseded && kind != SLOT_END)) {
    pthread_mutex_unlock(&st->mu);
    free(bytes);
    free(message);
    return PUSH_OVER;
  }
  slot *s = &st->ring[(st->head + st->count) % FM_SUB_RING_SLOTS];
  *s = (slot){ bytes, len, ts, kind, code, message };
  st->count++;
  st->bytes += len;
  if (!kick)
    st->kick_due = true;
  fm_subreg_stream_set_ring_fill(st->reg, (uint32_t)st->count);
  pthread_mutex_unlock(&st->mu);
  if (kick)
    pump(st, false);
  if (kind != SLOT_END)
    st->last_out = fm_mono_ns();
  return PUSHED;
}

static int push_copy(stream *st, slot_kind kind, const uint8_t *data, size_t len, int64_t ts, bool kick, bool wait)
{
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL) {
    push(st, SLOT_END, NULL, 0, 0, GRPC_STATUS_RESOURCE_EXHAUSTED, strdup("out of memory"), true, wait);
    return PUSH_OVER;
  }
  memcpy(copy, data, len);
  return push(st, kind, copy, len, ts, GRPC_STATUS_OK, NULL, kick, wait);
}

static void push_end(stream *st, grpc_status_code code, const char *message)
{
  push(st, SLOT_END, NULL, 0, 0, code, strdup(message), true, true);
}

static bool over(stream *st)
{
  pthread_mutex_lock(&st->mu);
  bool o = st->done || st->finished;
  pthread_mutex_unlock(&st->mu);
  return o;
}

/* What handling one step of a stream came to. */
enum { STEP_ON = 0, STEP_END, STEP_FULL };

static int step_of(int push_rc)
{
  return push_rc == PUSHED ? STEP_ON : push_rc == PUSH_FULL ? STEP_FULL : STEP_END;
}

/* One event (from the reader or the dispatcher): filter, queue, markers. `unkicked` counts events queued without a
 * kick (catching up with batching). STEP_END when the stream ended (or is over), STEP_FULL when !wait and the ring
 * had no room (the event is not handled: handled_ts stays before it). */
static int handle_event(stream *st, int64_t ts, const uint8_t *data, size_t len, bool from_disk, bool wait,
                        size_t *unkicked)
{
  fm_sub_result res;
  char ferr[FM_ERR_LEN] = "";
  int frc = fm_sub_filter_check(&st->filter, data, len, &res, ferr, sizeof ferr);
  if (frc != 0) {
    /* never skip an event silently: the stream ends, and the client resumes from what it got */
    char msg[FM_ERR_LEN + 96];
    snprintf(msg, sizeof msg, "event %" PRId64 " %s: %s", ts, from_disk ? "read from persisted logs" : "in memory",
             ferr[0] ? ferr : fm_strerror(frc));
    push_end(st, frc == FM_ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_DATA_LOSS, msg);
    return STEP_END;
  }
  if (res.verdict == FM_SUB_AFTER_UNTIL) {
    push_end(st, GRPC_STATUS_OK, "");
    return STEP_END;
  }
  if (res.verdict == FM_SUB_DELIVER) {
    /* live events go at once; while far behind (and batching), a batch's worth at a time */
    bool behind = st->batching && fm_now_ns() - res.ts_ns > st->cfg.batch_behind_ns;
    bool kick = !behind || ++*unkicked >= FM_SUB_BATCH_MAX;
    if (kick)
      *unkicked = 0;
    int rc = push_copy(st, SLOT_EVENT, res.bytes, res.len, res.ts_ns, kick, wait);
    if (rc != PUSHED)
      return step_of(rc);
    fm_subreg_stream_set_position(st->reg, res.ts_ns);
    st->handled_ts = ts;
    return STEP_ON;
  }
  int64_t mts;
  if (fm_sub_filter_marker_due(&st->filter, &mts)) {
    uint8_t m[FM_SUB_KEEPALIVE_MAX];
    size_t mlen = fm_sub_batch_marker(mts, m);
    int rc = push_copy(st, SLOT_EVENT, m, mlen, mts, true, wait);
    if (rc != PUSHED)
      return step_of(rc);
    fm_sub_filter_marker_sent(&st->filter);
  }
  st->handled_ts = ts;
  return STEP_ON;
}

/* The flush report (PROTOCOL.md 5.5): {flushed_ts_ns} with ts_ns 0, every flush_report_ns, caught up or not. */
static int report_flush(stream *st, bool wait)
{
  int64_t now = fm_mono_ns();
  if (!st->flush_reports || now - st->last_report < st->cfg.flush_report_ns)
    return STEP_ON;
  st->last_report = now;
  int64_t flushed = fm_logbuf_flushed_ts(st->cfg.logbuf);
  if (flushed <= 0)
    return STEP_ON; /* nothing flushed yet: nothing to report */
  uint8_t m[FM_SUB_KEEPALIVE_MAX];
  size_t len = fm_sub_batch_heartbeat(0, flushed, m);
  return step_of(push_copy(st, SLOT_KEEPALIVE, m, len, 0, true, wait));
}

/* A caught-up stream (every event up to `through` examined, none waiting on disk): a bounded stream ends once the
 * fence passes until_ns; heartbeats and flush reports fall due. */
static int handle_idle(stream *st, int64_t through, bool wait)
{
  int64_t newest = fm_logbuf_newest_ts(st->cfg.logbuf);
  if (st->req->until_ns != 0 && fm_filer_fence_ts(st->cfg.filer) >= st->req->until_ns && newest <= through) {
    /* every event <= until_ns is published (the fence is past it) and examined: a bounded stream never waits for
     * the future */
    push(st, SLOT_END, NULL, 0, 0, GRPC_STATUS_OK, strdup(""), true, wait);
    return STEP_END;
  }
  int step = report_flush(st, wait);
  if (step != STEP_ON || !st->heartbeat || fm_mono_ns() - st->last_out < st->cfg.heartbeat_ns)
    return step;
  /* local: {ts_ns: delivered-through, flushed_ts_ns: flushed-through}. The fence is above every event published; if
   * every one of those is examined, everything up to the fence is delivered (or filtered out) and every later event
   * will have a greater ts. Aggregated: {ts_ns: now}. */
  uint8_t hb[FM_SUB_KEEPALIVE_MAX];
  size_t hlen = 0;
  int64_t at = fm_now_ns();
  if (st->cfg.local) {
    if (newest > through)
      return STEP_ON; /* not caught up after all */
    at = fm_filer_fence_ts(st->cfg.filer);
    newest = fm_logbuf_newest_ts(st->cfg.logbuf);
    if (newest > through)
      return STEP_ON; /* published meanwhile: not caught up after all */
    int64_t flushed = fm_logbuf_flushed_ts(st->cfg.logbuf);
    hlen = fm_sub_batch_heartbeat(at, flushed >= newest ? at : flushed, hb);
  } else {
    hlen = fm_sub_batch_heartbeat(at, 0, hb);
  }
  step = step_of(push_copy(st, SLOT_KEEPALIVE, hb, hlen, 0, true, wait));
  if (step == STEP_ON)
    fm_subreg_stream_set_position(st->reg, at);
  return step;
}

static bool emit_refs(void *arg, uint8_t *bytes, size_t len)
{
  return push(arg, SLOT_REFS, bytes, len, 0, GRPC_STATUS_OK, NULL, true, true) == PUSHED;
}

/* Log-file refs mode (PROTOCOL.md 5.7): the persisted part of the range as refs, then the transition marker at T,
 * then the reader goes on after T. Returns false when the stream is over (ended here or by the client). */
static bool send_refs(stream *st)
{
  int64_t through = 0;
  char err[FM_ERR_LEN] = "";
  int rc =
      fm_sub_refs_send(st->cfg.store, st->req->since_ns, st->req->until_ns, emit_refs, st, &through, err, sizeof err);
  if (rc == FM_ECANCELED)
    return false;
  if (rc != 0) {
    char msg[FM_ERR_LEN + 64];
    snprintf(msg, sizeof msg, "reading from persisted logs: %s", err[0] ? err : fm_strerror(rc));
    push_end(st,
             rc == FM_EDECODE  ? GRPC_STATUS_DATA_LOSS
             : rc == FM_ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED
                               : GRPC_STATUS_INTERNAL,
             msg);
    return false;
  }
  if (through <= st->req->since_ns)
    return true; /* nothing persisted after since_ns: events from the start */
  uint8_t m[FM_SUB_KEEPALIVE_MAX];
  size_t mlen = fm_sub_batch_marker(through, m);
  if (push_copy(st, SLOT_EVENT, m, mlen, through, true, true) != PUSHED)
    return false;
  fm_sub_reader_seek(st->reader, through);
  st->handled_ts = through;
  fm_subreg_stream_set_position(st->reg, through);
  return true;
}

static bool superseded(stream *st)
{
  return fm_subreg_stream_superseded(st->reg);
}

/* The stream's end as its last server (reader thread or dispatcher) sees it: a superseded stream ends with OK (also
 * when the wake stopped a push; a no-op if it ended already), then that server's reference goes. */
static void let_go(stream *st)
{
  if (superseded(st))
    fm_rpc_call_finish(st->call, GRPC_STATUS_OK, "");
  stream_unref(st);
}

static void *reader_main(void *arg);

/* Starts a reader thread for `st`, handing it the caller's reference. On failure the call ends and the reference
 * goes. */
static void start_reader(stream *st)
{
  fm_sub_threads *threads = st->cfg.threads;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, READER_STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  pthread_mutex_lock(&threads->mu);
  threads->live++;
  pthread_mutex_unlock(&threads->mu);
  int rc = pthread_create(&t, &attr, reader_main, st);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_mutex_lock(&threads->mu);
    if (--threads->live == 0)
      pthread_cond_broadcast(&threads->cv);
    pthread_mutex_unlock(&threads->mu);
    fm_rpc_call_finish(st->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start a reader thread");
    stream_unref(st);
  }
}

/* ---------------------------------------------------------------- the live set's member (dispatcher thread) */

/* The dispatcher gives the stream back to a reader thread of its own, from the last event it handled. */
static void demote(stream *st)
{
  fm_sub_reader_seek(st->reader, st->handled_ts);
  start_reader(st);
}

/* What a member's step means for its stay in the live set: true to stay; else the stream has been let go (ended)
 * or handed back to a reader thread (its queue was full). */
static bool live_stay(stream *st, int step)
{
  if (step == STEP_END)
    let_go(st);
  else if (step == STEP_FULL)
    demote(st);
  return step == STEP_ON;
}

static bool live_deliver(void *m, const fm_logbuf_event *evs, size_t n, int64_t through)
{
  (void)through;
  stream *st = m;
  int step = over(st) || superseded(st) ? STEP_END : STEP_ON;
  size_t unkicked = 0;
  for (size_t i = 0; i < n && step == STEP_ON; i++)
    step = handle_event(st, evs[i].ts_ns, evs[i].data, evs[i].len, false, false, &unkicked);
  if (step == STEP_ON && unkicked > 0)
    pump(st, false);
  return live_stay(st, step);
}

static bool live_tick(void *m, int64_t through)
{
  stream *st = m;
  return live_stay(st, over(st) || superseded(st) ? STEP_END : handle_idle(st, through, false));
}

static void live_fell_behind(void *m, int64_t through)
{
  (void)through;
  demote(m);
}

static void live_shutdown(void *m)
{
  stream *st = m;
  if (push(st, SLOT_END, NULL, 0, 0, GRPC_STATUS_UNAVAILABLE, strdup("server shutting down"), true, false) == PUSH_FULL)
    fm_rpc_call_finish(st->call, GRPC_STATUS_UNAVAILABLE, "server shutting down"); /* what is queued is dropped */
  let_go(st);
}

static const fm_sub_live_ops live_ops = { live_deliver, live_tick, live_fell_behind, live_shutdown };

/* ---------------------------------------------------------------- the reader thread */

static void *reader_main(void *arg)
{
  stream *st = arg;
  fm_sub_threads *threads = st->cfg.threads;
  char err[FM_ERR_LEN];
  size_t unkicked = 0; /* events queued since the last kick */
  bool joined = false;
  /* a reader that has nothing at hand asks to join the live set at once; after a refused join it waits for events
   * READ_WAIT_MS at a time before it asks again */
  int64_t wait_ms = 0;
  bool ok = true;
  if (st->req->client_supports_metadata_chunks && !st->refs_sent) {
    st->refs_sent = true;
    ok = send_refs(st);
  }
  for (; ok;) {
    if (over(st) || superseded(st))
      break; /* a newer epoch of this client took over: ends with OK below, queued events or not */
    if (st->flush_reports && (++st->ticks & 1023) == 0 && report_flush(st, true) != STEP_ON)
      break;
    fm_sub_event ev;
    err[0] = '\0';
    int rc = fm_sub_reader_next(st->reader, &ev, wait_ms, err, sizeof err);
    if (rc == 0) {
      wait_ms = 0;
      if (handle_event(st, ev.ts_ns, ev.data, ev.len, ev.from_disk, true, &unkicked) != STEP_ON)
        break;
      continue;
    }
    if (unkicked > 0) { /* nothing more at hand: send what is queued */
      unkicked = 0;
      pump(st, false);
    }
    if (rc == FM_ETIMEDOUT) {
      if (fm_sub_reader_on_disk(st->reader)) {
        wait_ms = READ_WAIT_MS; /* waiting for the flusher is not being caught up */
        continue;
      }
      if (handle_idle(st, fm_sub_reader_ts(st->reader), true) != STEP_ON)
        break;
      if (st->cfg.live != NULL) {
        fm_sub_reader_release(st->reader);
        /* from here on the dispatcher may use (and free) the stream: this thread touches it no more */
        if (fm_sub_live_join(st->cfg.live, st, &live_ops, fm_sub_reader_ts(st->reader))) {
          joined = true;
          break;
        }
      }
      wait_ms = READ_WAIT_MS;
      continue;
    }
    if (rc == FM_ENOTFOUND) { /* until_ns reached */
      push_end(st, GRPC_STATUS_OK, "");
      break;
    }
    if (rc == FM_ESHUTDOWN) {
      push_end(st, GRPC_STATUS_UNAVAILABLE, "server shutting down");
      break;
    }
    char msg[FM_ERR_LEN + 64];
    snprintf(msg, sizeof msg, "reading from persisted logs: %s", err[0] ? err : fm_strerror(rc));
    push_end(st, rc == FM_EDECODE ? GRPC_STATUS_DATA_LOSS : GRPC_STATUS_INTERNAL, msg);
    break;
  }
  if (!joined) {
    fm_sub_reader_release(st->reader);
    let_go(st); /* may be the last reference to the stream and to the call */
  }
  pthread_mutex_lock(&threads->mu);
  if (--threads->live == 0)
    pthread_cond_broadcast(&threads->cv);
  pthread_mutex_unlock(&threads->mu);
  return NULL;
}

void fm_sub_threads_init(fm_sub_threads *t)
{
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  t->live = 0;
}

void fm_sub_threads_wait(fm_sub_threads *t)
{
  pthread_mutex_lock(&t->mu);
  while (t->live > 0)
    pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
}

void fm_sub_threads_destroy(fm_sub_threads *t)
{
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
}

/* The registry's wake for a superseded stream: a reader parked on a full ring must notice too. */
static void wake_superseded(void *arg)
{
  stream *st = arg;
  pthread_mutex_lock(&st->mu);
  st->superseded = true;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

/* ================================================================ start */

int fm_sub_stream_start(fm_rpc_call *call, FilerPb__SubscribeMetadataRequest *req, const fm_sub_stream_config *cfg,
                        char *err, size_t errlen)
{
  stream *st = calloc(1, sizeof *st);
  if (st == NULL)
    return FM_ENOMEM;
  st->cfg = *cfg;
  st->call = call;
  st->req = req;
  st->batching = req->client_supports_batching;
  st->heartbeat = req->client_supports_idle_heartbeat;
  st->flush_reports = cfg->local && req->client_supports_idle_heartbeat && cfg->flush_report_ns > 0;
  int rc = fm_sub_filter_init(&st->filter, req, cfg->signature, err, errlen);
  if (rc != 0) {
    free(st);
    return rc;
  }
  fm_sub_reader_config rcfg = { .store = cfg->store, .chunks = cfg->chunks, .logbuf = cfg->logbuf };
  rc = fm_sub_reader_open(&rcfg, req->since_ns, req->until_ns, &st->reader);
  if (rc != 0) {
    snprintf(err, errlen, "%s", fm_strerror(rc));
    fm_sub_filter_destroy(&st->filter);
    free(st);
    return rc;
  }
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  char rerr[FM_ERR_LEN] = "";
  rc = fm_subreg_register(cfg->registry, cfg->local ? FM_SUBREG_LOCAL : FM_SUBREG_AGGREGATED, req,
                          fm_rpc_call_peer(call), wake_superseded, st, &st->reg, rerr);
  if (rc != 0) {
    snprintf(err, errlen, "%s", rerr[0] ? rerr : fm_strerror(rc));
    fm_sub_reader_close(st->reader);
    fm_sub_filter_destroy(&st->filter);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
    return rc;
  }
  st->refs = 2;
  st->handled_ts = req->since_ns;
  st->last_out = st->last_report = fm_mono_ns();
  fm_rpc_call_ref(call);
  fm_rpc_call_set_user(call, st);
  start_reader(st); /* on failure the call ends: on_done drops the call's reference, this drops the reader's */
  return 0;
}
