/*
 * The scan (log_scan.h): per filer id one stream reading its files in order, merged by ts with a min-heap; a
 * readahead thread fetches chunks ahead of the streams.
 */
#include "log_scan.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "log.h"

/* ================================================================ scan: files and the readahead thread */

/*
 * Ownership. Every file the scan has listed is a scan_file on the scan's list (first..last, listing order) from its
 * listing until its stream finishes it (or the scan ends). The list, the fetch state of each file and the byte
 * counters are guarded by `mu`; `cond` is broadcast whenever any of them changes, and both the readahead thread
 * (waiting for work) and the caller's thread (waiting for a chunk) wait on it. The readahead thread fetches a chunk
 * with `mu` released, after marking the file in_flight: a file is never freed while in_flight, and its fm_log_file
 * (chunk list) does not change while it is on the list, so reading it without `mu` is safe. A fetched buffer belongs
 * to the file (bufs[i]) until the caller's thread takes it, and then to that file's stream, which frees it once its
 * reader has moved past it.
 */

/* Listed files kept ahead of the merge: the next file's minute tells when it joins, and the readahead thread fetches
 * the first chunks of these while the current files are read. */
#define SCAN_LOOKAHEAD_FILES 2

/* The readahead thread's stack: it calls only the chunk store, zlib and libcrypto, which keep their state on the
 * heap. */
#define READAHEAD_STACK ((size_t)256 << 10)

typedef struct scan_file {
  fm_log_file *info;
  uint64_t seq;                  /* listing order; tells fm_log_scan_file which file it is */
  struct scan_file *prev, *next; /* the scan's list (mu) */
  /* fetch state (mu) */
  void **bufs;       /* per chunk: fetched bytes the stream has not taken yet */
  size_t *lens;      /* their lengths */
  size_t next_fetch; /* the next chunk to fetch */
  size_t fail_at;    /* the chunk whose fetch failed (SIZE_MAX: none); nothing after it is fetched */
  int fail_rc;
  char fail_err[FM_ERR_LEN];
  uint64_t ahead; /* bytes in bufs */
  bool in_flight; /* the readahead thread is fetching chunk next_fetch */
  bool want;      /* the stream is waiting for chunk next_fetch */
  /* the caller's thread only */
  struct scan_file *qnext; /* in the planned queue or a stream's queue */
  fm_log_reader reader;
  bool reading;  /* reader initialised */
  bool fed_last; /* the last chunk is in the reader */
  size_t next_take;
  void *fed; /* the chunk the reader is reading */
  uint64_t dropped;
} scan_file;

/* One filer id's files, read one after the other. In the heap exactly when it has a head record. */
typedef struct scan_stream {
  uint32_t filer_id;
  scan_file *cur;           /* the file being read, or NULL */
  scan_file *qhead, *qtail; /* files that joined and wait for cur to end */
  int64_t last_ts;          /* the last ts read from this filer id, INT64_MIN before the first */
  fm_log_record head;       /* the next record; borrowed from cur's reader */
} scan_stream;

struct fm_log_scan {
  fm_store *store;
  fm_chunk_store *cs;
  int64_t after_ns, until_ns;
  fm_log_scan_options opt;
  size_t budget;
  /* the caller's thread only */
  fm_log_files *listing; /* NULL once exhausted */
  int list_rc;           /* the listing stopped at a damaged entry: list_err, raised when the merge gets there */
  char list_err[FM_ERR_LEN];
  char list_err_path[FM_LOG_PATH_MAX];
  int64_t list_err_ts;
  scan_file *phead, *ptail; /* planned: listed, not yet joined a stream */
  size_t nplanned;
  scan_stream **streams;
  size_t nstreams, streams_cap;
  scan_stream **heap; /* min-heap by (head.ts_ns, filer_id), streams_cap slots */
  size_t nheap;
  scan_stream *popped; /* returned its head; advanced at the next call */
  uint64_t next_seq;
  int failed;
  char fail_err[FM_ERR_LEN];
  bool ended;
  int64_t last_ts;
  uint64_t path_seq;
  char path[FM_LOG_PATH_MAX];
  uint64_t records, files_opened, fetch_waits;
  bool thread_started;
  pthread_t thread;
  /* shared with the readahead thread (mu) */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  scan_file *first, *last;
  uint64_t ahead; /* bytes fetched and not taken, all files */
  uint64_t chunks_fetched, bytes_fetched;
  bool stop;
};

static bool fetchable(const scan_file *f)
{
  return !f->in_flight && f->next_fetch < f->info->nchunks && f->fail_at == SIZE_MAX;
}

/* The file whose next chunk to fetch: the one a stream waits for, else (within the budget) the first in listing
 * order with nothing fetched ahead, else the first holding less than half the budget. Holds mu. */
static scan_file *pick_locked(fm_log_scan *s)
{
  for (scan_file *f = s->first; f != NULL; f = f->next)
    if (f->want && fetchable(f))
      return f;
  if (s->ahead >= s->budget)
    return NULL;
  for (scan_file *f = s->first; f != NULL; f = f->next)
    if (f->ahead == 0 && fetchable(f))
      return f;
  for (scan_file *f = s->first; f != NULL; f = f->next)
    if (f->ahead < s->budget / 2 && fetchable(f))
      return f;
  return NULL;
}

static void *readahead_main(void *arg)
{
  fm_log_scan *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    scan_file *f = pick_locked(s);
    if (f == NULL) {
      pthread_cond_wait(&s->cond, &s->mu);
      continue;
    }
    size_t i = f->next_fetch;
    f->in_flight = true;
    pthread_mutex_unlock(&s->mu);

    void *buf;
    size_t len;
    char err[FM_ERR_LEN] = "";
    int rc = fm_log_chunk_read(s->cs, &f->info->chunks[i], &buf, &len, err, sizeof err);

    pthread_mutex_lock(&s->mu);
    f->in_flight = false;
    if (rc == 0) {
      f->bufs[i] = buf;
      f->lens[i] = len;
      f->ahead += len;
      s->ahead += len;
      s->chunks_fetched++;
      s->bytes_fetched += len;
      f->next_fetch = i + 1;
    } else {
      f->fail_at = i;
      f->fail_rc = rc;
      memcpy(f->fail_err, err, sizeof f->fail_err);
    }
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void file_free(scan_file *f)
{
  if (f->reading)
    fm_log_reader_destroy(&f->reader);
  free(f->fed);
  if (f->bufs != NULL)
    for (size_t i = 0; i < f->info->nchunks; i++)
      free(f->bufs[i]);
  free(f->bufs);
  free(f->lens);
  fm_log_file_free(f->info);
  free(f);
}

/* Takes a finished file off the list (waiting for a fetch in flight) and frees it. */
static void file_drop(fm_log_scan *s, scan_file *f)
{
  pthread_mutex_lock(&s->mu);
  while (f->in_flight)
    pthread_cond_wait(&s->cond, &s->mu);
  if (f->prev != NULL)
    f->prev->next = f->next;
  else
    s->first = f->next;
  if (f->next != NULL)
    f->next->prev = f->prev;
  else
    s->last = f->prev;
  s->ahead -= f->ahead;
  pthread_cond_broadcast(&s->cond); /* budget freed */
  pthread_mutex_unlock(&s->mu);
  if (f->dropped > 0)
    fm_log_warn("log scan: %s: dropped %" PRIu64 " records whose ts did not increase", f->info->path, f->dropped);
  file_free(f);
}

/* Puts a listed file on the scan's list and in the planned queue; starts the readahead thread with the first. Takes
 * ownership of `info`. */
static int file_add(fm_log_scan *s, fm_log_file *info)
{
  scan_file *f = calloc(1, sizeof *f);
  if (f != NULL) {
    f->bufs = calloc(info->nchunks, sizeof *f->bufs);
    f->lens = calloc(info->nchunks, sizeof *f->lens);
  }
  if (f == NULL || f->bufs == NULL || f->lens == NULL) {
    if (f != NULL) {
      free(f->bufs);
      free(f->lens);
    }
    free(f);
    fm_log_file_free(info);
    return FM_ENOMEM;
  }
  f->info = info;
  f->seq = ++s->next_seq;
  f->fail_at = SIZE_MAX;
  if (s->ptail != NULL)
    s->ptail->qnext = f;
  else
    s->phead = f;
  s->ptail = f;
  s->nplanned++;

  pthread_mutex_lock(&s->mu);
  f->prev = s->last;
  if (s->last != NULL)
    s->last->next = f;
  else
    s->first = f;
  s->last = f;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);

  if (!s->thread_started && !s->opt.synchronous) {
    /* a small stack: a server may run one scan per catching-up subscriber */
    pthread_attr_t attr;
    bool have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr)
      pthread_attr_setstacksize(&attr, READAHEAD_STACK);
    int rc = pthread_create(&s->thread, have_attr ? &attr : NULL, readahead_main, s);
    if (have_attr)
      pthread_attr_destroy(&attr);
    if (rc == 0) {
      s->thread_started = true;
    } else {
      fm_log_warn("log scan: cannot start the readahead thread (%s); reading without readahead", strerror(rc));
      s->opt.synchronous = true;
    }
  }
  return 0;
}

/* Hands the stream the next chunk of f: from the readahead thread, waiting if it is not fetched yet, or read here in
 * a synchronous scan. Returns 0 with *buf (the caller owns it), or the fetch's error with `err`. */
static int file_take(fm_log_scan *s, scan_file *f, void **buf, size_t *len, char *err, size_t errlen)
{
  size_t i = f->next_take;
  if (s->opt.synchronous) {
    int rc = fm_log_chunk_read(s->cs, &f->info->chunks[i], buf, len, err, errlen);
    if (rc != 0)
      return rc;
    pthread_mutex_lock(&s->mu);
    s->chunks_fetched++;
    s->bytes_fetched += *len;
    pthread_mutex_unlock(&s->mu);
    f->next_take++;
    return 0;
  }
  pthread_mutex_lock(&s->mu);
  if (i >= f->next_fetch && f->fail_at != i) {
    s->fetch_waits++;
    f->want = true;
    pthread_cond_broadcast(&s->cond);
    while (i >= f->next_fetch && f->fail_at != i)
      pthread_cond_wait(&s->cond, &s->mu);
    f->want = false;
  }
  int rc = 0;
  if (f->fail_at == i) {
    rc = f->fail_rc;
    snprintf(err, errlen, "%s", f->fail_err);
  } else {
    *buf = f->bufs[i];
    *len = f->lens[i];
    f->bufs[i] = NULL;
    f->ahead -= *len;
    s->ahead -= *len;
    pthread_cond_broadcast(&s->cond); /* budget freed */
  }
  pthread_mutex_unlock(&s->mu);
  if (rc == 0)
    f->next_take++;
  return rc;
}

/* Stops the readahead thread and frees every file; the scan returns nothing more. */
static void scan_release(fm_log_scan *s)
{
  if (s->thread_started) {
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->thread_started = false;
  }
  /* single-threaded from here */
  for (scan_file *f = s->first; f != NULL;) {
    scan_file *next = f->next;
    file_free(f);
    f = next;
  }
  s->first = s->last = NULL;
  s->ahead = 0;
  s->phead = s->ptail = NULL;
  s->nplanned = 0;
  for (size_t i = 0; i < s->nstreams; i++) {
    s->streams[i]->cur = NULL;
    s->streams[i]->qhead = s->streams[i]->qtail = NULL;
  }
  s->nheap = 0;
  s->popped = NULL;
  fm_log_files_free(s->listing);
  s->listing = NULL;
}

/* ================================================================ scan: streams and the merge */

static int scan_fail(fm_log_scan *s, int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Ends the scan with rc and a message; later calls return the same. */
static int scan_fail(fm_log_scan *s, int rc, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->fail_err, sizeof s->fail_err, fmt, ap);
  va_end(ap);
  s->failed = rc;
  snprintf(err, errlen, "%s", s->fail_err);
  scan_release(s);
  return rc;
}

static void set_path(fm_log_scan *s, const scan_file *f)
{
  if (s->path_seq != f->seq) {
    s->path_seq = f->seq;
    memcpy(s->path, f->info->path, sizeof s->path);
  }
}

static bool heap_less(const scan_stream *a, const scan_stream *b)
{
  if (a->head.ts_ns != b->head.ts_ns)
    return a->head.ts_ns < b->head.ts_ns;
  return a->filer_id < b->filer_id;
}

static void heap_push(fm_log_scan *s, scan_stream *st)
{
  size_t i = s->nheap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(st, s->heap[parent]))
      break;
    s->heap[i] = s->heap[parent];
    i = parent;
  }
  s->heap[i] = st;
}

static scan_stream *heap_pop(fm_log_scan *s)
{
  scan_stream *top = s->heap[0];
  scan_stream *st = s->heap[--s->nheap];
  size_t n = s->nheap, i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && heap_less(s->heap[c + 1], s->heap[c]))
      c++;
    if (!heap_less(s->heap[c], st))
      break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (n > 0)
    s->heap[i] = st;
  return top;
}

static scan_stream *stream_for(fm_log_scan *s, uint32_t filer_id)
{
  for (size_t i = 0; i < s->nstreams; i++)
    if (s->streams[i]->filer_id == filer_id)
      return s->streams[i];
  if (s->nstreams == s->streams_cap) {
    size_t cap = s->streams_cap > 0 ? s->streams_cap * 2 : 4;
    scan_stream **st = realloc(s->streams, cap * sizeof *st);
    if (st == NULL)
      return NULL;
    s->streams = st;
    scan_stream **h = realloc(s->heap, cap * sizeof *h);
    if (h == NULL)
      return NULL;
    s->heap = h;
    s->streams_cap = cap;
  }
  scan_stream *st = calloc(1, sizeof *st);
  if (st == NULL)
    return NULL;
  st->filer_id = filer_id;
  st->last_ts = INT64_MIN;
  s->streams[s->nstreams++] = st;
  return st;
}

/* Ends the stream's current file. */
static void stream_end_file(fm_log_scan *s, scan_stream *st)
{
  scan_file *f = st->cur;
  st->cur = NULL;
  file_drop(s, f);
}

/*
 * Reads the stream's next record with after_ns < ts into its head and puts it in the heap; a stream with nothing left
 * in its files stays out. Ends files at their end, at a torn last record and at a missing chunk. Returns 0 or the
 * scan's error.
 */
static int stream_advance(fm_log_scan *s, scan_stream *st, char *err, size_t errlen)
{
  char msg[FM_ERR_LEN];
  for (;;) {
    scan_file *f = st->cur;
    if (f == NULL) {
      f = st->qhead;
      if (f == NULL)
        return 0;
      st->qhead = f->qnext;
      if (st->qhead == NULL)
        st->qtail = NULL;
      f->qnext = NULL;
      st->cur = f;
      fm_log_reader_init_stream(&f->reader, f->info->chunks[0].offset);
      f->reading = true;
      s->files_opened++;
    }
    const char *path = f->info->path;
    fm_log_record rec;
    msg[0] = '\0';
    int rc = fm_log_reader_next(&f->reader, &rec, msg, sizeof msg);
    if (rc == 0) {
      if (rec.ts_ns <= st->last_ts) {
        if (f->dropped++ == 0)
          fm_log_warn("log scan: %s offset %" PRIu64 ": ts %" PRId64 " is not after %" PRId64
                      ", the previous of filer %08" PRIx32 "; dropping such records",
                      path, rec.pos, rec.ts_ns, st->last_ts, st->filer_id);
        continue;
      }
      st->last_ts = rec.ts_ns;
      if (rec.ts_ns <= s->after_ns)
        continue;
      st->head = rec;
      heap_push(s, st);
      return 0;
    }
    if (rc == FM_ENOTFOUND) {
      if (f->fed_last) {
        stream_end_file(s, st);
        continue;
      }
      free(f->fed);
      f->fed = NULL;
      const fm_log_chunk *c = &f->info->chunks[f->next_take];
      void *buf;
      size_t len;
      rc = file_take(s, f, &buf, &len, msg, sizeof msg);
      if (rc == FM_ENOTFOUND) {
        fm_log_warn("log scan: %s offset %" PRIu64 ": %s (retention?); skipping the rest of the file", path, c->offset,
                    msg);
        stream_end_file(s, st);
        continue;
      }
      if (rc == FM_EDECODE && s->opt.skip_damaged) {
        fm_log_warn("log scan: %s offset %" PRIu64 ": %s; skipping the rest of the file", path, c->offset, msg);
        stream_end_file(s, st);
        continue;
      }
      if (rc != 0) {
        set_path(s, f);
        return scan_fail(s, rc, err, errlen, "%s offset %" PRIu64 ": %s", path, c->offset, msg);
      }
      f->fed = buf;
      f->fed_last = f->next_take == f->info->nchunks;
      fm_log_reader_feed(&f->reader, buf, len, f->fed_last); /* cannot fail: the reader asked for more */
      continue;
    }
    uint64_t pos = fm_log_reader_pos(&f->reader);
    if (rc == FM_EDECODE && fm_log_reader_torn(&f->reader)) {
      fm_log_warn("log scan: %s offset %" PRIu64 ": %s; the file ends there", path, pos, msg);
      stream_end_file(s, st);
      continue;
    }
    if (rc == FM_EDECODE && s->opt.skip_damaged) {
      fm_log_warn("log scan: %s offset %" PRIu64 ": %s; skipping the rest of the file", path, pos, msg);
      stream_end_file(s, st);
      continue;
    }
    set_path(s, f);
    return scan_fail(s, rc, err, errlen, "%s offset %" PRIu64 ": %s", path, pos,
                     msg[0] != '\0' ? msg : fm_strerror(rc));
  }
}

/* Lists files until SCAN_LOOKAHEAD_FILES are planned or the listing ends. */
static int plan_fill(fm_log_scan *s, char *err, size_t errlen)
{
  while (s->listing != NULL && s->nplanned < SCAN_LOOKAHEAD_FILES) {
    fm_log_file *info;
    char msg[FM_ERR_LEN] = "";
    int rc = fm_log_files_next(s->listing, &info, msg, sizeof msg);
    if (rc == FM_ENOTFOUND) {
      fm_log_files_free(s->listing);
      s->listing = NULL;
      break;
    }
    if (rc == FM_EDECODE && s->opt.skip_damaged) {
      fm_log_warn("log scan: %s; skipping the file", msg);
      continue;
    }
    if (rc == FM_EDECODE) {
      /* reported when the merge gets to that file's minute, after the records before it */
      s->list_rc = rc;
      memcpy(s->list_err, msg, sizeof s->list_err);
      snprintf(s->list_err_path, sizeof s->list_err_path, "%s", fm_log_files_path(s->listing));
      s->list_err_ts = fm_log_files_ts(s->listing);
      fm_log_files_free(s->listing);
      s->listing = NULL;
      break;
    }
    if (rc != 0)
      return scan_fail(s, rc, err, errlen, "%s", msg[0] != '\0' ? msg : fm_strerror(rc));
    rc = file_add(s, info);
    if (rc != 0)
      return scan_fail(s, rc, err, errlen, "log scan: out of memory");
  }
  return 0;
}

/* Moves the first planned file to its filer id's stream, which starts reading it if it was idle. */
static int join_planned(fm_log_scan *s, char *err, size_t errlen)
{
  scan_file *f = s->phead;
  s->phead = f->qnext;
  if (s->phead == NULL)
    s->ptail = NULL;
  s->nplanned--;
  f->qnext = NULL;
  scan_stream *st = stream_for(s, f->info->filer_id);
  if (st == NULL) {
    file_drop(s, f);
    return scan_fail(s, FM_ENOMEM, err, errlen, "log scan: out of memory");
  }
  if (st->qtail != NULL)
    st->qtail->qnext = f;
  else
    st->qhead = f;
  st->qtail = f;
  if (st->cur == NULL) /* idle: not in the heap, nothing queued before f */
    return stream_advance(s, st, err, errlen);
  return 0;
}

int fm_log_scan_open(fm_store *store, fm_chunk_store *cs, int64_t after_ns, int64_t until_ns,
                     const fm_log_scan_options *opt, fm_log_scan **out, char *err, size_t errlen)
{
  *out = NULL;
  if (after_ns < 0 || until_ns < 0) {
    snprintf(err, errlen, "log scan: negative time (after %" PRId64 ", until %" PRId64 ")", after_ns, until_ns);
    return FM_EINVAL;
  }
  fm_log_scan *s = calloc(1, sizeof *s);
  if (s == NULL)
    return FM_ENOMEM;
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    free(s);
    return FM_ENOMEM;
  }
  if (pthread_cond_init(&s->cond, NULL) != 0) {
    pthread_mutex_destroy(&s->mu);
    free(s);
    return FM_ENOMEM;
  }
  s->store = store;
  s->cs = cs;
  s->after_ns = after_ns;
  s->until_ns = until_ns;
  s->last_ts = after_ns;
  if (opt != NULL)
    s->opt = *opt;
  s->budget = s->opt.readahead_bytes > 0 ? s->opt.readahead_bytes : FM_LOG_SCAN_READAHEAD_DEFAULT;
  if (until_ns != 0 && until_ns <= after_ns) {
    s->ended = true; /* an empty range */
  } else {
    int rc = fm_log_files_open(store, after_ns, until_ns, &s->listing, err, errlen);
    if (rc != 0) {
      fm_log_scan_close(s);
      return rc;
    }
  }
  *out = s;
  return 0;
}

int fm_log_scan_next(fm_log_scan *s, fm_log_record *rec, char *err, size_t errlen)
{
  if (s->failed != 0) {
    snprintf(err, errlen, "%s", s->fail_err);
    return s->failed;
  }
  if (s->ended)
    return FM_ENOTFOUND;
  if (s->popped != NULL) {
    scan_stream *st = s->popped;
    s->popped = NULL;
    int rc = stream_advance(s, st, err, errlen);
    if (rc != 0)
      return rc;
  }
  for (;;) {
    int rc = plan_fill(s, err, errlen);
    if (rc != 0)
      return rc;
    scan_stream *top = s->nheap > 0 ? s->heap[0] : NULL;
    /* A file named for minute M holds no ts below M: it joins the merge before any record at or after M leaves. */
    if (s->phead != NULL && (top == NULL || s->phead->info->file_ts_ns <= top->head.ts_ns)) {
      rc = join_planned(s, err, errlen);
      if (rc != 0)
        return rc;
      continue;
    }
    if (s->phead == NULL && s->list_rc != 0 && (top == NULL || s->list_err_ts <= top->head.ts_ns)) {
      memcpy(s->path, s->list_err_path, sizeof s->path);
      s->path_seq = 0;
      return scan_fail(s, s->list_rc, err, errlen, "%s", s->list_err);
    }
    if (top == NULL || (s->until_ns != 0 && top->head.ts_ns > s->until_ns)) {
      s->ended = true;
      scan_release(s);
      return FM_ENOTFOUND;
    }
    heap_pop(s);
    s->popped = top;
    *rec = top->head;
    s->last_ts = rec->ts_ns;
    s->records++;
    set_path(s, top->cur);
    return 0;
  }
}

int64_t fm_log_scan_last_ts(const fm_log_scan *s)
{
  return s->last_ts;
}

const char *fm_log_scan_file(const fm_log_scan *s)
{
  return s->path;
}

void fm_log_scan_get_stats(fm_log_scan *s, fm_log_scan_stats *out)
{
  memset(out, 0, sizeof *out);
  out->records = s->records;
  out->files = s->files_opened;
  pthread_mutex_lock(&s->mu);
  out->chunks = s->chunks_fetched;
  out->bytes = s->bytes_fetched;
  out->fetch_waits = s->fetch_waits;
  pthread_mutex_unlock(&s->mu);
}

void fm_log_scan_close(fm_log_scan *s)
{
  if (s == NULL)
    return;
  scan_release(s);
  for (size_t i = 0; i < s->nstreams; i++)
    free(s->streams[i]);
  free(s->streams);
  free(s->heap);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
