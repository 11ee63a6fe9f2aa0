/*
 * Refs-mode reads. A read turns the refs' chunks into jobs (in arrival order: ref by ref, each ref's chunks in offset
 * order) and makes one cursor per filer id walking that filer's refs in order; a min-heap over the cursors' current
 * events gives the merged order.
 *
 * A job goes IDLE -> FETCHING -> FETCHED -> FRAMING -> FRAMED -> DECODING -> READY, then a cursor takes it:
 *  - fetching: a GET of the chunk into a reused buffer (gunzip/decrypt when needed), on any thread;
 *  - framing: finding the record boundaries. A record may straddle chunks, so each ref's chunks are framed in order
 *    by one fm_log_reader (the ref's) and whichever thread finishes the chunk the framing waits for goes on with it;
 *    it is a walk over length prefixes, and it copies out the one record that began in an earlier chunk;
 *  - decoding: every record's LogEntry (in a per-thread scratch arena), the ts bounds, its event (in the job's arena),
 *    the signature and path filters; what passes becomes the job's list of (ts, event). The content buffer is given
 *    back at once. Jobs of different chunks decode in parallel;
 *  - the delivering thread only merges the lists by ts and calls back.
 * An error (a failed fetch, damage found by framing or decoding) is the job's end: its events before it are delivered
 * first, so errors surface in the same place as with a sequential reader.
 *
 * Scheduling: `threads` workers decode any FRAMED job (lowest first) while fewer than `threads` + 1 decoded jobs wait
 * for the cursors, and otherwise fetch the lowest-numbered IDLE chunk while fewer than `prefetch` fetched chunks wait
 * (in flight included). The delivering thread never waits for work nobody started: it fetches, or decodes, the job it
 * needs itself. So memory stays bounded (`prefetch` content buffers, `threads` + 1 decoded chunks, plus one per
 * cursor) with no risk of waiting for a fetch that cannot start. Content buffers and arenas are kept for reuse,
 * because fresh multi-megabyte blocks cost a page fault per 4 KiB.
 */
#include "follow_refs.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arena.h"
#include "error.h"
#include "fid.h"
#include "filer.pb-c.h"
#include "log_chunk.h"
#include "log_entry_view.pb-c.h"
#include "log_record.h"
#include "ts_heap.h"

#define LOOKUP_PATH "/filer_pb.SeaweedFiler/LookupVolume"
#define LOOKUP_TIMEOUT_MS 10000
/* A chunk's content is at most this big (as the server's reader accepts). */
#define CHUNK_MAX (UINT64_C(1) << 30)
/* cursor_next: the cursor's filer has no more records (not an error code: those are negative) */
#define EXHAUSTED 1
/* the transparent huge page size of x86-64 and arm64 (4 KiB base pages) */
#define HUGE_PAGE ((size_t)2 << 20)
/* libcurl's receive buffer: fewer, larger reads than its 16 KiB default */
#define CURL_BUFFER (256L << 10)
/* framing prefetches content this many bytes ahead of the record it is at */
#define FRAME_AHEAD 2048
/* decoding looks at the cancel flags once per this many records */
#define CANCEL_EVERY 1024
/* a job's arena (retaining): its blocks, and the most a reset keeps (a 4 MiB chunk decodes to ~12 MiB of events) */
#define JOB_ARENA_BLOCK (((size_t)2 << 20) - 64) /* with its header, one huge page */
#define JOB_ARENA_KEEP ((size_t)32 << 20)

/* A record whose event field is absent decodes to this: no event_notification, so it is skipped. */
static FilerPb__SubscribeMetadataResponse empty_event = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;

typedef struct location {
  uint32_t volume_id;
  char *url;
} location;

typedef enum job_state {
  JOB_IDLE,     /* nobody started it */
  JOB_FETCHING, /* a thread is fetching it */
  JOB_FETCHED,  /* content (or a fetch error) ready, waiting for its ref's framing to reach it */
  JOB_FRAMING,  /* the ref's framing is on it */
  JOB_FRAMED,   /* records found, waiting for a decoder */
  JOB_DECODING, /* a thread decodes it */
  JOB_READY,    /* its events (and its end: rc) are ready for the cursor */
} job_state;

/* One ref of a read. */
typedef struct refst {
  const FilerPb__LogFileChunkRef *pb; /* borrowed from the caller */
  struct refst *next_of_filer;        /* the same filer's next ref */
  size_t first_job;                   /* its chunks are jobs first_job .. first_job + pb->n_chunks - 1 */
  /* framing, under mu (rd: by the thread that set `framing`) */
  fm_log_reader rd;
  size_t next_frame; /* the chunk framing waits for */
  bool framing;      /* a thread frames one of its chunks now */
  bool frame_done;   /* the ref ended (last chunk, torn tail) or failed: nothing more to frame */
} refst;

/* An event ready for delivery. */
typedef struct item {
  int64_t ts_ns;
  FilerPb__SubscribeMetadataResponse *ev; /* in the job's arena */
} item;

/* One chunk to fetch. The fields after `state` belong to the thread that moved the job into its current state. */
typedef struct job {
  const FilerPb__FileChunk *pb;
  refst *ref;
  size_t chunk;    /* its index in ref */
  job_state state; /* under mu */
  bool prefetched; /* a worker fetched it: it counts in the window until the cursor takes it (under mu) */
  bool ahead;      /* a worker decoded it: it counts in r->ahead until the cursor takes it (under mu) */
  /* the job's end, after its events: 0, or an error (the fetch, damage found by framing or decoding) with `err` */
  int rc;
  char err[FM_ERR_LEN];
  bool ends_ref;  /* the ref's stream ends within this chunk (the last one, or a torn tail) */
  uint64_t bytes; /* content bytes */
  /* the content, until decoded */
  uint8_t *buf;
  size_t len, cap;
  /* framing: the record that began in earlier chunks and ends in this one (malloc'ed, or NULL), then the whole
   * records in buf[start, end), whose first byte is at absolute offset base + start */
  uint8_t *carried;
  size_t carried_len;
  uint64_t carried_pos;
  size_t start, end;
  uint64_t base;
  size_t nrec;
  /* decoding */
  bool skim;       /* the last record was out of the time range: decode the next one as a plain LogEntry first */
  fm_arena *arena; /* from decoding until the cursor is done with it: the events and their list */
  item *items;
  size_t nitems;
  uint64_t records, filtered;
} job;

typedef struct cursor {
  refst *next;  /* the next ref to open, NULL when none is left */
  refst *cur;   /* the open ref, or NULL */
  size_t chunk; /* the chunk of cur being delivered */
  job *job;     /* that chunk's job, taken, or NULL */
  size_t item;  /* the job's current item */
  uint32_t tie; /* rank of the filer id */
} cursor;

/* A buffer given back, for the next fetch. */
typedef struct spare {
  uint8_t *buf;
  size_t cap;
} spare;

/* What a thread fetches and decodes with. */
typedef struct hands {
  CURL *curl;       /* created at the first fetch */
  fm_arena scratch; /* a record's LogEntry and joined paths; reset per record */
} hands;

struct fm_follow_refs {
  fm_follow_refs_config cfg;
  location *locs;
  size_t n_locs, cap_locs;
  atomic_bool cancelled;
  atomic_bool quit; /* the read is over: decoders stop early */

  /* one read at a time; these live for its duration */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t after_ns, upto_ns;
  refst *refs;
  size_t nrefs;
  job *jobs;
  size_t njobs;
  size_t scan;      /* jobs before it are not IDLE (under mu) */
  size_t dscan;     /* no job before it is FRAMED (under mu) */
  size_t window;    /* prefetched jobs not yet taken, in flight included (under mu) */
  size_t ahead;     /* jobs decoded (or decoding) by workers, not yet taken (under mu) */
  size_t max_ahead; /* workers decode while ahead is below it */
  bool done;        /* the read is over: workers leave (under mu) */
  spare *spares;    /* under mu; at most max_spares */
  size_t n_spares, max_spares;
  fm_arena **arenas; /* job arenas given back, under mu; at most max_arenas */
  size_t n_arenas, max_arenas;
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
  atomic_init(&r->quit, false);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->max_ahead = (size_t)r->cfg.threads + 1;
  /* enough for every chunk in the window, in flight, and open in a cursor to come back */
  r->max_spares = (size_t)r->cfg.prefetch + (size_t)r->cfg.threads + 4;
  r->spares = calloc(r->max_spares, sizeof *r->spares);
  /* every decoded chunk waiting, every decoder's, and a few open in cursors */
  r->max_arenas = r->max_ahead + (size_t)r->cfg.threads + 4;
  r->arenas = calloc(r->max_arenas, sizeof *r->arenas);
  if (r->spares == NULL || r->arenas == NULL) {
    fm_follow_refs_free(r);
    return FM_ENOMEM;
  }
  *out = r;
  return 0;
}

static void arena_free(fm_arena *a)
{
  if (a != NULL)
    fm_arena_destroy(a);
  free(a);
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
  for (size_t i = 0; i < r->n_arenas; i++)
    arena_free(r->arenas[i]);
  free(r->arenas);
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

/*
 * A new content buffer of at least `want` bytes (*cap: how many). One of several megabytes is aligned to, and a
 * multiple of, a huge page and asks for transparent huge pages: its first use then costs a fault per 2 MiB instead of
 * per 4 KiB (half the faults of a catch-up went there). Pages never written (the rounding) are never backed.
 */
static uint8_t *new_buffer(size_t want, size_t *cap)
{
  if (want < HUGE_PAGE) {
    *cap = want;
    return malloc(want > 0 ? want : 1);
  }
  size_t size = (want + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  void *p = NULL;
  if (size < want || posix_memalign(&p, HUGE_PAGE, size) != 0)
    return NULL;
  (void)madvise(p, size, MADV_HUGEPAGE); /* advice only: without it the buffer works the same */
  *cap = size;
  return p;
}

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
  return new_buffer(want, cap);
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
  const char *url = find_location(r, fid.volume_id); /* resolved before the worker threads started */
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
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, CURL_BUFFER);
  return curl;
}

static void hands_init(hands *h)
{
  h->curl = NULL;
  fm_arena_init(&h->scratch, 16 << 10, 1 << 20);
}

static void hands_destroy(hands *h)
{
  curl_easy_cleanup(h->curl);
  fm_arena_destroy(&h->scratch);
}

/* Sets j's end to rc with "<ref name>: <what>" (a ref name is at most 70 characters; what is cut to fit). */
static void job_fail(job *j, int rc, const char *what)
{
  char name[96];
  ref_name(j->ref->pb, name, sizeof name);
  j->rc = rc;
  snprintf(j->err, sizeof j->err, "%.70s: %.180s", name, what);
}

/* Fetches job j; sets j->rc and j->err on failure. */
static void fetch_job(fm_follow_refs *r, hands *h, job *j)
{
  char why[FM_ERR_LEN] = "";
  if (h->curl == NULL)
    h->curl = new_curl(r);
  int rc = h->curl != NULL ? fetch_chunk(r, h->curl, j, why, sizeof why) : FM_ENOMEM;
  if (h->curl == NULL)
    snprintf(why, sizeof why, "cannot create a libcurl handle");
  if (rc == FM_ECANCELED)
    j->rc = rc;
  else if (rc != 0)
    job_fail(j, rc, why);
  j->bytes = j->len;
}

/* ================================================================ framing */

/* Finds job j's records with its ref's reader, which has framed the ref's earlier chunks. The caller holds the ref's
 * framing turn. */
static void frame_job(job *j)
{
  refst *ref = j->ref;
  bool last = j->chunk + 1 == ref->pb->n_chunks;
  if (fm_log_reader_feed(&ref->rd, j->buf, j->len, last) != 0) {
    job_fail(j, FM_EIO, "log reader out of step"); /* cannot happen: each chunk is framed to its end */
    return;
  }
  uintptr_t lo = (uintptr_t)j->buf, hi = lo + j->len;
  char why[FM_ERR_LEN]; /* set by the call that fails */
  for (;;) {
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    uint64_t pos = 0;
    int rc = fm_log_reader_next_raw(&ref->rd, &raw, &raw_len, &pos, why, sizeof why);
    if (rc == 0) {
      uintptr_t at = (uintptr_t)raw;
      if (at >= lo && at < hi) {
        /* the walk reads one length per record, a dependent load each: fetch the lines a few records ahead, which
         * the decoding reads next anyway */
        for (size_t k = 0; k < raw_len && at + FRAME_AHEAD + k < hi; k += 64)
          __builtin_prefetch((const void *)(at + FRAME_AHEAD + k));
        if (j->end == 0) {
          j->start = at - lo;
          j->base = pos - j->start;
        }
        j->end = at - lo + raw_len;
      } else { /* the record that began earlier: its bytes are in the reader's buffer until the next call */
        j->carried = malloc(raw_len);
        if (j->carried == NULL) {
          job_fail(j, FM_ENOMEM, "out of memory framing records");
          return;
        }
        memcpy(j->carried, raw, raw_len);
        j->carried_len = raw_len;
        j->carried_pos = pos;
      }
      j->nrec++;
      continue;
    }
    if (rc == FM_ENOTFOUND) { /* the chunk is consumed; on the last one, the stream ended cleanly */
      j->ends_ref = last;
      return;
    }
    if (rc == FM_EDECODE && fm_log_reader_torn(&ref->rd)) {
      j->ends_ref = true; /* a torn last record is the end of the file */
      return;
    }
    job_fail(j, rc, rc == FM_ENOMEM ? "out of memory framing records" : why);
    return;
  }
}

/* Frames ref's chunks in order, as far as they are fetched and nobody else is on it. Holds mu (released while
 * framing). */
static void frame_locked(fm_follow_refs *r, refst *ref)
{
  while (!ref->framing && !ref->frame_done && ref->next_frame < ref->pb->n_chunks) {
    size_t idx = ref->first_job + ref->next_frame;
    job *j = &r->jobs[idx];
    if (j->state != JOB_FETCHED)
      return;
    if (j->rc != 0) { /* a failed fetch: the ref can be framed no further; the cursor reports it */
      ref->frame_done = true;
      j->state = JOB_READY;
      pthread_cond_broadcast(&r->cv);
      return;
    }
    ref->framing = true;
    j->state = JOB_FRAMING;
    pthread_mutex_unlock(&r->mu);
    frame_job(j);
    pthread_mutex_lock(&r->mu);
    ref->framing = false;
    ref->next_frame++;
    if (j->rc != 0 || j->ends_ref)
      ref->frame_done = true;
    j->state = JOB_FRAMED;
    if (idx < r->dscan)
      r->dscan = idx;
    pthread_cond_broadcast(&r->cv);
  }
}

/* ================================================================ decoding */

/* An arena for a job's events: a given-back one, or a new one (NULL when out of memory). */
static fm_arena *take_arena(fm_follow_refs *r)
{
  pthread_mutex_lock(&r->mu);
  fm_arena *a = r->n_arenas > 0 ? r->arenas[--r->n_arenas] : NULL;
  pthread_mutex_unlock(&r->mu);
  if (a == NULL && (a = malloc(sizeof *a)) != NULL)
    fm_arena_init_retaining(a, JOB_ARENA_BLOCK, JOB_ARENA_KEEP);
  return a;
}

/* Resets `a` and keeps it for a later job, or frees it when enough are kept. */
static void give_arena(fm_follow_refs *r, fm_arena *a)
{
  if (a == NULL)
    return;
  fm_arena_reset(a);
  pthread_mutex_lock(&r->mu);
  if (r->n_arenas < r->max_arenas) {
    r->arenas[r->n_arenas++] = a;
    a = NULL;
  }
  pthread_mutex_unlock(&r->mu);
  arena_free(a);
}

static bool in_range(const fm_follow_refs *r, int64_t ts)
{
  return ts > r->after_ns && (r->upto_ns == 0 || ts <= r->upto_ns);
}

/*
 * Decodes one record into its ts and event (in the job's arena), or *ev NULL when it is out of the time range. Two
 * ways, the same result: the LogEntryEvent view decodes the record and its event in one pass; records out of range
 * (e.g. before the resume point in the first file) are better decoded as a plain LogEntry (into the scratch arena),
 * with the event only when in range. The job goes on the way that suited the previous record (j->skim). A record the
 * view cannot decode is decoded again the plain way, which tells a bad LogEntry from a bad event, and skips a bad
 * event out of range as the plain way always did.
 */
static int decode_event(fm_follow_refs *r, hands *h, job *j, const uint8_t *raw, size_t raw_len, uint64_t pos,
                        int64_t *ts, FilerPb__SubscribeMetadataResponse **ev, char *why, size_t whylen)
{
  *ev = NULL;
  ProtobufCAllocator alloc = fm_arena_allocator(j->arena);
  if (!j->skim) {
    FmView__LogEntryEvent *e =
        fm_view__log_entry_event__unpack(&alloc, raw_len - FM_LOG_RECORD_PREFIX, raw + FM_LOG_RECORD_PREFIX);
    if (e != NULL) {
      *ts = e->ts_ns;
      j->skim = !in_range(r, e->ts_ns);
      if (!j->skim)
        *ev = e->data != NULL ? e->data : &empty_event;
      return 0;
    }
    if (fm_arena_failed(j->arena)) {
      snprintf(why, whylen, "out of memory decoding a record");
      return FM_ENOMEM;
    }
  }
  fm_arena_reset(&h->scratch);
  ProtobufCAllocator scratch = fm_arena_allocator(&h->scratch);
  fm_log_record rec;
  int rc = fm_log_record_decode(raw, raw_len, pos, &scratch, &rec, why, whylen);
  if (rc == FM_ENOMEM)
    snprintf(why, whylen, "out of memory decoding a record");
  if (rc != 0)
    return rc;
  *ts = rec.ts_ns;
  j->skim = !in_range(r, rec.ts_ns);
  if (j->skim)
    return 0;
  *ev = filer_pb__subscribe_metadata_response__unpack(&alloc, rec.data_len, rec.data);
  if (*ev != NULL)
    return 0;
  if (fm_arena_failed(j->arena)) {
    snprintf(why, whylen, "out of memory decoding a record");
    return FM_ENOMEM;
  }
  snprintf(why, whylen,
           "the record at offset %" PRIu64 " (ts %" PRId64 ") does not decode as SubscribeMetadataResponse", pos,
           rec.ts_ns);
  return FM_EDECODE;
}

/* One record: its ts and event, the ts bounds, the signature and path filters. Appends to j->items what passes.
 * Returns 0 or an error code with `why`. */
static int decode_record(fm_follow_refs *r, hands *h, job *j, const uint8_t *raw, size_t raw_len, uint64_t pos,
                         char *why, size_t whylen)
{
  int64_t ts = 0;
  FilerPb__SubscribeMetadataResponse *m = NULL;
  int rc = decode_event(r, h, j, raw, raw_len, pos, &ts, &m, why, whylen);
  if (rc != 0)
    return rc;
  j->records++;
  if (m == NULL)
    return 0; /* out of range */
  FilerPb__EventNotification *en = m->event_notification;
  if (en == NULL || (en->old_entry == NULL && en->new_entry == NULL))
    return 0; /* not an event (our filer logs none) */
  if (r->cfg.signature != 0) {
    for (size_t i = 0; i < en->n_signatures; i++) {
      if (en->signatures[i] == r->cfg.signature) {
        j->filtered++;
        return 0;
      }
    }
  }
  fm_arena_reset(&h->scratch);
  fm_event_verdict v;
  if (fm_event_filter_check(r->cfg.paths, m, &h->scratch, &v) != 0) {
    snprintf(why, whylen, "out of memory filtering a record");
    return FM_ENOMEM;
  }
  if (v != FM_EVENT_MATCH) {
    j->filtered++;
    return 0;
  }
  m->ts_ns = ts;
  j->items[j->nitems++] = (item){ ts, m };
  return 0;
}

static bool quitting(fm_follow_refs *r)
{
  return atomic_load(&r->cancelled) || atomic_load(&r->quit);
}

/* Decodes framed job j into its list of events, and gives its content buffer back. An error at a record ends the
 * job there (its events before it stand), ahead of any damage framing found later in the chunk. */
static void decode_job(fm_follow_refs *r, hands *h, job *j)
{
  char why[FM_ERR_LEN] = "";
  int rc = 0;
  if (j->nrec > 0) {
    j->arena = take_arena(r);
    j->items = j->arena != NULL ? fm_arena_alloc(j->arena, j->nrec * sizeof *j->items) : NULL;
    if (j->items == NULL) {
      rc = FM_ENOMEM;
      snprintf(why, sizeof why, "out of memory decoding records");
    }
  }
  if (rc == 0 && j->carried != NULL)
    rc = decode_record(r, h, j, j->carried, j->carried_len, j->carried_pos, why, sizeof why);
  size_t seen = 0;
  for (size_t at = j->start; rc == 0 && at < j->end; seen++) {
    if (seen % CANCEL_EVERY == CANCEL_EVERY - 1 && quitting(r)) {
      rc = FM_ECANCELED;
      break;
    }
    const uint8_t *p = j->buf + at;
    size_t raw_len = FM_LOG_RECORD_PREFIX + ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
    rc = decode_record(r, h, j, p, raw_len, j->base + at, why, sizeof why);
    at += raw_len;
  }
  if (rc == FM_ECANCELED) {
    j->rc = rc;
  } else if (rc != 0) {
    job_fail(j, rc, why);
    j->ends_ref = true;
  }
  give_back(r, j->buf, j->cap);
  j->buf = NULL;
  j->len = j->cap = 0;
  free(j->carried);
  j->carried = NULL;
}

/* ================================================================ scheduling */

/* The lowest FRAMED job, or NULL. Holds mu. */
static job *next_framed_locked(fm_follow_refs *r)
{
  while (r->dscan < r->njobs && r->jobs[r->dscan].state != JOB_FRAMED)
    r->dscan++;
  return r->dscan < r->njobs ? &r->jobs[r->dscan] : NULL;
}

/* The lowest IDLE job, or NULL. Holds mu. */
static job *next_idle_locked(fm_follow_refs *r)
{
  while (r->scan < r->njobs && r->jobs[r->scan].state != JOB_IDLE)
    r->scan++;
  return r->scan < r->njobs ? &r->jobs[r->scan] : NULL;
}

/* Fetches j (which the caller moved to FETCHING) and frames what that allows. Holds mu (released meanwhile). */
static void fetch_locked(fm_follow_refs *r, hands *h, job *j)
{
  pthread_mutex_unlock(&r->mu);
  fetch_job(r, h, j);
  pthread_mutex_lock(&r->mu);
  j->state = JOB_FETCHED;
  pthread_cond_broadcast(&r->cv);
  frame_locked(r, j->ref);
}

/* Decodes j (which the caller moved to DECODING). Holds mu (released meanwhile). */
static void decode_locked(fm_follow_refs *r, hands *h, job *j)
{
  pthread_mutex_unlock(&r->mu);
  decode_job(r, h, j);
  pthread_mutex_lock(&r->mu);
  j->state = JOB_READY;
  pthread_cond_broadcast(&r->cv);
}

/* A worker: decodes what is framed while few decoded chunks wait, else prefetches chunks in order while the window
 * has room, until the read is over. */
static void *worker(void *arg)
{
  fm_follow_refs *r = arg;
  hands h;
  hands_init(&h);
  pthread_mutex_lock(&r->mu);
  while (!r->done && !atomic_load(&r->cancelled)) {
    job *j = r->ahead < r->max_ahead ? next_framed_locked(r) : NULL;
    if (j != NULL) {
      j->state = JOB_DECODING;
      j->ahead = true;
      r->ahead++;
      decode_locked(r, &h, j);
      continue;
    }
    j = r->window < (size_t)r->cfg.prefetch ? next_idle_locked(r) : NULL;
    if (j != NULL) {
      j->state = JOB_FETCHING;
      j->prefetched = true;
      r->window++;
      fetch_locked(r, &h, j);
      continue;
    }
    pthread_cond_wait(&r->cv, &r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  hands_destroy(&h);
  return NULL;
}

/* Makes job j READY for the delivering thread: does its fetch or decode here when nobody else does, else waits.
 * Returns 0 or FM_ECANCELED. */
static int acquire(fm_follow_refs *r, hands *h, job *j)
{
  pthread_mutex_lock(&r->mu);
  while (j->state != JOB_READY) {
    if (atomic_load(&r->cancelled)) { /* a worker may still hold j: the read's end cleans up after the join */
      pthread_mutex_unlock(&r->mu);
      return FM_ECANCELED;
    }
    if (j->state == JOB_IDLE) {
      j->state = JOB_FETCHING;
      fetch_locked(r, h, j);
    } else if (j->state == JOB_FRAMED) {
      j->state = JOB_DECODING;
      decode_locked(r, h, j);
    } else {
      pthread_cond_wait(&r->cv, &r->mu);
    }
  }
  if (j->prefetched || j->ahead) {
    r->window -= j->prefetched;
    r->ahead -= j->ahead;
    j->prefetched = j->ahead = false;
    pthread_cond_broadcast(&r->cv);
  }
  pthread_mutex_unlock(&r->mu);
  return 0;
}

/* Frees what job j holds (its content, events and their arena). Called by the thread that owns j: the cursor that
 * took it, or the read's end after the workers are gone. */
static void release(fm_follow_refs *r, job *j)
{
  give_back(r, j->buf, j->cap);
  j->buf = NULL;
  j->len = j->cap = 0;
  free(j->carried);
  j->carried = NULL;
  give_arena(r, j->arena);
  j->arena = NULL;
  j->items = NULL;
  j->nitems = 0;
}

/* ================================================================ merging */

/* Checks that ref's chunks are contiguous from offset 0 (the reader's positions rely on it). */
static int check_ref(const refst *ref, char *err, size_t errlen)
{
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
  return 0;
}

/* Moves cursor c to its next event (c->job->items[c->item]). Returns 0, EXHAUSTED when the filer's refs are over, or
 * an error. */
static int cursor_next(fm_follow_refs *r, hands *h, cursor *c, fm_follow_refs_counts *counts, char *err, size_t errlen)
{
  for (;;) {
    if (atomic_load(&r->cancelled))
      return FM_ECANCELED;
    job *j = c->job;
    if (j != NULL) {
      if (c->item < j->nitems)
        return 0;
      if (j->rc != 0) {
        if (j->rc != FM_ECANCELED)
          snprintf(err, errlen, "%s", j->err);
        return j->rc; /* the job stays with the cursor; the read's end frees it */
      }
      bool ends = j->ends_ref || c->chunk + 1 >= c->cur->pb->n_chunks;
      release(r, j);
      c->job = NULL;
      c->item = 0;
      if (ends) {
        c->cur = NULL;
        continue;
      }
      c->chunk++;
    } else if (c->cur == NULL) {
      refst *ref = c->next;
      if (ref == NULL)
        return EXHAUSTED;
      c->next = ref->next_of_filer;
      int rc = check_ref(ref, err, errlen);
      if (rc != 0)
        return rc;
      if (ref->pb->n_chunks == 0) /* an empty stream */
        continue;
      c->cur = ref;
      c->chunk = 0;
    }
    j = &r->jobs[c->cur->first_job + c->chunk];
    int rc = acquire(r, h, j);
    if (rc != 0)
      return rc;
    c->job = j;
    c->item = 0;
    counts->records += j->records;
    counts->filtered += j->filtered;
    counts->bytes += j->bytes;
  }
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
  r->nrefs = n;
  r->njobs = nchunks;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    r->refs[i].pb = refs[i];
    r->refs[i].first_job = at;
    fm_log_reader_init_stream(&r->refs[i].rd, 0);
    for (size_t c = 0; c < refs[i]->n_chunks; c++)
      r->jobs[at++] = (job){ .pb = refs[i]->chunks[c], .ref = &r->refs[i], .chunk = c };
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

/* Frees what plan() made and every job's leftovers. No worker may be running. */
static void unplan(fm_follow_refs *r)
{
  for (size_t i = 0; i < r->njobs; i++)
    release(r, &r->jobs[i]);
  for (size_t i = 0; i < r->nrefs; i++)
    fm_log_reader_destroy(&r->refs[i].rd);
  free(r->jobs);
  free(r->refs);
  r->jobs = NULL;
  r->refs = NULL;
  r->njobs = r->nrefs = 0;
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
  r->after_ns = after_ns;
  r->upto_ns = upto_ns;
  r->scan = r->dscan = 0;
  r->window = r->ahead = 0;
  r->done = false;
  atomic_store(&r->quit, false);
  if (plan(r, refs, n, &cs, &nc) != 0) {
    unplan(r);
    snprintf(err, errlen, "out of memory planning %zu refs", n);
    return FM_ENOMEM;
  }
  size_t nthreads = (size_t)r->cfg.threads < r->njobs ? (size_t)r->cfg.threads : r->njobs;
  pthread_t *th = calloc(nthreads > 0 ? nthreads : 1, sizeof *th);
  size_t started = 0;
  if (th != NULL)
    for (; started < nthreads; started++)
      if (pthread_create(&th[started], NULL, worker, r) != 0)
        break; /* fewer threads; the delivering thread does what nobody does */

  hands h;
  hands_init(&h);
  fm_ts_heap heap;
  fm_ts_heap_init(&heap);
  for (size_t k = 0; k < nc && rc == 0; k++) {
    rc = cursor_next(r, &h, &cs[k], counts, err, errlen);
    if (rc == 0)
      rc = fm_ts_heap_push(&heap, cs[k].job->items[0].ts_ns, cs[k].tie, &cs[k]);
    else if (rc == EXHAUSTED)
      rc = 0;
  }
  fm_ts_heap_item it;
  while (rc == 0 && fm_ts_heap_pop(&heap, &it)) {
    cursor *c = it.ptr;
    counts->delivered++;
    if (fn(arg, c->job->items[c->item++].ev) != 0) {
      rc = FM_ECANCELED;
      break;
    }
    rc = cursor_next(r, &h, c, counts, err, errlen);
    if (rc == 0)
      rc = fm_ts_heap_push(&heap, c->job->items[c->item].ts_ns, c->tie, c);
    else if (rc == EXHAUSTED)
      rc = 0;
  }
  if (rc == FM_ENOMEM && err[0] == '\0')
    snprintf(err, errlen, "out of memory");
  if (atomic_load(&r->cancelled) && rc == 0)
    rc = FM_ECANCELED;

  atomic_store(&r->quit, true);
  pthread_mutex_lock(&r->mu);
  r->done = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  for (size_t i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  free(th);
  hands_destroy(&h);
  fm_ts_heap_destroy(&heap);
  free(cs);
  unplan(r);
  return rc;
}
