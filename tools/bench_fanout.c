/*
 * filermeta bench fanout: what many open subscriber streams cost the server.
 *
 * Opens S streams on a directory nobody writes to (bench_subs.c), waits until the server lists all of them
 * (ListMetadataSubscribers, by this run's client name), lets them sit idle, and reports the server's resident memory,
 * threads and CPU from /proc/<pid> (the pid is given: ./dev bench passes it). With -active N, N of the S streams
 * subscribe to a second directory instead, and once the idle part is measured the live measurement of bench_live.c
 * runs on them (events at -rate for -duration, every one to be received) while the other S - N stay open.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_proc.h"
#include "bench_subs.h"
#include "clock.h"
#include "error.h"
#include "flags.h"
#include "net_addr.h"
#include "tools.h"
#include "tools_internal.h"

/* How long the server may take to register every stream. */
#define REGISTER_NS (120 * INT64_C(1000000000))

/* The number of streams the server lists under `client_type`; -1 on error (err filled). */
static int listed(fm_rpc_client *c, const char *client_type, char *err, size_t errlen)
{
  FilerPb__ListMetadataSubscribersRequest req = FILER_PB__LIST_METADATA_SUBSCRIBERS_REQUEST__INIT;
  char *types[1] = { (char *)(uintptr_t)client_type };
  req.n_client_types = 1;
  req.client_types = types;
  ProtobufCMessage *reply = NULL;
  if (fm_rpc_client_unary(c, "/filer_pb.SeaweedFiler/ListMetadataSubscribers", &req.base,
                          &filer_pb__list_metadata_subscribers_response__descriptor, 30000, &reply, NULL, err,
                          errlen) != 0)
    return -1;
  int n = (int)((const FilerPb__ListMetadataSubscribersResponse *)reply)->n_subscribers;
  protobuf_c_message_free_unpacked(reply, NULL);
  return n;
}

static void sleep_ns(int64_t ns)
{
  struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static double mib(int64_t kib)
{
  return (double)kib / 1024.0;
}

static void print_proc_json(const char *key, const fm_bench_proc *p)
{
  printf("\"%s\":{\"rss_mib\":%.1f,\"hwm_mib\":%.1f,\"anon_mib\":%.1f,\"threads\":%" PRId64 "}", key, mib(p->rss_kib),
         mib(p->hwm_kib), mib(p->anon_kib), p->threads);
}

static void print_proc_row(const char *label, const fm_bench_proc *p)
{
  printf("  %-24s rss %.1f MiB (peak %.1f, anonymous %.1f), %" PRId64 " threads\n", label, mib(p->rss_kib),
         mib(p->hwm_kib), mib(p->anon_kib), p->threads);
}

int fm_bench_cmd_fanout(int argc, char **argv)
{
  const char *filer = fm_tools_filer;
  int64_t subs = 1000, conns = 0, threads = 1, pid = 0, active = 0, rate = 1000, size = 200;
  int64_t idle = 5 * INT64_C(1000000000), duration = 10 * INT64_C(1000000000);
  bool json = false;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filer address (host:port or host:port.grpcPort)", 0, 0, false },
    { "pid", FM_FLAG_INT, &pid, "the server's pid (required: its /proc is read; ./dev bench passes it)", 1, INT32_MAX,
      false },
    { "subs", FM_FLAG_INT, &subs, "subscriber streams", 1, 10000, false },
    { "conns", FM_FLAG_INT, &conns, "connections the streams spread over (0: one per subscriber)", 0, 10000, false },
    { "threads", FM_FLAG_INT, &threads, "client completion-queue threads", 1, 64, false },
    { "idle", FM_FLAG_DURATION, &idle, "how long the streams sit idle while the server is watched", 0,
      3600 * INT64_C(1000000000), false },
    { "active", FM_FLAG_INT, &active, "of the streams, how many then receive events (0: none)", 0, 10000, false },
    { "rate", FM_FLAG_INT, &rate, "with -active: creates per second", 1, 1000000, false },
    { "duration", FM_FLAG_DURATION, &duration, "with -active: how long events flow", 1000000,
      3600 * INT64_C(1000000000), false },
    { "size", FM_FLAG_INT, &size, "with -active: inline content bytes per entry", 0, 4096, false },
    { "json", FM_FLAG_BOOL, &json, "print one JSON object", 0, 0, false },
  };
  const size_t nflags = sizeof flags / sizeof flags[0];
  char err[FM_ERR_LEN], target[300];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta bench fanout -pid PID [flags]\n\nServer memory, threads and CPU with many idle\n"
           "subscribers (and, with -active, with events flowing to some of them).\n\nFlags:\n");
    fm_flags_usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta bench fanout: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  if (pid == 0) {
    fprintf(stderr, "filermeta bench fanout: -pid is required (the server's process id; ./dev bench fanout passes "
                    "it)\n");
    return 2;
  }
  if (active > subs) {
    fprintf(stderr, "filermeta bench fanout: -active %" PRId64 " is more than -subs %" PRId64 "\n", active, subs);
    return 2;
  }
  if (fm_net_filer_grpc_target(filer, target, sizeof target) != 0) {
    fprintf(stderr, "filermeta bench fanout: -filer \"%s\" is not host:port or host:port.grpcPort\n", filer);
    return 2;
  }
  int64_t idle_subs = subs - active;
  int64_t per_conn = conns == 0 ? 1 : (subs + conns - 1) / conns; /* streams per connection */
  fm_bench_proc before, opened, after;
  fm_rpc_client *c = NULL;
  fm_bench_subs *set = NULL;
  fm_bench_live *lv = NULL;
  fm_bench_live_result lr;
  memset(&lr, 0, sizeof lr);
  bool live_done = false;
  int exit_code = 1;
  if (fm_bench_proc_read((int)pid, &before, err, sizeof err) != 0)
    goto fail;
  if (fm_rpc_client_new(target, &c) != 0) {
    snprintf(err, sizeof err, "cannot create a client for %.200s", target);
    goto fail;
  }

  int64_t t_open = fm_mono_ns();
  char client_name[64], prefix[96];
  int64_t t = fm_now_ns();
  snprintf(client_name, sizeof client_name, "bench-fanout-%" PRId64, t);
  snprintf(prefix, sizeof prefix, "/bench/fanout-%" PRId64 "/", t);
  if (idle_subs > 0) {
    fm_bench_subs_config sc = {
      .target = target,
      .subs = (int)idle_subs,
      .conns = (int)((idle_subs + per_conn - 1) / per_conn),
      .threads = (int)threads,
      .client_name = client_name,
      .prefix = prefix,
      .since_ns = fm_now_ns(),
    };
    if (fm_bench_subs_open(&sc, &set, err, sizeof err) != 0)
      goto fail;
  }
  fm_bench_live_config lc = {
    .target = target,
    .subs = (int)active,
    .conns = (int)((active + per_conn - 1) / per_conn),
    .threads = (int)threads,
    .rate = rate,
    .duration_ns = duration,
    .size = size,
    .drain_ns = 5 * INT64_C(1000000000),
    .pid = (int)pid,
  };
  if (active > 0 && fm_bench_live_open(&lc, &lv, err, sizeof err) != 0) /* returns once all of them are live */
    goto fail;
  /* every idle stream registered on the server */
  int64_t deadline = fm_mono_ns() + REGISTER_NS;
  for (;;) {
    int n = idle_subs > 0 ? listed(c, client_name, err, sizeof err) : 0;
    if (n < 0)
      goto fail;
    char why[FM_ERR_LEN];
    if (set != NULL && fm_bench_subs_ended(set, why, sizeof why) > 0) {
      snprintf(err, sizeof err, "a subscriber stream ended: %.200s", why[0] ? why : "status OK");
      goto fail;
    }
    if (n >= idle_subs)
      break;
    if (fm_mono_ns() > deadline) {
      snprintf(err, sizeof err, "the server lists %d of %" PRId64 " idle streams after 120 s", n, idle_subs);
      goto fail;
    }
    sleep_ns(50000000);
  }
  double open_secs = (double)(fm_mono_ns() - t_open) / 1e9;

  /* idle */
  if (fm_bench_proc_read((int)pid, &opened, err, sizeof err) != 0)
    goto fail;
  sleep_ns(idle);
  if (fm_bench_proc_read((int)pid, &after, err, sizeof err) != 0)
    goto fail;
  double idle_secs = (double)idle / 1e9;
  int64_t idle_cpu_ms = after.cpu_ms - opened.cpu_ms;

  /* active */
  fm_bench_proc during = after;
  if (lv != NULL) {
    if (fm_bench_live_measure(lv, &lr, err, sizeof err) != 0)
      goto fail;
    live_done = true;
    if (fm_bench_proc_read((int)pid, &during, err, sizeof err) != 0)
      goto fail;
  }

  int64_t nconns = conns == 0 ? subs : (conns < subs ? conns : subs);
  if (json) {
    printf("{\"bench\":\"fanout\",\"subscribers\":%" PRId64 ",\"idle_subscribers\":%" PRId64 ",\"connections\":%" PRId64
           ",\"open_seconds\":%.3f,",
           subs, idle_subs, nconns, open_secs);
    print_proc_json("server_before", &before);
    printf(",");
    print_proc_json("server_idle", &after);
    printf(",\"idle_seconds\":%.3f,\"idle_server_cpu_s\":%.3f,\"idle_server_cpu_pct\":%.2f,"
           "\"rss_per_subscriber_kib\":%.1f",
           idle_secs, (double)idle_cpu_ms / 1e3, idle_secs > 0 ? 100.0 * (double)idle_cpu_ms / 1e3 / idle_secs : 0.0,
           (double)(after.rss_kib - before.rss_kib) / (double)subs);
    if (live_done) {
      printf(",");
      print_proc_json("server_active", &during);
      printf(",\"active\":{");
      fm_bench_live_print(&lc, &lr, true);
      printf("}");
    }
    printf("}\n");
  } else {
    printf("bench fanout: %" PRId64 " subscribers (%" PRId64 " idle) over %" PRId64
           " connections against %s (pid %" PRId64 ")\n",
           subs, idle_subs, nconns, target, pid);
    print_proc_row("server before", &before);
    printf("  %-24s %.3f s\n", "all streams registered in", open_secs);
    print_proc_row("server with the streams", &after);
    printf("  %-24s %.1f KiB more rss per subscriber\n", "", (double)(after.rss_kib - before.rss_kib) / (double)subs);
    printf("  %-24s %.3f s in %.1f s (%.2f%% of one core)\n", "server cpu while idle", (double)idle_cpu_ms / 1e3,
           idle_secs, idle_secs > 0 ? 100.0 * (double)idle_cpu_ms / 1e3 / idle_secs : 0.0);
    if (live_done) {
      printf("  then %" PRId64 " of them receive %" PRId64 " creates/s for %.1f s:\n", active, rate,
             (double)duration / 1e9);
      fm_bench_live_print(&lc, &lr, false);
      print_proc_row("server after", &during);
    }
  }
  exit_code = 0;
  if (live_done && (lr.received != lr.expected || lr.duplicates > 0 || lr.send_errors > 0 || lr.stream_error[0])) {
    fprintf(stderr, "filermeta bench fanout: %" PRId64 " events lost, %" PRId64 " duplicated%s%s\n",
            lr.expected - lr.received, lr.duplicates, lr.stream_error[0] ? "; " : "", lr.stream_error);
    exit_code = 1;
  }
  goto out;
fail:
  fprintf(stderr, "filermeta bench fanout: %s\n", err);
out:
  free(lr.per_sub);
  fm_bench_live_free(lv);
  fm_bench_subs_free(set);
  fm_rpc_client_free(c);
  return exit_code;
}
