/* The bench progress line (bench_progress.h). */
#include "bench_progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

static void *progress_main(void *arg)
{
  fm_bench_progress *p = arg;
  int64_t t0 = fm_mono_ns();
  while (!atomic_load(&p->stop)) {
    nanosleep(&(struct timespec){ 0, 100 * 1000000 }, NULL);
    int64_t el = fm_mono_ns() - t0;
    if (el < 1000000000 || (el / 100000000) % 10 != 0)
      continue;
    int64_t d = atomic_load(p->done);
    double rate = (double)d / ((double)el / 1e9);
    if (p->total > 0)
      fprintf(stderr, "\r%s: %" PRId64 "/%" PRId64 ", %.0f/s, ETA %.0f s   ", p->label, d, p->total, rate,
              rate > 0 ? (double)(p->total - d) / rate : 0.0);
    else
      fprintf(stderr, "\r%s: %" PRId64 ", %.0f/s   ", p->label, d, rate);
  }
  fprintf(stderr, "\r\033[K");
  return NULL;
}

void fm_bench_progress_start(fm_bench_progress *p, const char *label, int64_t total, _Atomic int64_t *done)
{
  p->label = label;
  p->total = total;
  p->done = done;
  atomic_init(&p->stop, false);
  p->running = isatty(2) && pthread_create(&p->th, NULL, progress_main, p) == 0;
}

void fm_bench_progress_end(fm_bench_progress *p)
{
  if (!p->running)
    return;
  atomic_store(&p->stop, true);
  pthread_join(p->th, NULL);
  p->running = false;
}
