/* Micro-benchmark of the persisted-log scan (storage/log_file.h): writes N events of ~300 bytes as 1-minute log files
 * of one filer id (chunks cut on record boundaries, as the flusher does) into a throw-away store and chunk store, then
 * times full scans from ts 0 with the readahead thread and without it, and prints one JSON line (median of the
 * repetitions). The chunk files are fresh in the page cache, so this measures the reader, not the disk.
 * Usage: bench_log_scan [events (1000000)] [event bytes (300)] [events per file (16667)] [chunk KiB (1024)]
 *                       [repetitions (3)] [readahead|sync: only that mode] */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chunk_store.h"
#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "log.h"
#include "log_file.h"
#include "log_record.h"
#include "log_scan.h"
#include "store.h"

/* 2025-01-01 00:00 UTC */
#define BASE_NS INT64_C(1735689600000000000)

static int die(const char *what, int rc, const char *err)
{
  fprintf(stderr, "bench_log_scan: %s: %s (%s)\n", what, fm_strerror(rc), err);
  exit(1);
}

/* Stores `len` bytes as one chunk of the entry being built. */
static void put_chunk(fm_chunk_store *cs, const uint8_t *data, size_t len, uint64_t offset, FilerPb__FileChunk **out,
                      size_t *n)
{
  char err[FM_ERR_LEN] = "";
  fm_fid fid;
  int rc = fm_chunk_store_assign(cs, &fid);
  if (rc != 0)
    die("assign", rc, "");
  rc = fm_chunk_store_write(cs, &fid, data, len, err, sizeof err);
  if (rc != 0)
    die("chunk write", rc, err);
  FilerPb__FileChunk *c = malloc(sizeof *c);
  char *text = malloc(FM_FID_MAX);
  if (c == NULL || text == NULL)
    die("malloc", FM_ENOMEM, "");
  filer_pb__file_chunk__init(c);
  fm_fid_format(&fid, text, FM_FID_MAX);
  c->file_id = text;
  c->offset = (int64_t)offset;
  c->size = len;
  out[(*n)++] = c;
}

/* Writes the log files; returns the record bytes written. */
static uint64_t write_files(fm_store *st, fm_chunk_store *cs, int64_t events, size_t event_len, int64_t per_file,
                            size_t chunk_bytes)
{
  uint8_t *event = malloc(event_len);
  uint8_t *buf = malloc(chunk_bytes + 4096);
  size_t max_chunks = (size_t)(per_file * (int64_t)(event_len + 64) / (int64_t)chunk_bytes) + 2;
  FilerPb__FileChunk **chunks = calloc(max_chunks, sizeof *chunks);
  if (event == NULL || buf == NULL || chunks == NULL)
    die("malloc", FM_ENOMEM, "");
  for (size_t i = 0; i < event_len; i++)
    event[i] = (uint8_t)(i * 31 + 7);
  char err[FM_ERR_LEN] = "";
  fm_store_batch *b = fm_store_batch_new();
  uint64_t total = 0;
  int64_t spacing = FM_NS_PER_MINUTE / per_file;
  for (int64_t done = 0, file = 0; done < events; file++) {
    int64_t minute = BASE_NS + file * FM_NS_PER_MINUTE;
    size_t nchunks = 0, fill = 0;
    uint64_t offset = 0;
    for (int64_t i = 0; i < per_file && done < events; i++, done++) {
      int64_t ts = minute + i * spacing + 1;
      memcpy(event, &ts, sizeof ts);
      size_t n;
      int rc =
          fm_log_record_encode(ts, event, event_len, "/bench/dir", 10, done, buf + fill, chunk_bytes + 4096 - fill, &n);
      if (rc != 0)
        die("encode", rc, "");
      fill += n;
      total += n;
      if (fill >= chunk_bytes) {
        put_chunk(cs, buf, fill, offset, chunks, &nchunks);
        offset += fill;
        fill = 0;
      }
    }
    if (fill > 0) {
      put_chunk(cs, buf, fill, offset, chunks, &nchunks);
      offset += fill;
    }
    char day_dir[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX];
    fm_log_file_path(minute, 0x0a1b2c3d, day_dir, name);
    FilerPb__Entry e;
    filer_pb__entry__init(&e);
    e.name = name;
    e.n_chunks = nchunks;
    e.chunks = chunks;
    size_t plen = filer_pb__entry__get_packed_size(&e);
    uint8_t *packed = malloc(plen);
    if (packed == NULL)
      die("malloc", FM_ENOMEM, "");
    filer_pb__entry__pack(&e, packed);
    FilerPb__Entry d;
    filer_pb__entry__init(&d);
    d.name = day_dir + sizeof FM_LOG_DIR;
    d.is_directory = 1;
    uint8_t dpacked[64];
    size_t dlen = filer_pb__entry__pack(&d, dpacked);
    fm_store_batch_clear(b);
    fm_store_batch_put_entry(b, FM_LOG_DIR, day_dir + sizeof FM_LOG_DIR, dpacked, dlen);
    fm_store_batch_put_entry(b, day_dir, name, packed, plen);
    int rc = fm_store_write(st, b, err, sizeof err);
    if (rc != 0)
      die("store write", rc, err);
    free(packed);
    for (size_t i = 0; i < nchunks; i++) {
      free(chunks[i]->file_id);
      free(chunks[i]);
    }
  }
  fm_store_batch_free(b);
  free(chunks);
  free(buf);
  free(event);
  return total;
}

/* keeps the checksum, so that the compiler cannot drop the reads */
static volatile uint64_t sink;

typedef struct result {
  double seconds;
  uint64_t records, bytes, fetch_waits, files, chunks;
} result;

static void scan(fm_store *st, fm_chunk_store *cs, bool synchronous, result *r)
{
  char err[FM_ERR_LEN] = "";
  fm_log_scan_options opt = { .synchronous = synchronous };
  fm_log_scan *s;
  int64_t t0 = fm_mono_ns();
  int rc = fm_log_scan_open(st, cs, 0, 0, &opt, &s, err, sizeof err);
  if (rc != 0)
    die("scan open", rc, err);
  fm_log_record rec;
  uint64_t bytes = 0, checksum = 0;
  while ((rc = fm_log_scan_next(s, &rec, err, sizeof err)) == 0) {
    bytes += rec.raw_len;
    checksum += rec.data[0] + rec.data[rec.data_len - 1]; /* touch the event, as a consumer would */
  }
  if (rc != FM_ENOTFOUND)
    die("scan", rc, err);
  int64_t t1 = fm_mono_ns();
  fm_log_scan_stats stats;
  fm_log_scan_get_stats(s, &stats);
  fm_log_scan_close(s);
  sink = checksum;
  r->seconds = (double)(t1 - t0) / 1e9;
  r->records = stats.records;
  r->bytes = bytes;
  r->fetch_waits = stats.fetch_waits;
  r->files = stats.files;
  r->chunks = stats.chunks;
}

static int cmp_result(const void *a, const void *b)
{
  double x = ((const result *)a)->seconds, y = ((const result *)b)->seconds;
  return x < y ? -1 : x > y;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

int main(int argc, char **argv)
{
  int64_t events = argc > 1 ? atoll(argv[1]) : 1000000;
  size_t event_len = argc > 2 ? (size_t)atoll(argv[2]) : 300;
  int64_t per_file = argc > 3 ? atoll(argv[3]) : 16667;
  size_t chunk_kib = argc > 4 ? (size_t)atoll(argv[4]) : 1024;
  int reps = argc > 5 ? atoi(argv[5]) : 3;
  const char *only = argc > 6 ? argv[6] : "";
  if (events < 1 || event_len < 8 || event_len > 65536 || per_file < 1 || chunk_kib < 1 || reps < 1 || reps > 15) {
    fprintf(stderr, "usage: bench_log_scan [events] [event bytes >= 8] [events per file] [chunk KiB] "
                    "[repetitions <= 15]\n");
    return 2;
  }
  fm_log_set_level(FM_LOG_ERROR);
  char base[] = "/tmp/fm_bench_log_scan.XXXXXX", vol[64];
  if (mkdtemp(base) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(vol, sizeof vol, "%s/volumes", base);
  char err[FM_ERR_LEN] = "";
  fm_store *st;
  fm_chunk_store *cs;
  int rc = fm_store_open(base, NULL, &st, err, sizeof err);
  if (rc != 0)
    die("store open", rc, err);
  rc = fm_chunk_store_open(vol, 0, NULL, &cs, err, sizeof err);
  if (rc != 0)
    die("chunk store open", rc, err);
  uint64_t total = write_files(st, cs, events, event_len, per_file, chunk_kib << 10);

  printf("{\"bench\":\"log_scan\",\"events\":%lld,\"event_bytes\":%zu,\"events_per_file\":%lld,\"chunk_kib\":%zu,"
         "\"record_bytes\":%llu,\"repetitions\":%d,\"runs\":[",
         (long long)events, event_len, (long long)per_file, chunk_kib, (unsigned long long)total, reps);
  /* one untimed scan first (the files were just written), then the modes take turns, so that both see the same
   * machine */
  result warm, r[2][15];
  scan(st, cs, true, &warm);
  for (int i = 0; i < reps; i++) {
    for (int mode = 0; mode < 2; mode++) {
      if ((only[0] == 'r' && mode != 0) || (only[0] == 's' && mode != 1))
        continue;
      scan(st, cs, mode == 1, &r[mode][i]);
      if (r[mode][i].records != (uint64_t)events) {
        fprintf(stderr, "bench_log_scan: scanned %llu records, wrote %lld\n", (unsigned long long)r[mode][i].records,
                (long long)events);
        return 1;
      }
    }
  }
  bool first = true;
  for (int mode = 0; mode < 2; mode++) {
    if ((only[0] == 'r' && mode != 0) || (only[0] == 's' && mode != 1))
      continue;
    qsort(r[mode], (size_t)reps, sizeof r[mode][0], cmp_result);
    result *m = &r[mode][reps / 2];
    printf("%s{\"readahead\":%s,\"seconds\":%.4f,\"records_per_s\":%.0f,\"mb_per_s\":%.1f,\"files\":%llu,"
           "\"chunks\":%llu,\"fetch_waits\":%llu}",
           first ? "" : ",", mode == 0 ? "true" : "false", m->seconds, (double)m->records / m->seconds,
           (double)m->bytes / m->seconds / 1e6, (unsigned long long)m->files, (unsigned long long)m->chunks,
           (unsigned long long)m->fetch_waits);
    first = false;
  }
  printf("]}\n");
  fm_chunk_store_free(cs);
  fm_store_free(st);
  nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
