/* The subscriber registry (sub_registry.h). The set is one doubly linked list kept sorted by (display name,
 * path_prefix), so listings walk it in order without sorting; a registration finds a stored id by walking it too.
 * Registrations are rare next to events (a client connects once per session), so O(streams) per registration is the
 * price of not keeping a second index in step with the list. */
#include "sub_registry.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

struct fm_subreg_stream {
  /* Holds mu (the registry's): */
  fm_subreg_stream *prev, *next; /* in the sorted list while linked */
  bool linked;                   /* in the set; false once superseded */
  int wakes_running;             /* wake calls in progress; unregister waits for 0 */

  /* Set at registration, then read-only (strings point into this allocation): */
  fm_subreg_rpc rpc;
  int32_t id; /* negated for local */
  int32_t epoch;
  int64_t connected_at_ns;
  char *name; /* client_type@peer */
  char *client_type;
  char *peer;
  char *path_prefix;
  size_t n_path_prefixes;
  char **path_prefixes;
  size_t n_directories;
  char **directories;
  bool batching, refs, heartbeat;
  fm_subreg_wake_fn wake;
  void *wake_arg;

  /* Written by the engine without a lock: */
  atomic_bool superseded;
  _Atomic int64_t position_ts_ns;
  _Atomic uint64_t events_sent;
  _Atomic uint64_t bytes_sent;
  _Atomic uint32_t ring_fill;
};

struct fm_subreg {
  pthread_mutex_t mu;
  pthread_cond_t wake_done; /* broadcast when a wake call returns */
  fm_subreg_stream *head;   /* Holds mu. */
  size_t count;             /* Holds mu. */
  char *filer_address;
};

const char *const fm_subreg_lag_le[FM_SUBREG_LAG_BUCKETS] = { "0.001", "0.01", "0.1", "1", "10", "60", "600", "+Inf" };

/* fm_subreg_lag_le in ns. */
static const int64_t lag_bound_ns[FM_SUBREG_LAG_BUCKETS] = {
  1000000LL, 10000000LL, 100000000LL, 1000000000LL, 10000000000LL, 60000000000LL, 600000000000LL, INT64_MAX,
};

static const char *str_or_empty(const char *s)
{
  return s != NULL ? s : "";
}

/* ================================================================ the registry */

int fm_subreg_new(const char *filer_address, fm_subreg **out)
{
  if (filer_address == NULL || out == NULL)
    return FM_EINVAL;
  *out = NULL;
  fm_subreg *r = calloc(1, sizeof *r);
  if (r == NULL)
    return FM_ENOMEM;
  r->filer_address = strdup(filer_address);
  if (r->filer_address == NULL)
    goto err;
  if (pthread_mutex_init(&r->mu, NULL) != 0)
    goto err;
  if (pthread_cond_init(&r->wake_done, NULL) != 0) {
    pthread_mutex_destroy(&r->mu);
    goto err;
  }
  *out = r;
  return 0;
err:
  free(r->filer_address);
  free(r);
  return FM_ENOMEM;
}

void fm_subreg_free(fm_subreg *r)
{
  if (r == NULL)
    return;
  pthread_cond_destroy(&r->wake_done);
  pthread_mutex_destroy(&r->mu);
  free(r->filer_address);
  free(r);
}

/* ================================================================ a stream's allocation */

/* A stream and all its strings live in one allocation: the struct, then the two pointer arrays, then the bytes.
 * A bump pointer hands out the pieces in the same order measure() counted them. */
typedef struct bump {
  char *p;
} bump;

static char *bump_str(bump *b, const char *s)
{
  size_t n = strlen(s) + 1;
  char *d = memcpy(b->p, s, n);
  b->p += n;
  return d;
}

static char **bump_strs(bump *b, char **ptrs, char *const *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ptrs[i] = bump_str(b, str_or_empty(src[i]));
  return n > 0 ? ptrs : NULL;
}

static size_t strs_bytes(char *const *src, size_t n)
{
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += strlen(str_or_empty(src[i])) + 1;
  return total;
}

static int32_t negate_id(int32_t id)
{
  /* -INT32_MIN is INT32_MIN, as Go's int32 negation wraps; computed unsigned to stay defined. */
  return (int32_t)(0u - (uint32_t)id);
}

static fm_subreg_stream *stream_new(fm_subreg_rpc rpc, const FilerPb__SubscribeMetadataRequest *req, const char *peer,
                                    fm_subreg_wake_fn wake, void *wake_arg)
{
  const char *type = str_or_empty(req->client_name);
  const char *prefix = str_or_empty(req->path_prefix);
  size_t type_len = strlen(type), peer_len = strlen(peer);
  size_t ptrs = (req->n_path_prefixes + req->n_directories) * sizeof(char *);
  size_t bytes = (type_len + 1 + peer_len + 1) + (type_len + 1) + (peer_len + 1) + (strlen(prefix) + 1) +
                 strs_bytes(req->path_prefixes, req->n_path_prefixes) +
                 strs_bytes(req->directories, req->n_directories);
  fm_subreg_stream *s = calloc(1, sizeof *s + ptrs + bytes);
  if (s == NULL)
    return NULL;
  char **arr = (char **)(s + 1);
  bump b = { (char *)arr + ptrs };

  s->name = b.p;
  memcpy(b.p, type, type_len);
  b.p[type_len] = '@';
  memcpy(b.p + type_len + 1, peer, peer_len + 1);
  b.p += type_len + 1 + peer_len + 1;
  s->client_type = bump_str(&b, type);
  s->peer = bump_str(&b, peer);
  s->path_prefix = bump_str(&b, prefix);
  s->n_path_prefixes = req->n_path_prefixes;
  s->path_prefixes = bump_strs(&b, arr, req->path_prefixes, req->n_path_prefixes);
  s->n_directories = req->n_directories;
  s->directories = bump_strs(&b, arr + req->n_path_prefixes, req->directories, req->n_directories);

  s->rpc = rpc;
  s->id = rpc == FM_SUBREG_LOCAL ? negate_id(req->client_id) : req->client_id;
  s->epoch = req->client_epoch;
  s->connected_at_ns = fm_now_ns();
  s->batching = req->client_supports_batching;
  s->refs = req->client_supports_metadata_chunks;
  s->heartbeat = req->client_supports_idle_heartbeat;
  s->wake = wake;
  s->wake_arg = wake_arg;
  atomic_init(&s->superseded, false);
  atomic_init(&s->position_ts_ns, req->since_ns > 0 ? req->since_ns : 0);
  atomic_init(&s->events_sent, 0);
  atomic_init(&s->bytes_sent, 0);
  atomic_init(&s->ring_fill, 0);
  return s;
}

/* ================================================================ the sorted list */

static int stream_cmp(const fm_subreg_stream *a, const fm_subreg_stream *b)
{
  int c = strcmp(a->name, b->name);
  return c != 0 ? c : strcmp(a->path_prefix, b->path_prefix);
}

/* Links `s` after every stream that sorts before or equal to it (equal ones keep their arrival order). Holds mu. */
static void link_locked(fm_subreg *r, fm_subreg_stream *s)
{
  fm_subreg_stream *prev = NULL, *cur = r->head;
  while (cur != NULL && stream_cmp(cur, s) <= 0) {
    prev = cur;
    cur = cur->next;
  }
  s->prev = prev;
  s->next = cur;
  if (prev != NULL)
    prev->next = s;
  else
    r->head = s;
  if (cur != NULL)
    cur->prev = s;
  s->linked = true;
  r->count++;
}

/* Holds mu. */
static void unlink_locked(fm_subreg *r, fm_subreg_stream *s)
{
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    r->head = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
  s->linked = false;
  r->count--;
}

/* The stream holding non-zero `id`, or NULL. Holds mu. */
static fm_subreg_stream *find_id_locked(fm_subreg *r, int32_t id)
{
  for (fm_subreg_stream *s = r->head; s != NULL; s = s->next)
    if (s->id == id)
      return s;
  return NULL;
}

/* ================================================================ registration */

int fm_subreg_register(fm_subreg *r, fm_subreg_rpc rpc, const FilerPb__SubscribeMetadataRequest *req, const char *peer,
                       fm_subreg_wake_fn wake, void *wake_arg, fm_subreg_stream **out, char err[FM_ERR_LEN])
{
  if (out != NULL)
    *out = NULL;
  if (r == NULL || req == NULL || peer == NULL || out == NULL ||
      (rpc != FM_SUBREG_AGGREGATED && rpc != FM_SUBREG_LOCAL)) {
    if (err != NULL)
      snprintf(err, FM_ERR_LEN, "sub_registry: missing argument");
    return FM_EINVAL;
  }
  fm_subreg_stream *s = stream_new(rpc, req, peer, wake, wake_arg);
  if (s == NULL) {
    if (err != NULL)
      snprintf(err, FM_ERR_LEN, "sub_registry: out of memory");
    return FM_ENOMEM;
  }

  fm_subreg_stream *old = NULL;
  pthread_mutex_lock(&r->mu);
  if (s->id != 0) {
    old = find_id_locked(r, s->id);
    if (old != NULL && old->epoch >= s->epoch) {
      pthread_mutex_unlock(&r->mu);
      /* The texts peers match on (PROTOCOL.md §6); the id is the one registered, so negated for local. */
      if (err != NULL) {
        if (rpc == FM_SUBREG_LOCAL)
          snprintf(err, FM_ERR_LEN, "duplicated local subscription detected for client %s clientId:%d", s->name,
                   (int)s->id);
        else
          snprintf(err, FM_ERR_LEN, "duplicated subscription detected for client %s id %d", s->name, (int)s->id);
      }
      free(s);
      return FM_EEXIST;
    }
    if (old != NULL) {
      unlink_locked(r, old);
      atomic_store_explicit(&old->superseded, true, memory_order_release);
      if (old->wake != NULL)
        old->wakes_running++; /* keeps old allocated until the call below returns */
      else
        old = NULL;
    }
  }
  link_locked(r, s);
  pthread_mutex_unlock(&r->mu);

  if (old != NULL) {
    old->wake(old->wake_arg);
    pthread_mutex_lock(&r->mu);
    old->wakes_running--;
    pthread_cond_broadcast(&r->wake_done);
    pthread_mutex_unlock(&r->mu);
  }
  *out = s;
  return 0;
}

void fm_subreg_unregister(fm_subreg *r, fm_subreg_stream *s)
{
  if (r == NULL || s == NULL)
    return;
  pthread_mutex_lock(&r->mu);
  if (s->linked)
    unlink_locked(r, s);
  while (s->wakes_running > 0)
    pthread_cond_wait(&r->wake_done, &r->mu);
  pthread_mutex_unlock(&r->mu);
  free(s);
}

/* ================================================================ a stream */

bool fm_subreg_stream_superseded(const fm_subreg_stream *s)
{
  return atomic_load_explicit(&((fm_subreg_stream *)s)->superseded, memory_order_acquire);
}

const char *fm_subreg_stream_name(const fm_subreg_stream *s)
{
  return s->name;
}

int32_t fm_subreg_stream_id(const fm_subreg_stream *s)
{
  return s->id;
}

void fm_subreg_stream_set_position(fm_subreg_stream *s, int64_t ts_ns)
{
  atomic_store_explicit(&s->position_ts_ns, ts_ns, memory_order_relaxed);
}

void fm_subreg_stream_count_sent(fm_subreg_stream *s, uint64_t events, uint64_t bytes)
{
  atomic_fetch_add_explicit(&s->events_sent, events, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->bytes_sent, bytes, memory_order_relaxed);
}

void fm_subreg_stream_set_ring_fill(fm_subreg_stream *s, uint32_t slots)
{
  atomic_store_explicit(&s->ring_fill, slots, memory_order_relaxed);
}

/* ================================================================ listings */

static bool type_wanted(const FilerPb__ListMetadataSubscribersRequest *req, const fm_subreg_stream *s)
{
  if (req == NULL || req->n_client_types == 0)
    return true;
  for (size_t i = 0; i < req->n_client_types; i++)
    if (strcmp(str_or_empty(req->client_types[i]), s->client_type) == 0)
      return true;
  return false;
}

/* One MetadataSubscriber and its strings in one allocation. */
static FilerPb__MetadataSubscriber *subscriber_new(const fm_subreg_stream *s, const char *filer_address)
{
  size_t bytes =
      strlen(s->name) + strlen(s->client_type) + strlen(s->peer) + strlen(s->path_prefix) + strlen(filer_address) + 5;
  FilerPb__MetadataSubscriber *m = malloc(sizeof *m + bytes);
  if (m == NULL)
    return NULL;
  filer_pb__metadata_subscriber__init(m);
  bump b = { (char *)(m + 1) };
  m->client_name = bump_str(&b, s->name);
  m->client_type = bump_str(&b, s->client_type);
  m->address = bump_str(&b, s->peer);
  m->path_prefix = bump_str(&b, s->path_prefix);
  m->filer_address = bump_str(&b, filer_address);
  m->client_id = s->id;
  m->client_epoch = s->epoch;
  m->connected_at_ns = s->connected_at_ns;
  return m;
}

int fm_subreg_list(fm_subreg *r, const FilerPb__ListMetadataSubscribersRequest *req,
                   FilerPb__ListMetadataSubscribersResponse **out)
{
  if (r == NULL || out == NULL)
    return FM_EINVAL;
  *out = NULL;
  FilerPb__ListMetadataSubscribersResponse *resp = malloc(sizeof *resp);
  if (resp == NULL)
    return FM_ENOMEM;
  filer_pb__list_metadata_subscribers_response__init(resp);

  int rc = 0;
  pthread_mutex_lock(&r->mu);
  if (r->count > 0) {
    resp->subscribers = calloc(r->count, sizeof *resp->subscribers);
    if (resp->subscribers == NULL)
      rc = FM_ENOMEM;
  }
  for (fm_subreg_stream *s = r->head; s != NULL && rc == 0; s = s->next) {
    if (!type_wanted(req, s))
      continue;
    FilerPb__MetadataSubscriber *m = subscriber_new(s, r->filer_address);
    if (m == NULL)
      rc = FM_ENOMEM;
    else
      resp->subscribers[resp->n_subscribers++] = m;
  }
  pthread_mutex_unlock(&r->mu);

  if (rc != 0) {
    fm_subreg_list_free(resp);
    return rc;
  }
  *out = resp;
  return 0;
}

void fm_subreg_list_free(FilerPb__ListMetadataSubscribersResponse *resp)
{
  if (resp == NULL)
    return;
  for (size_t i = 0; i < resp->n_subscribers; i++)
    free(resp->subscribers[i]);
  free(resp->subscribers);
  free(resp);
}

/* now - position, at least 0; -1 when the stream has no position. */
static int64_t lag_ns(const fm_subreg_stream *s, int64_t now_ns)
{
  int64_t pos = atomic_load_explicit(&((fm_subreg_stream *)s)->position_ts_ns, memory_order_relaxed);
  if (pos <= 0)
    return -1;
  return now_ns > pos ? now_ns - pos : 0;
}

/* Adds `v` (NULL = out of memory) to `o` under `key`; false if either failed (`v` is released then). */
static bool json_put(json_object *o, const char *key, json_object *v)
{
  if (v == NULL)
    return false;
  if (json_object_object_add(o, key, v) != 0) {
    json_object_put(v);
    return false;
  }
  return true;
}

static json_object *json_strings(char *const *strs, size_t n)
{
  json_object *a = json_object_new_array_ext((int)n);
  if (a == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    json_object *v = json_object_new_string(strs[i]);
    if (v == NULL || json_object_array_add(a, v) != 0) {
      json_object_put(v);
      json_object_put(a);
      return NULL;
    }
  }
  return a;
}

/* One /debug/subscribers object, or NULL when out of memory. Holds mu (s stays allocated). */
static json_object *stream_json_locked(const fm_subreg_stream *s, int64_t now_ns)
{
  fm_subreg_stream *m = (fm_subreg_stream *)s; /* atomics are read through a non-const pointer */
  json_object *o = json_object_new_object();
  if (o == NULL)
    return NULL;
  int64_t lag = lag_ns(s, now_ns);
  bool ok = json_put(o, "name", json_object_new_string(s->name)) &&
            json_put(o, "client_type", json_object_new_string(s->client_type)) &&
            json_put(o, "peer", json_object_new_string(s->peer)) &&
            json_put(o, "rpc", json_object_new_string(s->rpc == FM_SUBREG_LOCAL ? "local" : "aggregated")) &&
            json_put(o, "id", json_object_new_int(s->id)) && json_put(o, "epoch", json_object_new_int(s->epoch)) &&
            json_put(o, "path_prefix", json_object_new_string(s->path_prefix)) &&
            json_put(o, "path_prefixes", json_strings(s->path_prefixes, s->n_path_prefixes)) &&
            json_put(o, "directories", json_strings(s->directories, s->n_directories)) &&
            json_put(o, "connected_at_ns", json_object_new_int64(s->connected_at_ns)) &&
            json_put(o, "position_ts_ns",
                     json_object_new_int64(atomic_load_explicit(&m->position_ts_ns, memory_order_relaxed)));
  if (ok) {
    if (lag >= 0)
      ok = json_put(o, "lag_seconds", json_object_new_double((double)lag / 1e9));
    else
      ok = json_object_object_add(o, "lag_seconds", NULL) == 0;
  }
  ok =
      ok &&
      json_put(o, "events_sent", json_object_new_uint64(atomic_load_explicit(&m->events_sent, memory_order_relaxed))) &&
      json_put(o, "bytes_sent", json_object_new_uint64(atomic_load_explicit(&m->bytes_sent, memory_order_relaxed))) &&
      json_put(o, "ring_fill", json_object_new_uint64(atomic_load_explicit(&m->ring_fill, memory_order_relaxed))) &&
      json_put(o, "batching", json_object_new_boolean(s->batching)) &&
      json_put(o, "refs", json_object_new_boolean(s->refs)) &&
      json_put(o, "heartbeat", json_object_new_boolean(s->heartbeat));
  if (!ok) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

int fm_subreg_debug_json(fm_subreg *r, int64_t now_ns, json_object **out)
{
  if (r == NULL || out == NULL)
    return FM_EINVAL;
  *out = NULL;
  int rc = 0;
  pthread_mutex_lock(&r->mu);
  json_object *a = json_object_new_array_ext((int)(r->count < INT_MAX ? r->count : INT_MAX));
  if (a == NULL)
    rc = FM_ENOMEM;
  for (fm_subreg_stream *s = r->head; s != NULL && rc == 0; s = s->next) {
    json_object *o = stream_json_locked(s, now_ns);
    if (o == NULL || json_object_array_add(a, o) != 0) {
      json_object_put(o);
      rc = FM_ENOMEM;
    }
  }
  pthread_mutex_unlock(&r->mu);
  if (rc != 0) {
    json_object_put(a);
    return rc;
  }
  *out = a;
  return 0;
}

void fm_subreg_get_stats(fm_subreg *r, int64_t now_ns, fm_subreg_stats *out)
{
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&r->mu);
  out->streams = r->count;
  for (fm_subreg_stream *s = r->head; s != NULL; s = s->next) {
    if (s->id == 0)
      out->anonymous++;
    int64_t lag = lag_ns(s, now_ns);
    if (lag < 0)
      continue;
    out->lag_count++;
    out->lag_sum_seconds += (double)lag / 1e9;
    for (size_t i = 0; i < FM_SUBREG_LAG_BUCKETS; i++)
      if (lag <= lag_bound_ns[i])
        out->lag_le[i]++;
  }
  pthread_mutex_unlock(&r->mu);
}
