/* filermeta bench ping: C concurrent clients, each on its own channel and
 * thread, each making N blocking Ping calls; prints calls/s and latency
 * percentiles. The raw unary-call rate of a filer. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "net_addr.h"
#include "rpc_client.h"
#include "tools.h"

typedef struct worker {
  const char *target;
  int64_t n;
  int64_t *lat_ns; /* n entries */
  int64_t errors;
  char first_error[FM_ERR_LEN];
  pthread_barrier_t *start;
} worker;

static int ping_once(fm_rpc_client *c, char *err, size_t errlen)
{
  FilerPb__PingRequest req = FILER_PB__PING_REQUEST__INIT;
  ProtobufCMessage *reply = NULL;
  int rc = fm_rpc_client_unary(c, "/filer_pb.SeaweedFiler/Ping", &req.base, &filer_pb__ping_response__descriptor, 10000,
                               &reply, NULL, err, errlen);
  if (rc == 0)
    protobuf_c_message_free_unpacked(reply, NULL);
  return rc;
}

static void *run_worker(void *arg)
{
  worker *w = arg;
  fm_rpc_client *c = NULL;
  char err[FM_ERR_LEN];
  if (fm_rpc_client_new(w->target, &c) != 0) {
    w->errors = w->n;
    pthread_barrier_wait(w->start);
    return NULL;
  }
  ping_once(c, err, sizeof err); /* connect before the clock starts */
  pthread_barrier_wait(w->start);
  for (int64_t i = 0; i < w->n; i++) {
    int64_t t0 = fm_mono_ns();
    if (ping_once(c, err, sizeof err) != 0) {
      if (w->errors++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "%s", err);
    }
    w->lat_ns[i] = fm_mono_ns() - t0;
  }
  fm_rpc_client_free(c);
  return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int bench_ping(int argc, char **argv)
{
  const char *filer = "localhost:8888";
  int64_t clients = 64, calls = 1000;
  bool json = false;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filer address (host:port or host:port.grpcPort)", 0, 0, false },
    { "c", FM_FLAG_INT, &clients, "concurrent clients, each with its own connection", 1, 4096, false },
    { "n", FM_FLAG_INT, &calls, "calls per client", 1, 100000000, false },
    { "json", FM_FLAG_BOOL, &json, "print one JSON object instead of a table", 0, 0, false },
  };
  char err[FM_ERR_LEN], target[300];
  int first = 0;
  int rc = fm_flags_parse(flags, 4, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta bench ping [flags]\n\nFlags:\n");
    fm_flags_usage(stdout, flags, 4);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta bench ping: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  if (fm_net_filer_grpc_target(filer, target, sizeof target) != 0) {
    fprintf(stderr, "filermeta bench ping: -filer \"%s\" is not host:port or host:port.grpcPort\n", filer);
    return 2;
  }
  size_t nw = (size_t)clients, total = (size_t)(clients * calls);
  worker *ws = calloc(nw, sizeof *ws);
  pthread_t *th = calloc(nw, sizeof *th);
  int64_t *lat = calloc(total, sizeof *lat);
  if (ws == NULL || th == NULL || lat == NULL) {
    fprintf(stderr, "filermeta bench ping: out of memory\n");
    free(ws);
    free(th);
    free(lat);
    return 1;
  }
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)nw + 1);
  for (size_t i = 0; i < nw; i++) {
    ws[i] = (worker){ .target = target, .n = calls, .lat_ns = lat + i * (size_t)calls, .start = &start };
    pthread_create(&th[i], NULL, run_worker, &ws[i]);
  }
  pthread_barrier_wait(&start);
  int64_t t0 = fm_mono_ns();
  for (size_t i = 0; i < nw; i++)
    pthread_join(th[i], NULL);
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
    printf("{\"bench\":\"ping\",\"clients\":%" PRId64 ",\"calls_per_client\":%" PRId64 ",\"calls\":%zu,"
           "\"errors\":%" PRId64 ",\"seconds\":%.3f,\"calls_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"max_us\":%.1f}\n",
           clients, calls, total, errors, (double)wall / 1e9, rate, p50, p99, max);
  } else {
    printf("bench ping: %" PRId64 " clients x %" PRId64 " calls against %s\n", clients, calls, target);
    printf("  %-14s %zu (%" PRId64 " errors)\n", "calls", total, errors);
    printf("  %-14s %.3f\n", "seconds", (double)wall / 1e9);
    printf("  %-14s %.0f\n", "calls/s", rate);
    printf("  %-14s %.1f us\n  %-14s %.1f us\n  %-14s %.1f us\n", "latency p50", p50, "latency p99", p99, "latency max",
           max);
  }
  if (first_error != NULL)
    fprintf(stderr, "filermeta bench ping: first error: %s\n", first_error);
  free(ws);
  free(th);
  free(lat);
  return errors == 0 ? 0 : 1;
}

int fm_cmd_bench(int argc, char **argv)
{
  if (argc >= 2 && strcmp(argv[1], "ping") == 0)
    return bench_ping(argc - 1, argv + 1);
  if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
    printf(
        "Usage: filermeta bench <workload> [flags]\n\nWorkloads:\n  ping   unary Ping rate with concurrent clients\n");
    return 0;
  }
  fprintf(stderr, "filermeta bench: unknown or missing workload%s%s (known: ping)\n", argc >= 2 ? " " : "",
          argc >= 2 ? argv[1] : "");
  return 2;
}
