/* What the `filermeta bench` workloads share inside tools/: the entry points of the workloads kept in their own
 * files (bench_live.c, bench_fanout.c, bench_raw.c), the calls several of them make (bench_client.c) and latency
 * summaries (bench_lat.c). Called from tools/bench.c's dispatch and from the workloads, on their own threads. */
#ifndef FM_TOOLS_INTERNAL_H
#define FM_TOOLS_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filer.pb-c.h"
#include "rpc_client.h"

/* Percentiles of a set of latencies, in ns (bench_lat.c). */
typedef struct fm_bench_lat {
  size_t n;
  int64_t p50, p90, p99, p999, max;
} fm_bench_lat;

/* ---- workloads: each takes its argv (argv[0] is the workload name) and returns the exit code ---- */

int fm_bench_cmd_live(int argc, char **argv);
int fm_bench_cmd_fanout(int argc, char **argv);
int fm_bench_cmd_raw(int argc, char **argv);

/* ---- bench_live.c: the measurement `bench live` makes, also run by `bench fanout` with its idle streams open ---- */

typedef struct fm_bench_live_config {
  const char *target; /* "host:grpcport" */
  int subs, conns, threads;
  int64_t rate;        /* creates per second */
  int64_t duration_ns; /* how long the writer runs */
  int64_t size;        /* inline content bytes per entry */
  int64_t drain_ns;    /* after the last create, how long to wait for events still on their way */
  int pid;             /* the server's pid, 0 when unknown: its CPU time is then not reported */
} fm_bench_live_config;

typedef struct fm_bench_live_result {
  int64_t sent, send_errors;   /* creates issued, and those that failed */
  double send_seconds;         /* the writer's time from first to last create */
  int64_t expected, received;  /* over all subscribers: sent events x subscribers, events received once */
  int64_t duplicates, foreign; /* events received twice; events that were not ours */
  int64_t subs_short;          /* subscribers that received fewer than `sent` events */
  int64_t *per_sub;            /* received per subscriber (subs entries), caller frees with free() */
  fm_bench_lat lat;            /* create sent -> event received, over every delivery */
  fm_bench_lat create_lat;     /* the writer's CreateEntry round trips */
  int64_t client_cpu_ns;       /* this process, writer + subscribers, during the run */
  int64_t subs_cpu_ns;         /* the subscribers' completion-queue threads alone */
  int64_t server_cpu_ms;       /* -1 when pid is 0 */
  char stream_error[256];      /* the first stream that ended with an error, if any */
} fm_bench_live_result;

typedef struct fm_bench_live fm_bench_live;

/* Opens cfg->subs streams on a fresh directory and waits until each has received a warm-up event. Returns 0 and the
 * run in *out (caller frees with fm_bench_live_free), or an FM_E* code with `err` filled. */
int fm_bench_live_open(const fm_bench_live_config *cfg, fm_bench_live **out, char *err, size_t errlen);

/* Once per run: creates cfg->rate entries per second for cfg->duration_ns, each named with its send time, waits for
 * their events (up to cfg->drain_ns after the last), closes the streams and fills *res (res->per_sub: caller frees).
 * Returns 0 even when events were lost (res says so), or an FM_E* code with `err` filled. */
int fm_bench_live_measure(fm_bench_live *lv, fm_bench_live_result *res, char *err, size_t errlen);

/* Closes what is still open and frees the run. NULL is a no-op. */
void fm_bench_live_free(fm_bench_live *lv);

/* Prints a live result: `bench live`'s report, and the active part of `bench fanout`'s; as JSON, the members only
 * (no braces), so that the caller can add its own. */
void fm_bench_live_print(const fm_bench_live_config *cfg, const fm_bench_live_result *r, bool json);

/* ---- bench_client.c ---- */

/* The gRPC method path of SubscribeMetadata. */
#define FM_BENCH_SUBSCRIBE "/filer_pb.SeaweedFiler/SubscribeMetadata"

/* CreateEntry of `dir`/`name` (a directory when is_dir, else a file with `size` bytes of inline content, at most
 * 4 KiB); missing parents are created by the server. Returns 0, or an FM_E* code with `err` filled (a refused
 * create is FM_EIO with the server's message). */
int fm_bench_create_entry(fm_rpc_client *c, const char *dir, const char *name, bool is_dir, int64_t size, char *err,
                          size_t errlen);

/* What `bench catchup` counts while it reads a stream: events (markers apart), messages, ts order. */
typedef struct fm_bench_catchup {
  uint64_t events, messages, markers;
  int64_t last_ts;
  bool out_of_order;
} fm_bench_catchup;

/* An fm_rpc_client_stream_fn over an fm_bench_catchup (arg): counts one response and the events batched in it. */
bool fm_bench_catchup_response(void *arg, const ProtobufCMessage *msg);

/* ---- bench_lat.c ---- */

/* Sorts ns[0..n-1] in place and fills *out (all zero when n is 0). */
void fm_bench_lat_summary(int64_t *ns, size_t n, fm_bench_lat *out);

#endif
