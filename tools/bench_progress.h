/* A progress line on stderr, once a second, while a long bench phase runs (only when stderr is a terminal): done,
 * total, rate and ETA, from a counter the phase advances. Used by the bench workloads; one per phase. */
#ifndef FM_BENCH_PROGRESS_H
#define FM_BENCH_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct fm_bench_progress {
  const char *label;
  int64_t total; /* 0: unknown (no ETA) */
  _Atomic int64_t *done;
  atomic_bool stop;
  bool running;
  pthread_t th;
} fm_bench_progress;

/* Starts the line's thread when stderr is a terminal; `label` and `done` are borrowed until fm_bench_progress_end. */
void fm_bench_progress_start(fm_bench_progress *p, const char *label, int64_t total, _Atomic int64_t *done);

/* Stops it and clears the line. */
void fm_bench_progress_end(fm_bench_progress *p);

#endif
