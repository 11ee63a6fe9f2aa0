/* Micro-benchmark of the flusher (issue 5: "flush throughput, MB/s to the chunk store"): a store holds N write-ahead
 * records of ~300-byte events, 1 ms apart (so N = 1M spans about 17 one-minute files), as a server that died before
 * flushing would leave them. The run times recovery (loading them into a MetaLogBuffer) and then one flusher pass
 * that writes them all as log files (records encoded, chunks written, file entries updated and write-ahead records
 * deleted batch by batch) and prints one JSON line: the median of the repetitions, each on a fresh data directory.
 * Usage: bench_log_flush [events (1000000)] [event bytes (300)] [repetitions (3)] [chunk KiB (4096)] [sync (0)] */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk_store.h"
#include "clock.h"
#include "error.h"
#include "filer.h"
#include "filer.pb-c.h"
#include "log_buffer.h"
#include "log_flusher.h"
#include "store.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void die(const char *what, const char *err)
{
  fprintf(stderr, "bench_log_flush: %s: %s\n", what, err);
  exit(1);
}

/* Writes n events of about `bytes` bytes as write-ahead records, in batches. */
static uint64_t fill_wal(fm_store *s, int64_t t0, long n, size_t bytes)
{
  char *content = malloc(bytes);
  memset(content, 'x', bytes);
  fm_store_batch *b = fm_store_batch_new();
  uint64_t total = 0;
  char err[FM_ERR_LEN];
  for (long i = 0; i < n; i++) {
    char name[32], dir[32];
    snprintf(name, sizeof name, "f%08ld", i);
    snprintf(dir, sizeof dir, "/bench/d%ld", i % 64);
    FilerPb__FuseAttributes attr = FILER_PB__FUSE_ATTRIBUTES__INIT;
    attr.file_size = (uint64_t)i;
    attr.mtime = t0 / 1000000000;
    attr.file_mode = 0644;
    FilerPb__Entry e = FILER_PB__ENTRY__INIT;
    e.name = name;
    e.attributes = &attr;
    e.content.data = (uint8_t *)content;
    e.content.len = bytes > 75 ? bytes - 75 : 0; /* the other ~75 bytes: the event's other fields and framing */
    int32_t sig = 12345;
    FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
    en.new_entry = &e;
    en.new_parent_path = dir;
    en.n_signatures = 1;
    en.signatures = &sig;
    FilerPb__SubscribeMetadataResponse ev = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
    ev.directory = dir;
    ev.event_notification = &en;
    ev.ts_ns = t0 + i * 1000000;
    size_t len = filer_pb__subscribe_metadata_response__get_packed_size(&ev);
    uint8_t buf[8192];
    if (len > sizeof buf)
      die("event", "too big");
    filer_pb__subscribe_metadata_response__pack(&ev, buf);
    fm_store_batch_put_event(b, ev.ts_ns, buf, len);
    total += len;
    if (i % 4096 == 4095 || i == n - 1) {
      if (fm_store_write(s, b, err, sizeof err) != 0)
        die("write", err);
      fm_store_batch_clear(b);
    }
  }
  fm_store_batch_free(b);
  free(content);
  return total;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  size_t bytes = argc > 2 ? (size_t)atol(argv[2]) : 300;
  int reps = argc > 3 ? atoi(argv[3]) : 3;
  size_t chunk_kb = argc > 4 ? (size_t)atol(argv[4]) : 4096;
  bool sync = argc > 5 && atoi(argv[5]) != 0;
  if (n <= 0 || reps <= 0 || reps > 15 || chunk_kb == 0) {
    fprintf(stderr, "usage: bench_log_flush [events] [event bytes] [repetitions] [chunk KiB] [sync 0|1]\n");
    return 2;
  }
  double flush_s[15], recover_s[15], mbs[15];
  uint64_t event_bytes = 0, disk_bytes = 0;
  for (int r = 0; r < reps; r++) {
    char base[] = "/tmp/fm_bench_flush_XXXXXX";
    if (mkdtemp(base) == NULL)
      die("mkdtemp", "failed");
    char vols[64], err[FM_ERR_LEN] = "";
    snprintf(vols, sizeof vols, "%s/volumes", base);
    fm_store_options sopt = { .sync = sync };
    fm_store *store = NULL;
    fm_chunk_store *chunks = NULL;
    fm_chunk_store_options copt = { .sync = sync };
    if (fm_store_open(base, &sopt, &store, err, sizeof err) != 0 ||
        fm_chunk_store_open(vols, 0, &copt, &chunks, err, sizeof err) != 0)
      die("open", err);
    int64_t t0 = fm_now_ns() - (int64_t)n * 1000000 - INT64_C(3600000000000);
    event_bytes = fill_wal(store, t0, n, bytes);

    fm_logbuf *logbuf = NULL;
    /* room for the whole backlog (recovery loads at most half the buffer): the pass reads memory, as it does when
     * the flusher keeps up */
    fm_logbuf_options lopt = { .size_bytes = (size_t)(2 * event_bytes * 11 / 10) + ((size_t)64 << 20) };
    if (fm_logbuf_new(&lopt, &logbuf) != 0)
      die("logbuf", "new");
    int64_t a = fm_mono_ns();
    size_t recovered = 0;
    if (fm_log_flusher_recover(store, logbuf, &recovered, err, sizeof err) != 0 || recovered != (size_t)n)
      die("recover", err);
    int64_t b = fm_mono_ns();
    fm_filer *filer = NULL;
    if (fm_filer_new(store, 1, &filer, err, sizeof err) != 0)
      die("filer", err);
    fm_log_flusher_config cfg = {
      .filer = filer,
      .store = store,
      .chunks = chunks,
      .logbuf = logbuf,
      .filer_id = fm_log_flusher_new_filer_id(),
      .interval_ns = INT64_C(3600000000000),
      .chunk_bytes = chunk_kb << 10,
    };
    fm_log_flusher *fl = NULL;
    if (fm_log_flusher_start(&cfg, &fl, err, sizeof err) != 0)
      die("flusher", err);
    fm_log_flusher_stop(fl); /* the first pass writes everything; stop waits for it */
    int64_t c = fm_mono_ns();
    fm_log_flusher_stats st;
    fm_log_flusher_get_stats(fl, &st);
    if (st.records != (uint64_t)n)
      die("flush", "not every record was written");
    disk_bytes = st.bytes;
    fm_logbuf_shutdown(logbuf);
    fm_filer_free(filer);
    fm_log_flusher_free(fl);
    fm_logbuf_free(logbuf);
    fm_chunk_store_free(chunks);
    fm_store_free(store);
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    recover_s[r] = (double)(b - a) / 1e9;
    flush_s[r] = (double)(c - b) / 1e9;
    mbs[r] = (double)st.bytes / 1048576.0 / flush_s[r];
  }
  qsort(flush_s, (size_t)reps, sizeof flush_s[0], cmp_double);
  qsort(recover_s, (size_t)reps, sizeof recover_s[0], cmp_double);
  qsort(mbs, (size_t)reps, sizeof mbs[0], cmp_double);
  double f = flush_s[reps / 2];
  printf("{\"events\": %ld, \"event_bytes_avg\": %.0f, \"record_bytes\": %llu, \"chunk_kib\": %zu, \"sync\": %s, "
         "\"flush_s\": %.3f, \"flush_events_per_s\": %.0f, \"flush_mb_per_s\": %.1f, \"recover_s\": %.3f, "
         "\"recover_events_per_s\": %.0f, \"repetitions\": %d}\n",
         n, (double)event_bytes / (double)n, (unsigned long long)disk_bytes, chunk_kb, sync ? "true" : "false", f,
         (double)n / f, mbs[reps / 2], recover_s[reps / 2], (double)n / recover_s[reps / 2], reps);
  return 0;
}
