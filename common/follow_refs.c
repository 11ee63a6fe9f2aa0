/*
 * Refs-mode reads. A read turns the refs' chunks into jobs (in arrival order: ref by ref, each ref's chunks in offset
 * order) and makes one cursor per filer id walking that filer's refs in order; a min-heap over the cursors' current
 * records gives the merged order.
 *
 * Fetching: `threads` workers take the lowest-numbered chunk nobody started, as long as fewer than `prefetch` fetched
 * chunks wait unread (or are in flight); the delivering thread never waits for a chunk nobody started: it fetches
 * such a chunk itself. So the window bounds memory (a log file can be a hundred megabytes; a chunk is a few) without
 * any risk of waiting for a fetch that cannot start. A cursor feeds its ref's chunks to an fm_log_reader one by one
 * and gives each back once the reader has moved past it; given-back buffers are kept for the next fetches, because
 * fresh multi-megabyte blocks cost a page fault per 4 KiB.
 */
#include "follow_refs.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "error.h"
#include "fid.h"
#include "filer.pb-c.h"
#include "log_chunk.h"
#include "log_record.h"
#include "ts_heap.h"

#define LOOKUP_PATH "/filer_pb.SeaweedFiler/LookupVolume"
#define LOOKUP_TIMEOUT_MS 10000
/* A chunk's content is at most this big (as the server's reader accepts). */
#define CHUNK_MAX (UINT64_C(1) << 30)
/* cursor_next: the cursor's filer has no more records (not an error code: those are negative) */
#define EXHAUSTED 1

typedef struct location {
  uint32_t volume_id;
  char *url;
} location;

typedef enum job_state { JOB_IDLE, JOB_RUNNING, JOB_DONE } job_state;

/* One ref of a read. */
typedef struct refst {
  const FilerPb__LogFileChunkRef *pb; /* borrowed from the caller */
  struct refst *next_of_filer;        /* the same filer's next ref */
  size_t first_job;                   /* its chunks are jobs first_job .. first_job + pb->n_chunks - 1 */
} refst;

/* One chunk to fetch. */
typedef struct job {
  const FilerPb__FileChunk *pb;
  refst *ref;
  job_state state; /* under mu */
  bool prefetched; /* a worker fetched it: it counts in the window until the cursor takes it */
  int rc;          /* when DONE */
  char err[FM_ERR_LEN];
  uint8_t *buf; /* the decoded content */
  size_t len, cap;
} job;

typedef struct cursor {
  refst *next;  /* the next ref to open, NULL when none is left */
  refst *cur;   /* the open ref, or NULL */
  size_t chunk; /* chunks of cur fed so far */
  fm_log_reader rd;
  uint32_t tie; /* rank of the filer id */
  fm_log_record rec;
} cursor;

/* A buffer given back, for the next fetch. */
typedef struct spare {
  uint8_t *buf;
  size_t cap;
} spare;

struct fm_follow_refs {
  fm_follow_refs_config cfg;
  location *locs;
  size_t n_locs, cap_locs;
  atomic_bool cancelled;

  /* one read at a time; these live for its duration */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  refst *refs;
  job *jobs;
  size_t njobs;
  size_t scan;   /* jobs before it are not IDLE */
  size_t window; /* prefetched jobs not yet taken, in flight included */
  bool done;     /* the read is over: workers leave */
  spare *spares; /* under mu; at most max_spares */
  size_t n_spares, max_spares;
  fm_arena arena;
};

/* ================================================================ setup */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

int fm_follow_refs_new(const fm_follow_refs_config *cfg, fm_follow_refs **out)
{
  pthread_once(&curl_once, curl_init);
  fm_follow_refs *r = calloc(1, sizeof *r);
  if (r == NULL)
    return FM_ENOMEM;
  r->cfg = *cfg;
  if (r->cfg.threads < 1)
    r->cfg.threads = 1;
  if (r->cfg.prefetch < 1)
    r->cfg.prefetch = 1;
  atomic_init(&r->cancelled, false);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  fm_arena_init(&r->arena, 16 << 10, 1 << 20);
  /* enough for every chunk in the window, in flight, and open in a cursor to come back */
  r->max_spares = (size_t)r->cfg.prefetch + (size_t)r->cfg.threads + 4;
  r->spares = calloc(r->max_spares, sizeof *r->spares);
  if (r->spares == NULL) {
    fm_follow_refs_free(r);
    return FM_ENOMEM;
  }
  *out = r;
  return 0;
}

void fm_follow_refs_free(fm_follow_refs *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n_locs; i++)
    free(r->locs[i].url);
  free(r->locs);
  for (size_t i = 0; i < r->n_spares; i++)
    free(r->spares[i].buf);
  free(r->spares);
  fm_arena_destroy(&r->arena);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}

void fm_follow_refs_cancel(fm_follow_refs *r)
{
  atomic_store(&r->cancelled, true);
  pthread_mutex_lock(&r->mu);
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static const char *find_location(const fm_follow_refs *r, uint32_t vid)
{
  for (size_t i = 0; i < r->n_locs; i++)
    if (r->locs[i].volume_id == vid)
      return r->locs[i].url;
  return NULL;
}

int fm_follow_refs_set_location(fm_follow_refs *r, uint32_t volume_id, const char *url)
{
  for (size_t i = 0; i < r->n_locs; i++) {
    if (r->locs[i].volume_id == volume_id) {
      char *u = strdup(url);
      if (u == NULL)
        return FM_ENOMEM;
      free(r->locs[i].url);
      r->locs[i].url = u;
      return 0;
    }
  }
  if (r->n_locs == r->cap_locs) {
    size_t cap = r->cap_locs > 0 ? r->cap_locs * 2 : 8;
    location *l = realloc(r->locs, cap * sizeof *l);
    if (l == NULL)
      return FM_ENOMEM;
    r->locs = l;
    r->cap_locs = cap;
  }
  char *u = strdup(url);
  if (u == NULL)
    return FM_ENOMEM;
  r->locs[r->n_locs++] = (location){ volume_id, u };
  return 0;
}

void fm_follow_refs_forget_locations(fm_follow_refs *r)
{
  for (size_t i = 0; i < r->n_locs; i++)
    free(r->locs[i].url);
  r->n_locs = 0;
}

/* ================================================================ volumes */

/* Asks the filer where every volume the refs name lives that the cache does not know yet, in one LookupVolume. */
static int resolve_volumes(fm_follow_refs *r, fm_rpc_client *rpc, FilerPb__LogFileChunkRef *const *refs, size_t n,
                           char *err, size_t errlen)
{
  char **ids = NULL;
  size_t nids = 0, cap = 0;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    for (size_t c = 0; c < refs[i]->n_chunks; c++) {
      fm_fid fid;
      if (fm_log_chunk_fid(refs[i]->chunks[c], &fid) != 0)
        continue; /* the fetch reports it with the file's name */
      if (find_location(r, fid.volume_id) != NULL)
        continue;
      char id[16];
      snprintf(id, sizeof id, "%" PRIu32, fid.volume_id);
      bool seen = false;
      for (size_t k = 0; k < nids && !seen; k++)
        seen = strcmp(ids[k], id) == 0;
      if (seen)
        continue;
      if (nids == cap) {
        cap = cap > 0 ? cap * 2 : 8;
        char **p = realloc(ids, cap * sizeof *p);
        if (p == NULL) {
          rc = FM_ENOMEM;
          break;
        }
        ids = p;
      }
      if ((ids[nids] = strdup(id)) == NULL) {
        rc = FM_ENOMEM;
        break;
      }
      nids++;
    }
  }
  if (rc == FM_ENOMEM)
    snprintf(err, errlen, "out of memory listing volumes");
  if (rc != 0 || nids == 0)
    goto out;
  if (rpc == NULL) {
    snprintf(err, errlen, "volume %s: location unknown", ids[0]);
    rc = FM_ENOTFOUND;
    goto out;
  }
  FilerPb__LookupVolumeRequest req = FILER_PB__LOOKUP_VOLUME_REQUEST__INIT;
  req.n_volume_ids = nids;
  req.volume_ids = ids;
  ProtobufCMessage *m = NULL;
  grpc_status_code st = GRPC_STATUS_OK;
  char why[FM_ERR_LEN] = "";
  rc = fm_rpc_client_unary(rpc, LOOKUP_PATH, &req.base, &filer_pb__lookup_volume_response__descriptor,
                           LOOKUP_TIMEOUT_MS, &m, &st, why, sizeof why);
  if (rc != 0) {
    snprintf(err, errlen, "%s", why);
    rc = st == GRPC_STATUS_UNAVAILABLE || st == GRPC_STATUS_DEADLINE_EXCEEDED ? FM_EUNAVAILABLE : rc;
    goto out;
  }
  FilerPb__LookupVolumeResponse *resp = (FilerPb__LookupVolumeResponse *)m;
  for (size_t i = 0; i < resp->n_locations_map && rc == 0; i++) {
    FilerPb__LookupVolumeResponse__LocationsMapEntry *e = resp->locations_map[i];
    char *end = NULL;
    unsigned long vid = strtoul(e->key, &end, 10);
    if (e->value == NULL || e->value->n_locations == 0 || end == e->key || *end != '\0' || vid == 0 ||
        vid > UINT32_MAX || e->value->locations[0]->url[0] == '\0')
      continue;
    rc = fm_follow_refs_set_location(r, (uint32_t)vid, e->value->locations[0]->url);
    if (rc != 0)
      snprintf(err, errlen, "out of memory caching volume locations");
  }
  protobuf_c_message_free_unpacked(m, NULL);
  for (size_t i = 0; i < nids && rc == 0; i++) {
    if (find_location(r, (uint32_t)strtoul(ids[i], NULL, 10)) == NULL) {
      snprintf(err, errlen, "LookupVolume: volume %s not found", ids[i]);
      rc = FM_ENOTFOUND;
    }
  }
out:
  for (size_t i = 0; i < nids; i++)
    free(ids[i]);
  free(ids);
  return rc;
}

/* ================================================================ fetching */

typedef struct body {
  fm_follow_refs *r;
  uint8_t *p;
  size_t len, cap;
  bool oom;
} body;

/* A buffer of at least `want` bytes: a spare when one is big enough, else a new one. */
static uint8_t *take_buffer(fm_follow_refs *r, size_t want, size_t *cap)
{
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n_spares; i++) {
    if (r->spares[i].cap >= want) {
      spare sp = r->spares[i];
      r->spares[i] = r->spares[--r->n_spares];
      pthread_mutex_unlock(&r->mu);
      *cap = sp.cap;
      return sp.buf;
    }
  }
  pthread_mutex_unlock(&r->mu);
  *cap = want;
  return malloc(want > 0 ? want : 1);
}

/* Keeps buf for a later fetch, or frees it when enough are kept. */
static void give_back(fm_follow_refs *r, uint8_t *buf, size_t cap)
{
  if (buf == NULL)
    return;
  pthread_mutex_lock(&r->mu);
  if (r->n_spares < r->max_spares) {
    r->spares[r->n_spares++] = (spare){ buf, cap };
    buf = NULL;
  }
  pthread_mutex_unlock(&r->mu);
  free(buf);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
  body *b = arg;
  size_t n = size * nmemb;
  if (b->len + n > b->cap) {
    size_t cap = b->cap > 0 ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
      b->oom = true;
      return 0; /* aborts the transfer */
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  const fm_follow_refs *r = arg;
  return atomic_load(&r->cancelled) ? 1 : 0;
}

/* A short name for a ref in messages: "log file <filer id>@<file minute ns>". */
static void ref_name(const FilerPb__LogFileChunkRef *ref, char *buf, size_t len)
{
  snprintf(buf, len, "log file %.40s@%" PRId64, ref->filer_id != NULL ? ref->filer_id : "", ref->file_ts_ns);
}

/* GETs one chunk into j->buf and decodes it. */
static int fetch_chunk(fm_follow_refs *r, CURL *curl, job *j, char *err, size_t errlen)
{
  const FilerPb__FileChunk *pb = j->pb;
  fm_fid fid;
  char fids[FM_FID_MAX] = "";
  int rc = fm_log_chunk_fid(pb, &fid);
  if (rc != 0 || fm_fid_format(&fid, fids, sizeof fids) != 0) {
    snprintf(err, errlen, "chunk %s", rc == FM_ENOTFOUND ? "without a file id" : "with a bad file id");
    return FM_EDECODE;
  }
  if (pb->size > CHUNK_MAX || pb->is_chunk_manifest) {
    snprintf(err, errlen, "chunk %s: %s", fids, pb->is_chunk_manifest ? "a chunk manifest" : "over the size limit");
    return FM_EDECODE;
  }
  const char *url = find_location(r, fid.volume_id); /* resolved before the fetch threads started */
  if (url == NULL) {
    snprintf(err, errlen, "chunk %s: volume location unknown", fids);
    return FM_ENOTFOUND;
  }
  char full[512];
  if ((size_t)snprintf(full, sizeof full, "http://%s/%s", url, fids) >= sizeof full) {
    snprintf(err, errlen, "chunk %s: URL too long", fids);
    return FM_EINVAL;
  }
  body b = { .r = r };
  b.p = take_buffer(r, (size_t)pb->size + 64, &b.cap);
  if (b.p == NULL)
    return FM_ENOMEM;
  curl_easy_setopt(curl, CURLOPT_URL, full);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
  CURLcode cc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (cc != CURLE_OK || status != 200) {
    give_back(r, b.p, b.cap);
    if (b.oom)
      return FM_ENOMEM;
    if (cc != CURLE_OK && atomic_load(&r->cancelled))
      return FM_ECANCELED;
    if (cc != CURLE_OK) {
      snprintf(err, errlen, "GET %.200s: %.40s", full, curl_easy_strerror(cc));
      return FM_EUNAVAILABLE;
    }
    snprintf(err, errlen, "GET %.200s: HTTP %ld", full, status);
    return status == 404 ? FM_ENOTFOUND : status >= 500 ? FM_EUNAVAILABLE : FM_EIO;
  }
  void *buf = b.p;
  size_t len = b.len;
  rc = fm_log_chunk_decode(&pb->cipher_key, pb->is_compressed, pb->size, fids, &buf, &len, err, errlen);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  bool replaced = pb->is_compressed || pb->cipher_key.len > 0; /* the content is then in a block of its own */
  j->buf = buf;
  j->len = len;
  j->cap = replaced ? len : b.cap;
  return 0;
}

/* Fetches job j; sets j->rc and j->err. */
static void fetch_job(fm_follow_refs *r, CURL *curl, job *j)
{
  char why[FM_ERR_LEN] = "", name[96];
  j->rc = curl != NULL ? fetch_chunk(r, curl, j, why, sizeof why) : FM_ENOMEM;
  if (curl == NULL)
    snprintf(why, sizeof why, "cannot create a libcurl handle");
  if (j->rc != 0 && j->rc != FM_ECANCELED) {
    ref_name(j->ref->pb, name, sizeof name);
    snprintf(j->err, sizeof j->err, "%s: %s", name, why);
  }
}

static CURL *new_curl(fm_follow_refs *r)
{
  CURL *curl = curl_easy_init();
  if (curl == NULL)
    return NULL;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, r);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
  return curl;
}

/* A fetch thread: prefetches chunks in order while the window has room. */
static void *worker(void *arg)
{
  fm_follow_refs *r = arg;
  CURL *curl = new_curl(r);
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (r->scan < r->njobs && r->jobs[r->scan].state != JOB_IDLE)
      r->scan++;
    if (r->done || atomic_load(&r->cancelled) || r->scan == r->njobs)
      break;
    if (r->window >= (size_t)r->cfg.prefetch) {
      pthread_cond_wait(&r->cv, &r->mu);
      continue;
    }
    job *j = &r->jobs[r->scan];
    j->state = JOB_RUNNING;
    j->prefetched = true;
    r->window++;
    pthread_mutex_unlock(&r->mu);
    fetch_job(r, curl, j);
    pthread_mutex_lock(&r->mu);
    j->state = JOB_DONE;
    pthread_cond_broadcast(&r->cv);
  }
  pthread_mutex_unlock(&r->mu);
  curl_easy_cleanup(curl);
  return NULL;
}

/* Makes job j's content available to the delivering thread: waits for a worker that is fetching it, or fetches it
 * here when nobody started it. Returns j->rc (with j->err in `err`). */
static int acquire(fm_follow_refs *r, CURL **curl, job *j, char *err, size_t errlen)
{
  pthread_mutex_lock(&r->mu);
  while (j->state == JOB_RUNNING && !atomic_load(&r->cancelled))
    pthread_cond_wait(&r->cv, &r->mu);
  if (j->state == JOB_RUNNING) { /* cancelled: the worker gives up soon; its buffer is freed after the join */
    pthread_mutex_unlock(&r->mu);
    return FM_ECANCELED;
  }
  bool fetch_here = j->state == JOB_IDLE;
  if (fetch_here)
    j->state = JOB_RUNNING;
  if (j->prefetched) {
    r->window--;
    j->prefetched = false;
    pthread_cond_broadcast(&r->cv);
  }
  pthread_mutex_unlock(&r->mu);
  if (fetch_here) {
    if (*curl == NULL)
      *curl = new_curl(r);
    fetch_job(r, *curl, j);
    pthread_mutex_lock(&r->mu);
    j->state = JOB_DONE;
    pthread_mutex_unlock(&r->mu);
  }
  if (j->rc != 0 && j->rc != FM_ECANCELED)
    snprintf(err, errlen, "%s", j->err);
  return j->rc;
}

static void release(fm_follow_refs *r, job *j)
{
  give_back(r, j->buf, j->cap);
  j->buf = NULL;
  j->len = j->cap = 0;
}

/* ================================================================ merging */

/* Feeds the cursor's next chunk (the previous one, which the reader has left, is given back). */
static int feed_next(fm_follow_refs *r, CURL **curl, cursor *c, fm_follow_refs_counts *counts, char *err, size_t errlen)
{
  refst *ref = c->cur;
  size_t n = ref->pb->n_chunks;
  if (c->chunk > 0)
    release(r, &r->jobs[ref->first_job + c->chunk - 1]);
  if (n == 0) { /* a ref without chunks: an empty stream */
    c->chunk = 1;
    return fm_log_reader_feed(&c->rd, NULL, 0, true);
  }
  job *j = &r->jobs[ref->first_job + c->chunk];
  int rc = acquire(r, curl, j, err, errlen);
  if (rc != 0)
    return rc;
  counts->bytes += j->len;
  c->chunk++;
  fm_log_reader_feed(&c->rd, j->buf, j->len, c->chunk == n);
  return 0;
}

/* Moves cursor c to its next record (c->rec). Returns 0, EXHAUSTED when the filer's refs are over, or an error. */
static int cursor_next(fm_follow_refs *r, CURL **curl, cursor *c, fm_follow_refs_counts *counts, char *err,
                       size_t errlen)
{
  for (;;) {
    if (atomic_load(&r->cancelled))
      return FM_ECANCELED;
    if (c->cur == NULL) {
      refst *ref = c->next;
      if (ref == NULL)
        return EXHAUSTED;
      uint64_t at = 0;
      for (size_t i = 0; i < ref->pb->n_chunks; i++) {
        const FilerPb__FileChunk *pb = ref->pb->chunks[i];
        if (pb->offset < 0 || (uint64_t)pb->offset != at) {
          char name[96];
          ref_name(ref->pb, name, sizeof name);
          snprintf(err, errlen, "%s: chunk %zu at offset %" PRId64 ", expected %" PRIu64 " (chunks must be contiguous)",
                   name, i, pb->offset, at);
          return FM_EDECODE;
        }
        at += pb->size;
      }
      c->cur = ref;
      c->chunk = 0;
      fm_log_reader_init_stream(&c->rd, 0);
      int rc = feed_next(r, curl, c, counts, err, errlen);
      if (rc != 0)
        return rc;
    }
    int rc = fm_log_reader_next(&c->rd, &c->rec, err, errlen);
    if (rc == 0)
      return 0;
    refst *ref = c->cur;
    if (rc == FM_ENOTFOUND && c->chunk < ref->pb->n_chunks) {
      rc = feed_next(r, curl, c, counts, err, errlen);
      if (rc != 0)
        return rc;
      continue;
    }
    bool torn = rc == FM_EDECODE && fm_log_reader_torn(&c->rd);
    if (rc == FM_EDECODE && !torn) {
      char what[FM_ERR_LEN], name[96];
      snprintf(what, sizeof what, "%s", err);
      ref_name(ref->pb, name, sizeof name);
      snprintf(err, errlen, "%s: %s", name, what);
    }
    if (rc != FM_ENOTFOUND && !torn)
      return rc; /* corruption, or out of memory */
    /* the ref is over (a torn last record is its end); chunks after a torn record are never read */
    fm_log_reader_destroy(&c->rd);
    for (size_t i = 0; i < ref->pb->n_chunks; i++)
      if (r->jobs[ref->first_job + i].state == JOB_DONE)
        release(r, &r->jobs[ref->first_job + i]);
    c->next = ref->next_of_filer;
    c->cur = NULL;
  }
}

/* Decides one record and hands it to fn when it passes. Returns 0, FM_ECANCELED (fn stopped), or an error. */
static int deliver(fm_follow_refs *r, const fm_log_record *rec, int64_t after_ns, int64_t upto_ns, fm_follow_refs_fn fn,
                   void *arg, fm_follow_refs_counts *counts, char *err, size_t errlen)
{
  counts->records++;
  if (rec->ts_ns <= after_ns || (upto_ns > 0 && rec->ts_ns > upto_ns))
    return 0;
  fm_arena_reset(&r->arena);
  ProtobufCAllocator alloc = fm_arena_allocator(&r->arena);
  FilerPb__SubscribeMetadataResponse *m =
      filer_pb__subscribe_metadata_response__unpack(&alloc, rec->data_len, rec->data);
  if (m == NULL) {
    if (fm_arena_failed(&r->arena)) {
      snprintf(err, errlen, "out of memory decoding a record");
      return FM_ENOMEM;
    }
    snprintf(err, errlen, "the record at ts %" PRId64 " does not decode as SubscribeMetadataResponse", rec->ts_ns);
    return FM_EDECODE;
  }
  FilerPb__EventNotification *en = m->event_notification;
  if (en == NULL || (en->old_entry == NULL && en->new_entry == NULL))
    return 0; /* not an event (our filer logs none) */
  if (r->cfg.signature != 0) {
    for (size_t i = 0; i < en->n_signatures; i++) {
      if (en->signatures[i] == r->cfg.signature) {
        counts->filtered++;
        return 0;
      }
    }
  }
  fm_event_verdict v;
  if (fm_event_filter_check(r->cfg.paths, m, &r->arena, &v) != 0) {
    snprintf(err, errlen, "out of memory filtering a record");
    return FM_ENOMEM;
  }
  if (v != FM_EVENT_MATCH) {
    counts->filtered++;
    return 0;
  }
  m->ts_ns = rec->ts_ns;
  counts->delivered++;
  return fn(arg, m) != 0 ? FM_ECANCELED : 0;
}

typedef struct keyed {
  const char *filer_id;
  size_t index; /* arrival order */
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
  const keyed *x = a, *y = b;
  int c = strcmp(x->filer_id, y->filer_id);
  return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* Builds r->refs and r->jobs (in arrival order) and one cursor per distinct filer id, in id order: a cursor's index
 * is its tie rank, and its refs are linked in arrival order. */
static int plan(fm_follow_refs *r, FilerPb__LogFileChunkRef *const *refs, size_t n, cursor **cursors_out,
                size_t *ncursors)
{
  size_t nchunks = 0;
  for (size_t i = 0; i < n; i++)
    nchunks += refs[i]->n_chunks;
  r->refs = calloc(n, sizeof *r->refs);
  r->jobs = calloc(nchunks > 0 ? nchunks : 1, sizeof *r->jobs);
  keyed *k = malloc(n * sizeof *k);
  cursor *cs = calloc(n, sizeof *cs);
  if (r->refs == NULL || r->jobs == NULL || k == NULL || cs == NULL) {
    free(k);
    free(cs);
    return FM_ENOMEM;
  }
  r->njobs = nchunks;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    r->refs[i].pb = refs[i];
    r->refs[i].first_job = at;
    for (size_t c = 0; c < refs[i]->n_chunks; c++)
      r->jobs[at++] = (job){ .pb = refs[i]->chunks[c], .ref = &r->refs[i] };
    k[i] = (keyed){ refs[i]->filer_id != NULL ? refs[i]->filer_id : "", i };
  }
  qsort(k, n, sizeof *k, cmp_keyed);
  size_t nc = 0;
  refst *tail = NULL;
  for (size_t s = 0; s < n; s++) {
    refst *ref = &r->refs[k[s].index];
    if (s == 0 || strcmp(k[s - 1].filer_id, k[s].filer_id) != 0) {
      cs[nc].tie = (uint32_t)nc;
      cs[nc].next = ref;
      nc++;
    } else {
      tail->next_of_filer = ref;
    }
    tail = ref;
  }
  free(k);
  *cursors_out = cs;
  *ncursors = nc;
  return 0;
}

int fm_follow_refs_read(fm_follow_refs *r, fm_rpc_client *rpc, FilerPb__LogFileChunkRef *const *refs, size_t n,
                        int64_t after_ns, int64_t upto_ns, fm_follow_refs_fn fn, void *arg,
                        fm_follow_refs_counts *counts, char *err, size_t errlen)
{
  *counts = (fm_follow_refs_counts){ 0 };
  if (atomic_load(&r->cancelled))
    return FM_ECANCELED;
  if (n == 0)
    return 0;
  int rc = resolve_volumes(r, rpc, refs, n, err, errlen);
  if (rc != 0)
    return rc;
  cursor *cs = NULL;
  size_t nc = 0;
  r->scan = 0;
  r->window = 0;
  r->done = false;
  if (plan(r, refs, n, &cs, &nc) != 0) {
    free(r->refs);
    free(r->jobs);
    r->refs = NULL;
    r->jobs = NULL;
    snprintf(err, errlen, "out of memory planning %zu refs", n);
    return FM_ENOMEM;
  }
  size_t nthreads = (size_t)r->cfg.threads < r->njobs ? (size_t)r->cfg.threads : r->njobs;
  pthread_t *th = calloc(nthreads > 0 ? nthreads : 1, sizeof *th);
  size_t started = 0;
  if (th != NULL)
    for (; started < nthreads; started++)
      if (pthread_create(&th[started], NULL, worker, r) != 0)
        break; /* fewer threads; the delivering thread fetches what nobody does */

  CURL *curl = NULL;
  fm_ts_heap heap;
  fm_ts_heap_init(&heap);
  for (size_t k = 0; k < nc && rc == 0; k++) {
    rc = cursor_next(r, &curl, &cs[k], counts, err, errlen);
    if (rc == 0)
      rc = fm_ts_heap_push(&heap, cs[k].rec.ts_ns, cs[k].tie, &cs[k]);
    else if (rc == EXHAUSTED)
      rc = 0;
  }
  fm_ts_heap_item it;
  while (rc == 0 && fm_ts_heap_pop(&heap, &it)) {
    cursor *c = it.ptr;
    rc = deliver(r, &c->rec, after_ns, upto_ns, fn, arg, counts, err, errlen);
    if (rc != 0)
      break;
    rc = cursor_next(r, &curl, c, counts, err, errlen);
    if (rc == 0)
      rc = fm_ts_heap_push(&heap, c->rec.ts_ns, c->tie, c);
    else if (rc == EXHAUSTED)
      rc = 0;
  }
  if (rc == FM_ENOMEM && err[0] == '\0')
    snprintf(err, errlen, "out of memory");
  if (atomic_load(&r->cancelled) && rc == 0)
    rc = FM_ECANCELED;

  pthread_mutex_lock(&r->mu);
  r->done = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  for (size_t i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  free(th);
  curl_easy_cleanup(curl);
  for (size_t k = 0; k < nc; k++)
    if (cs[k].cur != NULL)
      fm_log_reader_destroy(&cs[k].rd);
  for (size_t i = 0; i < r->njobs; i++)
    free(r->jobs[i].buf);
  free(cs);
  free(r->jobs);
  free(r->refs);
  r->jobs = NULL;
  r->refs = NULL;
  r->njobs = 0;
  fm_ts_heap_destroy(&heap);
  return rc;
}
