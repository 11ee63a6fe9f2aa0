/* filermeta bench: C concurrent clients, each on its own channel and thread,
 * each making N blocking calls of one workload (ping: the raw unary-call
 * rate; create: CreateEntry of new files); prints the rate and latency
 * percentiles, as a table or one JSON object. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_etcd.h"
#include "bench_progress.h"
#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "follow.h"
#include "fpath.h"
#include "net_addr.h"
#include "rpc_client.h"
#include "tools.h"
#include "tools_internal.h"

/* One workload: `prepare` runs once per client before the clock starts
 * (connections, directories), `op` is the timed operation number i. */
typedef struct workload {
  const char *name;
  int (*prepare)(fm_rpc_client *c, int client, const struct workload *w, char *err, size_t errlen);
  int (*op)(fm_rpc_client *c, int client, int64_t i, const struct workload *w, char *err, size_t errlen);
  int64_t size;      /* create: bytes of inline content per entry */
  char run_dir[128]; /* create: this run's directory */
} workload;

typedef struct worker {
  const char *target;
  const workload *w;
  int id;
  int64_t n;
  int64_t *lat_ns; /* n entries */
  int64_t errors;
  char first_error[FM_ERR_LEN];
  pthread_barrier_t *start;
  _Atomic int64_t *done; /* operations finished by all workers: the progress line */
} worker;

/* ---------------------------------------------------------------- ping */

static int ping_op(fm_rpc_client *c, int client, int64_t i, const workload *w, char *err, size_t errlen)
{
  (void)client;
  (void)i;
  (void)w;
  FilerPb__PingRequest req = FILER_PB__PING_REQUEST__INIT;
  ProtobufCMessage *reply = NULL;
  int rc = fm_rpc_client_unary(c, "/filer_pb.SeaweedFiler/Ping", &req.base, &filer_pb__ping_response__descriptor, 10000,
                               &reply, NULL, err, errlen);
  if (rc == 0)
    protobuf_c_message_free_unpacked(reply, NULL);
  return rc;
}

static int ping_prepare(fm_rpc_client *c, int client, const workload *w, char *err, size_t errlen)
{
  return ping_op(c, client, 0, w, err, errlen); /* connect before the clock starts */
}

/* ---------------------------------------------------------------- create */

static int create_prepare(fm_rpc_client *c, int client, const workload *w, char *err, size_t errlen)
{
  char name[32];
  snprintf(name, sizeof name, "c%d", client);
  return fm_bench_create_entry(c, w->run_dir, name, true, 0, err, errlen); /* parents too */
}

static int create_op(fm_rpc_client *c, int client, int64_t i, const workload *w, char *err, size_t errlen)
{
  char dir[160], name[32];
  snprintf(dir, sizeof dir, "%s/c%d", w->run_dir, client);
  snprintf(name, sizeof name, "f%08" PRId64, i);
  return fm_bench_create_entry(c, dir, name, false, w->size, err, errlen);
}

/* ---------------------------------------------------------------- runner */

static void *run_worker(void *arg)
{
  worker *wk = arg;
  fm_rpc_client *c = NULL;
  char err[FM_ERR_LEN];
  if (fm_rpc_client_new(wk->target, &c) != 0 || wk->w->prepare(c, wk->id, wk->w, err, sizeof err) != 0) {
    wk->errors = wk->n;
    snprintf(wk->first_error, sizeof wk->first_error, "%s", c == NULL ? "out of memory" : err);
    pthread_barrier_wait(wk->start);
    fm_rpc_client_free(c);
    return NULL;
  }
  pthread_barrier_wait(wk->start);
  for (int64_t i = 0; i < wk->n; i++) {
    int64_t t0 = fm_mono_ns();
    if (wk->w->op(c, wk->id, i, wk->w, err, sizeof err) != 0) {
      if (wk->errors++ == 0)
        snprintf(wk->first_error, sizeof wk->first_error, "%s", err);
    }
    wk->lat_ns[i] = fm_mono_ns() - t0;
    atomic_fetch_add_explicit(wk->done, 1, memory_order_relaxed);
  }
  fm_rpc_client_free(c);
  return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int run_bench(const char *label, workload *w, int argc, char **argv)
{
  const char *filer = fm_tools_filer;
  int64_t clients = 64, calls = 1000, size = 200;
  bool json = false;
  bool is_create = w->op == create_op;
  if (is_create) {
    clients = 8;
    calls = 10000;
  }
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filer address (host:port or host:port.grpcPort)", 0, 0, false },
    { "c", FM_FLAG_INT, &clients, "concurrent clients, each with its own connection", 1, 4096, false },
    { "n", FM_FLAG_INT, &calls, "operations per client", 1, 100000000, false },
    { "json", FM_FLAG_BOOL, &json, "print one JSON object instead of a table", 0, 0, false },
    { "size", FM_FLAG_INT, &size, "create: inline content bytes per entry (~300-byte entries at 200)", 0, 4096, false },
  };
  size_t nflags = is_create ? 5 : 4;
  char err[FM_ERR_LEN], target[300];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta bench %s [flags]\n\nFlags:\n", label);
    fm_flags_usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta bench %s: %s\n", label, rc != 0 ? err : "unexpected argument");
    return 2;
  }
  if (fm_net_filer_grpc_target(filer, target, sizeof target) != 0) {
    fprintf(stderr, "filermeta bench %s: -filer \"%s\" is not host:port or host:port.grpcPort\n", label, filer);
    return 2;
  }
  w->size = size;
  /* each run writes under a directory of its own, so runs never collide */
  snprintf(w->run_dir, sizeof w->run_dir, "/bench/create-%" PRId64, fm_now_ns());
  size_t nw = (size_t)clients, total = (size_t)(clients * calls);
  worker *ws = calloc(nw, sizeof *ws);
  pthread_t *th = calloc(nw, sizeof *th);
  int64_t *lat = calloc(total, sizeof *lat);
  if (ws == NULL || th == NULL || lat == NULL) {
    fprintf(stderr, "filermeta bench %s: out of memory\n", label);
    free(ws);
    free(th);
    free(lat);
    return 1;
  }
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)nw + 1);
  _Atomic int64_t done = 0;
  for (size_t i = 0; i < nw; i++) {
    ws[i] = (worker){
      .target = target,
      .w = w,
      .id = (int)i,
      .n = calls,
      .lat_ns = lat + i * (size_t)calls,
      .start = &start,
      .done = &done,
    };
    pthread_create(&th[i], NULL, run_worker, &ws[i]);
  }
  pthread_barrier_wait(&start);
  int64_t t0 = fm_mono_ns();
  fm_bench_progress pg;
  fm_bench_progress_start(&pg, label, (int64_t)total, &done);
  for (size_t i = 0; i < nw; i++)
    pthread_join(th[i], NULL);
  fm_bench_progress_end(&pg);
  int64_t wall = fm_mono_ns() - t0;
  pthread_barrier_destroy(&start);

  int64_t errors = 0;
  const char *first_error = NULL;
  for (size_t i = 0; i < nw; i++) {
    errors += ws[i].errors;
    if (first_error == NULL && ws[i].errors > 0)
      first_error = ws[i].first_error;
  }
  qsort(lat, total, sizeof *lat, cmp_i64);
  double rate = (double)total / ((double)wall / 1e9);
  double p50 = (double)lat[total / 2] / 1e3, p99 = (double)lat[total * 99 / 100] / 1e3,
         max = (double)lat[total - 1] / 1e3;
  if (json) {
    printf("{\"bench\":\"%s\",\"clients\":%" PRId64 ",\"ops_per_client\":%" PRId64 ",\"ops\":%zu,"
           "\"errors\":%" PRId64 ",\"seconds\":%.3f,\"ops_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"max_us\":%.1f}\n",
           label, clients, calls, total, errors, (double)wall / 1e9, rate, p50, p99, max);
  } else {
    printf("bench %s: %" PRId64 " clients x %" PRId64 " operations against %s\n", label, clients, calls, target);
    printf("  %-14s %zu (%" PRId64 " errors)\n", "operations", total, errors);
    printf("  %-14s %.3f\n", "seconds", (double)wall / 1e9);
    printf("  %-14s %.0f\n", "operations/s", rate);
    printf("  %-14s %.1f us\n  %-14s %.1f us\n  %-14s %.1f us\n", "latency p50", p50, "latency p99", p99, "latency max",
           max);
  }
  if (first_error != NULL)
    fprintf(stderr, "filermeta bench %s: first error: %s\n", label, first_error);
  free(ws);
  free(th);
  free(lat);
  return errors == 0 ? 0 : 1;
}

/* ---- catchup: one subscriber reads everything up to now ---- */

typedef struct catchup {
  int64_t last_ts;
  uint64_t events;
  bool out_of_order;
  _Atomic int64_t done; /* events so far: the progress line */
} catchup;

static int catchup_event(void *arg, const FilerPb__SubscribeMetadataResponse *e)
{
  catchup *c = arg;
  if (e->ts_ns < c->last_ts)
    c->out_of_order = true;
  c->last_ts = e->ts_ns;
  c->events++;
  if ((c->events & 1023) == 0)
    atomic_store_explicit(&c->done, (int64_t)c->events, memory_order_relaxed);
  return 0;
}

/* CPU seconds (user + system) this process has used, every thread. */
static double cpu_seconds(void)
{
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Follows from since_ns up to the moment it starts (until_ns = now), so the follow ends by itself, with the follow
 * library in one of its modes: events (one per message), batch (client_supports_batching) or refs (log-file refs
 * read directly, then batches); reports events/s as delivered to the callback, and the client's CPU time (on a
 * shared machine the rate depends on what else runs; the CPU per event much less). */
static int run_catchup(int argc, char **argv)
{
  const char *filer = fm_tools_filer, *prefix = "/", *mode = "events";
  bool batching = false, json = false;
  int64_t since = 0, threads = 4, prefetch = 16;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filer address (host:port or host:port.grpcPort)", 0, 0, false },
    { "mode", FM_FLAG_STRING, &mode, "events, batch or refs", 0, 0, false },
    { "batch", FM_FLAG_BOOL, &batching, "same as -mode batch", 0, 0, false },
    { "since", FM_FLAG_INT, &since, "since_ns", 0, INT64_MAX, false },
    { "prefix", FM_FLAG_STRING, &prefix, "path_prefix", 0, 0, false },
    { "refsThreads", FM_FLAG_INT, &threads, "refs mode: fetch threads", 1, 64, false },
    { "refsPrefetch", FM_FLAG_INT, &prefetch, "refs mode: chunks fetched ahead", 1, 1024, false },
    { "json", FM_FLAG_BOOL, &json, "print one JSON object", 0, 0, false },
  };
  const size_t nflags = sizeof flags / sizeof flags[0];
  char err[FM_ERR_LEN];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta bench catchup [flags]\n\nFlags:\n");
    fm_flags_usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta bench catchup: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  if (batching)
    mode = "batch";
  bool refs = strcmp(mode, "refs") == 0;
  if (!refs && strcmp(mode, "batch") != 0 && strcmp(mode, "events") != 0) {
    fprintf(stderr, "filermeta bench catchup: -mode \"%s\" is not events, batch or refs\n", mode);
    return 2;
  }
  catchup st = { 0 };
  fm_follow_options o = {
    .filer = filer,
    .client_name = "bench",
    .path_prefix = prefix,
    .since_ns = since,
    .until_ns = fm_now_ns(),
    .batching = strcmp(mode, "events") != 0,
    .refs = refs,
    .on_event = catchup_event,
    .arg = &st,
    .max_retries = 1,
    .refs_threads = (int)threads,
    .refs_prefetch = (int)prefetch,
  };
  fm_follow *f = NULL;
  if (fm_follow_new(&o, &f, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta bench catchup: %s\n", err);
    return 2;
  }
  int64_t t0 = fm_mono_ns();
  double cpu0 = cpu_seconds();
  fm_bench_progress pg;
  fm_bench_progress_start(&pg, "catchup", 0, &st.done);
  rc = fm_follow_run(f, err, sizeof err);
  fm_bench_progress_end(&pg);
  int64_t wall = fm_mono_ns() - t0;
  double cpu = cpu_seconds() - cpu0;
  fm_follow_stats fs;
  fm_follow_stats_get(f, &fs);
  fm_follow_free(f);
  if (rc != 0) {
    fprintf(stderr, "filermeta bench catchup: %s\n", err);
    return 1;
  }
  double secs = (double)wall / 1e9, rate = (double)st.events / secs;
  if (json)
    printf("{\"bench\":\"catchup\",\"mode\":\"%s\",\"events\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"refs\":%" PRIu64
           ",\"ref_bytes\":%" PRIu64 ",\"seconds\":%.3f,\"events_per_sec\":%.0f,\"cpu_seconds\":%.3f,"
           "\"in_order\":%s}\n",
           mode, st.events, fs.messages, fs.refs, fs.ref_bytes, secs, rate, cpu, st.out_of_order ? "false" : "true");
  else
    printf("bench catchup (mode %s): %" PRIu64 " events in %" PRIu64 " messages (%" PRIu64 " log-file refs, %.1f MB"
           " read directly), %.3f s, %.0f events/s, client CPU %.3f s%s\n",
           mode, st.events, fs.messages, fs.refs, (double)fs.ref_bytes / 1e6, secs, rate, cpu,
           st.out_of_order ? " (OUT OF ORDER)" : "");
  return st.out_of_order ? 1 : 0;
}

int fm_cmd_bench(int argc, char **argv)
{
  static workload ping = { .name = "ping", .prepare = ping_prepare, .op = ping_op };
  static workload create = { .name = "create", .prepare = create_prepare, .op = create_op };
  if (argc >= 2 && strcmp(argv[1], "ping") == 0)
    return run_bench("ping", &ping, argc - 1, argv + 1);
  if (argc >= 2 && (strcmp(argv[1], "create") == 0 || strcmp(argv[1], "write") == 0))
    return run_bench(argv[1], &create, argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "catchup") == 0)
    return run_catchup(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "etcd") == 0)
    return fm_bench_cmd_etcd(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "live") == 0)
    return fm_bench_cmd_live(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "fanout") == 0)
    return fm_bench_cmd_fanout(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "raw") == 0)
    return fm_bench_cmd_raw(argc - 1, argv + 1);
  if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
    printf("Usage: filermeta bench <workload> [flags]\n\nWorkloads:\n"
           "  ping     unary Ping rate with concurrent clients (-c 64 -n 1000)\n"
           "  create   CreateEntry rate and latency, one new file per call (-c 8 -n 10000 -size 200); also: write\n"
           "  catchup  one follower reading everything up to now (-mode events|batch|refs)\n"
           "  etcd     catch-up and live latency side by side with an etcd 3.4 the bench starts\n"
           "  live     create -> receive latency of live subscribers (-subs 1 -rate 1000 -duration 10s)\n"
           "  fanout   server memory, threads and CPU with many idle subscribers (-subs 1000 -pid PID)\n"
           "  raw      the raw-stream ceiling: an in-process server streams events from memory (-n 1000000)\n");
    return 0;
  }
  fprintf(stderr,
          "filermeta bench: unknown or missing workload%s%s (known: ping, create (write), catchup, etcd, live, fanout, "
          "raw)\n",
          argc >= 2 ? " " : "", argc >= 2 ? argv[1] : "");
  return 2;
}
