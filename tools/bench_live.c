/*
 * filermeta bench live: create -> receive latency of live subscribers.
 *
 * S streams subscribe to a fresh directory (bench_subs.c: a few completion-queue threads, one connection each by
 * default); one writer thread creates entries there at a fixed rate, each named "e<seq>-<send time>" with the
 * CLOCK_MONOTONIC time just before its CreateEntry call (client and server share the machine, and the writer and
 * the subscribers this process). Each subscriber notes when an event's message comes off its completion queue; the
 * latency is that minus the name's time. Every subscriber must receive every event exactly once.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_proc.h"
#include "bench_subs.h"
#include "clock.h"
#include "error.h"
#include "flags.h"
#include "net_addr.h"
#include "tools.h"
#include "tools_internal.h"

/* How long the subscribers may take to receive the warm-up event (connections, stream start). */
#define WARMUP_NS (30 * INT64_C(1000000000))

typedef struct live {
  int nsubs;
  int64_t n;                 /* events the writer will send */
  int64_t *lat;              /* lat[sub * n + seq]: receive - send, 0 until received */
  int64_t *received;         /* per subscriber, events received once */
  int64_t *duplicates;       /* per subscriber */
  int64_t *foreign;          /* per subscriber: events that are neither ours nor the warm-up */
  bool *warm;                /* per subscriber: received the warm-up event */
  atomic_int_fast64_t total; /* events received once, all subscribers */
  atomic_int warm_count;
} live;

/* A leaf event for subscriber `sub` (its queue thread). */
static void on_event(void *arg, int sub, const FilerPb__SubscribeMetadataResponse *ev, int64_t recv_ns)
{
  live *l = arg;
  if (ev->event_notification == NULL || ev->event_notification->new_entry == NULL)
    return; /* keep-alives, markers */
  const char *name = ev->event_notification->new_entry->name;
  if (strcmp(name, "warmup") == 0) {
    if (!l->warm[sub]) {
      l->warm[sub] = true;
      atomic_fetch_add(&l->warm_count, 1);
    }
    return;
  }
  long long seq, sent;
  if (sscanf(name, "e%lld-%lld", &seq, &sent) != 2 || seq < 0 || seq >= l->n) {
    l->foreign[sub]++;
    return;
  }
  int64_t *slot = &l->lat[(size_t)sub * (size_t)l->n + (size_t)seq];
  if (*slot != 0) {
    l->duplicates[sub]++;
    return;
  }
  int64_t d = recv_ns - sent;
  *slot = d > 0 ? d : 1; /* 0 means "not received" */
  l->received[sub]++;
  atomic_fetch_add(&l->total, 1);
}

static int64_t process_cpu_ns(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void sleep_until(int64_t mono_ns)
{
  struct timespec ts = { .tv_sec = mono_ns / 1000000000, .tv_nsec = mono_ns % 1000000000 };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
  }
}

static int64_t server_cpu_ms(int pid)
{
  fm_bench_proc p;
  char err[FM_ERR_LEN];
  return pid > 0 && fm_bench_proc_read(pid, &p, err, sizeof err) == 0 ? p.cpu_ms : -1;
}

struct fm_bench_live {
  fm_bench_live_config cfg;
  live l;
  int64_t *create_lat; /* n entries */
  fm_rpc_client *c;    /* the writer's */
  fm_bench_subs *subs;
  char dir[96];
};

void fm_bench_live_free(fm_bench_live *lv)
{
  if (lv == NULL)
    return;
  fm_bench_subs_free(lv->subs);
  fm_rpc_client_free(lv->c);
  free(lv->create_lat);
  free(lv->l.lat);
  free(lv->l.received);
  free(lv->l.duplicates);
  free(lv->l.foreign);
  free(lv->l.warm);
  free(lv);
}

int fm_bench_live_open(const fm_bench_live_config *cfg, fm_bench_live **out, char *err, size_t errlen)
{
  *out = NULL;
  fm_bench_live *lv = calloc(1, sizeof *lv);
  if (lv == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  lv->cfg = *cfg;
  live *l = &lv->l;
  l->nsubs = cfg->subs;
  l->n = cfg->rate * cfg->duration_ns / 1000000000;
  if (l->n < 1)
    l->n = 1;
  size_t cells = (size_t)l->nsubs * (size_t)l->n;
  l->lat = calloc(cells, sizeof *l->lat);
  l->received = calloc((size_t)l->nsubs, sizeof *l->received);
  l->duplicates = calloc((size_t)l->nsubs, sizeof *l->duplicates);
  l->foreign = calloc((size_t)l->nsubs, sizeof *l->foreign);
  l->warm = calloc((size_t)l->nsubs, sizeof *l->warm);
  lv->create_lat = calloc((size_t)l->n, sizeof *lv->create_lat);
  atomic_init(&l->total, 0);
  atomic_init(&l->warm_count, 0);
  int rc = FM_ENOMEM;
  if (l->lat == NULL || l->received == NULL || l->duplicates == NULL || l->foreign == NULL || l->warm == NULL ||
      lv->create_lat == NULL || fm_rpc_client_new(cfg->target, &lv->c) != 0) {
    snprintf(err, errlen, "out of memory (%zu latency cells)", cells);
    goto err;
  }

  /* a directory of this run's own, made before anyone subscribes (its event is outside the prefix anyway) */
  char prefix[100], client_name[64];
  int64_t t = fm_now_ns();
  snprintf(lv->dir, sizeof lv->dir, "/bench/live-%" PRId64, t);
  snprintf(prefix, sizeof prefix, "%s/", lv->dir);
  snprintf(client_name, sizeof client_name, "bench-live-%" PRId64, t);
  rc = fm_bench_create_entry(lv->c, "/bench", lv->dir + strlen("/bench/"), true, 0, err, errlen);
  if (rc != 0)
    goto err;
  fm_bench_subs_config sc = {
    .target = cfg->target,
    .subs = cfg->subs,
    .conns = cfg->conns,
    .threads = cfg->threads,
    .client_name = client_name,
    .prefix = prefix,
    .since_ns = fm_now_ns(),
    .fn = on_event,
    .arg = l,
  };
  rc = fm_bench_subs_open(&sc, &lv->subs, err, errlen);
  if (rc != 0)
    goto err;

  /* warm-up: every stream connected, started and caught up before the clock starts */
  rc = fm_bench_create_entry(lv->c, lv->dir, "warmup", false, cfg->size, err, errlen);
  if (rc != 0)
    goto err;
  int64_t deadline = fm_mono_ns() + WARMUP_NS;
  char why[FM_ERR_LEN];
  while (atomic_load(&l->warm_count) < l->nsubs) {
    if (fm_bench_subs_ended(lv->subs, why, sizeof why) > 0 || fm_mono_ns() > deadline) {
      snprintf(err, errlen, "%d of %d subscribers received the warm-up event%s%s", atomic_load(&l->warm_count),
               l->nsubs, why[0] ? "; " : " within 30 s", why);
      rc = FM_ETIMEDOUT;
      goto err;
    }
    struct timespec ms = { 0, 1000000 };
    nanosleep(&ms, NULL);
  }
  *out = lv;
  return 0;
err:
  fm_bench_live_free(lv);
  return rc;
}

int fm_bench_live_measure(fm_bench_live *lv, fm_bench_live_result *res, char *err, size_t errlen)
{
  memset(res, 0, sizeof *res);
  res->server_cpu_ms = -1;
  live *l = &lv->l;
  const fm_bench_live_config *cfg = &lv->cfg;
  if (lv->subs == NULL) {
    snprintf(err, errlen, "a live measurement runs once");
    return FM_EINVAL;
  }
  int64_t cpu0 = process_cpu_ns(), subs_cpu0 = fm_bench_subs_cpu_ns(lv->subs);
  int64_t srv0 = server_cpu_ms(cfg->pid);
  int64_t t0 = fm_mono_ns();
  for (int64_t i = 0; i < l->n; i++) {
    sleep_until(t0 + (int64_t)((double)i * 1e9 / (double)cfg->rate));
    char name[64];
    int64_t sent = fm_mono_ns();
    snprintf(name, sizeof name, "e%" PRId64 "-%" PRId64, i, sent);
    char cerr[FM_ERR_LEN];
    if (fm_bench_create_entry(lv->c, lv->dir, name, false, cfg->size, cerr, sizeof cerr) != 0) {
      if (res->send_errors++ == 0)
        snprintf(res->stream_error, sizeof res->stream_error, "CreateEntry: %.200s", cerr);
    }
    lv->create_lat[i] = fm_mono_ns() - sent;
  }
  int64_t t1 = fm_mono_ns();
  res->sent = l->n;
  res->send_seconds = (double)(t1 - t0) / 1e9;
  /* what is still on its way */
  int64_t delivered_each = l->n - res->send_errors; /* what every subscriber should have */
  char why[FM_ERR_LEN];
  while (atomic_load(&l->total) < delivered_each * l->nsubs && fm_mono_ns() < t1 + cfg->drain_ns &&
         fm_bench_subs_ended(lv->subs, why, sizeof why) == 0) {
    struct timespec ms = { 0, 1000000 };
    nanosleep(&ms, NULL);
  }
  res->client_cpu_ns = process_cpu_ns() - cpu0;
  res->subs_cpu_ns = fm_bench_subs_cpu_ns(lv->subs) - subs_cpu0;
  int64_t srv1 = server_cpu_ms(cfg->pid);
  if (srv0 >= 0 && srv1 >= 0)
    res->server_cpu_ms = srv1 - srv0;
  fm_bench_subs_ended(lv->subs, why, sizeof why);
  if (why[0] != '\0' && res->stream_error[0] == '\0')
    snprintf(res->stream_error, sizeof res->stream_error, "%s", why);
  fm_bench_subs_free(lv->subs); /* the queue threads are gone: what they wrote can be read */
  lv->subs = NULL;

  res->per_sub = calloc((size_t)l->nsubs, sizeof *res->per_sub);
  if (res->per_sub == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  res->expected = delivered_each * l->nsubs;
  for (int s = 0; s < l->nsubs; s++) {
    res->per_sub[s] = l->received[s];
    res->received += l->received[s];
    res->duplicates += l->duplicates[s];
    res->foreign += l->foreign[s];
    if (l->received[s] < delivered_each)
      res->subs_short++;
  }
  /* compact the received latencies to the front of the array and summarise them */
  size_t cells = (size_t)l->nsubs * (size_t)l->n, got = 0;
  for (size_t i = 0; i < cells; i++)
    if (l->lat[i] != 0)
      l->lat[got++] = l->lat[i];
  fm_bench_lat_summary(l->lat, got, &res->lat);
  fm_bench_lat_summary(lv->create_lat, (size_t)l->n, &res->create_lat);
  return 0;
}

/* ================================================================ the command */

static void print_lat_row(const char *label, const fm_bench_lat *lat)
{
  printf("  %-22s %.3f / %.3f / %.3f / %.3f / %.3f ms (p50 / p90 / p99 / p99.9 / max, %zu samples)\n", label,
         (double)lat->p50 / 1e6, (double)lat->p90 / 1e6, (double)lat->p99 / 1e6, (double)lat->p999 / 1e6,
         (double)lat->max / 1e6, lat->n);
}

static void print_lat_json(const char *key, const fm_bench_lat *lat)
{
  printf("\"%s\":{\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"samples\":%zu}",
         key, (double)lat->p50 / 1e6, (double)lat->p90 / 1e6, (double)lat->p99 / 1e6, (double)lat->p999 / 1e6,
         (double)lat->max / 1e6, lat->n);
}

void fm_bench_live_print(const fm_bench_live_config *cfg, const fm_bench_live_result *r, bool json)
{
  double secs = r->send_seconds > 0 ? r->send_seconds : 1e-9;
  int64_t each = r->sent - r->send_errors;
  if (json) {
    printf("\"subscribers\":%d,\"connections\":%d,\"client_threads\":%d,\"rate\":%" PRId64 ",\"sent\":%" PRId64
           ",\"send_errors\":%" PRId64 ",\"send_seconds\":%.3f,\"sent_per_sec\":%.0f,\"expected\":%" PRId64
           ",\"received\":%" PRId64 ",\"lost\":%" PRId64 ",\"duplicates\":%" PRId64 ",\"foreign\":%" PRId64
           ",\"subscribers_short\":%" PRId64 ",",
           cfg->subs, cfg->conns < cfg->subs ? cfg->conns : cfg->subs, cfg->threads, cfg->rate, r->sent, r->send_errors,
           r->send_seconds, (double)r->sent / secs, r->expected, r->received, r->expected - r->received, r->duplicates,
           r->foreign, r->subs_short);
    print_lat_json("latency", &r->lat);
    printf(",");
    print_lat_json("create_latency", &r->create_lat);
    printf(",\"client_cpu_s\":%.3f,\"client_subscriber_threads_cpu_s\":%.3f,\"server_cpu_s\":",
           (double)r->client_cpu_ns / 1e9, (double)r->subs_cpu_ns / 1e9);
    if (r->server_cpu_ms >= 0)
      printf("%.3f", (double)r->server_cpu_ms / 1e3);
    else
      printf("null");
    printf(",\"received_per_subscriber\":[");
    for (int s = 0; s < cfg->subs; s++)
      printf("%s%" PRId64, s ? "," : "", r->per_sub[s]);
    printf("]");
    return;
  }
  printf("  %-22s %" PRId64 " in %.3f s (%.0f/s; %" PRId64 " errors)\n", "creates sent", r->sent, r->send_seconds,
         (double)r->sent / secs, r->send_errors);
  printf("  %-22s %" PRId64 " of %" PRId64 " (lost %" PRId64 ", duplicates %" PRId64 ")\n", "events received",
         r->received, r->expected, r->expected - r->received, r->duplicates);
  if (r->subs_short == 0) {
    printf("  %-22s every one received %" PRId64 " of %" PRId64 "\n", "per subscriber", each, each);
  } else {
    printf("  %-22s %" PRId64 " received fewer than %" PRId64 ":\n", "per subscriber", r->subs_short, each);
    int shown = 0;
    for (int s = 0; s < cfg->subs && shown < 20; s++)
      if (r->per_sub[s] < each) {
        printf("    subscriber %d: %" PRId64 " of %" PRId64 "\n", s, r->per_sub[s], each);
        shown++;
      }
  }
  print_lat_row("create -> receive", &r->lat);
  print_lat_row("CreateEntry call", &r->create_lat);
  printf("  %-22s %.3f s (%.0f%% of one core; subscriber threads %.3f s)\n", "client cpu",
         (double)r->client_cpu_ns / 1e9, 100.0 * (double)r->client_cpu_ns / 1e9 / secs, (double)r->subs_cpu_ns / 1e9);
  if (r->server_cpu_ms >= 0)
    printf("  %-22s %.3f s (%.0f%% of one core)\n", "server cpu", (double)r->server_cpu_ms / 1e3,
           100.0 * (double)r->server_cpu_ms / 1e3 / secs);
  if (r->stream_error[0] != '\0')
    printf("  %-22s %s\n", "first error", r->stream_error);
}

int fm_bench_cmd_live(int argc, char **argv)
{
  const char *filer = fm_tools_filer;
  int64_t subs = 1, conns = 0, threads = 1, rate = 1000, duration = 10 * INT64_C(1000000000), size = 200, pid = 0;
  int64_t drain = 5 * INT64_C(1000000000);
  bool json = false;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filer address (host:port or host:port.grpcPort)", 0, 0, false },
    { "subs", FM_FLAG_INT, &subs, "subscriber streams", 1, 10000, false },
    { "rate", FM_FLAG_INT, &rate, "creates per second", 1, 1000000, false },
    { "duration", FM_FLAG_DURATION, &duration, "how long the writer runs", 1000000, 3600 * INT64_C(1000000000), false },
    { "conns", FM_FLAG_INT, &conns, "connections the streams spread over (0: one per subscriber)", 0, 10000, false },
    { "threads", FM_FLAG_INT, &threads, "client completion-queue threads for the subscribers", 1, 64, false },
    { "size", FM_FLAG_INT, &size, "inline content bytes per entry (~300-byte events at 200)", 0, 4096, false },
    { "drain", FM_FLAG_DURATION, &drain, "after the last create, how long to wait for events on their way", 0,
      600 * INT64_C(1000000000), false },
    { "pid", FM_FLAG_INT, &pid, "the server's pid, to report its CPU time (./dev bench passes it)", 0, INT32_MAX,
      false },
    { "json", FM_FLAG_BOOL, &json, "print one JSON object", 0, 0, false },
  };
  const size_t nflags = sizeof flags / sizeof flags[0];
  char err[FM_ERR_LEN], target[300];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta bench live [flags]\n\nCreate -> receive latency of live subscribers; exits 1 if any\n"
           "subscriber misses an event.\n\nFlags:\n");
    fm_flags_usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta bench live: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  if (fm_net_filer_grpc_target(filer, target, sizeof target) != 0) {
    fprintf(stderr, "filermeta bench live: -filer \"%s\" is not host:port or host:port.grpcPort\n", filer);
    return 2;
  }
  fm_bench_live_config cfg = {
    .target = target,
    .subs = (int)subs,
    .conns = conns == 0 ? (int)subs : (int)conns,
    .threads = (int)threads,
    .rate = rate,
    .duration_ns = duration,
    .size = size,
    .drain_ns = drain,
    .pid = (int)pid,
  };
  fm_bench_live_result r;
  fm_bench_live *lv = NULL;
  rc = fm_bench_live_open(&cfg, &lv, err, sizeof err);
  if (rc == 0)
    rc = fm_bench_live_measure(lv, &r, err, sizeof err);
  fm_bench_live_free(lv);
  if (rc != 0) {
    fprintf(stderr, "filermeta bench live: %s\n", err);
    return 1;
  }
  if (json) {
    printf("{\"bench\":\"live\",");
    fm_bench_live_print(&cfg, &r, true);
    printf("}\n");
  } else {
    printf("bench live: %d subscribers over %d connections (%d client threads), %" PRId64 " creates/s for %.1f s "
           "against %s\n",
           cfg.subs, cfg.conns < cfg.subs ? cfg.conns : cfg.subs, cfg.threads, rate, (double)duration / 1e9, target);
    fm_bench_live_print(&cfg, &r, false);
  }
  bool bad = r.received != r.expected || r.duplicates > 0 || r.send_errors > 0 || r.stream_error[0] != '\0';
  if (bad)
    fprintf(stderr,
            "filermeta bench live: %" PRId64 " events lost, %" PRId64 " duplicated, %" PRId64 " creates failed%s%s\n",
            r.expected - r.received, r.duplicates, r.send_errors, r.stream_error[0] ? "; " : "", r.stream_error);
  free(r.per_sub);
  return bad ? 1 : 0;
}
