/*
 * A test driver for the follow library (common/follow.h), used only by test_follow.py: follows a filer with the
 * given options and prints, one line each, flushed at once:
 *   E <ts_ns> <hex of the event, packed again by protobuf-c>
 *   M <ts_ns>                     a marker (with -markers)
 *   R <resume ts_ns> <why>        a reconnect
 * and at the end
 *   END rc=<rc> stopped=<0|1> status=<grpc code> resume=<ts_ns> reconnects=<n> refs=<n> err=<message>
 * Exits 0 when fm_follow_run returned 0, else 1 (2 for bad flags). SIGTERM stops the follow through fm_follow_stop
 * from a signal-watching thread, as an application would.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "follow.h"

typedef struct probe {
  int64_t count; /* stop after this many events (0: never) */
  int64_t seen;
  bool markers;
  const char *reject; /* filter hook: refuse events whose new or old entry has this name */
} probe;

static int on_event(void *arg, const FilerPb__SubscribeMetadataResponse *ev)
{
  probe *p = arg;
  size_t n = filer_pb__subscribe_metadata_response__get_packed_size(ev);
  uint8_t *buf = malloc(n > 0 ? n : 1);
  if (buf == NULL)
    return 1;
  filer_pb__subscribe_metadata_response__pack(ev, buf);
  printf("E %" PRId64 " ", ev->ts_ns);
  for (size_t i = 0; i < n; i++)
    printf("%02x", buf[i]);
  printf("\n");
  fflush(stdout);
  free(buf);
  p->seen++;
  return p->count > 0 && p->seen >= p->count;
}

static int on_progress(void *arg, const fm_follow_progress *pr)
{
  probe *p = arg;
  if (pr->kind == FM_FOLLOW_RECONNECT)
    printf("R %" PRId64 " %s\n", pr->ts_ns, pr->why != NULL ? pr->why : "");
  else if (pr->kind == FM_FOLLOW_MARKER && p->markers)
    printf("M %" PRId64 "\n", pr->ts_ns);
  fflush(stdout);
  return 0;
}

static bool filter(void *arg, const FilerPb__SubscribeMetadataResponse *ev)
{
  const probe *p = arg;
  const FilerPb__EventNotification *en = ev->event_notification;
  const FilerPb__Entry *e = en->new_entry != NULL ? en->new_entry : en->old_entry;
  return strcmp(e->name, p->reject) != 0;
}

typedef struct watcher {
  sigset_t set;
  fm_follow *f;
} watcher;

static void *watch(void *arg)
{
  watcher *w = arg;
  int sig = 0;
  sigwait(&w->set, &sig);
  if (sig == SIGTERM)
    fm_follow_stop(w->f);
  return NULL;
}

int main(int argc, char **argv)
{
  const char *filer = "", *mode = "events", *prefix = "", *reject = "", *dir = "";
  int64_t since = 0, until = 0, count = 0, client_id = 0, epoch = 0, retries = 0, signature = 0;
  bool markers = false, local = false;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filer address", 0, 0, false },
    { "mode", FM_FLAG_STRING, &mode, "events, batch or refs", 0, 0, false },
    { "prefix", FM_FLAG_STRING, &prefix, "path_prefix", 0, 0, false },
    { "dir", FM_FLAG_STRING, &dir, "one directories element", 0, 0, false },
    { "since", FM_FLAG_INT, &since, "since_ns", 0, 0, false },
    { "until", FM_FLAG_INT, &until, "until_ns", 0, 0, false },
    { "count", FM_FLAG_INT, &count, "stop after this many events", 0, 0, false },
    { "clientId", FM_FLAG_INT, &client_id, "client_id", INT32_MIN, INT32_MAX, false },
    { "epoch", FM_FLAG_INT, &epoch, "client_epoch", INT32_MIN, INT32_MAX, false },
    { "signature", FM_FLAG_INT, &signature, "signature", INT32_MIN, INT32_MAX, false },
    { "retries", FM_FLAG_INT, &retries, "max_retries", 0, 1000, false },
    { "reject", FM_FLAG_STRING, &reject, "filter hook: drop events of this entry name", 0, 0, false },
    { "markers", FM_FLAG_BOOL, &markers, "print markers", 0, 0, false },
    { "local", FM_FLAG_BOOL, &local, "SubscribeLocalMetadata", 0, 0, false },
  };
  char err[FM_ERR_LEN] = "";
  int first = 0;
  if (fm_flags_parse(flags, sizeof flags / sizeof flags[0], argc, argv, &first, err, sizeof err) != 0 || first < argc) {
    fprintf(stderr, "follow_probe: %s\n", err[0] ? err : "unexpected argument");
    return 2;
  }
  /* SIGTERM goes to the watcher thread only */
  watcher w;
  sigemptyset(&w.set);
  sigaddset(&w.set, SIGTERM);
  sigaddset(&w.set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &w.set, NULL);

  probe p = { .count = count, .markers = markers, .reject = reject };
  const char *dirs[1] = { dir };
  fm_follow_options o = {
    .filer = filer,
    .client_name = "follow_probe",
    .client_id = (int32_t)client_id,
    .client_epoch = (int32_t)epoch,
    .path_prefix = prefix,
    .directories = dirs,
    .n_directories = dir[0] != '\0' ? 1 : 0,
    .since_ns = since,
    .until_ns = until,
    .signature = (int32_t)signature,
    .batching = strcmp(mode, "events") != 0,
    .refs = strcmp(mode, "refs") == 0,
    .heartbeat = true,
    .local = local,
    .on_event = on_event,
    .on_progress = on_progress,
    .filter = reject[0] != '\0' ? filter : NULL,
    .arg = &p,
    .backoff_initial_ms = 50,
    .backoff_max_ms = 1000,
    .max_retries = (int)retries,
    .refs_threads = 3,
    .refs_prefetch = 2,
  };
  fm_follow *f = NULL;
  if (fm_follow_new(&o, &f, err, sizeof err) != 0) {
    printf("END rc=%d stopped=0 status=0 resume=0 reconnects=0 refs=0 err=%s\n", FM_EINVAL, err);
    return 2;
  }
  w.f = f;
  pthread_t th;
  pthread_create(&th, NULL, watch, &w);
  int rc = fm_follow_run(f, err, sizeof err);
  fm_follow_stats st;
  fm_follow_stats_get(f, &st);
  printf("END rc=%d stopped=%d status=%d resume=%" PRId64 " reconnects=%" PRIu64 " refs=%" PRIu64 " err=%s\n", rc,
         fm_follow_stopped(f) ? 1 : 0, (int)fm_follow_status(f), fm_follow_resume_ns(f), st.reconnects, st.refs,
         rc != 0 ? err : "");
  fflush(stdout);
  pthread_kill(th, SIGUSR1); /* wakes the watcher's sigwait, which then returns without stopping anything */
  pthread_join(th, NULL);
  fm_follow_free(f);
  return rc == 0 ? 0 : 1;
}
