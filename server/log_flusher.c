/*
 * The flusher (log_flusher.h).
 *
 * A pass reads the write-ahead records after the flushed watermark, up to the newest event the filer has
 * committed, and cuts them into chunks: a chunk ends at a minute boundary (a file holds one UTC minute), when the
 * next record would take it past chunk_bytes, or at the end of the pass. Each chunk is written to the chunk store,
 * then one filer mutation appends it to its minute's file, deletes the write-ahead records it holds and stores the
 * new log state, all in one batch: a crash leaves either the records or the file holding them, never both nor
 * neither (an orphaned needle at worst). Only then does the MetaLogBuffer learn that those events are flushed.
 *
 * The records come from the MetaLogBuffer, which holds every committed event after the flushed watermark (recovery
 * loads the write-ahead records left by a crash into it before the server serves); where an append to it failed,
 * from the write-ahead records. A record's bytes depend only on its event and its position in the log
 * (LogEntry.offset counts records since the log began, carried in the log state across restarts), which makes the
 * files after a crash byte-identical to the files without one.
 *
 * Threads: the flusher thread does everything above and retention; fm_log_flusher_note runs on the filer's
 * writers; the mutation's done callback runs on the filer's committer (or inline). `mu` guards the wake-up flags,
 * the done flag and the stats.
 */
#include "log_flusher.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "fid.h"
#include "filer.pb-c.h"
#include "log.h"
#include "log_file.h"
#include "log_record.h"

/* Retention looks for days to remove this often (and at start). */
#define RETENTION_CHECK_NS (INT64_C(3600) * 1000000000)

struct fm_log_flusher {
  fm_log_flusher_config cfg;
  pthread_t thread;
  bool started;

  pthread_mutex_t mu;
  pthread_cond_t cv;       /* CLOCK_MONOTONIC */
  bool stopping;           /* mu */
  bool kick;               /* mu: a chunk's worth is waiting */
  bool m_done;             /* mu: the mutation in flight completed */
  fm_log_flusher_stats st; /* mu */
  atomic_size_t pending;   /* bytes noted since the last pass began */

  /* flusher thread only */
  fm_store_log_state state; /* as last written */
  uint8_t *buf;             /* the chunk being cut, kept from pass to pass (one chunk_bytes allocation, not a */
  size_t buf_cap;           /* doubling series of them per pass) */
  int64_t *ts;              /* its records' ts */
  size_t ts_cap;
  fm_mutation m;
  int64_t next_retention_ns;
  int64_t backoff_ns; /* after a failed pass, the wait before the next one (doubling up to the interval) */
  /* The chunk of a pass whose file change failed: written (and synced) but, for all anyone knows, referenced by the
   * store (a failed group fsync leaves the batch applied), so it is never deleted; the next pass reuses it when it
   * cuts the same chunk again, which it does unless more events arrived for that minute. */
  struct {
    bool valid;
    fm_fid fid;
    int64_t first_ts, last_ts;
    size_t len;
  } failed;
};

/* ================================================================ helpers */

uint32_t fm_log_flusher_new_filer_id(void)
{
  uint32_t v = 0;
  while (v == 0 || v > INT32_MAX) {
    if (getrandom(&v, sizeof v, 0) != sizeof v)
      v = (uint32_t)fm_now_ns() ^ (uint32_t)(fm_mono_ns() >> 7);
    v &= 0x7fffffffu; /* a positive int32, as upstream negates negative draws */
  }
  return v;
}

static void mutation_done(fm_mutation *m)
{
  fm_log_flusher *fl = m->arg;
  pthread_mutex_lock(&fl->mu);
  fl->m_done = true;
  pthread_cond_broadcast(&fl->cv);
  pthread_mutex_unlock(&fl->mu);
}

/* Applies `c` through the filer and waits for it. Returns 0, FM_ESHUTDOWN, or FM_EIO with the filer's message. */
static int apply_change(fm_log_flusher *fl, const fm_log_change *c, char *err, size_t errlen)
{
  memset(&fl->m, 0, sizeof fl->m);
  fl->m.kind = FM_MUT_LOG;
  fl->m.log = c;
  fl->m.done = mutation_done;
  fl->m.arg = fl;
  pthread_mutex_lock(&fl->mu);
  fl->m_done = false;
  pthread_mutex_unlock(&fl->mu);
  if (fm_filer_submit(fl->cfg.filer, &fl->m) != 0) {
    snprintf(err, errlen, "the filer is shutting down");
    return FM_ESHUTDOWN;
  }
  pthread_mutex_lock(&fl->mu);
  while (!fl->m_done)
    pthread_cond_wait(&fl->cv, &fl->mu);
  pthread_mutex_unlock(&fl->mu);
  if (fl->m.status != GRPC_STATUS_OK) {
    snprintf(err, errlen, "%.200s", fl->m.message);
    return FM_EIO;
  }
  return 0;
}

/* ================================================================ a pass */

typedef struct pass {
  fm_log_flusher *fl;
  int64_t limit;  /* newest committed ts when the pass began */
  int64_t minute; /* of the records in buf */
  uint8_t *buf;   /* the chunk being cut */
  size_t len, cap;
  int64_t *ts; /* the chunk's records' ts */
  size_t nts, capts;
  int rc;
  char err[FM_ERR_LEN];
  uint64_t records, bytes, chunks;
} pass;

/* Writes the chunk in p->buf and appends it to its minute's file. */
static int write_chunk(pass *p)
{
  fm_log_flusher *fl = p->fl;
  fm_fid fid;
  char fid_text[FM_FID_MAX];
  int rc = 0;
  int64_t first = p->ts[0], last = p->ts[p->nts - 1];
  if (fl->failed.valid && fl->failed.first_ts == first && fl->failed.last_ts == last && fl->failed.len == p->len) {
    fid = fl->failed.fid; /* the same records, so the same bytes: written already */
  } else {
    if (fl->failed.valid) {
      fm_fid_format(&fl->failed.fid, fid_text, sizeof fid_text);
      fm_log_warn("log chunk %s of a failed flush is not used again; its space stays taken", fid_text);
    }
    fl->failed.valid = false;
    rc = fm_chunk_store_assign(fl->cfg.chunks, &fid);
    if (rc != 0) {
      snprintf(p->err, sizeof p->err, "assigning a chunk: %s", fm_strerror(rc));
      return rc;
    }
    rc = fm_chunk_store_write(fl->cfg.chunks, &fid, p->buf, p->len, p->err, sizeof p->err);
    /* on disk before the records it holds leave the store, with or without -store.sync: those records may long
     * have been durable, and a power cut must not trade them for a needle that never reached the disk */
    if (rc == 0)
      rc = fm_chunk_store_sync(fl->cfg.chunks, fid.volume_id, p->err, sizeof p->err);
    if (rc != 0)
      return rc;
  }
  fm_fid_format(&fid, fid_text, sizeof fid_text);

  /* the chunk's ETag is what an upload reports: the base64 MD5 of its bytes */
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  char etag[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1] = "";
  if (EVP_Digest(p->buf, p->len, md, &mdlen, EVP_md5(), NULL) == 1)
    EVP_EncodeBlock((unsigned char *)etag, md, (int)mdlen);

  FilerPb__FileChunk chunk = FILER_PB__FILE_CHUNK__INIT;
  chunk.file_id = fid_text;
  chunk.offset = 0;
  chunk.size = p->len;
  /* never before its last record: upstream's readers skip a chunk whose modified_ts_ns + 1 min <= their start, and
   * event ts run ahead of a clock that stepped back */
  chunk.modified_ts_ns = fm_now_ns() > last ? fm_now_ns() : last;
  chunk.e_tag = etag;
  FilerPb__FileChunk *chunks[1] = { &chunk };

  char day[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX];
  fm_log_file_path(p->minute, fl->cfg.filer_id, day, name);
  fm_log_change c = {
    .dir = day,
    .name = name,
    .chunks = chunks,
    .nchunks = 1,
    .wal_ts = p->ts,
    .nwal = p->nts,
    .state = fl->state,
  };
  c.state.flushed_ts_ns = p->ts[p->nts - 1];
  c.state.records += (int64_t)p->nts;
  rc = apply_change(fl, &c, p->err, sizeof p->err);
  if (rc != 0) {
    fl->failed.valid = true;
    fl->failed.fid = fid;
    fl->failed.first_ts = first;
    fl->failed.last_ts = last;
    fl->failed.len = p->len;
    return rc;
  }
  fl->failed.valid = false;
  fl->state = c.state;
  fm_logbuf_set_flushed(fl->cfg.logbuf, c.state.flushed_ts_ns);
  p->records += p->nts;
  p->bytes += p->len;
  p->chunks++;
  p->len = 0;
  p->nts = 0;
  return 0;
}

static bool pass_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  pass *p = arg;
  if (ts_ns > p->limit)
    return false;
  int64_t minute = fm_log_minute_of(ts_ns);
  if (p->nts > 0 && minute != p->minute && (p->rc = write_chunk(p)) != 0)
    return false;
  p->minute = minute;

  /* the record's key is the event's directory */
  FilerPb__SubscribeMetadataResponse *ev = filer_pb__subscribe_metadata_response__unpack(NULL, len, event);
  const char *dir = ev != NULL ? ev->directory : "";
  if (ev == NULL)
    fm_log_warn("write-ahead record %" PRId64 " does not decode; it goes to the log file as it is", ts_ns);
  fm_log_record rec;
  fm_log_record_set(&rec, ts_ns, event, len, dir, strlen(dir), p->fl->state.records + (int64_t)p->nts);
  size_t size = fm_log_record_size(&rec);
  if (p->len > 0 && p->len + size > p->fl->cfg.chunk_bytes) {
    if ((p->rc = write_chunk(p)) != 0)
      goto out;
    /* the offset counts records since the log began: fl->state.records now has what the chunk held */
    rec.offset = p->fl->state.records;
    size = fm_log_record_size(&rec);
  }
  if (p->len + size > p->cap) {
    size_t cap = p->fl->cfg.chunk_bytes; /* what a chunk takes, or a record bigger than that */
    if (cap < p->len + size)
      cap = p->len + size;
    uint8_t *grown = realloc(p->buf, cap);
    if (grown == NULL) {
      p->rc = FM_ENOMEM;
      goto out;
    }
    p->buf = grown;
    p->cap = cap;
  }
  if (p->nts == p->capts) {
    size_t cap = p->capts ? p->capts * 2 : 1024;
    int64_t *grown = realloc(p->ts, cap * sizeof *grown);
    if (grown == NULL) {
      p->rc = FM_ENOMEM;
      goto out;
    }
    p->ts = grown;
    p->capts = cap;
  }
  size_t written = 0;
  p->rc = fm_log_record_pack(&rec, p->buf + p->len, p->cap - p->len, &written);
  if (p->rc != 0) {
    snprintf(p->err, sizeof p->err, "write-ahead record %" PRId64 ": %s", ts_ns, fm_strerror(p->rc));
    goto out;
  }
  p->len += written;
  p->ts[p->nts++] = ts_ns;
out:
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  return p->rc == 0;
}

/* The write-ahead records with after < ts <= upto (and <= p->limit): what the buffer lost to a failed append. */
typedef struct wal_range {
  pass *p;
  int64_t upto;
  int64_t last;
} wal_range;

static bool wal_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  wal_range *w = arg;
  if (ts_ns > w->upto)
    return false;
  w->last = ts_ns;
  return pass_record(w->p, ts_ns, event, len);
}

/* Feeds the pass every committed event after the flushed watermark, in ts order: from the MetaLogBuffer, which
 * holds them all unless an append failed (then from the write-ahead records up to the buffer's floor). Reading
 * memory rather than the store keeps the flusher off LevelDB's block cache and table files (measured: ~10 MB of
 * heap and the table files' pages in RSS while it iterated the store). */
static int feed_pass(pass *p)
{
  fm_log_flusher *fl = p->fl;
  fm_logbuf_cursor cur;
  fm_logbuf_cursor_init(&cur, fl->state.flushed_ts_ns);
  fm_logbuf_event ev[256];
  int rc = 0;
  while (rc == 0 && p->rc == 0) {
    size_t n = 0;
    int64_t at = fm_logbuf_cursor_ts(&cur);
    rc = fm_logbuf_read(fl->cfg.logbuf, &cur, ev, sizeof ev / sizeof ev[0], &n, 0);
    if (rc == 0) {
      for (size_t i = 0; i < n; i++)
        if (!pass_record(p, ev[i].ts_ns, ev[i].data, ev[i].len))
          goto out; /* past the limit, or failed */
      continue;
    }
    if (rc == FM_ETIMEDOUT) { /* everything in memory is done */
      rc = 0;
      break;
    }
    if (rc != FM_LOGBUF_GO_TO_DISK && rc != FM_ESHUTDOWN)
      break;
    /* memory stopped vouching for what follows `at`: take it from the write-ahead records */
    wal_range w = { p, rc == FM_ESHUTDOWN ? p->limit : fm_logbuf_floor_ts(fl->cfg.logbuf), at };
    rc = fm_store_events(fl->cfg.store, at, wal_record, &w, p->err, sizeof p->err);
    if (rc != 0 || p->rc != 0 || w.upto >= p->limit)
      break;
    fm_logbuf_cursor_destroy(fl->cfg.logbuf, &cur);
    fm_logbuf_cursor_init(&cur, w.upto);
  }
out:
  fm_logbuf_cursor_destroy(fl->cfg.logbuf, &cur);
  return rc != 0 ? rc : p->rc;
}

/* Writes everything committed by now. Returns 0 or the error that stopped the pass. */
static int run_pass(fm_log_flusher *fl)
{
  int64_t limit = fm_filer_committed_ts(fl->cfg.filer);
  atomic_store(&fl->pending, 0);
  if (limit <= fl->state.flushed_ts_ns)
    return 0;
  int64_t t0 = fm_mono_ns();
  pass p = {
    .fl = fl, .limit = limit, .minute = -1, .buf = fl->buf, .cap = fl->buf_cap, .ts = fl->ts, .capts = fl->ts_cap
  };
  int rc = feed_pass(&p);
  if (rc == 0 && p.nts > 0)
    rc = write_chunk(&p);
  int64_t took = fm_mono_ns() - t0;
  if (rc != 0)
    fm_log_error("log flush stopped after %" PRIu64 " records (retrying at the next pass): %s", p.records,
                 p.err[0] ? p.err : fm_strerror(rc));
  else
    fm_log_debug("log flush: %" PRIu64 " records, %" PRIu64 " bytes in %" PRIu64 " chunks, %.1f ms", p.records, p.bytes,
                 p.chunks, (double)took / 1e6);
  pthread_mutex_lock(&fl->mu);
  if (p.records > 0) {
    fl->st.passes++;
    fl->st.pass_ns_total += (uint64_t)took;
    fl->st.last_pass_ns = (uint64_t)took;
  }
  fl->st.chunks += p.chunks;
  fl->st.records += p.records;
  fl->st.bytes += p.bytes;
  fl->st.errors += rc != 0;
  fl->st.flushed_ts_ns = fl->state.flushed_ts_ns;
  pthread_mutex_unlock(&fl->mu);
  fl->buf = p.buf;
  fl->buf_cap = p.cap;
  fl->ts = p.ts;
  fl->ts_cap = p.capts;
  return rc;
}

/* ================================================================ retention */

typedef struct name_list {
  char **names;
  int64_t *day_ns;
  size_t n, cap;
  int64_t cutoff;
  int rc;
} name_list;

static bool collect_old_day(void *arg, const char *name, size_t nlen, const void *value, size_t len)
{
  (void)value;
  (void)len;
  name_list *l = arg;
  int64_t day_ns;
  if (!fm_log_parse_day(name, nlen, &day_ns) || day_ns >= l->cutoff)
    return true;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **names = realloc(l->names, cap * sizeof *names);
    if (names != NULL)
      l->names = names;
    int64_t *days = realloc(l->day_ns, cap * sizeof *days);
    if (days != NULL)
      l->day_ns = days;
    if (names == NULL || days == NULL) {
      l->rc = FM_ENOMEM;
      return false;
    }
    l->cap = cap;
  }
  l->names[l->n] = strndup(name, nlen);
  if (l->names[l->n] == NULL) {
    l->rc = FM_ENOMEM;
    return false;
  }
  l->day_ns[l->n++] = day_ns;
  return true;
}

typedef struct fid_list {
  fm_fid *fids;
  size_t n, cap;
  int rc;
} fid_list;

static bool collect_fids(void *arg, const char *name, size_t nlen, const void *value, size_t len)
{
  (void)name;
  (void)nlen;
  fid_list *l = arg;
  FilerPb__Entry *e = filer_pb__entry__unpack(NULL, len, value);
  if (e == NULL)
    return true; /* its chunks cannot be known; they stay on disk */
  for (size_t i = 0; i < e->n_chunks; i++) {
    fm_fid fid;
    if (fm_log_chunk_fid(e->chunks[i], &fid) != 0)
      continue; /* names no needle we could delete */
    if (l->n == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 64;
      fm_fid *grown = realloc(l->fids, cap * sizeof *grown);
      if (grown == NULL) {
        l->rc = FM_ENOMEM;
        break;
      }
      l->fids = grown;
      l->cap = cap;
    }
    l->fids[l->n++] = fid;
  }
  filer_pb__entry__free_unpacked(e, NULL);
  return l->rc == 0;
}

/* Removes one day directory: its entries in one batch with the new retained-from ts, then its chunks. */
static int retire_day(fm_log_flusher *fl, const char *day, int64_t day_ns, char *err, size_t errlen)
{
  char *dir = malloc(sizeof FM_LOG_DIR + strlen(day) + 1);
  if (dir == NULL)
    return FM_ENOMEM;
  sprintf(dir, "%s/%s", FM_LOG_DIR, day);
  fid_list fids = { 0 };
  int rc = fm_store_list(fl->cfg.store, dir, "", true, "", collect_fids, &fids, err, errlen);
  if (rc == 0)
    rc = fids.rc;
  if (rc == 0) {
    fm_log_change c = { .retire_day = day, .state = fl->state };
    if (day_ns + FM_NS_PER_DAY > c.state.retained_from_ns)
      c.state.retained_from_ns = day_ns + FM_NS_PER_DAY;
    rc = apply_change(fl, &c, err, errlen);
    if (rc == 0)
      fl->state = c.state;
  }
  if (rc == 0) {
    for (size_t i = 0; i < fids.n; i++)
      fm_chunk_store_delete(fl->cfg.chunks, &fids.fids[i]); /* FM_ENOTFOUND: already gone */
    fm_log_info("log retention removed %s (%zu chunks)", dir, fids.n);
  }
  free(fids.fids);
  free(dir);
  return rc;
}

static void run_retention(fm_log_flusher *fl)
{
  if (fl->cfg.retention_days <= 0)
    return;
  /* a day goes once it ended retention_days days ago */
  name_list days = { .cutoff = fm_now_ns() - (int64_t)(fl->cfg.retention_days + 1) * FM_NS_PER_DAY + 1 };
  char err[FM_ERR_LEN] = "";
  int rc = fm_store_list(fl->cfg.store, FM_LOG_DIR, "", true, "", collect_old_day, &days, err, sizeof err);
  if (rc == 0)
    rc = days.rc;
  uint64_t retired = 0;
  for (size_t i = 0; rc == 0 && i < days.n; i++) {
    rc = retire_day(fl, days.names[i], days.day_ns[i], err, sizeof err);
    retired += rc == 0;
  }
  if (rc != 0)
    fm_log_error("log retention: %s", err[0] ? err : fm_strerror(rc));
  for (size_t i = 0; i < days.n; i++)
    free(days.names[i]);
  free(days.names);
  free(days.day_ns);
  pthread_mutex_lock(&fl->mu);
  fl->st.retired_days += retired;
  fl->st.retained_from_ns = fl->state.retained_from_ns;
  pthread_mutex_unlock(&fl->mu);
}

/* ================================================================ the thread */

static void deadline_timespec(int64_t mono_ns, struct timespec *ts)
{
  ts->tv_sec = (time_t)(mono_ns / 1000000000);
  ts->tv_nsec = (long)(mono_ns % 1000000000);
}

static void *flusher_main(void *arg)
{
  fm_log_flusher *fl = arg;
  int64_t next_pass = fm_mono_ns() + fl->cfg.interval_ns;
  int64_t not_before = 0; /* no pass before this after a failed one, kick or not */
  fl->next_retention_ns = fm_mono_ns();
  for (;;) {
    if (fm_mono_ns() >= fl->next_retention_ns) {
      run_retention(fl);
      fl->next_retention_ns = fm_mono_ns() + RETENTION_CHECK_NS;
    }
    if (fm_mono_ns() >= not_before) {
      if (run_pass(fl) != 0) {
        fl->backoff_ns = fl->backoff_ns == 0 ? INT64_C(1000000000) : fl->backoff_ns * 2;
        if (fl->backoff_ns > fl->cfg.interval_ns)
          fl->backoff_ns = fl->cfg.interval_ns;
        not_before = fm_mono_ns() + fl->backoff_ns;
      } else {
        fl->backoff_ns = 0;
        not_before = 0;
      }
    }

    pthread_mutex_lock(&fl->mu);
    int64_t wake = next_pass < fl->next_retention_ns ? next_pass : fl->next_retention_ns;
    if (not_before > 0)
      wake = not_before; /* a failed pass left work: retry then, and not before */
    while (!fl->stopping && !(fl->kick && fm_mono_ns() >= not_before) && fm_mono_ns() < wake) {
      struct timespec ts;
      deadline_timespec(wake, &ts);
      pthread_cond_timedwait(&fl->cv, &fl->mu, &ts);
    }
    bool stop = fl->stopping;
    fl->kick = false;
    pthread_mutex_unlock(&fl->mu);
    if (stop) {
      run_pass(fl); /* the final one */
      break;
    }
    if (fm_mono_ns() >= next_pass) {
      /* a new interval: what was appended so far becomes evictable once flushed */
      fm_logbuf_seal(fl->cfg.logbuf);
      next_pass = fm_mono_ns() + fl->cfg.interval_ns;
    }
  }
  return NULL;
}

/* ================================================================ life cycle */

typedef struct recovery {
  fm_logbuf *logbuf;
  uint64_t total;   /* bytes of the records after the flushed watermark */
  uint64_t skip;    /* the oldest of them to leave in the store: what does not fit in half the buffer */
  uint64_t skipped; /* bytes left so far */
  int64_t floor;    /* the newest record left in the store */
  bool floor_set;
  size_t n, lost;
  int rc;
  int64_t ts;
} recovery;

static bool size_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  (void)ts_ns;
  (void)event;
  ((recovery *)arg)->total += len;
  return true;
}

static bool recover_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  recovery *r = arg;
  r->ts = ts_ns;
  if (r->skipped < r->skip) {
    r->skipped += len;
    r->floor = ts_ns;
    return true;
  }
  if (!r->floor_set && r->floor > 0) {
    r->floor_set = true;
    if ((r->rc = fm_logbuf_set_floor_ts(r->logbuf, r->floor)) != 0)
      return false;
  }
  r->rc = fm_logbuf_append(r->logbuf, ts_ns, event, len);
  if (r->rc == FM_ENOMEM) { /* the buffer stops vouching for it (its floor rises); the flusher reads the store */
    r->lost++;
    r->rc = 0;
    return true;
  }
  r->n += r->rc == 0;
  return r->rc == 0;
}

int fm_log_flusher_recover(fm_store *store, fm_logbuf *logbuf, size_t *recovered, char *err, size_t errlen)
{
  *recovered = 0;
  fm_store_log_state st;
  int rc = fm_store_get_log_state(store, &st, err, errlen);
  if (rc != 0)
    return rc;
  rc = fm_logbuf_set_start_ts(logbuf, st.flushed_ts_ns);
  if (rc != 0) {
    snprintf(err, errlen, "log buffer: cannot start at %" PRId64 ": %s", st.flushed_ts_ns, fm_strerror(rc));
    return rc;
  }
  /* A backlog bigger than half the buffer (a store written before there was a flusher, or a flusher that could not
   * write for long) is not loaded whole: only its newest part, the rest stays in the write-ahead records, where the
   * flusher (and readers, through the floor) find it. */
  recovery r = { .logbuf = logbuf };
  rc = fm_store_events(store, st.flushed_ts_ns, size_record, &r, err, errlen);
  if (rc != 0)
    return rc;
  fm_logbuf_stats bs;
  fm_logbuf_get_stats(logbuf, &bs);
  uint64_t budget = bs.size_bytes / 2;
  r.skip = r.total > budget ? r.total - budget : 0;
  rc = fm_store_events(store, st.flushed_ts_ns, recover_record, &r, err, errlen);
  if (rc == 0 && r.rc != 0) {
    rc = r.rc;
    snprintf(err, errlen, "loading write-ahead record %" PRId64 " into the log buffer: %s", r.ts, fm_strerror(rc));
  }
  if (rc == 0 && r.skip > 0)
    fm_log_info("%" PRIu64 " bytes of metadata events not yet in log files: the oldest %" PRIu64
                " stay in the write-ahead records until the flusher writes them",
                r.total, r.skipped);
  if (rc == 0 && r.lost > 0)
    fm_log_warn("%zu recovered events did not fit in memory; the flusher reads them from the write-ahead records",
                r.lost);
  *recovered = r.n;
  return rc;
}

int fm_log_flusher_start(const fm_log_flusher_config *cfg, fm_log_flusher **out, char *err, size_t errlen)
{
  if (cfg->interval_ns <= 0 || cfg->retention_days < 0 || cfg->filer_id == 0) {
    snprintf(err, errlen, "log flusher: bad configuration");
    return FM_EINVAL;
  }
  fm_log_flusher *fl = calloc(1, sizeof *fl);
  if (fl == NULL)
    return FM_ENOMEM;
  fl->cfg = *cfg;
  if (fl->cfg.chunk_bytes == 0)
    fl->cfg.chunk_bytes = FM_LOG_CHUNK_BYTES_DEFAULT;
  int rc = fm_store_get_log_state(cfg->store, &fl->state, err, errlen);
  if (rc != 0) {
    free(fl);
    return rc;
  }
  pthread_mutex_init(&fl->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&fl->cv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&fl->pending, 0);
  fl->st.filer_id = cfg->filer_id;
  fl->st.flushed_ts_ns = fl->state.flushed_ts_ns;
  fl->st.retained_from_ns = fl->state.retained_from_ns;
  if (pthread_create(&fl->thread, NULL, flusher_main, fl) != 0) {
    snprintf(err, errlen, "cannot start the log flusher thread");
    pthread_cond_destroy(&fl->cv);
    pthread_mutex_destroy(&fl->mu);
    free(fl);
    return FM_EIO;
  }
  fl->started = true;
  *out = fl;
  return 0;
}

void fm_log_flusher_note(fm_log_flusher *fl, size_t bytes)
{
  size_t before = atomic_fetch_add(&fl->pending, bytes);
  if (before < fl->cfg.chunk_bytes && before + bytes >= fl->cfg.chunk_bytes) {
    pthread_mutex_lock(&fl->mu);
    fl->kick = true;
    pthread_cond_broadcast(&fl->cv);
    pthread_mutex_unlock(&fl->mu);
  }
}

void fm_log_flusher_stop(fm_log_flusher *fl)
{
  if (fl == NULL)
    return;
  if (fl->started) {
    pthread_mutex_lock(&fl->mu);
    fl->stopping = true;
    pthread_cond_broadcast(&fl->cv);
    pthread_mutex_unlock(&fl->mu);
    pthread_join(fl->thread, NULL);
    fl->started = false;
  }
}

void fm_log_flusher_free(fm_log_flusher *fl)
{
  if (fl == NULL)
    return;
  fm_log_flusher_stop(fl);
  pthread_cond_destroy(&fl->cv);
  pthread_mutex_destroy(&fl->mu);
  free(fl->buf);
  free(fl->ts);
  free(fl);
}

void fm_log_flusher_get_stats(fm_log_flusher *fl, fm_log_flusher_stats *out)
{
  pthread_mutex_lock(&fl->mu);
  *out = fl->st;
  pthread_mutex_unlock(&fl->mu);
}
