/* Unit tests for server/log_buffer.h: append and read, segments, eviction and the go-to-disk rule, pinned segments,
 * waits, shutdown, the start ts, a lost append, and concurrent readers with and without eviction. Events are
 * numbered ts = 1, 2, 3, ... with bytes derived from their ts, so a reader proves order, no gap and no duplicate by
 * checking that each ts is the previous one plus one. Linked with -Wl,--wrap=malloc to make one allocation fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "log_buffer.h"

/* Bytes of framing per record inside the buffer (log_buffer.c): stats.bytes counts them. */
#define FRAME 12

/* ================================================================ malloc failure */

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

/* Mallocs of at least this many bytes fail while it is non-zero (only calls from statically linked code are
 * wrapped: this file and the server library). */
static _Atomic size_t fail_malloc_from;

void *__wrap_malloc(size_t size)
{
  size_t from = atomic_load(&fail_malloc_from);
  if (from != 0 && size >= from)
    return NULL;
  return __real_malloc(size);
}

/* ================================================================ events */

/* The length of event `ts`: 8 to 64 bytes, so records straddle segment ends in every way. */
static size_t ev_len(int64_t ts)
{
  return 8 + (size_t)(ts * 7 % 57);
}

static void ev_fill(int64_t ts, uint8_t *out, size_t len)
{
  for (size_t i = 0; i < len; i++)
    out[i] = (uint8_t)(ts * 131 + (int64_t)i * 7);
}

/* Whether `data` holds event ts's bytes. */
static bool ev_ok(int64_t ts, const uint8_t *data, size_t len)
{
  if (len != ev_len(ts))
    return false;
  for (size_t i = 0; i < len; i++)
    if (data[i] != (uint8_t)(ts * 131 + (int64_t)i * 7))
      return false;
  return true;
}

static int append_ev(fm_logbuf *b, int64_t ts)
{
  uint8_t buf[64];
  size_t len = ev_len(ts);
  ev_fill(ts, buf, len);
  return fm_logbuf_append(b, ts, buf, len);
}

/* Appends events from..to (inclusive). */
static void append_range(fm_logbuf *b, int64_t from, int64_t to)
{
  for (int64_t ts = from; ts <= to; ts++)
    assert_int_equal(append_ev(b, ts), 0);
}

static fm_logbuf *mk(size_t size, size_t segment)
{
  fm_logbuf_options opt = { .size_bytes = size, .segment_bytes = segment };
  fm_logbuf *b = NULL;
  assert_int_equal(fm_logbuf_new(&opt, &b), 0);
  assert_non_null(b);
  return b;
}

/*
 * Reads with `max` events per call and no waiting until FM_ETIMEDOUT, checking each event is the previous ts plus
 * one with the right bytes; stops early on any other status, which it returns. *last is the cursor's ts on entry
 * and the last ts read on return.
 */
static int drain(fm_logbuf *b, fm_logbuf_cursor *cur, size_t max, int64_t *last)
{
  fm_logbuf_event ev[64];
  assert_true(max <= 64);
  for (;;) {
    size_t n = 99;
    int rc = fm_logbuf_read(b, cur, ev, max, &n, 0);
    if (rc != 0) {
      assert_int_equal(n, 0);
      return rc == FM_ETIMEDOUT ? 0 : rc;
    }
    assert_true(n >= 1 && n <= max);
    for (size_t i = 0; i < n; i++) {
      assert_int_equal(ev[i].ts_ns, *last + 1);
      assert_true(ev_ok(ev[i].ts_ns, ev[i].data, ev[i].len));
      *last = ev[i].ts_ns;
    }
    assert_int_equal(fm_logbuf_cursor_ts(cur), *last);
  }
}

/* Reads once without waiting from a new cursor at after_ts; returns the status and the first event's ts in *first. */
static int first_after(fm_logbuf *b, int64_t after_ts, int64_t *first)
{
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, after_ts);
  fm_logbuf_event ev;
  size_t n;
  int rc = fm_logbuf_read(b, &cur, &ev, 1, &n, 0);
  *first = rc == 0 ? ev.ts_ns : -1;
  fm_logbuf_cursor_destroy(b, &cur);
  return rc;
}

static double elapsed_ms(int64_t since_mono_ns)
{
  return (double)(fm_mono_ns() - since_mono_ns) / 1e6;
}

/* ================================================================ basics */

static void test_new_free(void **state)
{
  (void)state;
  fm_logbuf_free(NULL);

  fm_logbuf *b = NULL;
  assert_int_equal(fm_logbuf_new(NULL, &b), 0);
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.size_bytes, FM_LOGBUF_SIZE_DEFAULT);
  assert_int_equal(st.events, 0);
  assert_int_equal(st.segments, 0);
  assert_int_equal(st.alloc_bytes, 0);
  assert_int_equal(fm_logbuf_newest_ts(b), 0);
  assert_int_equal(fm_logbuf_oldest_ts(b), 0);
  assert_int_equal(fm_logbuf_flushed_ts(b), 0);
  assert_int_equal(fm_logbuf_floor_ts(b), 0);

  /* the default segment for 64 MiB is 1 MiB, header included (one allocator size class) */
  append_range(b, 1, 1);
  fm_logbuf_get_stats(b, &st);
  assert_true(st.alloc_bytes < (size_t)1 << 20 && st.alloc_bytes > ((size_t)1 << 20) - 256);

  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  fm_logbuf_event ev;
  size_t n = 5;
  assert_int_equal(fm_logbuf_read(b, &cur, &ev, 0, &n, 0), FM_EINVAL);
  assert_int_equal(n, 0);
  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_cursor_destroy(b, &cur); /* twice is harmless */
  fm_logbuf_free(b);

  /* a small bound gets 64 KiB segments */
  b = mk(1 << 20, 0);
  append_range(b, 1, 1);
  fm_logbuf_get_stats(b, &st);
  assert_true(st.alloc_bytes < (size_t)64 << 10 && st.alloc_bytes > ((size_t)64 << 10) - 256);
  fm_logbuf_free(b);
}

static void test_round_trip(void **state)
{
  (void)state;
  fm_logbuf *b = mk(0, 0);
  const char *a = "first event", *c = "third, after an empty one";
  assert_int_equal(fm_logbuf_append(b, 100, a, strlen(a)), 0);
  assert_int_equal(fm_logbuf_append(b, 200, NULL, 0), 0);
  assert_int_equal(fm_logbuf_append(b, 300, c, strlen(c)), 0);
  assert_int_equal(fm_logbuf_newest_ts(b), 300);
  assert_int_equal(fm_logbuf_oldest_ts(b), 100);

  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  assert_int_equal(fm_logbuf_cursor_ts(&cur), 0);
  fm_logbuf_event ev[8];
  size_t n;
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 8, &n, 0), 0);
  assert_int_equal(n, 3);
  assert_int_equal(ev[0].ts_ns, 100);
  assert_int_equal(ev[0].len, strlen(a));
  assert_memory_equal(ev[0].data, a, strlen(a));
  assert_int_equal(ev[1].ts_ns, 200);
  assert_int_equal(ev[1].len, 0);
  assert_int_equal(ev[2].ts_ns, 300);
  assert_int_equal(ev[2].len, strlen(c));
  assert_memory_equal(ev[2].data, c, strlen(c));
  assert_int_equal(fm_logbuf_cursor_ts(&cur), 300);

  /* caught up: nothing more */
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 8, &n, 0), FM_ETIMEDOUT);
  assert_int_equal(n, 0);

  /* the caller's bytes were copied */
  char d[] = "fourth";
  assert_int_equal(fm_logbuf_append(b, 400, d, 6), 0);
  memset(d, 'x', 6);
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 8, &n, 0), 0);
  assert_int_equal(n, 1);
  assert_memory_equal(ev[0].data, "fourth", 6);

  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.events_appended, 4);
  assert_int_equal(st.events, 4);
  assert_int_equal(st.bytes_appended, strlen(a) + strlen(c) + 6);
  assert_int_equal(st.bytes, 4 * FRAME + strlen(a) + strlen(c) + 6);
  assert_int_equal(st.segments, 1);
  assert_int_equal(st.oldest_ts, 100);
  assert_int_equal(st.newest_ts, 400);

  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_free(b);
}

static void test_ts_strictly_increasing(void **state)
{
  (void)state;
  fm_logbuf *b = mk(0, 0);
  uint8_t x = 1;
  assert_int_equal(fm_logbuf_append(b, 0, &x, 1), FM_EINVAL); /* not above the initial newest (0) */
  assert_int_equal(fm_logbuf_append(b, -5, &x, 1), FM_EINVAL);
  assert_int_equal(fm_logbuf_append(b, 10, &x, 1), 0);
  assert_int_equal(fm_logbuf_append(b, 10, &x, 1), FM_EINVAL);
  assert_int_equal(fm_logbuf_append(b, 9, &x, 1), FM_EINVAL);
  assert_int_equal(fm_logbuf_append(b, 11, NULL, 1), FM_EINVAL);
  assert_int_equal(fm_logbuf_append(b, 11, &x, FM_LOGBUF_EVENT_MAX + 1), FM_ETOOBIG);
  assert_int_equal(fm_logbuf_append(b, 11, &x, 1), 0);

  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.events_appended, 2);
  assert_int_equal(st.newest_ts, 11);

  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  fm_logbuf_event ev[4];
  size_t n;
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 4, &n, 0), 0);
  assert_int_equal(n, 2);
  assert_int_equal(ev[0].ts_ns, 10);
  assert_int_equal(ev[1].ts_ns, 11);
  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_free(b);
}

/* Cursors at an existing ts, between two, before all and after all, in one segment and across many. */
static void test_read_from_middle(void **state)
{
  (void)state;
  for (int pass = 0; pass < 2; pass++) {
    fm_logbuf *b = mk(1 << 20, pass == 0 ? 0 : 64); /* one segment; then one or two events per segment */
    for (int64_t ts = 10; ts <= 1000; ts += 10)
      assert_int_equal(append_ev(b, ts), 0);
    int64_t first;
    for (int64_t at = 0; at < 1000; at++) {
      assert_int_equal(first_after(b, at, &first), 0);
      assert_int_equal(first, (at / 10 + 1) * 10);
    }
    /* a cursor at or past the newest waits */
    assert_int_equal(first_after(b, 1000, &first), FM_ETIMEDOUT);
    assert_int_equal(first_after(b, 5000, &first), FM_ETIMEDOUT);

    /* and sees only what is newer than itself */
    fm_logbuf_cursor cur;
    fm_logbuf_cursor_init(&cur, 5000);
    fm_logbuf_event ev[4];
    size_t n;
    assert_int_equal(fm_logbuf_read(b, &cur, ev, 4, &n, 0), FM_ETIMEDOUT);
    assert_int_equal(append_ev(b, 2000), 0);
    assert_int_equal(fm_logbuf_read(b, &cur, ev, 4, &n, 0), FM_ETIMEDOUT);
    assert_int_equal(append_ev(b, 5001), 0);
    assert_int_equal(fm_logbuf_read(b, &cur, ev, 4, &n, 0), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].ts_ns, 5001);
    assert_true(ev_ok(5001, ev[0].data, ev[0].len));
    fm_logbuf_cursor_destroy(b, &cur);

    /* reading on from the middle returns the rest in order */
    fm_logbuf_cursor_init(&cur, 495);
    int64_t want = 500;
    for (;;) {
      int rc = fm_logbuf_read(b, &cur, ev, 3, &n, 0);
      if (rc == FM_ETIMEDOUT)
        break;
      assert_int_equal(rc, 0);
      for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev[i].ts_ns, want);
        assert_true(ev_ok(want, ev[i].data, ev[i].len));
        want = want == 1000 ? 2000 : want == 2000 ? 5001 : want + 10;
      }
    }
    assert_int_equal(want, 5011);
    fm_logbuf_cursor_destroy(b, &cur);
    fm_logbuf_free(b);
  }
}

/* Many small segments, every batch size: each event exactly once, in order; a read never spans two segments. */
static void test_exactly_once_across_segments(void **state)
{
  (void)state;
  const int64_t N = 3000;
  fm_logbuf *b = mk(64 << 20, 100);
  append_range(b, 1, N);
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_true(st.segments > 1000);
  assert_int_equal(st.events, (size_t)N);
  assert_int_equal(st.evictions, 0);
  assert_int_equal(st.alloc_bytes, st.segments * 100);

  size_t sizes[] = { 1, 2, 3, 7, 64 };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    fm_logbuf_cursor cur;
    fm_logbuf_cursor_init(&cur, 0);
    int64_t last = 0;
    assert_int_equal(drain(b, &cur, sizes[i], &last), 0);
    assert_int_equal(last, N);
    fm_logbuf_cursor_destroy(b, &cur);
  }

  /* interleaved with appends: a caught-up cursor follows into each new segment */
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, N);
  int64_t last = N;
  for (int64_t ts = N + 1; ts <= N + 500; ts++) {
    assert_int_equal(append_ev(b, ts), 0);
    if (ts % 3 == 0)
      assert_int_equal(drain(b, &cur, 2, &last), 0);
  }
  assert_int_equal(drain(b, &cur, 64, &last), 0);
  assert_int_equal(last, N + 500);
  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_free(b);
}

/* An event larger than a segment gets a segment of its own. */
static void test_large_event(void **state)
{
  (void)state;
  fm_logbuf *b = mk(1 << 20, 64);
  size_t big = 10000;
  uint8_t *buf = malloc(big);
  assert_non_null(buf);
  for (size_t i = 0; i < big; i++)
    buf[i] = (uint8_t)(i * 13);
  append_range(b, 1, 3);
  assert_int_equal(fm_logbuf_append(b, 4, buf, big), 0);
  append_range(b, 5, 6);

  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.segments, 5); /* records of 27, 34, 41, 10012, 55, 62 bytes: [1 2] [3] [4] [5] [6] */

  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 3);
  fm_logbuf_event ev[8];
  size_t n;
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 8, &n, 0), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ev[0].ts_ns, 4);
  assert_int_equal(ev[0].len, big);
  assert_memory_equal(ev[0].data, buf, big);
  int64_t last = 4;
  assert_int_equal(drain(b, &cur, 8, &last), 0);
  assert_int_equal(last, 6);
  fm_logbuf_cursor_destroy(b, &cur);
  free(buf);
  fm_logbuf_free(b);
}

/* ================================================================ eviction */

/*
 * With a tiny bound and the flushed watermark trailing the newest by 3 events, a cursor that stopped reading is
 * sent to disk; it "reads disk" up to the flushed watermark and comes back to memory with no gap and no duplicate.
 */
static void test_eviction_go_to_disk(void **state)
{
  (void)state;
  const int64_t N = 1000;
  fm_logbuf *b = mk(512, 128);

  fm_logbuf_cursor slow;
  fm_logbuf_cursor_init(&slow, 0);
  int64_t last = 0;
  for (int64_t ts = 1; ts <= N; ts++) {
    assert_int_equal(append_ev(b, ts), 0);
    if (ts > 3)
      fm_logbuf_set_flushed(b, ts - 3);
  }
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_true(st.evictions > 0);
  assert_int_equal(st.overshoot_bytes, 0);
  assert_int_equal(st.max_overshoot_bytes, 0);
  assert_true(st.alloc_bytes <= 512);
  assert_true(st.floor_ts > 0);
  assert_true(st.floor_ts <= st.flushed_ts);
  assert_int_equal(st.flushed_ts, N - 3);
  assert_int_equal(st.oldest_ts, st.floor_ts + 1); /* memory is contiguous above the floor */
  assert_int_equal(fm_logbuf_oldest_ts(b), st.oldest_ts);

  /* a cursor below the floor, in any position, is sent to disk; at the floor it reads memory */
  int64_t first;
  assert_int_equal(first_after(b, 0, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(b, st.floor_ts - 1, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(b, st.floor_ts, &first), 0);
  assert_int_equal(first, st.floor_ts + 1);

  fm_logbuf_event ev[4];
  size_t n = 7;
  assert_int_equal(fm_logbuf_read(b, &slow, ev, 4, &n, 0), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(n, 0);
  /* "disk": everything in (last, W] comes from the reference (the events are numbered) */
  int64_t w = fm_logbuf_flushed_ts(b);
  assert_true(w >= fm_logbuf_floor_ts(b));
  last = w;
  fm_logbuf_cursor_destroy(b, &slow);
  fm_logbuf_cursor_init(&slow, w);
  assert_int_equal(drain(b, &slow, 4, &last), 0);
  assert_int_equal(last, N);

  /* more events and flushes: a cursor that keeps up is never sent to disk */
  for (int64_t ts = N + 1; ts <= 2 * N; ts++) {
    assert_int_equal(append_ev(b, ts), 0);
    fm_logbuf_set_flushed(b, ts - 3);
    assert_int_equal(drain(b, &slow, 1 + (size_t)(ts % 5), &last), 0);
  }
  assert_int_equal(last, 2 * N);
  fm_logbuf_cursor_destroy(b, &slow);

  /* the flushed watermark never goes back */
  fm_logbuf_set_flushed(b, 5);
  assert_int_equal(fm_logbuf_flushed_ts(b), 2 * N - 3);
  fm_logbuf_free(b);
}

/* Unflushed segments are never evicted: the buffer grows past its bound and says so; flushing lets it shrink. */
static void test_eviction_refused_unflushed(void **state)
{
  (void)state;
  const int64_t N = 200;
  fm_logbuf *b = mk(512, 128);
  append_range(b, 1, N);
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.evictions, 0);
  assert_int_equal(st.events, (size_t)N);
  assert_true(st.alloc_bytes > 512);
  assert_int_equal(st.overshoot_bytes, st.alloc_bytes - 512);
  assert_int_equal(st.max_overshoot_bytes, st.overshoot_bytes);
  assert_int_equal(st.floor_ts, 0);
  assert_int_equal(st.oldest_ts, 1);
  size_t peak = st.max_overshoot_bytes;

  /* everything is still readable from 0 */
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  int64_t last = 0;
  assert_int_equal(drain(b, &cur, 64, &last), 0);
  assert_int_equal(last, N);
  fm_logbuf_cursor_destroy(b, &cur);

  /* flushing half evicts only whole segments at or below it */
  fm_logbuf_set_flushed(b, N / 2);
  fm_logbuf_get_stats(b, &st);
  assert_true(st.evictions > 0);
  assert_true(st.floor_ts <= N / 2);
  assert_true(st.floor_ts > 0);
  assert_int_equal(st.oldest_ts, st.floor_ts + 1);
  assert_true(st.overshoot_bytes > 0); /* the unflushed half alone is over the bound */
  assert_int_equal(st.max_overshoot_bytes, peak);
  int64_t first;
  assert_int_equal(first_after(b, 0, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(b, st.floor_ts, &first), 0);
  assert_int_equal(first, st.floor_ts + 1);

  /* all flushed, but the current segment is never evicted until sealed */
  fm_logbuf_set_flushed(b, N);
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.overshoot_bytes, 0);
  assert_true(st.segments >= 1);
  fm_logbuf_seal(b);
  fm_logbuf_seal(b); /* twice is a no-op */
  fm_logbuf_get_stats(b, &st);
  assert_true(st.alloc_bytes <= 512);
  assert_true(st.floor_ts <= N);

  /* a buffer over its bound with everything sealed and flushed can end up empty: a reader at the floor waits */
  fm_logbuf *e = mk(16, 128);
  append_range(e, 1, 3);
  fm_logbuf_seal(e);
  fm_logbuf_set_flushed(e, 3);
  fm_logbuf_get_stats(e, &st);
  assert_int_equal(st.segments, 0);
  assert_int_equal(st.events, 0);
  assert_int_equal(st.bytes, 0);
  assert_int_equal(st.oldest_ts, 0);
  assert_int_equal(st.floor_ts, 3);
  assert_int_equal(fm_logbuf_newest_ts(e), 3);
  assert_int_equal(first_after(e, 2, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(e, 3, &first), FM_ETIMEDOUT);
  append_range(e, 4, 4);
  assert_int_equal(first_after(e, 3, &first), 0);
  assert_int_equal(first, 4);
  fm_logbuf_free(e);
  fm_logbuf_free(b);
}

/* A reader's views stay valid while appends evict the segment they are in; the reader then finishes the pinned
 * segment and, with its successors gone, is sent to disk. */
static void test_pinned_segment_survives_eviction(void **state)
{
  (void)state;
  fm_logbuf *b = mk(256, 128);
  append_range(b, 1, 8);
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  fm_logbuf_event ev[2];
  size_t n;
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 2, &n, 0), 0);
  assert_int_equal(n, 2);
  assert_int_equal(ev[0].ts_ns, 1);

  /* evict everything the reader is in, and more */
  for (int64_t ts = 9; ts <= 400; ts++) {
    assert_int_equal(append_ev(b, ts), 0);
    fm_logbuf_set_flushed(b, ts);
  }
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_true(st.floor_ts > 8);
  assert_int_equal(st.pinned_bytes, 128);
  /* the views still hold the events' bytes (under ASan a freed segment would be reported here) */
  assert_true(ev_ok(1, ev[0].data, ev[0].len));
  assert_true(ev_ok(2, ev[1].data, ev[1].len));

  /* the rest of the pinned segment is served, then memory no longer has what follows */
  int64_t last = 2;
  int rc = drain(b, &cur, 2, &last);
  assert_int_equal(rc, FM_LOGBUF_GO_TO_DISK);
  assert_true(last > 2);
  assert_true(last < st.floor_ts);
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.pinned_bytes, 0); /* the last reader let go: freed */
  fm_logbuf_cursor_destroy(b, &cur);

  /* a reader that releases its cursor lets an evicted segment go at once, and keeps its position */
  fm_logbuf_cursor_init(&cur, fm_logbuf_floor_ts(b));
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 1, &n, 0), 0);
  int64_t at = ev[0].ts_ns;
  for (int64_t ts = 401; ts <= 800; ts++) {
    assert_int_equal(append_ev(b, ts), 0);
    fm_logbuf_set_flushed(b, ts);
  }
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.pinned_bytes, 128);
  fm_logbuf_cursor_release(b, &cur);
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.pinned_bytes, 0);
  assert_int_equal(fm_logbuf_cursor_ts(&cur), at);
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 1, &n, 0), FM_LOGBUF_GO_TO_DISK);
  fm_logbuf_cursor_destroy(b, &cur);
  int64_t floor = fm_logbuf_floor_ts(b);
  fm_logbuf_cursor_init(&cur, floor);
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 1, &n, 0), 0);
  assert_int_equal(ev[0].ts_ns, floor + 1);
  fm_logbuf_cursor_release(b, &cur); /* and reading on after a release continues where it was */
  last = floor + 1;
  assert_int_equal(drain(b, &cur, 4, &last), 0);
  assert_int_equal(last, 800);
  fm_logbuf_cursor_destroy(b, &cur);

  fm_logbuf_free(b);
}

/* The first segment is evicted while a caught-up reader still pins it: the reader continues into the next. */
static void test_evicted_pinned_then_next(void **state)
{
  (void)state;
  fm_logbuf *b = mk(128, 128);
  /* events of 8..64 bytes: fill the first segment exactly as far as it goes */
  append_range(b, 1, 1);
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  int64_t last = 0;
  assert_int_equal(drain(b, &cur, 8, &last), 0);
  fm_logbuf_stats st;
  int64_t ts = 2;
  for (;; ts++) {
    assert_int_equal(append_ev(b, ts), 0);
    fm_logbuf_get_stats(b, &st);
    if (st.segments == 2)
      break;
    assert_int_equal(drain(b, &cur, 8, &last), 0);
  }
  /* the reader is at the end of segment 1; segment 2 starts at ts; flush through segment 1 and evict it */
  assert_int_equal(last, ts - 1);
  fm_logbuf_set_flushed(b, ts - 1);
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.evictions, 1);
  assert_int_equal(st.floor_ts, ts - 1);
  assert_int_equal(st.pinned_bytes, 128);
  assert_int_equal(drain(b, &cur, 8, &last), 0);
  assert_int_equal(last, ts);
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.pinned_bytes, 0);
  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_free(b);
}

/* ================================================================ waiting and shutdown */

typedef struct waiter {
  fm_logbuf *b;
  fm_logbuf_cursor cur;
  int64_t timeout_ms;
  int rc;
  size_t n;
  int64_t ts;
  bool ok;
} waiter;

static void *waiter_main(void *arg)
{
  waiter *w = arg;
  fm_logbuf_event ev[4];
  w->rc = fm_logbuf_read(w->b, &w->cur, ev, 4, &w->n, w->timeout_ms);
  if (w->rc == 0) {
    w->ts = ev[0].ts_ns;
    w->ok = ev_ok(ev[0].ts_ns, ev[0].data, ev[0].len);
  }
  return NULL;
}

static void sleep_ms(int ms)
{
  struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000 };
  nanosleep(&t, NULL);
}

static void test_timeout(void **state)
{
  (void)state;
  fm_logbuf *b = mk(0, 0);
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  fm_logbuf_event ev;
  size_t n;
  int64_t t0 = fm_mono_ns();
  assert_int_equal(fm_logbuf_read(b, &cur, &ev, 1, &n, 0), FM_ETIMEDOUT);
  t0 = fm_mono_ns();
  assert_int_equal(fm_logbuf_read(b, &cur, &ev, 1, &n, 50), FM_ETIMEDOUT);
  assert_true(elapsed_ms(t0) >= 49.0); /* never early; no upper bound asserted */

  /* caught up at the end of a segment: same */
  append_range(b, 1, 2);
  int64_t last = 0;
  assert_int_equal(drain(b, &cur, 1, &last), 0);
  t0 = fm_mono_ns();
  assert_int_equal(fm_logbuf_read(b, &cur, &ev, 1, &n, 30), FM_ETIMEDOUT);
  assert_true(elapsed_ms(t0) >= 29.0);
  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_free(b);
}

static void test_append_wakes_waiter(void **state)
{
  (void)state;
  fm_logbuf *b = mk(0, 0);
  for (int round = 0; round < 2; round++) {
    /* round 0: nothing in memory; round 1: caught up at the end of a segment */
    waiter w = { .b = b, .timeout_ms = round == 0 ? -1 : 60000 };
    fm_logbuf_cursor_init(&w.cur, round == 0 ? 0 : 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    sleep_ms(20);
    assert_int_equal(append_ev(b, round + 1), 0);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.ts, round + 1);
    assert_true(w.ok);
    fm_logbuf_cursor_destroy(b, &w.cur);
  }
  fm_logbuf_free(b);
}

static void test_shutdown(void **state)
{
  (void)state;
  fm_logbuf *b = mk(0, 0);
  append_range(b, 1, 3);
  waiter w = { .b = b, .timeout_ms = -1 };
  fm_logbuf_cursor_init(&w.cur, 3);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
  sleep_ms(20);
  fm_logbuf_shutdown(b);
  pthread_join(th, NULL);
  assert_int_equal(w.rc, FM_ESHUTDOWN);
  assert_int_equal(w.n, 0);
  fm_logbuf_cursor_destroy(b, &w.cur);
  fm_logbuf_shutdown(b); /* idempotent */

  /* every later read says so, even with events to read */
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  fm_logbuf_event ev[8];
  size_t n;
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 8, &n, -1), FM_ESHUTDOWN);
  fm_logbuf_cursor_destroy(b, &cur);

  /* appends still work, and a drain cursor reads what is left, then ends instead of waiting */
  append_range(b, 4, 5);
  fm_logbuf_cursor_init_drain(&cur, 2);
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 8, &n, -1), 0);
  assert_int_equal(n, 3);
  assert_int_equal(ev[0].ts_ns, 3);
  assert_int_equal(ev[2].ts_ns, 5);
  assert_int_equal(fm_logbuf_read(b, &cur, ev, 8, &n, -1), FM_ESHUTDOWN);
  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_free(b);
}

/* A drain cursor before shutdown is an ordinary cursor. */
static void test_drain_cursor_before_shutdown(void **state)
{
  (void)state;
  fm_logbuf *b = mk(0, 0);
  append_range(b, 1, 2);
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init_drain(&cur, 0);
  int64_t last = 0;
  assert_int_equal(drain(b, &cur, 8, &last), 0);
  assert_int_equal(last, 2);
  fm_logbuf_cursor_destroy(b, &cur);
  fm_logbuf_free(b);
}

/* ================================================================ start ts, lost append */

static void test_start_ts(void **state)
{
  (void)state;
  /* a buffer without a start ts holds everything from 0: a cursor at 0 waits for the first event */
  fm_logbuf *b = mk(0, 0);
  int64_t first;
  assert_int_equal(first_after(b, 0, &first), FM_ETIMEDOUT);
  fm_logbuf_free(b);

  b = mk(0, 0);
  assert_int_equal(fm_logbuf_set_start_ts(b, -1), FM_EINVAL);
  assert_int_equal(fm_logbuf_set_start_ts(b, 1000), 0);
  assert_int_equal(fm_logbuf_floor_ts(b), 1000);
  assert_int_equal(fm_logbuf_flushed_ts(b), 1000);
  assert_int_equal(fm_logbuf_newest_ts(b), 1000);
  assert_int_equal(fm_logbuf_oldest_ts(b), 0);
  /* everything up to 1000 is on disk: cursors below it go there */
  assert_int_equal(first_after(b, 0, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(b, 999, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(b, 1000, &first), FM_ETIMEDOUT);
  /* a lower start never lowers it */
  assert_int_equal(fm_logbuf_set_start_ts(b, 10), 0);
  assert_int_equal(fm_logbuf_floor_ts(b), 1000);

  uint8_t x = 0;
  assert_int_equal(fm_logbuf_append(b, 1000, &x, 1), FM_EINVAL);
  assert_int_equal(append_ev(b, 1001), 0);
  assert_int_equal(first_after(b, 1000, &first), 0);
  assert_int_equal(first, 1001);
  assert_int_equal(first_after(b, 999, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(fm_logbuf_set_start_ts(b, 2000), FM_EINVAL); /* too late */
  assert_int_equal(fm_logbuf_floor_ts(b), 1000);

  /* the flushed watermark never passes the newest event */
  fm_logbuf_set_flushed(b, 5000);
  assert_int_equal(fm_logbuf_flushed_ts(b), 1001);
  assert_int_equal(append_ev(b, 1002), 0);
  assert_int_equal(fm_logbuf_flushed_ts(b), 1001);
  fm_logbuf_free(b);
}

/* A new segment that cannot be allocated loses the event to memory: cursors before it are sent to disk, including
 * one part-way through the segment before the hole, instead of skipping it. */
static void test_lost_append(void **state)
{
  (void)state;
  fm_logbuf *b = mk(1 << 20, 64);
  append_range(b, 1, 2); /* records of 27 and 34 bytes: 61 of the segment's 64, so 3 needs a new segment */
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.segments, 1);

  fm_logbuf_cursor mid, end;
  fm_logbuf_cursor_init(&mid, 0);
  fm_logbuf_cursor_init(&end, 0);
  fm_logbuf_event ev[4];
  size_t n;
  assert_int_equal(fm_logbuf_read(b, &mid, ev, 1, &n, 0), 0);
  assert_int_equal(ev[0].ts_ns, 1);
  int64_t last = 0;
  assert_int_equal(drain(b, &end, 4, &last), 0);
  assert_int_equal(last, 2);

  atomic_store(&fail_malloc_from, 64);
  int rc = append_ev(b, 3);
  atomic_store(&fail_malloc_from, 0);
  assert_int_equal(rc, FM_ENOMEM);
  fm_logbuf_get_stats(b, &st);
  assert_int_equal(st.append_failures, 1);
  assert_int_equal(st.events_appended, 2);
  assert_int_equal(st.newest_ts, 3);
  assert_int_equal(st.floor_ts, 3);
  assert_int_equal(append_ev(b, 3), FM_EINVAL); /* its ts is taken */
  assert_int_equal(append_ev(b, 4), 0);

  /* the cursor in the middle gets the rest of its segment, then the hole sends it to disk */
  assert_int_equal(fm_logbuf_read(b, &mid, ev, 4, &n, 0), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ev[0].ts_ns, 2);
  assert_int_equal(fm_logbuf_read(b, &mid, ev, 4, &n, 0), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(fm_logbuf_read(b, &end, ev, 4, &n, 0), FM_LOGBUF_GO_TO_DISK);
  fm_logbuf_cursor_destroy(b, &mid);
  fm_logbuf_cursor_destroy(b, &end);
  int64_t first;
  assert_int_equal(first_after(b, 0, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(b, 3, &first), 0);
  assert_int_equal(first, 4);

  /* the same with memory empty (the very first append lost) */
  fm_logbuf *e = mk(1 << 20, 64);
  atomic_store(&fail_malloc_from, 64);
  rc = append_ev(e, 7);
  atomic_store(&fail_malloc_from, 0);
  assert_int_equal(rc, FM_ENOMEM);
  assert_int_equal(first_after(e, 0, &first), FM_LOGBUF_GO_TO_DISK);
  assert_int_equal(first_after(e, 7, &first), FM_ETIMEDOUT);
  fm_logbuf_event_hook(e, 8, (const uint8_t *)"hook", 4);
  fm_logbuf_event_hook(e, 8, (const uint8_t *)"hook", 4); /* refused and logged, not fatal */
  assert_int_equal(first_after(e, 7, &first), 0);
  assert_int_equal(first, 8);
  fm_logbuf_get_stats(e, &st);
  assert_int_equal(st.events_appended, 1);
  fm_logbuf_free(e);
  fm_logbuf_free(b);
}

/* ================================================================ threads */

#define MT_EVENTS 200000
#define MT_READERS 8

typedef struct mt_shared {
  fm_logbuf *b;
  bool flush;                  /* the appender advances the flushed watermark (eviction) */
  _Atomic int64_t appended;    /* newest ts appended so far */
  _Atomic unsigned long disks; /* go-to-disk answers, all readers */
} mt_shared;

typedef struct mt_reader {
  mt_shared *sh;
  int id;
  int64_t from_memory, from_disk;
  char error[200];
} mt_reader;

static void *mt_appender_main(void *arg)
{
  mt_shared *sh = arg;
  for (int64_t ts = 1; ts <= MT_EVENTS; ts++) {
    if (append_ev(sh->b, ts) != 0)
      abort(); /* cannot fail the test from here; abort makes it loud */
    atomic_store(&sh->appended, ts);
    if (sh->flush && ts % 100 == 0)
      fm_logbuf_set_flushed(sh->b, ts - 500); /* a flusher that trails by 500 events */
    if (sh->flush && ts % 5000 == 0)
      fm_logbuf_seal(sh->b);
  }
  return NULL;
}

/*
 * Reads everything from 0. Each event from memory must be the previous ts plus one, with its bytes. On
 * FM_LOGBUF_GO_TO_DISK the reader plays the disk pass: W = the flushed watermark, which must be above what it has
 * seen and no newer than what was appended; events (last, W] count as read from disk (the numbering is the reference
 * array); then it re-enters memory at W. With eviction, readers 0 and 1 are slow so that they fall behind.
 */
static void *mt_reader_main(void *arg)
{
  mt_reader *r = arg;
  fm_logbuf *b = r->sh->b;
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  fm_logbuf_event ev[64];
  size_t max = (size_t)(1 + r->id * 9); /* 1, 10, 19, ... 64 */
  int64_t last = 0;
  unsigned reads = 0;
  while (last < MT_EVENTS) {
    size_t n;
    int rc = fm_logbuf_read(b, &cur, ev, max, &n, 10000);
    if (rc == 0) {
      for (size_t i = 0; i < n; i++) {
        if (ev[i].ts_ns != last + 1 || !ev_ok(ev[i].ts_ns, ev[i].data, ev[i].len)) {
          snprintf(r->error, sizeof r->error, "reader %d: got ts %lld after %lld", r->id, (long long)ev[i].ts_ns,
                   (long long)last);
          goto out;
        }
        last = ev[i].ts_ns;
      }
      r->from_memory += (int64_t)n;
      if (r->sh->flush && r->id < 2 && ++reads % 16 == 0)
        sleep_ms(1);
    } else if (rc == FM_LOGBUF_GO_TO_DISK) {
      int64_t w = fm_logbuf_flushed_ts(b);
      int64_t appended = atomic_load(&r->sh->appended);
      if (w <= last || w > appended) {
        snprintf(r->error, sizeof r->error, "reader %d: sent to disk at %lld with flushed %lld, appended %lld", r->id,
                 (long long)last, (long long)w, (long long)appended);
        goto out;
      }
      r->from_disk += w - last;
      last = w;
      atomic_fetch_add(&r->sh->disks, 1);
      fm_logbuf_cursor_destroy(b, &cur);
      fm_logbuf_cursor_init(&cur, w);
    } else {
      snprintf(r->error, sizeof r->error, "reader %d: read at %lld: %s", r->id, (long long)last, fm_strerror(rc));
      goto out;
    }
  }
out:
  fm_logbuf_cursor_destroy(b, &cur);
  return NULL;
}

static void run_threads(bool flush, size_t size, size_t segment, mt_shared *sh, mt_reader *rd)
{
  memset(sh, 0, sizeof *sh);
  sh->b = mk(size, segment);
  sh->flush = flush;
  pthread_t rt[MT_READERS], at;
  for (int i = 0; i < MT_READERS; i++) {
    memset(&rd[i], 0, sizeof rd[i]);
    rd[i].sh = sh;
    rd[i].id = i;
    assert_int_equal(pthread_create(&rt[i], NULL, mt_reader_main, &rd[i]), 0);
  }
  assert_int_equal(pthread_create(&at, NULL, mt_appender_main, sh), 0);
  pthread_join(at, NULL);
  for (int i = 0; i < MT_READERS; i++)
    pthread_join(rt[i], NULL);
  for (int i = 0; i < MT_READERS; i++) {
    if (rd[i].error[0] != '\0')
      fail_msg("%s", rd[i].error);
    assert_int_equal(rd[i].from_memory + rd[i].from_disk, MT_EVENTS);
  }
}

static void test_threads_no_eviction(void **state)
{
  (void)state;
  mt_shared sh;
  mt_reader rd[MT_READERS];
  run_threads(false, 64 << 20, 16 << 10, &sh, rd);
  for (int i = 0; i < MT_READERS; i++)
    assert_int_equal(rd[i].from_memory, MT_EVENTS);
  assert_int_equal(atomic_load(&sh.disks), 0);
  fm_logbuf_stats st;
  fm_logbuf_get_stats(sh.b, &st);
  assert_int_equal(st.events, MT_EVENTS);
  assert_int_equal(st.evictions, 0);
  assert_int_equal(st.pinned_bytes, 0);
  fm_logbuf_free(sh.b);
}

static void test_threads_eviction(void **state)
{
  (void)state;
  mt_shared sh;
  mt_reader rd[MT_READERS];
  run_threads(true, 64 << 10, 4 << 10, &sh, rd);
  fm_logbuf_stats st;
  fm_logbuf_get_stats(sh.b, &st);
  assert_true(st.evictions > 0);
  assert_int_equal(st.events_appended, MT_EVENTS);
  /* 600 unflushed events at most (~46 KiB) fit in the 64 KiB bound: it was never exceeded */
  assert_int_equal(st.max_overshoot_bytes, 0);
  assert_int_equal(st.pinned_bytes, 0);
  /* the slow readers fell out of memory at least once (they sleep 1 ms per 16 reads: ~12 s of sleep if they did
   * not) and came back */
  assert_true(rd[0].from_disk > 0);
  assert_true(rd[0].from_memory > 0);
  assert_true(atomic_load(&sh.disks) > 0);
  print_message("# eviction run: %lu go-to-disk answers; reader 0 read %lld from memory, %lld from disk\n",
                atomic_load(&sh.disks), (long long)rd[0].from_memory, (long long)rd[0].from_disk);
  fm_logbuf_free(sh.b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_free),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_ts_strictly_increasing),
    cmocka_unit_test(test_read_from_middle),
    cmocka_unit_test(test_exactly_once_across_segments),
    cmocka_unit_test(test_large_event),
    cmocka_unit_test(test_eviction_go_to_disk),
    cmocka_unit_test(test_eviction_refused_unflushed),
    cmocka_unit_test(test_pinned_segment_survives_eviction),
    cmocka_unit_test(test_evicted_pinned_then_next),
    cmocka_unit_test(test_timeout),
    cmocka_unit_test(test_append_wakes_waiter),
    cmocka_unit_test(test_shutdown),
    cmocka_unit_test(test_drain_cursor_before_shutdown),
    cmocka_unit_test(test_start_ts),
    cmocka_unit_test(test_lost_append),
    cmocka_unit_test(test_threads_no_eviction),
    cmocka_unit_test(test_threads_eviction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
