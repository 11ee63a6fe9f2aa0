/* Micro-benchmark of the MetaLogBuffer's append path (issue 5: "append throughput into the buffer"): one thread
 * appends N events of ~300 bytes, with 0 and then 4 reader threads following from ts 0, and the run prints one JSON
 * line (median of the repetitions). A simulated flusher (the appender itself) marks everything flushed every 4096
 * events so that eviction keeps the buffer at its bound, as the real flusher would.
 * Usage: bench_log_buffer [events (1000000)] [event bytes (300)] [repetitions (3)] [size MiB (64)] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log_buffer.h"

typedef struct reader {
  fm_logbuf *b;
  int64_t target; /* the last ts */
  uint64_t events, disk_jumps;
  uint64_t checksum; /* touches every event's bytes, so that the readers do the reading a subscriber would */
  int64_t done_ns;
  int rc;
} reader;

static void *reader_main(void *arg)
{
  reader *r = arg;
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, 0);
  fm_logbuf_event ev[256];
  int64_t last = 0;
  while (last < r->target) {
    size_t n;
    int rc = fm_logbuf_read(r->b, &cur, ev, 256, &n, -1);
    if (rc == FM_LOGBUF_GO_TO_DISK) {
      /* a real reader would read the log files up to the flushed watermark; here it just jumps there */
      int64_t w = fm_logbuf_flushed_ts(r->b);
      fm_logbuf_cursor_destroy(r->b, &cur);
      fm_logbuf_cursor_init(&cur, w);
      last = w;
      r->disk_jumps++;
      continue;
    }
    if (rc != 0) {
      r->rc = rc;
      break;
    }
    for (size_t i = 0; i < n; i++) {
      const uint8_t *d = ev[i].data;
      r->checksum += d[0] + d[ev[i].len - 1];
    }
    r->events += n;
    last = ev[n - 1].ts_ns;
  }
  r->done_ns = fm_mono_ns();
  fm_logbuf_cursor_destroy(r->b, &cur);
  return NULL;
}

typedef struct result {
  double append_s;    /* first append to last append */
  double delivered_s; /* first append to the last reader's last event */
  uint64_t disk_jumps;
  uint64_t reader_events; /* events the readers got from memory, all readers */
  size_t max_overshoot;
  uint64_t evictions;
} result;

static int run(int64_t n, size_t len, size_t size, int nreaders, result *res)
{
  fm_logbuf_options opt = { .size_bytes = size };
  fm_logbuf *b;
  if (fm_logbuf_new(&opt, &b) != 0)
    return -1;
  uint8_t *event = malloc(len);
  if (event == NULL)
    return -1;
  for (size_t i = 0; i < len; i++)
    event[i] = (uint8_t)(i * 31 + 7);

  reader rd[16];
  pthread_t th[16];
  for (int i = 0; i < nreaders; i++) {
    memset(&rd[i], 0, sizeof rd[i]);
    rd[i].b = b;
    rd[i].target = n;
    if (pthread_create(&th[i], NULL, reader_main, &rd[i]) != 0)
      return -1;
  }
  int64_t t0 = fm_mono_ns();
  for (int64_t ts = 1; ts <= n; ts++) {
    memcpy(event, &ts, sizeof ts < len ? sizeof ts : len); /* every event differs, as real ones do */
    if (fm_logbuf_append(b, ts, event, len) != 0)
      return -1;
    if ((ts & 4095) == 0)
      fm_logbuf_set_flushed(b, ts);
  }
  int64_t t1 = fm_mono_ns();
  int64_t done = t1;
  memset(res, 0, sizeof *res);
  for (int i = 0; i < nreaders; i++) {
    pthread_join(th[i], NULL);
    if (rd[i].rc != 0) {
      fprintf(stderr, "reader %d: %s\n", i, fm_strerror(rd[i].rc));
      return -1;
    }
    if (rd[i].done_ns > done)
      done = rd[i].done_ns;
    res->disk_jumps += rd[i].disk_jumps;
    res->reader_events += rd[i].events;
  }
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  res->append_s = (double)(t1 - t0) / 1e9;
  res->delivered_s = (double)(done - t0) / 1e9;
  res->max_overshoot = st.max_overshoot_bytes;
  res->evictions = st.evictions;
  free(event);
  fm_logbuf_free(b);
  return 0;
}

static int cmp_result(const void *a, const void *b)
{
  double x = ((const result *)a)->append_s, y = ((const result *)b)->append_s;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  int64_t n = argc > 1 ? atoll(argv[1]) : 1000000;
  size_t len = argc > 2 ? (size_t)atoll(argv[2]) : 300;
  int reps = argc > 3 ? atoi(argv[3]) : 3;
  size_t size_mb = argc > 4 ? (size_t)atoll(argv[4]) : 64;
  if (n < 1 || len < 1 || reps < 1 || reps > 15 || size_mb < 1) {
    fprintf(stderr, "usage: bench_log_buffer [events] [event bytes] [repetitions <= 15] [size MiB]\n");
    return 2;
  }
  const int readers[] = { 0, 4 };
  printf("{\"bench\":\"log_buffer_append\",\"events\":%lld,\"event_bytes\":%zu,\"size_mb\":%zu,\"repetitions\":%d,"
         "\"runs\":[",
         (long long)n, len, size_mb, reps);
  for (size_t k = 0; k < sizeof readers / sizeof readers[0]; k++) {
    result r[15];
    for (int i = 0; i < reps; i++) {
      if (run(n, len, size_mb << 20, readers[k], &r[i]) != 0) {
        fprintf(stderr, "bench_log_buffer: run failed\n");
        return 1;
      }
    }
    qsort(r, (size_t)reps, sizeof r[0], cmp_result);
    result *m = &r[reps / 2];
    double evs = (double)n / m->append_s;
    printf(
        "%s{\"readers\":%d,\"append_s\":%.4f,\"events_per_s\":%.0f,\"mb_per_s\":%.1f,\"delivered_s\":%.4f,"
        "\"reader_events_from_memory\":%llu,\"reader_disk_jumps\":%llu,\"evictions\":%llu,\"max_overshoot_bytes\":%zu}",
        k > 0 ? "," : "", readers[k], m->append_s, evs, evs * (double)len / 1e6, m->delivered_s,
        (unsigned long long)m->reader_events, (unsigned long long)m->disk_jumps, (unsigned long long)m->evictions,
        m->max_overshoot);
  }
  printf("]}\n");
  return 0;
}
