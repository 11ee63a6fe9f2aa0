/* Unit tests for server/sub_live.h: the dispatcher gives each member every event after the point it joined, exactly
 * once; a join behind the dispatcher is refused; a member whose callback says so leaves; ticks come; shutdown ends
 * every member and refuses joins. Members here record what they get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "log_buffer.h"
#include "sub_live.h"

typedef struct rec {
  pthread_mutex_t mu;
  int64_t ts[64];
  size_t n;
  int64_t last_through;
  int ticks;
  bool shut;
  size_t leave_after; /* deliver answers false once it holds this many (0: never) */
} rec;

static bool rec_deliver(void *m, const fm_logbuf_event *evs, size_t n, int64_t through)
{
  rec *r = m;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < n && r->n < 64; i++)
    r->ts[r->n++] = evs[i].ts_ns;
  r->last_through = through;
  bool stay = r->leave_after == 0 || r->n < r->leave_after;
  pthread_mutex_unlock(&r->mu);
  return stay;
}

static bool rec_tick(void *m, int64_t through)
{
  rec *r = m;
  pthread_mutex_lock(&r->mu);
  r->ticks++;
  r->last_through = through;
  pthread_mutex_unlock(&r->mu);
  return true;
}

static void rec_fell_behind(void *m, int64_t through)
{
  (void)m;
  (void)through;
  fail_msg("nobody falls behind here");
}

static void rec_shutdown(void *m)
{
  rec *r = m;
  pthread_mutex_lock(&r->mu);
  r->shut = true;
  pthread_mutex_unlock(&r->mu);
}

static const fm_sub_live_ops ops = { rec_deliver, rec_tick, rec_fell_behind, rec_shutdown };

static void rec_init(rec *r)
{
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
}

static size_t rec_count(rec *r)
{
  pthread_mutex_lock(&r->mu);
  size_t n = r->n;
  pthread_mutex_unlock(&r->mu);
  return n;
}

static void sleep_ms(int ms)
{
  struct timespec t = { 0, ms * 1000000L };
  nanosleep(&t, NULL);
}

/* Waits (up to 5 s) until `r` holds n events. */
static void wait_for(rec *r, size_t n)
{
  for (int i = 0; i < 5000 && rec_count(r) < n; i++)
    sleep_ms(1);
  assert_int_equal(rec_count(r), n);
}

static void append(fm_logbuf *b, int64_t ts)
{
  char ev[16];
  int len = snprintf(ev, sizeof ev, "e%lld", (long long)ts);
  assert_int_equal(fm_logbuf_append(b, ts, ev, (size_t)len), 0);
}

static void test_members_get_every_event_after_their_join(void **state)
{
  (void)state;
  fm_logbuf_options o = { 0 };
  fm_logbuf *b = NULL;
  assert_int_equal(fm_logbuf_new(&o, &b), 0);
  append(b, 10);
  fm_sub_live *l = NULL;
  assert_int_equal(fm_sub_live_new(b, 20, &l), 0);
  rec a, c, d;
  rec_init(&a);
  rec_init(&c);
  rec_init(&d);
  /* the dispatcher starts at the newest event (10): joining after 5 would miss (5, 10] */
  assert_false(fm_sub_live_join(l, &a, &ops, 5));
  assert_true(fm_sub_live_join(l, &a, &ops, 10));
  append(b, 20);
  append(b, 30);
  wait_for(&a, 2);
  assert_int_equal(a.ts[0], 20);
  assert_int_equal(a.ts[1], 30);
  /* behind the dispatcher (it took 30): refused; at 30: joins and gets only what follows */
  assert_false(fm_sub_live_join(l, &c, &ops, 20));
  assert_true(fm_sub_live_join(l, &c, &ops, 30));
  /* ahead of the dispatcher (it read 40 itself before the dispatcher took it): 40 is not given again */
  append(b, 40);
  assert_true(fm_sub_live_join(l, &d, &ops, 40));
  append(b, 50);
  wait_for(&a, 4);
  wait_for(&c, 2);
  wait_for(&d, 1);
  assert_int_equal(c.ts[0], 40);
  assert_int_equal(c.ts[1], 50);
  assert_int_equal(d.ts[0], 50);
  assert_int_equal(fm_sub_live_count(l), 3);
  /* ticks carry the dispatcher's position */
  int ticks = 0;
  int64_t through = 0;
  for (int i = 0; i < 5000 && (ticks < 2 || through != 50); i++) {
    sleep_ms(1);
    pthread_mutex_lock(&a.mu);
    ticks = a.ticks;
    through = a.last_through;
    pthread_mutex_unlock(&a.mu);
  }
  assert_true(ticks >= 2);
  assert_int_equal(through, 50);
  fm_logbuf_shutdown(b);
  fm_sub_live_stop(l);
  assert_true(a.shut && c.shut && d.shut);
  assert_int_equal(fm_sub_live_count(l), 0);
  rec e;
  rec_init(&e);
  assert_false(fm_sub_live_join(l, &e, &ops, 1000)); /* stopped */
  fm_sub_live_free(l);
  fm_logbuf_free(b);
}

static void test_a_member_that_says_so_leaves(void **state)
{
  (void)state;
  fm_logbuf_options o = { 0 };
  fm_logbuf *b = NULL;
  assert_int_equal(fm_logbuf_new(&o, &b), 0);
  fm_sub_live *l = NULL;
  assert_int_equal(fm_sub_live_new(b, 20, &l), 0);
  rec a, c;
  rec_init(&a);
  rec_init(&c);
  a.leave_after = 1;
  assert_true(fm_sub_live_join(l, &a, &ops, 0));
  assert_true(fm_sub_live_join(l, &c, &ops, 0));
  append(b, 1);
  wait_for(&a, 1);
  wait_for(&c, 1);
  for (int i = 0; i < 5000 && fm_sub_live_count(l) != 1; i++)
    sleep_ms(1);
  assert_int_equal(fm_sub_live_count(l), 1);
  /* it left: no more events, and it may join again as a new member */
  append(b, 2);
  wait_for(&c, 2);
  assert_int_equal(rec_count(&a), 1);
  a.leave_after = 0;
  assert_true(fm_sub_live_join(l, &a, &ops, 2));
  append(b, 3);
  wait_for(&a, 2);
  assert_int_equal(a.ts[1], 3);
  fm_logbuf_shutdown(b);
  fm_sub_live_free(l); /* stops first */
  assert_false(a.shut == false || c.shut == false);
  fm_logbuf_free(b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_members_get_every_event_after_their_join),
    cmocka_unit_test(test_a_member_that_says_so_leaves),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
