/*
 * The follow client: one subscription at a time, reopened after transient failures from the resume point.
 *
 * Resume point and duplicates: the resume point is the ts of the last event delivered (or refused by the filter hook)
 * or of the last marker; a reopened stream asks for ts > it. Events at or below the "floor" (the resume point when the
 * stream was opened, or the transition marker's T once refs were read) are dropped as duplicates: our server never
 * sends them, upstream may at a disk/memory hand-off. Within one stream the server's order is trusted, so equal
 * timestamps of different filers in a merged feed all get through.
 *
 * Refs: responses carrying log_file_refs are kept (decoded with malloc, since the arena is reset per message) until
 * the first response without refs; the files are then read (common/follow_refs.c) up to that response's ts when it
 * is the transition marker, and the response is processed as usual after them.
 */
#include "follow.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "backoff.h"
#include "clock.h"
#include "error.h"
#include "event_filter.h"
#include "filer.pb-c.h"
#include "follow_refs.h"
#include "net_addr.h"
#include "rpc_client.h"
#include "rpc_codec.h"

#define PATH_GLOBAL "/filer_pb.SeaweedFiler/SubscribeMetadata"
#define PATH_LOCAL "/filer_pb.SeaweedFiler/SubscribeLocalMetadata"

struct fm_follow {
  /* the request, as given */
  char target[300];
  char *client_name;
  char *path_prefix;
  char **prefixes;
  size_t n_prefixes;
  char **dirs;
  size_t n_dirs;
  int32_t client_id, client_epoch, signature;
  int64_t until_ns;
  bool batching, refs, heartbeat, local;
  fm_follow_event_fn on_event;
  fm_follow_progress_fn on_progress;
  fm_follow_filter_fn filter;
  void *arg;
  int max_retries;
  fm_backoff backoff;
  fm_event_filter paths; /* for refs */
  fm_follow_refs *refsr; /* NULL unless refs */

  /* shared with fm_follow_stop */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC: the backoff sleep */
  bool stop_requested;
  fm_rpc_stream *active;

  /* the running thread's */
  fm_rpc_client *rpc; /* a fresh one (new channel) after every transient failure */
  bool stopped;
  int64_t resume_ns;
  int64_t floor_ns;
  grpc_status_code status;
  fm_follow_stats stats;
  fm_arena arena;
  FilerPb__SubscribeMetadataResponse **ref_msgs; /* pending refs responses, malloc-decoded */
  size_t n_ref_msgs, cap_ref_msgs;
};

/* ================================================================ options */

static char *dup_or_empty(const char *s)
{
  return strdup(s != NULL ? s : "");
}

static int dup_array(char ***out, size_t *n_out, const char *const *src, size_t n)
{
  *out = NULL;
  *n_out = 0;
  if (n == 0)
    return 0;
  char **a = calloc(n, sizeof *a);
  if (a == NULL)
    return FM_ENOMEM;
  *out = a;
  for (size_t i = 0; i < n; i++) {
    if ((a[i] = dup_or_empty(src[i])) == NULL)
      return FM_ENOMEM;
    *n_out = i + 1;
  }
  return 0;
}

static void free_array(char **a, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(a[i]);
  free(a);
}

int fm_follow_new(const fm_follow_options *o, fm_follow **out, char *err, size_t errlen)
{
  *out = NULL;
  if (o->on_event == NULL) {
    snprintf(err, errlen, "no event callback");
    return FM_EINVAL;
  }
  if (o->filer == NULL || o->filer[0] == '\0') {
    snprintf(err, errlen, "no filer address");
    return FM_EINVAL;
  }
  if (o->since_ns < 0 || o->until_ns < 0 || (o->until_ns > 0 && o->until_ns < o->since_ns)) {
    snprintf(err, errlen, "bad time range: since %" PRId64 ", until %" PRId64, o->since_ns, o->until_ns);
    return FM_EINVAL;
  }
  fm_follow *f = calloc(1, sizeof *f);
  if (f == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  pthread_mutex_init(&f->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  fm_arena_init(&f->arena, 64 << 10, 4 << 20);
  int rc = fm_net_filer_grpc_target(o->filer, f->target, sizeof f->target);
  if (rc != 0) {
    snprintf(err, errlen, "filer address \"%.200s\" is not host:port or host:port.grpcPort", o->filer);
    goto err;
  }
  /* the path filter validates the paths as the server would (it is also the refs reader's filter) */
  rc = fm_event_filter_init(&f->paths, o->path_prefix, (char *const *)o->path_prefixes, o->n_path_prefixes,
                            (char *const *)o->directories, o->n_directories, err, errlen);
  if (rc != 0) {
    fm_event_filter_destroy(&f->paths);
    goto err;
  }
  f->client_name = strdup(o->client_name != NULL ? o->client_name : "filermeta");
  f->path_prefix = dup_or_empty(o->path_prefix);
  if (f->client_name == NULL || f->path_prefix == NULL ||
      dup_array(&f->prefixes, &f->n_prefixes, o->path_prefixes, o->n_path_prefixes) != 0 ||
      dup_array(&f->dirs, &f->n_dirs, o->directories, o->n_directories) != 0) {
    snprintf(err, errlen, "out of memory");
    rc = FM_ENOMEM;
    goto err;
  }
  f->client_id = o->client_id;
  f->client_epoch = o->client_epoch;
  f->signature = o->signature;
  f->until_ns = o->until_ns;
  f->batching = o->batching;
  f->refs = o->refs;
  f->heartbeat = o->heartbeat;
  f->local = o->local;
  f->on_event = o->on_event;
  f->on_progress = o->on_progress;
  f->filter = o->filter;
  f->arg = o->arg;
  f->max_retries = o->max_retries > 0 ? o->max_retries : 0;
  fm_backoff_init(&f->backoff, o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 100,
                  o->backoff_max_ms > 0 ? o->backoff_max_ms : 10000, 0);
  f->resume_ns = o->since_ns;
  f->floor_ns = o->since_ns;
  if (f->refs) {
    fm_follow_refs_config rc_cfg = {
      .paths = &f->paths,
      .signature = o->signature,
      .threads = o->refs_threads > 0 ? o->refs_threads : 4,
      .prefetch = o->refs_prefetch > 0 ? o->refs_prefetch : 16,
    };
    if (fm_follow_refs_new(&rc_cfg, &f->refsr) != 0) {
      snprintf(err, errlen, "out of memory");
      rc = FM_ENOMEM;
      goto err;
    }
  }
  *out = f;
  return 0;
err:
  fm_follow_free(f);
  return rc;
}

static void drop_refs(fm_follow *f)
{
  for (size_t i = 0; i < f->n_ref_msgs; i++)
    filer_pb__subscribe_metadata_response__free_unpacked(f->ref_msgs[i], NULL);
  f->n_ref_msgs = 0;
}

void fm_follow_free(fm_follow *f)
{
  if (f == NULL)
    return;
  drop_refs(f);
  free(f->ref_msgs);
  fm_follow_refs_free(f->refsr);
  fm_rpc_client_free(f->rpc);
  fm_event_filter_destroy(&f->paths);
  free(f->client_name);
  free(f->path_prefix);
  free_array(f->prefixes, f->n_prefixes);
  free_array(f->dirs, f->n_dirs);
  fm_arena_destroy(&f->arena);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
  free(f);
}

/* ================================================================ control */

void fm_follow_stop(fm_follow *f)
{
  pthread_mutex_lock(&f->mu);
  f->stop_requested = true;
  if (f->active != NULL)
    fm_rpc_stream_cancel(f->active);
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  if (f->refsr != NULL)
    fm_follow_refs_cancel(f->refsr);
}

static bool stop_requested(fm_follow *f)
{
  pthread_mutex_lock(&f->mu);
  bool s = f->stop_requested;
  pthread_mutex_unlock(&f->mu);
  return s;
}

bool fm_follow_stopped(const fm_follow *f)
{
  return f->stopped;
}

int64_t fm_follow_resume_ns(const fm_follow *f)
{
  return f->resume_ns;
}

grpc_status_code fm_follow_status(const fm_follow *f)
{
  return f->status;
}

void fm_follow_stats_get(const fm_follow *f, fm_follow_stats *out)
{
  *out = f->stats;
}

/* Sleeps ms, or less when stopped. */
static void sleep_ms(fm_follow *f, int64_t ms)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000;
  ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&f->mu);
  while (!f->stop_requested && pthread_cond_timedwait(&f->cv, &f->mu, &ts) == 0) {
  }
  pthread_mutex_unlock(&f->mu);
}

/* ================================================================ delivery */

static int progress(fm_follow *f, fm_follow_progress_kind kind, int64_t ts, int64_t flushed, const char *why)
{
  if (f->on_progress == NULL)
    return 0;
  fm_follow_progress p = { kind, ts, flushed, why };
  return f->on_progress(f->arg, &p) != 0 ? FM_ECANCELED : 0;
}

/* An event for the callbacks: moves the resume point, asks the filter hook, delivers. */
static int event(fm_follow *f, const FilerPb__SubscribeMetadataResponse *e)
{
  if (e->ts_ns > f->resume_ns)
    f->resume_ns = e->ts_ns;
  if (f->filter != NULL && !f->filter(f->arg, e)) {
    f->stats.filtered++;
    return 0;
  }
  f->stats.events++;
  return f->on_event(f->arg, e) != 0 ? FM_ECANCELED : 0;
}

/* One leaf response: a keep-alive, a marker or an event. */
static int one(fm_follow *f, const FilerPb__SubscribeMetadataResponse *e)
{
  const FilerPb__EventNotification *en = e->event_notification;
  if (en == NULL) {
    f->stats.heartbeats++;
    return progress(f, FM_FOLLOW_HEARTBEAT, e->ts_ns, e->flushed_ts_ns, NULL);
  }
  if (en->old_entry == NULL && en->new_entry == NULL) {
    f->stats.markers++;
    if (e->ts_ns > f->resume_ns)
      f->resume_ns = e->ts_ns;
    return progress(f, FM_FOLLOW_MARKER, e->ts_ns, 0, NULL);
  }
  if (e->ts_ns <= f->floor_ns) {
    f->stats.duplicates++;
    return 0;
  }
  return event(f, e);
}

static int refs_event(void *arg, const FilerPb__SubscribeMetadataResponse *ev)
{
  return event(arg, ev) != 0;
}

/* Reads the pending refs: records after the resume point up to `upto` (the transition marker's ts, or 0). */
static int read_refs(fm_follow *f, int64_t upto, char *err, size_t errlen)
{
  size_t n = 0;
  for (size_t i = 0; i < f->n_ref_msgs; i++)
    n += f->ref_msgs[i]->n_log_file_refs;
  FilerPb__LogFileChunkRef **v = malloc((n > 0 ? n : 1) * sizeof *v);
  if (v == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  n = 0;
  for (size_t i = 0; i < f->n_ref_msgs; i++)
    for (size_t k = 0; k < f->ref_msgs[i]->n_log_file_refs; k++)
      v[n++] = f->ref_msgs[i]->log_file_refs[k];
  if (f->until_ns > 0 && (upto == 0 || upto > f->until_ns))
    upto = f->until_ns;
  fm_follow_refs_counts counts;
  int rc = fm_follow_refs_read(f->refsr, f->rpc, v, n, f->resume_ns, upto, refs_event, f, &counts, err, errlen);
  free(v);
  f->stats.refs += n;
  f->stats.ref_bytes += counts.bytes;
  f->stats.filtered += counts.filtered;
  if (rc == FM_EUNAVAILABLE || rc == FM_ENOTFOUND)
    fm_follow_refs_forget_locations(f->refsr);
  if (rc == 0)
    drop_refs(f);
  return rc;
}

/* Keeps a refs response (decoded again with malloc: it must outlive the arena's reset). */
static int keep_refs(fm_follow *f, grpc_byte_buffer *bb, char *err, size_t errlen)
{
  if (f->n_ref_msgs == f->cap_ref_msgs) {
    size_t cap = f->cap_ref_msgs > 0 ? f->cap_ref_msgs * 2 : 16;
    FilerPb__SubscribeMetadataResponse **p = realloc(f->ref_msgs, cap * sizeof *p);
    if (p == NULL) {
      snprintf(err, errlen, "out of memory");
      return FM_ENOMEM;
    }
    f->ref_msgs = p;
    f->cap_ref_msgs = cap;
  }
  ProtobufCMessage *m = NULL;
  if (fm_rpc_decode(bb, &filer_pb__subscribe_metadata_response__descriptor, NULL, &m) != 0) {
    snprintf(err, errlen, "a refs response does not decode");
    return FM_EDECODE;
  }
  f->ref_msgs[f->n_ref_msgs++] = (FilerPb__SubscribeMetadataResponse *)m;
  return 0;
}

/* One response of the stream. */
static int response(fm_follow *f, grpc_byte_buffer *bb, char *err, size_t errlen)
{
  f->stats.messages++;
  fm_arena_reset(&f->arena);
  ProtobufCAllocator alloc = fm_arena_allocator(&f->arena);
  ProtobufCMessage *pm = NULL;
  if (fm_rpc_decode(bb, &filer_pb__subscribe_metadata_response__descriptor, &alloc, &pm) != 0) {
    snprintf(err, errlen, "%s",
             fm_arena_failed(&f->arena) ? "out of memory decoding a response"
                                        : "a response does not decode as SubscribeMetadataResponse");
    return fm_arena_failed(&f->arena) ? FM_ENOMEM : FM_EDECODE;
  }
  FilerPb__SubscribeMetadataResponse *m = (FilerPb__SubscribeMetadataResponse *)pm;
  if (m->n_log_file_refs > 0)
    return keep_refs(f, bb, err, errlen);
  int rc;
  if (f->n_ref_msgs > 0) {
    const FilerPb__EventNotification *en = m->event_notification;
    bool marker = en != NULL && en->old_entry == NULL && en->new_entry == NULL;
    rc = read_refs(f, marker ? m->ts_ns : 0, err, errlen);
    if (rc != 0)
      return rc;
    if (marker && m->ts_ns > f->floor_ns)
      f->floor_ns = m->ts_ns; /* events after the marker are past the refs */
    else if (!marker)
      f->floor_ns = f->resume_ns; /* no marker (upstream): drop whatever the refs held */
  }
  /* the top-level event without the batch, then the batch */
  FilerPb__SubscribeMetadataResponse top = *m;
  top.n_events = 0;
  top.events = NULL;
  bool has_top = m->event_notification != NULL || m->n_events == 0;
  rc = has_top ? one(f, &top) : 0;
  for (size_t i = 0; i < m->n_events && rc == 0; i++)
    rc = one(f, m->events[i]);
  return rc;
}

/* ================================================================ the stream */

static bool transient_status(grpc_status_code st)
{
  return st == GRPC_STATUS_UNAVAILABLE;
}

/* Opens one stream from the resume point and processes it until it ends. Returns 0 (ended with OK), FM_ECANCELED
 * (stopped), FM_EUNAVAILABLE (transient; try again), or a permanent error. *progressed says a response came. */
static int session(fm_follow *f, bool *progressed, char *err, size_t errlen)
{
  *progressed = false;
  if (f->rpc == NULL && fm_rpc_client_new(f->target, &f->rpc) != 0) {
    snprintf(err, errlen, "out of memory creating a client for %.200s", f->target);
    return FM_ENOMEM;
  }
  FilerPb__SubscribeMetadataRequest req = FILER_PB__SUBSCRIBE_METADATA_REQUEST__INIT;
  req.client_name = f->client_name;
  req.path_prefix = f->path_prefix;
  req.path_prefixes = f->prefixes;
  req.n_path_prefixes = f->n_prefixes;
  req.directories = f->dirs;
  req.n_directories = f->n_dirs;
  req.since_ns = f->resume_ns;
  req.until_ns = f->until_ns;
  req.signature = f->signature;
  req.client_id = f->client_id;
  req.client_epoch = f->client_epoch;
  req.client_supports_batching = f->batching;
  req.client_supports_metadata_chunks = f->refs;
  req.client_supports_idle_heartbeat = f->heartbeat;
  f->floor_ns = f->resume_ns;
  drop_refs(f);

  fm_rpc_stream *s = NULL;
  int rc = fm_rpc_stream_open(f->rpc, f->local ? PATH_LOCAL : PATH_GLOBAL, &req.base, 0, &s, err, errlen);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&f->mu);
  f->active = s;
  if (f->stop_requested)
    fm_rpc_stream_cancel(s);
  pthread_mutex_unlock(&f->mu);

  grpc_byte_buffer *bb = NULL;
  while (rc == 0 && fm_rpc_stream_read(s, &bb) == 0) {
    *progressed = true;
    rc = response(f, bb, err, errlen);
    grpc_byte_buffer_destroy(bb);
  }
  pthread_mutex_lock(&f->mu);
  f->active = NULL;
  bool stopping = f->stop_requested;
  pthread_mutex_unlock(&f->mu);
  grpc_status_code st = GRPC_STATUS_OK;
  char why[FM_ERR_LEN] = "";
  int crc = fm_rpc_stream_close(s, &st, why, sizeof why, NULL, 0);
  if (stopping)
    return FM_ECANCELED;
  if (rc != 0)
    return rc;
  f->status = st;
  if (crc != 0) {
    snprintf(err, errlen, "%s", why);
    return transient_status(st) ? FM_EUNAVAILABLE : FM_EIO;
  }
  /* ended with OK: refs the stream ended on (no marker) are still to be read */
  if (f->n_ref_msgs > 0)
    return read_refs(f, 0, err, errlen);
  return 0;
}

int fm_follow_run(fm_follow *f, char *err, size_t errlen)
{
  f->stopped = false;
  f->status = GRPC_STATUS_OK;
  int failures = 0;
  fm_backoff_reset(&f->backoff);
  for (;;) {
    if (stop_requested(f)) {
      f->stopped = true;
      return 0;
    }
    bool progressed = false;
    char why[FM_ERR_LEN] = "";
    int rc = session(f, &progressed, why, sizeof why);
    if (rc == 0)
      return 0;
    if (rc == FM_ECANCELED) {
      f->stopped = true;
      return 0;
    }
    /* a refs file that is gone means the stream's view is stale: a new stream sends current refs (or
     * OUT_OF_RANGE when retention removed what the resume point needs) */
    if (rc != FM_EUNAVAILABLE && rc != FM_ENOTFOUND) {
      snprintf(err, errlen, "%s", why);
      return rc;
    }
    if (progressed) {
      fm_backoff_reset(&f->backoff);
      failures = 0;
    }
    failures++;
    if (f->max_retries > 0 && failures > f->max_retries) {
      snprintf(err, errlen, "gave up after %d attempts: %s", failures, why);
      return FM_EUNAVAILABLE;
    }
    /* a fresh channel: gRPC's own reconnect backoff would otherwise delay the next attempt */
    fm_rpc_client_free(f->rpc);
    f->rpc = NULL;
    f->stats.reconnects++;
    /* the server may not have noticed the old stream's end yet: a newer epoch replaces it there instead of being
     * refused as a duplicate (what SeaweedFS's filer.sync does on each attempt) */
    if (f->client_id != 0 && f->client_epoch < INT32_MAX)
      f->client_epoch++;
    if (progress(f, FM_FOLLOW_RECONNECT, f->resume_ns, 0, why) != 0) {
      f->stopped = true;
      return 0;
    }
    sleep_ms(f, fm_backoff_next(&f->backoff));
  }
}
