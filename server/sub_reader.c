/*
 * The subscription reader (sub_reader.h).
 *
 * Two positions: `last`, the ts of the last event returned, and `pos`, the point after which the next event must
 * come (pos >= last; it passes last when a scan of the files up to a watermark W found nothing near W).
 *
 * Memory first: the cursor starts at pos. The MetaLogBuffer holds every event above its floor, so a cursor at or
 * above the floor reads on from memory. Below the floor it answers GO_TO_DISK; then W = the flushed watermark, read
 * *before* the scan lists any file (a file entry is committed before W covers it, so the scan sees every record
 * <= W), the files are scanned for (pos, W], pos becomes W, and the cursor starts again at W. Memory holds everything
 * above the floor and the floor only rises, so the hand-off has no gap and no duplicate; if more left memory
 * meanwhile, the buffer says GO_TO_DISK again and the loop repeats from W. When W does not move past pos (memory
 * stopped vouching for events the flusher has not written out yet: a recovered backlog, a lost append), the reader
 * waits for the flusher, polling W.
 */
#include "sub_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "log_record.h"
#include "log_scan.h"

#define BATCH 256

struct fm_sub_reader {
  fm_sub_reader_config cfg;
  int64_t until; /* 0: none */
  int64_t last;  /* ts of the last event returned */
  int64_t pos;   /* the next event has ts > pos */
  bool disk;     /* reading files (or waiting for the flusher) */
  fm_log_scan *scan;
  int64_t scan_to; /* the watermark the scan reads up to */
  fm_logbuf_cursor cur;
  bool cur_live;
  fm_logbuf_event batch[BATCH]; /* views from the cursor's last read */
  size_t nbatch, next;
  int failed;
  char failed_err[FM_ERR_LEN];
};

int fm_sub_reader_open(const fm_sub_reader_config *cfg, int64_t since_ns, int64_t until_ns, fm_sub_reader **out)
{
  *out = NULL;
  if (since_ns < 0 || until_ns < 0)
    return FM_EINVAL;
  fm_sub_reader *r = calloc(1, sizeof *r);
  if (r == NULL)
    return FM_ENOMEM;
  r->cfg = *cfg;
  if (r->cfg.poll_ms <= 0)
    r->cfg.poll_ms = 20;
  r->until = until_ns;
  r->last = r->pos = since_ns;
  *out = r;
  return 0;
}

static void drop_cursor(fm_sub_reader *r)
{
  if (r->cur_live)
    fm_logbuf_cursor_destroy(r->cfg.logbuf, &r->cur);
  r->cur_live = false;
  r->nbatch = r->next = 0;
}

void fm_sub_reader_close(fm_sub_reader *r)
{
  if (r == NULL)
    return;
  drop_cursor(r);
  fm_log_scan_close(r->scan);
  free(r);
}

void fm_sub_reader_release(fm_sub_reader *r)
{
  if (r->scan != NULL) {
    /* a parked reader holds no readahead: the scan opens again from pos, up to a fresh watermark */
    fm_log_scan_close(r->scan);
    r->scan = NULL;
  }
  if (!r->cur_live)
    return;
  if (r->next < r->nbatch) {
    /* views not returned yet die with the segment: read them again from the position */
    drop_cursor(r);
    return;
  }
  fm_logbuf_cursor_release(r->cfg.logbuf, &r->cur);
}

void fm_sub_reader_seek(fm_sub_reader *r, int64_t ts_ns)
{
  drop_cursor(r);
  fm_log_scan_close(r->scan);
  r->scan = NULL;
  r->disk = false;
  if (ts_ns > r->pos)
    r->last = r->pos = ts_ns;
}

int64_t fm_sub_reader_ts(const fm_sub_reader *r)
{
  return r->last;
}

bool fm_sub_reader_on_disk(const fm_sub_reader *r)
{
  return r->disk;
}

static int fail(fm_sub_reader *r, int rc, const char *err, char *out, size_t outlen)
{
  r->failed = rc;
  snprintf(r->failed_err, sizeof r->failed_err, "%s", err[0] != '\0' ? err : fm_strerror(rc));
  snprintf(out, outlen, "%s", r->failed_err);
  return rc;
}

static void sleep_ms(int64_t ms)
{
  struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };
  nanosleep(&ts, NULL);
}

/* Disk phase: the next record of the scan, or a switch back to memory. Returns 0 with *ev, 1 to say "go on in
 * memory", FM_ETIMEDOUT when waiting for the flusher ran out of time, or an error (the reader has failed). */
static int next_from_disk(fm_sub_reader *r, fm_sub_event *ev, int64_t deadline, char *err, size_t errlen)
{
  for (;;) {
    if (r->scan == NULL) {
      int64_t w = fm_logbuf_flushed_ts(r->cfg.logbuf);
      if (w <= r->pos) {
        /* memory refused pos but the files do not reach past it yet: wait for the flusher */
        if (deadline == 0 || (deadline > 0 && fm_mono_ns() >= deadline))
          return FM_ETIMEDOUT;
        sleep_ms(r->cfg.poll_ms);
        r->disk = false; /* ask memory again (it says GO_TO_DISK again while its floor is above pos), then W */
        return 1;
      }
      int64_t to = r->until != 0 && r->until < w ? r->until : w;
      char serr[FM_ERR_LEN] = "";
      int rc = fm_log_scan_open(r->cfg.store, r->cfg.chunks, r->pos, to, NULL, &r->scan, serr, sizeof serr);
      if (rc != 0)
        return fail(r, rc, serr, err, errlen);
      r->scan_to = to;
    }
    fm_log_record rec;
    char serr[FM_ERR_LEN] = "";
    int rc = fm_log_scan_next(r->scan, &rec, serr, sizeof serr);
    if (rc == 0) {
      r->last = r->pos = rec.ts_ns;
      *ev = (fm_sub_event){ rec.ts_ns, rec.data, rec.data_len, true };
      return 0;
    }
    if (rc != FM_ENOTFOUND)
      return fail(r, rc, serr, err, errlen);
    /* every record <= scan_to was in the files: memory takes over above it */
    fm_log_scan_close(r->scan);
    r->scan = NULL;
    if (r->scan_to > r->pos)
      r->pos = r->scan_to;
    r->disk = false;
    return 1;
  }
}

int fm_sub_reader_next(fm_sub_reader *r, fm_sub_event *ev, int64_t timeout_ms, char *err, size_t errlen)
{
  if (r->failed != 0) {
    snprintf(err, errlen, "%s", r->failed_err);
    return r->failed;
  }
  int64_t deadline = timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : fm_mono_ns() + timeout_ms * 1000000;
  for (;;) {
    if (r->next < r->nbatch) {
      const fm_logbuf_event *e = &r->batch[r->next++];
      if (r->until != 0 && e->ts_ns > r->until)
        return FM_ENOTFOUND;
      r->last = r->pos = e->ts_ns;
      *ev = (fm_sub_event){ e->ts_ns, e->data, e->len, false };
      return 0;
    }
    if (r->until != 0 && r->pos >= r->until)
      return FM_ENOTFOUND;
    if (r->disk) {
      int rc = next_from_disk(r, ev, deadline, err, errlen);
      if (rc != 1)
        return rc;
      continue;
    }
    if (!r->cur_live) {
      fm_logbuf_cursor_init(&r->cur, r->pos);
      r->cur_live = true;
    }
    int64_t wait = deadline < 0 ? -1 : deadline == 0 ? 0 : (deadline - fm_mono_ns()) / 1000000;
    if (deadline > 0 && wait <= 0)
      wait = 0;
    size_t n = 0;
    int rc = fm_logbuf_read(r->cfg.logbuf, &r->cur, r->batch, BATCH, &n, wait);
    if (rc == 0) {
      r->nbatch = n;
      r->next = 0;
      continue;
    }
    if (rc == FM_LOGBUF_GO_TO_DISK) {
      drop_cursor(r);
      r->disk = true;
      continue;
    }
    return rc; /* FM_ETIMEDOUT, FM_ESHUTDOWN */
  }
}
