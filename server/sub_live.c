/*
 * The live set (sub_live.h).
 *
 * `through` is the ts of the last event the dispatcher took from the buffer; it is raised, and the member list
 * copied, under the lock in one step after each read, and the copy is then given that read's events. A member that
 * joins has seen every event up to after_ts >= through, so the next read (events > through) holds everything it has
 * not seen; events of that read at or below its after_ts (it read them itself meanwhile) are skipped for it.
 */
#include "sub_live.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"

#define READ_MAX 256

typedef struct member {
  void *m;
  const fm_sub_live_ops *ops;
  int64_t after; /* events with ts > after are its */
  uint64_t id;   /* this stay in the set: a member that left may join again before its old entry is removed */
} member;

struct fm_sub_live {
  fm_logbuf *logbuf;
  int64_t tick_ns;
  pthread_t thread;
  bool joined; /* the thread was joined (fm_sub_live_stop) */

  pthread_mutex_t mu;
  member *members;  /* mu */
  size_t n, cap;    /* mu */
  int64_t through;  /* mu */
  bool stopped;     /* mu: the dispatcher ended; no joins */
  uint64_t next_id; /* mu */

  /* dispatcher thread only: the copy it works on */
  member *work;
  size_t work_cap;
};

/* Copies the members (mu held) into the dispatcher's work list. Returns how many, or 0 when out of memory (then the
 * members wait for the next round: they are not lost). */
static size_t snapshot_locked(fm_sub_live *l)
{
  if (l->n > l->work_cap) {
    member *w = realloc(l->work, l->n * sizeof *w);
    if (w == NULL)
      return 0;
    l->work = w;
    l->work_cap = l->n;
  }
  if (l->n > 0)
    memcpy(l->work, l->members, l->n * sizeof *l->work);
  return l->n;
}

static void remove_member(fm_sub_live *l, uint64_t id)
{
  pthread_mutex_lock(&l->mu);
  for (size_t i = 0; i < l->n; i++) {
    if (l->members[i].id == id) {
      l->members[i] = l->members[--l->n];
      break;
    }
  }
  pthread_mutex_unlock(&l->mu);
}

/* Takes every member out of the set (mu held), into the work list. */
static size_t take_all_locked(fm_sub_live *l)
{
  size_t n = snapshot_locked(l);
  if (n == l->n)
    l->n = 0;
  return n;
}

static void *dispatcher_main(void *arg)
{
  fm_sub_live *l = arg;
  fm_logbuf_event evs[READ_MAX];
  fm_logbuf_cursor cur;
  pthread_mutex_lock(&l->mu);
  int64_t through = l->through;
  pthread_mutex_unlock(&l->mu);
  fm_logbuf_cursor_init(&cur, through);
  int64_t next_tick = fm_mono_ns() + l->tick_ns;
  for (;;) {
    int64_t wait_ms = (next_tick - fm_mono_ns()) / 1000000;
    size_t n = 0;
    int rc = fm_logbuf_read(l->logbuf, &cur, evs, READ_MAX, &n, wait_ms > 0 ? wait_ms : 0);
    if (rc == 0) {
      pthread_mutex_lock(&l->mu);
      l->through = through = evs[n - 1].ts_ns;
      size_t k = snapshot_locked(l);
      pthread_mutex_unlock(&l->mu);
      for (size_t i = 0; i < k; i++) {
        member *w = &l->work[i];
        size_t first = 0;
        while (first < n && evs[first].ts_ns <= w->after)
          first++;
        if (first < n && !w->ops->deliver(w->m, evs + first, n - first, through))
          remove_member(l, w->id);
      }
    } else if (rc == FM_LOGBUF_GO_TO_DISK) {
      /* the dispatcher was too slow for the buffer: everyone reads on by itself from what it was given */
      pthread_mutex_lock(&l->mu);
      size_t k = take_all_locked(l);
      pthread_mutex_unlock(&l->mu);
      for (size_t i = 0; i < k; i++)
        l->work[i].ops->fell_behind(l->work[i].m, through > l->work[i].after ? through : l->work[i].after);
      fm_logbuf_cursor_destroy(l->logbuf, &cur);
      pthread_mutex_lock(&l->mu);
      l->through = through = fm_logbuf_newest_ts(l->logbuf);
      pthread_mutex_unlock(&l->mu);
      fm_logbuf_cursor_init(&cur, through);
      continue;
    } else if (rc == FM_ESHUTDOWN) {
      break;
    }
    if (fm_mono_ns() >= next_tick) {
      pthread_mutex_lock(&l->mu);
      size_t k = snapshot_locked(l);
      pthread_mutex_unlock(&l->mu);
      for (size_t i = 0; i < k; i++) {
        member *w = &l->work[i];
        if (!w->ops->tick(w->m, through > w->after ? through : w->after))
          remove_member(l, w->id);
      }
      next_tick = fm_mono_ns() + l->tick_ns;
    }
  }
  fm_logbuf_cursor_destroy(l->logbuf, &cur);
  pthread_mutex_lock(&l->mu);
  l->stopped = true;
  size_t k = take_all_locked(l);
  pthread_mutex_unlock(&l->mu);
  for (size_t i = 0; i < k; i++)
    l->work[i].ops->shutdown(l->work[i].m);
  return NULL;
}

int fm_sub_live_new(fm_logbuf *logbuf, int64_t tick_ms, fm_sub_live **out)
{
  *out = NULL;
  fm_sub_live *l = calloc(1, sizeof *l);
  if (l == NULL)
    return FM_ENOMEM;
  l->logbuf = logbuf;
  l->tick_ns = (tick_ms > 0 ? tick_ms : 250) * 1000000;
  l->through = fm_logbuf_newest_ts(logbuf);
  pthread_mutex_init(&l->mu, NULL);
  if (pthread_create(&l->thread, NULL, dispatcher_main, l) != 0) {
    pthread_mutex_destroy(&l->mu);
    free(l);
    return FM_EIO;
  }
  *out = l;
  return 0;
}

bool fm_sub_live_join(fm_sub_live *l, void *member_, const fm_sub_live_ops *ops, int64_t after_ts)
{
  bool ok = false;
  pthread_mutex_lock(&l->mu);
  if (!l->stopped && after_ts >= l->through) {
    if (l->n == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 64;
      member *m = realloc(l->members, cap * sizeof *m);
      if (m != NULL) {
        l->members = m;
        l->cap = cap;
      }
    }
    if (l->n < l->cap) {
      l->members[l->n++] = (member){ member_, ops, after_ts, ++l->next_id };
      ok = true;
    }
  }
  pthread_mutex_unlock(&l->mu);
  return ok;
}

size_t fm_sub_live_count(fm_sub_live *l)
{
  pthread_mutex_lock(&l->mu);
  size_t n = l->n;
  pthread_mutex_unlock(&l->mu);
  return n;
}

void fm_sub_live_stop(fm_sub_live *l)
{
  if (l == NULL || l->joined)
    return;
  pthread_join(l->thread, NULL);
  l->joined = true;
}

void fm_sub_live_free(fm_sub_live *l)
{
  if (l == NULL)
    return;
  fm_sub_live_stop(l);
  free(l->members);
  free(l->work);
  pthread_mutex_destroy(&l->mu);
  free(l);
}
