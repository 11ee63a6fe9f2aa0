/* filermeta bench etcd: the same two workloads against a filermetad (-filer) and
 * an etcd 3.4 this bench starts on a temporary dir, on the same machine in the
 * same run. Catch-up: N entries written, then one reader from the beginning
 * (SubscribeMetadata since_ns 0, events and batch modes; etcd Watch from
 * revision 1 over the prefix) until it has every one. Live: 1 and 100 readers
 * while a writer creates entries at a steady rate, each stamped with its send
 * time; create -> receive latency percentiles and losses. Both systems get the
 * same ~300-byte values (an encoded filer Entry), through gRPC with our RPC layer. */
#include "bench_etcd.h"
#include "bench_progress.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "etcd_rpc.pb-c.h"
#include "etcd_server.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "fpath.h"
#include "net_addr.h"
#include "rpc_client.h"
#include "tools.h"

#define FM_SUBSCRIBE "/filer_pb.SeaweedFiler/SubscribeMetadata"
#define ETCD_PUT "/etcdserverpb.KV/Put"
#define ETCD_RANGE "/etcdserverpb.KV/Range"
#define ETCD_WATCH "/etcdserverpb.Watch/Watch"
#define CALL_TIMEOUT_MS 30000

typedef enum system_kind { SYS_FILERMETA, SYS_ETCD } system_kind;

static const char *system_name(system_kind k)
{
  return k == SYS_FILERMETA ? "filermeta" : "etcd";
}

/* ================================================================ shared pieces */

/* The entry every write carries: a file `name` with attributes and `size` bytes of inline content (at most 4 KiB),
 * ~300 bytes encoded at size 200. filermeta gets it through CreateEntry, etcd as the value of a Put. */
typedef struct entry_buf {
  FilerPb__FuseAttributes attr;
  FilerPb__Entry e;
} entry_buf;

static void entry_fill(entry_buf *b, const char *name, bool is_dir, int64_t size)
{
  static const uint8_t filler[4096];
  int64_t now = fm_now_ns();
  filer_pb__fuse_attributes__init(&b->attr);
  b->attr.file_mode = is_dir ? FM_MODE_DIR | 0755 : 0644;
  b->attr.mtime = b->attr.crtime = now / 1000000000;
  b->attr.mtime_ns = (int32_t)(now % 1000000000);
  b->attr.uid = b->attr.gid = 1000;
  b->attr.mime = (char *)(uintptr_t) "application/octet-stream";
  b->attr.file_size = is_dir ? 0 : (uint64_t)size;
  filer_pb__entry__init(&b->e);
  b->e.name = (char *)(uintptr_t)name;
  b->e.is_directory = is_dir;
  b->e.attributes = &b->attr;
  if (!is_dir) {
    b->e.content.data = (uint8_t *)(uintptr_t)filler;
    b->e.content.len = (size_t)(size < (int64_t)sizeof filler ? size : (int64_t)sizeof filler);
  }
}

/* CreateEntry of dir/name; missing parents are created by the server. */
static int fm_create(fm_rpc_client *c, const char *dir, const char *name, bool is_dir, int64_t size, char *err,
                     size_t errlen)
{
  entry_buf b;
  entry_fill(&b, name, is_dir, size);
  FilerPb__CreateEntryRequest req = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
  req.directory = (char *)(uintptr_t)dir;
  req.entry = &b.e;
  ProtobufCMessage *reply = NULL;
  int rc =
      fm_rpc_client_unary(c, "/filer_pb.SeaweedFiler/CreateEntry", &req.base,
                          &filer_pb__create_entry_response__descriptor, CALL_TIMEOUT_MS, &reply, NULL, err, errlen);
  if (rc != 0)
    return rc;
  const FilerPb__CreateEntryResponse *r = (const FilerPb__CreateEntryResponse *)reply;
  if (r->error[0] != '\0') {
    snprintf(err, errlen, "CreateEntry %s/%s: %s", dir, name, r->error);
    rc = FM_EIO;
  }
  protobuf_c_message_free_unpacked(reply, NULL);
  return rc;
}

/* Put of key = prefix + name, value = the encoded entry `name`. */
static int etcd_put(fm_rpc_client *c, const char *prefix, const char *name, int64_t size, char *err, size_t errlen)
{
  entry_buf b;
  entry_fill(&b, name, false, size);
  uint8_t value[4096 + 512];
  char key[512];
  size_t vlen = protobuf_c_message_pack(&b.e.base, value); /* fits: content <= 4 KiB, name short */
  int klen = snprintf(key, sizeof key, "%s%s", prefix, name);
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)key;
  req.key.len = (size_t)klen;
  req.value.data = value;
  req.value.len = vlen;
  ProtobufCMessage *reply = NULL;
  int rc = fm_rpc_client_unary(c, ETCD_PUT, &req.base, &etcdserverpb__put_response__descriptor, CALL_TIMEOUT_MS, &reply,
                               NULL, err, errlen);
  if (rc == 0)
    protobuf_c_message_free_unpacked(reply, NULL);
  return rc;
}

/* The end of etcd's prefix range: the prefix with its last byte + 1 (our prefixes end in '/'). */
static void prefix_end(const char *prefix, char *out, size_t outlen)
{
  snprintf(out, outlen, "%s", prefix);
  size_t n = strlen(out);
  if (n > 0)
    out[n - 1] = (char)(out[n - 1] + 1);
}

/* Number of keys under `prefix` (Range count_only). */
static int etcd_count(fm_rpc_client *c, const char *prefix, int64_t *count, char *err, size_t errlen)
{
  char end[512];
  prefix_end(prefix, end, sizeof end);
  Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
  req.key.data = (uint8_t *)(uintptr_t)prefix;
  req.key.len = strlen(prefix);
  req.range_end.data = (uint8_t *)end;
  req.range_end.len = strlen(end);
  req.count_only = true;
  ProtobufCMessage *reply = NULL;
  int rc = fm_rpc_client_unary(c, ETCD_RANGE, &req.base, &etcdserverpb__range_response__descriptor, CALL_TIMEOUT_MS,
                               &reply, NULL, err, errlen);
  if (rc == 0) {
    *count = ((Etcdserverpb__RangeResponse *)reply)->count;
    protobuf_c_message_free_unpacked(reply, NULL);
  }
  return rc;
}

/* Opens a Watch stream and creates one watcher over `prefix` from `start_revision` (0: from now). */
static int etcd_watch_open(fm_rpc_client *c, const char *prefix, int64_t start_revision, int64_t timeout_ms,
                           fm_rpc_bidi **out, char *err, size_t errlen)
{
  char end[512];
  prefix_end(prefix, end, sizeof end);
  Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
  cr.key.data = (uint8_t *)(uintptr_t)prefix;
  cr.key.len = strlen(prefix);
  cr.range_end.data = (uint8_t *)end;
  cr.range_end.len = strlen(end);
  cr.start_revision = start_revision;
  Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
  req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
  req.create_request = &cr;
  int rc = fm_rpc_bidi_open(c, ETCD_WATCH, timeout_ms, out, err, errlen);
  if (rc != 0)
    return rc;
  if (fm_rpc_bidi_send(*out, &req.base) != 0) {
    if (fm_rpc_bidi_finish(*out, NULL, err, errlen) == 0)
      snprintf(err, errlen, "%s: cannot send the create request", ETCD_WATCH);
    *out = NULL;
    return FM_EIO;
  }
  return 0;
}

/* A watch response that ends the watcher (canceled, compacted) as an error message; false if it does not. */
static bool etcd_watch_ended(const Etcdserverpb__WatchResponse *r, char *err, size_t errlen)
{
  if (r->canceled || r->compact_revision > 0) {
    snprintf(err, errlen, "etcd canceled the watch (compact_revision %" PRId64 "): %s", r->compact_revision,
             r->cancel_reason != NULL ? r->cancel_reason : "");
    return true;
  }
  return false;
}

/* CPU time (user + system) of a process in ns from /proc/<pid>/stat, or -1. */
static int64_t proc_cpu_ns(pid_t pid)
{
  if (pid <= 0)
    return -1;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long long ut = 0, st = 0;
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  long hz = sysconf(_SC_CLK_TCK);
  return (int64_t)((ut + st) * (1000000000ULL / (unsigned long long)(hz > 0 ? hz : 100)));
}

static int64_t self_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU of a server and of this process over a phase. */
typedef struct cpu_span {
  pid_t server;
  int64_t server0, self0;
} cpu_span;

static void cpu_begin(cpu_span *s, pid_t server)
{
  s->server = server;
  s->server0 = proc_cpu_ns(server);
  s->self0 = self_cpu_ns();
}

/* Milliseconds of server CPU (-1 when unknown) and of this process since cpu_begin. */
static void cpu_end(const cpu_span *s, double *server_ms, double *self_ms)
{
  int64_t now = proc_cpu_ns(s->server);
  *server_ms = s->server0 >= 0 && now >= 0 ? (double)(now - s->server0) / 1e6 : -1;
  *self_ms = (double)(self_cpu_ns() - s->self0) / 1e6;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* ================================================================ writing N entries */

/* One of `c` writer threads of the catch-up set-up: entries from..from+count-1 under base (filermeta: the files
 * <base>/c<id>/f<i>; etcd: the keys <base>c<id>/f<i>). */
typedef struct writer {
  system_kind kind;
  const char *target, *base;
  int id;
  int64_t from, count, size;
  _Atomic int64_t *done;
  int64_t errors;
  char first_error[FM_ERR_LEN];
} writer;

static void *writer_main(void *arg)
{
  writer *w = arg;
  fm_rpc_client *c = NULL;
  char err[FM_ERR_LEN], dir[300], name[32];
  if (fm_rpc_client_new(w->target, &c) != 0) {
    w->errors = w->count;
    snprintf(w->first_error, sizeof w->first_error, "out of memory");
    return NULL;
  }
  snprintf(dir, sizeof dir, "%s%sc%d%s", w->base, w->kind == SYS_FILERMETA ? "/" : "", w->id,
           w->kind == SYS_FILERMETA ? "" : "/");
  for (int64_t i = w->from; i < w->from + w->count; i++) {
    snprintf(name, sizeof name, "f%08" PRId64, i);
    int rc = w->kind == SYS_FILERMETA ? fm_create(c, dir, name, false, w->size, err, sizeof err)
                                      : etcd_put(c, dir, name, w->size, err, sizeof err);
    if (rc != 0 && w->errors++ == 0)
      snprintf(w->first_error, sizeof w->first_error, "%s", err);
    atomic_fetch_add(w->done, 1);
  }
  fm_rpc_client_free(c);
  return NULL;
}

typedef struct write_result {
  int64_t n, errors;
  double seconds, per_sec;
} write_result;

/* Writes n entries with `clients` threads; returns 0, or FM_EIO with the first error in err. */
static int write_entries(system_kind kind, const char *target, const char *base, int64_t n, int clients, int64_t size,
                         write_result *res, char *err, size_t errlen)
{
  writer *ws = calloc((size_t)clients, sizeof *ws);
  pthread_t *th = calloc((size_t)clients, sizeof *th);
  if (ws == NULL || th == NULL) {
    free(ws);
    free(th);
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  _Atomic int64_t done = 0;
  char label[64];
  snprintf(label, sizeof label, "%s: writing", system_name(kind));
  fm_bench_progress pg;
  fm_bench_progress_start(&pg, label, n, &done);
  int64_t t0 = fm_mono_ns(), from = 0;
  int started = 0;
  for (int i = 0; i < clients; i++) {
    int64_t count = n / clients + (i < n % clients ? 1 : 0);
    ws[i] = (writer){
      .kind = kind, .target = target, .base = base, .id = i, .from = from, .count = count, .size = size, .done = &done
    };
    if (pthread_create(&th[i], NULL, writer_main, &ws[i]) != 0)
      break;
    from += count; /* entries from `from` on have no writer if a thread does not start */
    started++;
  }
  for (int i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  int64_t wall = fm_mono_ns() - t0;
  fm_bench_progress_end(&pg);
  res->n = n;
  res->errors = started < clients ? n - from : 0;
  res->seconds = (double)wall / 1e9;
  res->per_sec = (double)n / res->seconds;
  const char *first = started < clients ? "cannot start a writer thread" : NULL;
  for (int i = 0; i < started; i++) {
    res->errors += ws[i].errors;
    if (first == NULL && ws[i].errors > 0)
      first = ws[i].first_error;
  }
  if (first != NULL)
    snprintf(err, errlen, "%s: %" PRId64 " of %" PRId64 " writes failed; first: %s", system_name(kind), res->errors, n,
             first);
  free(ws);
  free(th);
  return first != NULL ? FM_EIO : 0;
}

/* ================================================================ catch-up */

typedef struct catchup_result {
  const char *mode;
  int64_t events, messages;
  double seconds, per_sec, first_event_ms;
  double server_cpu_ms, client_cpu_ms;
} catchup_result;

typedef struct fm_catchup {
  int64_t events, files, messages;
  int64_t t0, first_event_ns;
  int64_t last_ts;
  bool out_of_order;
  _Atomic int64_t progress;
} fm_catchup;

static void fm_catchup_event(fm_catchup *st, const FilerPb__SubscribeMetadataResponse *e)
{
  const FilerPb__EventNotification *n = e->event_notification;
  if (n == NULL || (n->old_entry == NULL && n->new_entry == NULL))
    return; /* heartbeat or marker */
  if (e->ts_ns <= st->last_ts)
    st->out_of_order = true;
  st->last_ts = e->ts_ns;
  if (st->events++ == 0)
    st->first_event_ns = fm_mono_ns() - st->t0;
  if (n->new_entry != NULL && !n->new_entry->is_directory)
    st->files++;
}

static bool fm_catchup_response(void *arg, const ProtobufCMessage *msg)
{
  fm_catchup *st = arg;
  const FilerPb__SubscribeMetadataResponse *r = (const FilerPb__SubscribeMetadataResponse *)msg;
  st->messages++;
  fm_catchup_event(st, r);
  for (size_t i = 0; i < r->n_events; i++)
    fm_catchup_event(st, r->events[i]);
  atomic_store(&st->progress, st->files);
  return true;
}

/* One SubscribeMetadata stream over dir from since_ns 0 to until_ns = now; expects `n` files. */
static int fm_catchup_run(const char *target, const char *dir, bool batching, int64_t n, pid_t pid, catchup_result *res,
                          char *err, size_t errlen)
{
  fm_rpc_client *c = NULL;
  if (fm_rpc_client_new(target, &c) != 0) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  char prefix[300];
  snprintf(prefix, sizeof prefix, "%s/", dir);
  FilerPb__SubscribeMetadataRequest req = FILER_PB__SUBSCRIBE_METADATA_REQUEST__INIT;
  req.client_name = (char *)(uintptr_t) "bench-etcd-catchup";
  req.path_prefix = prefix;
  req.since_ns = 0;
  req.until_ns = fm_now_ns();
  req.client_supports_batching = batching;
  fm_catchup st = { .t0 = fm_mono_ns() };
  atomic_init(&st.progress, 0);
  fm_bench_progress pg;
  fm_bench_progress_start(&pg, batching ? "filermeta: catch-up (batch)" : "filermeta: catch-up (events)", n,
                          &st.progress);
  cpu_span cpu;
  cpu_begin(&cpu, pid);
  st.t0 = fm_mono_ns();
  int rc = fm_rpc_client_stream(c, FM_SUBSCRIBE, &req.base, &filer_pb__subscribe_metadata_response__descriptor, 0,
                                fm_catchup_response, &st, NULL, err, errlen);
  int64_t wall = fm_mono_ns() - st.t0;
  cpu_end(&cpu, &res->server_cpu_ms, &res->client_cpu_ms);
  fm_bench_progress_end(&pg);
  fm_rpc_client_free(c);
  if (rc != 0)
    return rc;
  if (st.files != n || st.out_of_order) {
    snprintf(err, errlen, "filermeta catch-up (%s) got %" PRId64 " of %" PRId64 " files%s",
             batching ? "batch" : "events", st.files, n, st.out_of_order ? ", out of ts order" : "");
    return FM_EIO;
  }
  res->mode = batching ? "batch" : "events";
  res->events = st.events;
  res->messages = st.messages;
  res->seconds = (double)wall / 1e9;
  res->per_sec = (double)st.events / res->seconds;
  res->first_event_ms = (double)st.first_event_ns / 1e6;
  return 0;
}

/* One Watch from revision 1 over prefix, until it has seen n events. */
static int etcd_catchup_run(const char *target, const char *prefix, int64_t n, pid_t pid, catchup_result *res,
                            char *err, size_t errlen)
{
  fm_rpc_client *c = NULL;
  if (fm_rpc_client_new(target, &c) != 0) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  _Atomic int64_t seen = 0;
  int64_t events = 0, messages = 0, first_event_ns = 0, last_rev = 0;
  bool out_of_order = false;
  fm_bench_progress pg;
  fm_bench_progress_start(&pg, "etcd: catch-up (watch)", n, &seen);
  cpu_span cpu;
  cpu_begin(&cpu, pid);
  int64_t t0 = fm_mono_ns();
  fm_rpc_bidi *b = NULL;
  int rc = etcd_watch_open(c, prefix, 1, 3600 * 1000, &b, err, errlen);
  while (rc == 0 && events < n) {
    ProtobufCMessage *m = NULL;
    rc = fm_rpc_bidi_recv(b, &etcdserverpb__watch_response__descriptor, &m);
    if (rc != 0) {
      snprintf(err, errlen, "%s: a response does not decode", ETCD_WATCH);
      break;
    }
    if (m == NULL) {
      if (fm_rpc_bidi_finish(b, NULL, err, errlen) == 0)
        snprintf(err, errlen, "%s: the stream ended after %" PRId64 " of %" PRId64 " events", ETCD_WATCH, events, n);
      b = NULL;
      rc = FM_EIO;
      break;
    }
    const Etcdserverpb__WatchResponse *r = (const Etcdserverpb__WatchResponse *)m;
    messages++;
    if (etcd_watch_ended(r, err, errlen))
      rc = FM_EIO;
    for (size_t i = 0; i < r->n_events; i++) {
      const Mvccpb__KeyValue *kv = r->events[i]->kv;
      if (kv == NULL)
        continue;
      if (kv->mod_revision <= last_rev)
        out_of_order = true;
      last_rev = kv->mod_revision;
      if (events++ == 0)
        first_event_ns = fm_mono_ns() - t0;
    }
    atomic_store(&seen, events);
    protobuf_c_message_free_unpacked(m, NULL);
  }
  int64_t wall = fm_mono_ns() - t0;
  cpu_end(&cpu, &res->server_cpu_ms, &res->client_cpu_ms);
  fm_bench_progress_end(&pg);
  char ferr[FM_ERR_LEN];
  fm_rpc_bidi_finish(b, NULL, ferr, sizeof ferr); /* we cancel the watch: not an error */
  fm_rpc_client_free(c);
  if (rc != 0)
    return rc;
  if (out_of_order) {
    snprintf(err, errlen, "etcd catch-up: events out of revision order");
    return FM_EIO;
  }
  res->mode = "watch";
  res->events = events;
  res->messages = messages;
  res->seconds = (double)wall / 1e9;
  res->per_sec = (double)events / res->seconds;
  res->first_event_ms = (double)first_event_ns / 1e6;
  return 0;
}

/* ================================================================ live */

/* One live reader: a SubscribeMetadata stream or an etcd watcher over a fresh directory / prefix, on its own thread
 * and connection. Entries are named l<seq>-<send time, CLOCK_MONOTONIC ns>; "warmup" marks the reader ready and "end"
 * stops it. */
typedef struct live_sub {
  system_kind kind;
  const char *target, *where; /* filermeta: the directory; etcd: the key prefix */
  int64_t since_ns;           /* filermeta */
  int64_t planned, timeout_ms;
  uint8_t *seen; /* planned entries */
  int64_t *lat;  /* one per received entry */
  int64_t nlat, duplicates, foreign;
  atomic_bool created, ready, done;
  atomic_bool exited; /* the thread is over; `error` says why if it is not done */
  pthread_mutex_t mu; /* guards bidi and aborted */
  fm_rpc_bidi *bidi;
  bool aborted;
  char error[FM_ERR_LEN];
} live_sub;

/* An entry name seen by a reader. Returns false at "end". */
static bool live_name(live_sub *s, const char *name)
{
  int64_t now = fm_mono_ns(), seq, stamp;
  if (strcmp(name, "warmup") == 0) {
    atomic_store(&s->ready, true);
    return true;
  }
  if (strcmp(name, "end") == 0) {
    atomic_store(&s->done, true);
    return false;
  }
  if (sscanf(name, "l%" SCNd64 "-%" SCNd64, &seq, &stamp) != 2 || seq < 0 || seq >= s->planned) {
    s->foreign++;
    return true;
  }
  if (s->seen[seq]) {
    s->duplicates++;
    return true;
  }
  s->seen[seq] = 1;
  s->lat[s->nlat++] = now - stamp;
  return true;
}

static bool live_fm_event(live_sub *s, const FilerPb__SubscribeMetadataResponse *e)
{
  const FilerPb__EventNotification *n = e->event_notification;
  if (n == NULL || n->new_entry == NULL)
    return true;
  return live_name(s, n->new_entry->name);
}

static bool live_fm_response(void *arg, const ProtobufCMessage *msg)
{
  live_sub *s = arg;
  const FilerPb__SubscribeMetadataResponse *r = (const FilerPb__SubscribeMetadataResponse *)msg;
  bool more = live_fm_event(s, r);
  for (size_t i = 0; more && i < r->n_events; i++)
    more = live_fm_event(s, r->events[i]);
  return more;
}

static void live_fm_main(live_sub *s, fm_rpc_client *c)
{
  char prefix[300];
  snprintf(prefix, sizeof prefix, "%s/", s->where);
  FilerPb__SubscribeMetadataRequest req = FILER_PB__SUBSCRIBE_METADATA_REQUEST__INIT;
  req.client_name = (char *)(uintptr_t) "bench-etcd-live";
  req.path_prefix = prefix;
  req.since_ns = s->since_ns;
  req.client_supports_batching = true;
  atomic_store(&s->created, true); /* since_ns makes the stream see every later event, however late it starts */
  char err[FM_ERR_LEN];
  if (fm_rpc_client_stream(c, FM_SUBSCRIBE, &req.base, &filer_pb__subscribe_metadata_response__descriptor,
                           s->timeout_ms, live_fm_response, s, NULL, err, sizeof err) != 0)
    snprintf(s->error, sizeof s->error, "%s", err);
  else if (!atomic_load(&s->done))
    snprintf(s->error, sizeof s->error, "the stream ended before the last entry");
}

static void live_etcd_main(live_sub *s, fm_rpc_client *c)
{
  char err[FM_ERR_LEN];
  fm_rpc_bidi *b = NULL;
  if (etcd_watch_open(c, s->where, 0, s->timeout_ms, &b, err, sizeof err) != 0) {
    snprintf(s->error, sizeof s->error, "%s", err);
    return;
  }
  pthread_mutex_lock(&s->mu);
  s->bidi = b;
  if (s->aborted)
    fm_rpc_bidi_cancel(b);
  pthread_mutex_unlock(&s->mu);
  bool more = true;
  while (more) {
    ProtobufCMessage *m = NULL;
    if (fm_rpc_bidi_recv(b, &etcdserverpb__watch_response__descriptor, &m) != 0) {
      snprintf(s->error, sizeof s->error, "%s: a response does not decode", ETCD_WATCH);
      break;
    }
    if (m == NULL)
      break;
    const Etcdserverpb__WatchResponse *r = (const Etcdserverpb__WatchResponse *)m;
    if (r->created)
      atomic_store(&s->created, true);
    if (etcd_watch_ended(r, s->error, sizeof s->error))
      more = false;
    for (size_t i = 0; more && i < r->n_events; i++) {
      const Mvccpb__KeyValue *kv = r->events[i]->kv;
      if (kv == NULL)
        continue;
      /* the value is the encoded entry; its name is the key's last part */
      FilerPb__Entry *e = filer_pb__entry__unpack(NULL, kv->value.len, kv->value.data);
      if (e == NULL) {
        s->foreign++;
        continue;
      }
      more = live_name(s, e->name);
      filer_pb__entry__free_unpacked(e, NULL);
    }
    protobuf_c_message_free_unpacked(m, NULL);
  }
  pthread_mutex_lock(&s->mu);
  s->bidi = NULL;
  pthread_mutex_unlock(&s->mu);
  int rc = fm_rpc_bidi_finish(b, NULL, err, sizeof err);
  if (!atomic_load(&s->done) && s->error[0] == '\0')
    snprintf(s->error, sizeof s->error, "%s", rc != 0 ? err : "the watch ended before the last entry");
}

static void *live_sub_main(void *arg)
{
  live_sub *s = arg;
  fm_rpc_client *c = NULL;
  if (fm_rpc_client_new(s->target, &c) != 0) {
    snprintf(s->error, sizeof s->error, "out of memory");
    atomic_store(&s->exited, true);
    return NULL;
  }
  if (s->kind == SYS_FILERMETA)
    live_fm_main(s, c);
  else
    live_etcd_main(s, c);
  fm_rpc_client_free(c);
  atomic_store(&s->exited, true);
  return NULL;
}

/* Ends a reader that may be waiting: its etcd watch is cancelled (filermeta streams end at "end" or their deadline). */
static void live_sub_abort(live_sub *s)
{
  pthread_mutex_lock(&s->mu);
  s->aborted = true;
  if (s->bidi != NULL)
    fm_rpc_bidi_cancel(s->bidi);
  pthread_mutex_unlock(&s->mu);
}

/* The live writers: `writers` threads share the schedule (entry i at t0 + i / rate), each with its own connection,
 * so that a slow call (an fsync) does not hold back the entries behind it. */
typedef struct live_writer {
  system_kind kind;
  const char *target, *where;
  int id, writers;
  int64_t planned, t0, interval_ns, size;
  int64_t sent, errors;
  char first_error[FM_ERR_LEN];
} live_writer;

static int live_write(fm_rpc_client *c, system_kind kind, const char *where, const char *name, int64_t size, char *err,
                      size_t errlen)
{
  return kind == SYS_FILERMETA ? fm_create(c, where, name, false, size, err, errlen)
                               : etcd_put(c, where, name, size, err, errlen);
}

static void *live_writer_main(void *arg)
{
  live_writer *w = arg;
  fm_rpc_client *c = NULL;
  char err[FM_ERR_LEN], name[64];
  if (fm_rpc_client_new(w->target, &c) != 0) {
    w->errors = 1;
    snprintf(w->first_error, sizeof w->first_error, "out of memory");
    return NULL;
  }
  for (int64_t i = w->id; i < w->planned; i += w->writers) {
    int64_t at = w->t0 + i * w->interval_ns;
    struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
    snprintf(name, sizeof name, "l%08" PRId64 "-%" PRId64, i, fm_mono_ns());
    if (live_write(c, w->kind, w->where, name, w->size, err, sizeof err) != 0) {
      if (w->errors++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "%s", err);
    } else {
      w->sent++;
    }
  }
  fm_rpc_client_free(c);
  return NULL;
}

typedef struct live_result {
  system_kind kind;
  int subs;
  int64_t sent, expected, received, lost, duplicates;
  double seconds, rate;
  int64_t p50, p90, p99, p999, max; /* ns */
  double server_cpu_ms, client_cpu_ms;
} live_result;

typedef struct live_config {
  int64_t rate, size;
  int64_t duration_ns;
  int writers;
} live_config;

/* Waits until every reader has `flag` set (or one failed), up to timeout_ns. */
static bool live_wait_all(live_sub *subs, int n, bool ready_flag, int64_t timeout_ns)
{
  int64_t end = fm_mono_ns() + timeout_ns;
  for (int i = 0; i < n; i++) {
    while (!atomic_load(ready_flag ? &subs[i].ready : &subs[i].created)) {
      if (atomic_load(&subs[i].exited) || fm_mono_ns() > end)
        return false;
      nanosleep(&(struct timespec){ 0, 5 * 1000000 }, NULL);
    }
  }
  return true;
}

/* One live measurement: `nsubs` readers, the writers at cfg->rate for cfg->duration_ns, then "end". */
static int live_run(system_kind kind, const char *target, const char *where, int nsubs, const live_config *cfg,
                    pid_t pid, live_result *res, char *err, size_t errlen)
{
  int64_t planned = cfg->rate * cfg->duration_ns / 1000000000;
  if (planned < 1)
    planned = 1;
  live_sub *subs = calloc((size_t)nsubs, sizeof *subs);
  pthread_t *th = calloc((size_t)nsubs, sizeof *th);
  int rc = subs != NULL && th != NULL ? 0 : FM_ENOMEM;
  int started = 0;
  int64_t since = fm_now_ns();
  for (int i = 0; rc == 0 && i < nsubs; i++) {
    live_sub *s = &subs[i];
    s->kind = kind;
    s->target = target;
    s->where = where;
    s->since_ns = since;
    s->planned = planned;
    s->timeout_ms = cfg->duration_ns / 1000000 + 120000;
    s->seen = calloc((size_t)planned, 1);
    s->lat = calloc((size_t)planned, sizeof *s->lat);
    pthread_mutex_init(&s->mu, NULL);
    if (s->seen == NULL || s->lat == NULL)
      rc = FM_ENOMEM;
  }
  if (rc == FM_ENOMEM)
    snprintf(err, errlen, "out of memory");
  for (int i = 0; rc == 0 && i < nsubs; i++) {
    if (pthread_create(&th[i], NULL, live_sub_main, &subs[i]) != 0) {
      snprintf(err, errlen, "cannot start reader thread %d", i);
      rc = FM_EIO;
      break;
    }
    started++;
  }

  fm_rpc_client *c = NULL;
  if (rc == 0 && fm_rpc_client_new(target, &c) != 0) {
    snprintf(err, errlen, "out of memory");
    rc = FM_ENOMEM;
  }
  /* every reader is set up (etcd: its watcher created), then sees a warm-up entry before the clock starts */
  if (rc == 0 && !live_wait_all(subs, nsubs, false, 30000000000LL)) {
    snprintf(err, errlen, "%s live: not every reader started within 30 s", system_name(kind));
    rc = FM_ETIMEDOUT;
  }
  if (rc == 0 && live_write(c, kind, where, "warmup", cfg->size, err, errlen) != 0)
    rc = FM_EIO;
  if (rc == 0 && !live_wait_all(subs, nsubs, true, 30000000000LL)) {
    snprintf(err, errlen, "%s live: not every reader saw the warm-up entry within 30 s", system_name(kind));
    rc = FM_ETIMEDOUT;
  }

  live_writer ws[64];
  int nw = cfg->writers < 64 ? cfg->writers : 64;
  pthread_t wth[64];
  int wstarted = 0;
  cpu_span cpu;
  cpu_begin(&cpu, pid);
  int64_t t0 = fm_mono_ns() + 10000000; /* 10 ms for the writers to start */
  for (int i = 0; rc == 0 && i < nw; i++) {
    ws[i] = (live_writer){ .kind = kind,
                           .target = target,
                           .where = where,
                           .id = i,
                           .writers = nw,
                           .planned = planned,
                           .t0 = t0,
                           .interval_ns = 1000000000 / cfg->rate,
                           .size = cfg->size };
    if (pthread_create(&wth[i], NULL, live_writer_main, &ws[i]) != 0) {
      snprintf(err, errlen, "cannot start writer thread %d", i);
      rc = FM_EIO;
      break;
    }
    wstarted++;
  }
  for (int i = 0; i < wstarted; i++)
    pthread_join(wth[i], NULL);
  int64_t wall = fm_mono_ns() - t0;
  res->sent = 0;
  for (int i = 0; i < wstarted; i++) {
    res->sent += ws[i].sent;
    if (rc == 0 && ws[i].errors > 0) {
      snprintf(err, errlen, "%s live: %" PRId64 " writes failed; first: %s", system_name(kind), ws[i].errors,
               ws[i].first_error);
      rc = FM_EIO;
    }
  }
  /* "end" stops the readers; on errors it is written too, and etcd watches are cancelled */
  char eerr[FM_ERR_LEN];
  if (c != NULL && live_write(c, kind, where, "end", cfg->size, eerr, sizeof eerr) != 0 && rc == 0) {
    snprintf(err, errlen, "%s", eerr);
    rc = FM_EIO;
  }
  if (rc != 0)
    for (int i = 0; i < started; i++)
      live_sub_abort(&subs[i]);
  for (int i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  cpu_end(&cpu, &res->server_cpu_ms, &res->client_cpu_ms);
  fm_rpc_client_free(c);

  int64_t total = 0;
  for (int i = 0; i < started; i++) {
    total += subs[i].nlat;
    if (rc == 0 && subs[i].error[0] != '\0') {
      snprintf(err, errlen, "%s live: reader %d: %s", system_name(kind), i, subs[i].error);
      rc = FM_EIO;
    }
  }
  int64_t *all = rc == 0 ? malloc((size_t)(total > 0 ? total : 1) * sizeof *all) : NULL;
  if (rc == 0 && all == NULL) {
    snprintf(err, errlen, "out of memory");
    rc = FM_ENOMEM;
  }
  if (rc == 0) {
    int64_t k = 0;
    res->duplicates = 0;
    for (int i = 0; i < started; i++) {
      memcpy(all + k, subs[i].lat, (size_t)subs[i].nlat * sizeof *all);
      k += subs[i].nlat;
      res->duplicates += subs[i].duplicates;
    }
    qsort(all, (size_t)total, sizeof *all, cmp_i64);
    res->kind = kind;
    res->subs = nsubs;
    res->expected = res->sent * nsubs;
    res->received = total;
    res->lost = res->expected - total;
    res->seconds = (double)wall / 1e9;
    res->rate = (double)res->sent / res->seconds;
    res->p50 = total > 0 ? all[total / 2] : 0;
    res->p90 = total > 0 ? all[total * 90 / 100] : 0;
    res->p99 = total > 0 ? all[total * 99 / 100] : 0;
    res->p999 = total > 0 ? all[total * 999 / 1000] : 0;
    res->max = total > 0 ? all[total - 1] : 0;
  }
  free(all);
  for (int i = 0; subs != NULL && i < nsubs; i++) {
    free(subs[i].seen);
    free(subs[i].lat);
    pthread_mutex_destroy(&subs[i].mu);
  }
  free(subs);
  free(th);
  return rc;
}

/* ================================================================ the command */

typedef struct report {
  const char *filer_target, *etcd_target, *etcd_version;
  int64_t n, etcd_n, size;
  int clients;
  bool catchup, live;
  write_result fm_write, etcd_write;
  catchup_result fm_events, fm_batch, etcd_watch;
  live_config live_cfg;
  live_result lives[16];
  int nlives;
} report;

static void print_live_json(const live_result *l, bool last)
{
  printf("{\"system\":\"%s\",\"subs\":%d,\"sent\":%" PRId64 ",\"rate\":%.0f,\"expected\":%" PRId64
         ",\"received\":%" PRId64 ",\"lost\":%" PRId64 ",\"duplicates\":%" PRId64
         ",\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"server_cpu_ms\":%.0f,"
         "\"client_cpu_ms\":%.0f}%s",
         system_name(l->kind), l->subs, l->sent, l->rate, l->expected, l->received, l->lost, l->duplicates,
         (double)l->p50 / 1e6, (double)l->p90 / 1e6, (double)l->p99 / 1e6, (double)l->p999 / 1e6, (double)l->max / 1e6,
         l->server_cpu_ms, l->client_cpu_ms, last ? "" : ",");
}

static void print_catchup_json(const char *system, const catchup_result *c, bool last)
{
  printf("{\"system\":\"%s\",\"mode\":\"%s\",\"events\":%" PRId64 ",\"messages\":%" PRId64
         ",\"seconds\":%.3f,\"events_per_sec\":%.0f,\"first_event_ms\":%.1f,\"server_cpu_ms\":%.0f,"
         "\"client_cpu_ms\":%.0f}%s",
         system, c->mode, c->events, c->messages, c->seconds, c->per_sec, c->first_event_ms, c->server_cpu_ms,
         c->client_cpu_ms, last ? "" : ",");
}

static void print_json(const report *r)
{
  printf("{\"bench\":\"etcd\",\"filer\":\"%s\",\"etcd\":\"%s\",\"etcd_version\":\"%s\",\"n\":%" PRId64
         ",\"etcd_n\":%" PRId64 ",\"size\":%" PRId64,
         r->filer_target, r->etcd_target, r->etcd_version, r->n, r->etcd_n, r->size);
  if (r->catchup) {
    printf(",\"write\":[{\"system\":\"filermeta\",\"clients\":%d,\"n\":%" PRId64 ",\"per_sec\":%.0f},"
           "{\"system\":\"etcd\",\"clients\":%d,\"n\":%" PRId64 ",\"per_sec\":%.0f}]",
           r->clients, r->fm_write.n, r->fm_write.per_sec, r->clients, r->etcd_write.n, r->etcd_write.per_sec);
    printf(",\"catchup\":[");
    print_catchup_json("filermeta", &r->fm_events, false);
    print_catchup_json("filermeta", &r->fm_batch, false);
    print_catchup_json("etcd", &r->etcd_watch, true);
    printf("],\"catchup_ratio\":{\"events\":%.2f,\"batch\":%.2f}", r->fm_events.per_sec / r->etcd_watch.per_sec,
           r->fm_batch.per_sec / r->etcd_watch.per_sec);
  }
  if (r->live) {
    printf(",\"live_rate\":%" PRId64 ",\"live_seconds\":%.1f,\"live\":[", r->live_cfg.rate,
           (double)r->live_cfg.duration_ns / 1e9);
    for (int i = 0; i < r->nlives; i++)
      print_live_json(&r->lives[i], i == r->nlives - 1);
    printf("]");
  }
  printf("}\n");
}

static void print_cpu(double ms)
{
  if (ms < 0)
    printf(" %10s", "-");
  else
    printf(" %10.0f", ms);
}

static void print_table(const report *r)
{
  printf("bench etcd: filermeta at %s vs etcd %s at %s (started by the bench), same machine, same run\n",
         r->filer_target, r->etcd_version, r->etcd_target);
  printf("values: one encoded filer Entry each (%" PRId64 " bytes of inline content)\n", r->size);
  if (r->catchup) {
    printf("\nwrites (set-up, %d clients): filermeta %" PRId64 " CreateEntry at %.0f/s; etcd %" PRId64
           " Put at %.0f/s\n",
           r->clients, r->fm_write.n, r->fm_write.per_sec, r->etcd_write.n, r->etcd_write.per_sec);
    printf("\ncatch-up: one reader from the beginning until it has every event\n");
    printf("  %-10s %-7s %10s %10s %9s %11s %10s %10s\n", "system", "mode", "events", "messages", "seconds", "events/s",
           "server ms", "client ms");
    const catchup_result *rows[] = { &r->fm_events, &r->fm_batch, &r->etcd_watch };
    const char *names[] = { "filermeta", "filermeta", "etcd" };
    for (int i = 0; i < 3; i++) {
      printf("  %-10s %-7s %10" PRId64 " %10" PRId64 " %9.3f %11.0f", names[i], rows[i]->mode, rows[i]->events,
             rows[i]->messages, rows[i]->seconds, rows[i]->per_sec);
      print_cpu(rows[i]->server_cpu_ms);
      print_cpu(rows[i]->client_cpu_ms);
      printf("\n");
    }
    printf("  filermeta/etcd events/s: events mode %.1fx, batch mode %.1fx (filermeta N = %" PRId64
           ", etcd N = %" PRId64 ")\n",
           r->fm_events.per_sec / r->etcd_watch.per_sec, r->fm_batch.per_sec / r->etcd_watch.per_sec, r->n, r->etcd_n);
  }
  if (r->live) {
    printf("\nlive: create -> receive latency, %" PRId64 " entries/s for %.1f s (%d writer connections)\n",
           r->live_cfg.rate, (double)r->live_cfg.duration_ns / 1e9, r->live_cfg.writers);
    printf("  %-10s %5s %7s %9s %5s %9s %9s %9s %9s %9s %10s\n", "system", "subs", "sent", "received", "lost", "p50 ms",
           "p90 ms", "p99 ms", "p99.9 ms", "max ms", "server ms");
    for (int i = 0; i < r->nlives; i++) {
      const live_result *l = &r->lives[i];
      printf("  %-10s %5d %7" PRId64 " %9" PRId64 " %5" PRId64 " %9.3f %9.3f %9.3f %9.3f %9.3f", system_name(l->kind),
             l->subs, l->sent, l->received, l->lost, (double)l->p50 / 1e6, (double)l->p90 / 1e6, (double)l->p99 / 1e6,
             (double)l->p999 / 1e6, (double)l->max / 1e6);
      print_cpu(l->server_cpu_ms);
      printf("\n");
    }
  }
}

/* Parses "1,100" into counts[]; returns how many, or -1. */
static int parse_subs(const char *s, int *counts, int max)
{
  int n = 0;
  while (*s != '\0') {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 10000 || n == max || (*end != ',' && *end != '\0'))
      return -1;
    counts[n++] = (int)v;
    s = *end == ',' ? end + 1 : end;
  }
  return n > 0 ? n : -1;
}

/* The measurements, in order; etcd runs throughout (idle while filermeta is measured). */
static int run_all(report *r, const char *etcd_target, pid_t fm_pid, pid_t etcd_pid, const int *subs, int nsubs,
                   char *err, size_t errlen)
{
  int64_t t = fm_now_ns();
  char fm_dir[128], etcd_prefix[128];
  snprintf(fm_dir, sizeof fm_dir, "/bench/etcd-%" PRId64, t);
  snprintf(etcd_prefix, sizeof etcd_prefix, "/bench/catchup-%" PRId64 "/", t);
  int rc = 0;
  if (r->catchup) {
    rc = write_entries(SYS_FILERMETA, r->filer_target, fm_dir, r->n, r->clients, r->size, &r->fm_write, err, errlen);
    if (rc == 0)
      rc = fm_catchup_run(r->filer_target, fm_dir, false, r->n, fm_pid, &r->fm_events, err, errlen);
    if (rc == 0)
      rc = fm_catchup_run(r->filer_target, fm_dir, true, r->n, fm_pid, &r->fm_batch, err, errlen);
    if (rc == 0)
      rc = write_entries(SYS_ETCD, etcd_target, etcd_prefix, r->etcd_n, r->clients, r->size, &r->etcd_write, err,
                         errlen);
    if (rc == 0) { /* every put is there before the watch starts */
      fm_rpc_client *c = NULL;
      int64_t count = -1;
      rc = fm_rpc_client_new(etcd_target, &c);
      if (rc == 0)
        rc = etcd_count(c, etcd_prefix, &count, err, errlen);
      fm_rpc_client_free(c);
      if (rc == 0 && count != r->etcd_n) {
        snprintf(err, errlen, "etcd holds %" PRId64 " keys under %s, not %" PRId64, count, etcd_prefix, r->etcd_n);
        rc = FM_EIO;
      }
    }
    if (rc == 0)
      rc = etcd_catchup_run(etcd_target, etcd_prefix, r->etcd_n, etcd_pid, &r->etcd_watch, err, errlen);
  }
  for (int i = 0; rc == 0 && r->live && i < nsubs; i++) {
    for (int k = 0; rc == 0 && k < 2; k++) {
      system_kind kind = k == 0 ? SYS_FILERMETA : SYS_ETCD;
      char where[160];
      if (kind == SYS_FILERMETA)
        snprintf(where, sizeof where, "/bench/etcd-live-%" PRId64 "-%d", t, subs[i]);
      else
        snprintf(where, sizeof where, "/bench/live-%" PRId64 "-%d/", t, subs[i]);
      if (isatty(2))
        fprintf(stderr, "%s: live, %d readers...\r", system_name(kind), subs[i]);
      rc = live_run(kind, kind == SYS_FILERMETA ? r->filer_target : etcd_target, where, subs[i], &r->live_cfg,
                    kind == SYS_FILERMETA ? fm_pid : etcd_pid, &r->lives[r->nlives], err, errlen);
      if (isatty(2))
        fprintf(stderr, "\r\033[K");
      if (rc == 0)
        r->nlives++;
    }
  }
  return rc;
}

/* ---- Ctrl-C: etcd is a child with a data dir; a signal thread stops it and removes the dir before exiting ---- */

static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static fm_etcd *running_etcd; /* guarded by stop_mu; NULL once stopped */
static bool stop_done;        /* guarded by stop_mu: the run is over, the signal thread just returns */

static void *signal_main(void *arg)
{
  const sigset_t *set = arg;
  int sig = 0;
  sigwait(set, &sig);
  pthread_mutex_lock(&stop_mu);
  if (stop_done) {
    pthread_mutex_unlock(&stop_mu);
    return NULL;
  }
  fm_etcd_stop(running_etcd);
  fprintf(stderr, "\nfilermeta bench etcd: interrupted (signal %d); etcd stopped\n", sig);
  _exit(128 + sig);
}

/* Stops etcd (if the signal thread has not) and ends the signal thread. */
static void stop_all(pthread_t sig_thread, bool have_thread)
{
  pthread_mutex_lock(&stop_mu);
  fm_etcd_stop(running_etcd);
  running_etcd = NULL;
  stop_done = true;
  pthread_mutex_unlock(&stop_mu);
  if (have_thread) {
    pthread_kill(sig_thread, SIGTERM); /* blocked everywhere: sigwait takes it */
    pthread_join(sig_thread, NULL);
  }
}

int fm_bench_cmd_etcd(int argc, char **argv)
{
  const char *filer = fm_tools_filer, *etcd_bin = "etcd", *subs_arg = "1,100";
  int64_t n = 1000000, etcd_n = 100000, clients = 8, size = 200, rate = 200, writers = 4, pid = 0;
  int64_t duration_ns = 5000000000LL;
  bool json = false, catchup = true, live = true;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filermetad address (host:port or host:port.grpcPort)", 0, 0, false },
    { "n", FM_FLAG_INT, &n, "catch-up: entries written to filermeta", 1, 100000000, false },
    { "etcdN", FM_FLAG_INT, &etcd_n, "catch-up: keys put to etcd (its catch-up is slow: keep it small)", 1, 100000000,
      false },
    { "c", FM_FLAG_INT, &clients, "catch-up: writer connections for the set-up writes", 1, 256, false },
    { "size", FM_FLAG_INT, &size, "inline content bytes per entry (~300-byte values at 200)", 0, 4096, false },
    { "subs", FM_FLAG_STRING, &subs_arg, "live: reader counts to measure, comma-separated", 0, 0, false },
    { "rate", FM_FLAG_INT, &rate, "live: entries written per second", 1, 100000, false },
    { "duration", FM_FLAG_DURATION, &duration_ns, "live: how long the writers run", 100000000, 3600000000000LL, false },
    { "writers", FM_FLAG_INT, &writers, "live: writer connections sharing the schedule", 1, 64, false },
    { "catchup", FM_FLAG_BOOL, &catchup, "measure catch-up (-catchup=false skips it)", 0, 0, false },
    { "live", FM_FLAG_BOOL, &live, "measure live latency (-live=false skips it)", 0, 0, false },
    { "etcd", FM_FLAG_STRING, &etcd_bin, "the etcd binary (a name on PATH or a path)", 0, 0, false },
    { "pid", FM_FLAG_INT, &pid, "filermetad's pid, to report its CPU time (./dev bench etcd passes it)", 0, 4194304,
      false },
    { "json", FM_FLAG_BOOL, &json, "print one JSON object instead of tables", 0, 0, false },
  };
  const size_t nflags = sizeof flags / sizeof flags[0];
  char err[1024], target[300], etcd_path[1024];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta bench etcd [flags]\n\n"
           "Starts etcd (3.4, Debian's etcd-server) on a temporary dir and loopback ports, runs the catch-up and live\n"
           "workloads against it and against the filermetad at -filer, stops etcd, prints both and the ratio.\n\n"
           "Flags:\n");
    fm_flags_usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta bench etcd: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  int subs[8];
  int nsubs = parse_subs(subs_arg, subs, 8);
  if (nsubs < 0) {
    fprintf(stderr, "filermeta bench etcd: -subs \"%s\" is not a list of 1 to 8 counts (1..10000) like 1,100\n",
            subs_arg);
    return 2;
  }
  if (fm_net_filer_grpc_target(filer, target, sizeof target) != 0) {
    fprintf(stderr, "filermeta bench etcd: -filer \"%s\" is not host:port or host:port.grpcPort\n", filer);
    return 2;
  }
  if (fm_etcd_find(etcd_bin, etcd_path, sizeof etcd_path, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta bench etcd: %s\n", err);
    return 1;
  }
  /* blocked before any thread starts (gRPC's too), so that only the signal thread takes them */
  static sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  pthread_t sig_thread;
  bool have_thread = pthread_create(&sig_thread, NULL, signal_main, &sigs) == 0;
  fm_etcd *etcd = NULL;
  pthread_mutex_lock(&stop_mu);
  rc = fm_etcd_start(etcd_path, &etcd, err, sizeof err);
  running_etcd = etcd;
  pthread_mutex_unlock(&stop_mu);
  if (rc != 0) {
    stop_all(sig_thread, have_thread);
    fprintf(stderr, "filermeta bench etcd: %s\n", err);
    return 1;
  }
  report r = {
    .filer_target = target,
    .etcd_target = fm_etcd_target(etcd),
    .etcd_version = fm_etcd_version(etcd),
    .n = n,
    .etcd_n = etcd_n,
    .size = size,
    .clients = (int)clients,
    .catchup = catchup,
    .live = live,
    .live_cfg = { .rate = rate, .size = size, .duration_ns = duration_ns, .writers = (int)writers },
  };
  rc = run_all(&r, fm_etcd_target(etcd), (pid_t)pid, fm_etcd_pid(etcd), subs, nsubs, err, sizeof err);
  if (rc == 0) {
    if (json)
      print_json(&r);
    else
      print_table(&r);
  }
  stop_all(sig_thread, have_thread); /* its target and version are not used after this */
  if (rc != 0) {
    fprintf(stderr, "filermeta bench etcd: %s\n", err);
    return 1;
  }
  return 0;
}
