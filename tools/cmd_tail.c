/* filermeta tail: follows a filer's metadata feed and prints each event as one line of protobuf's canonical JSON,
 * with SeaweedFS filer.meta.tail's flags (-filer, -pathPrefix, -pattern, -timeAgo, -untilTimeAgo) and a few of ours.
 * The follow itself (batches, log-file refs, reconnects) is common/follow.c; this file owns the flags, the pattern,
 * the output and the signals. */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "follow.h"
#include "path_pattern.h"
#include "pb_json.h"
#include "tools.h"

#define MAX_DIRECTORIES 64

typedef struct tail {
  const char *pattern; /* NULL: none */
  bool quiet;
  int64_t count; /* stop after this many events; 0: no limit */
  uint64_t printed;
  int failed; /* an output error */
} tail;

/* -pattern (path_pattern.h) */
static bool tail_filter(void *arg, const FilerPb__SubscribeMetadataResponse *ev)
{
  const tail *t = arg;
  return t->pattern == NULL || fm_path_pattern_match_event(t->pattern, ev);
}

static int tail_event(void *arg, const FilerPb__SubscribeMetadataResponse *ev)
{
  tail *t = arg;
  if (!t->quiet) {
    char *line = NULL;
    if (fm_pb_json_string(&ev->base, &line) != 0) {
      t->failed = FM_ENOMEM;
      return 1;
    }
    bool ok = fputs(line, stdout) >= 0 && putchar('\n') != EOF;
    free(line);
    if (!ok) {
      t->failed = FM_EIO; /* e.g. the reader of a pipe went away */
      return 1;
    }
  }
  t->printed++;
  return t->count > 0 && (int64_t)t->printed >= t->count ? 1 : 0;
}

static int tail_progress(void *arg, const fm_follow_progress *p)
{
  (void)arg;
  if (p->kind == FM_FOLLOW_RECONNECT)
    fprintf(stderr, "filermeta tail: %s; reconnecting after ts %" PRId64 "\n", p->why ? p->why : "stream broke",
            p->ts_ns);
  return 0;
}

/* SIGINT / SIGTERM end the follow from a thread of their own (the follow is not stopped from a handler). */
typedef struct signals {
  sigset_t set;
  fm_follow *f;
  pthread_t thread;
} signals;

static void *signal_thread(void *arg)
{
  signals *s = arg;
  int sig = 0;
  if (sigwait(&s->set, &sig) == 0 && sig != SIGUSR2)
    fm_follow_stop(s->f);
  return NULL;
}

/* Splits a comma-separated list in place into at most `cap` non-empty items. */
static int split_list(char *s, const char **out, size_t cap, size_t *n)
{
  *n = 0;
  for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    if (*n == cap)
      return FM_ETOOBIG;
    out[(*n)++] = tok;
  }
  return 0;
}

int fm_cmd_tail(int argc, char **argv)
{
  const char *filer = fm_tools_filer, *prefix = "/", *pattern = "", *since_text = "", *dirs_text = "";
  int64_t time_ago = 0, until_ago = 0, count = 0;
  bool refs = true, batch = true, quiet = false, local = false;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer, "filer hostname:port (gRPC at port+10000), or host:port.grpcPort", 0, 0, false },
    { "pathPrefix", FM_FLAG_STRING, &prefix, "path to a folder or common prefix for the folders or files on filer", 0,
      0, false },
    { "pattern", FM_FLAG_STRING, &pattern,
      "full path or just file name pattern, e.g. \"/home/?opher\", \"*.pdf\" (shell-style: * ? [...])", 0, 0, false },
    { "timeAgo", FM_FLAG_DURATION, &time_ago, "start time before now: \"300ms\", \"1.5h\" or \"2h45m\"", 0, 0, false },
    { "untilTimeAgo", FM_FLAG_DURATION, &until_ago, "read until this time ago, then exit: \"300ms\", \"1.5h\", ...", 0,
      0, false },
    { "since", FM_FLAG_STRING, &since_text,
      "start after this time: RFC 3339 (2026-11-24T10:00:00Z) or ns since the epoch", 0, 0, false },
    { "directories", FM_FLAG_STRING, &dirs_text,
      "comma-separated directories to watch (exact, not their subdirectories)", 0, 0, false },
    { "refs", FM_FLAG_BOOL, &refs, "read persisted history from the log files directly (log-file refs)", 0, 0, false },
    { "batch", FM_FLAG_BOOL, &batch, "accept batched responses", 0, 0, false },
    { "count", FM_FLAG_INT, &count, "exit after this many events (0: no limit)", 0, INT64_MAX, false },
    { "quiet", FM_FLAG_BOOL, &quiet, "print no events, only a summary line at the end", 0, 0, false },
    { "local", FM_FLAG_BOOL, &local, "this filer's own events only (SubscribeLocalMetadata)", 0, 0, false },
  };
  const size_t nflags = sizeof flags / sizeof flags[0];
  char err[FM_ERR_LEN];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta tail [flags]\n\nFollows a filer's metadata changes and prints each event as one line of "
           "JSON\n(protobuf's canonical mapping), e.g.\n"
           "  filermeta tail -timeAgo=1h | jq .eventNotification.newEntry.name\n\nFlags:\n");
    fm_flags_usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta tail: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  int64_t now = fm_now_ns();
  int64_t since = now - time_ago, until = until_ago > 0 ? now - until_ago : 0;
  if (since < 0)
    since = 0;
  if (since_text[0] != '\0') {
    if (time_ago != 0) {
      fprintf(stderr, "filermeta tail: -since and -timeAgo both say where to start; give one\n");
      return 2;
    }
    if (fm_parse_time(since_text, &since) != 0) {
      fprintf(stderr, "filermeta tail: -since \"%s\": not RFC 3339 (2026-11-24T10:00:00Z) or ns since the epoch\n",
              since_text);
      return 2;
    }
  }
  if (until != 0 && until < since) {
    fprintf(stderr, "filermeta tail: -untilTimeAgo ends before the start\n");
    return 2;
  }
  char *dirs_copy = strdup(dirs_text);
  const char *dirs[MAX_DIRECTORIES];
  size_t ndirs = 0;
  if (dirs_copy == NULL || split_list(dirs_copy, dirs, MAX_DIRECTORIES, &ndirs) != 0) {
    fprintf(stderr, "filermeta tail: -directories: %s\n",
            dirs_copy == NULL ? "out of memory" : "more than 64 directories");
    free(dirs_copy);
    return 2;
  }

  tail t = { .pattern = pattern[0] != '\0' ? pattern : NULL, .quiet = quiet, .count = count };
  struct timespec seed;
  clock_gettime(CLOCK_REALTIME, &seed);
  fm_follow_options o = {
    .filer = filer,
    .client_name = "tail",
    /* random, as filer.meta.tail: two tails never replace each other */
    .client_id = (int32_t)(((uint32_t)seed.tv_nsec ^ (uint32_t)getpid() << 16) & 0x7fffffff) | 1,
    .path_prefix = prefix,
    .directories = ndirs > 0 ? dirs : NULL,
    .n_directories = ndirs,
    .since_ns = since,
    .until_ns = until,
    .batching = batch,
    .refs = refs,
    .local = local,
    .on_event = tail_event,
    .on_progress = tail_progress,
    .filter = t.pattern != NULL ? tail_filter : NULL,
    .arg = &t,
  };
  /* blocked before any thread exists (gRPC's included), so that only the signal thread takes them */
  signals sig = { 0 };
  sigemptyset(&sig.set);
  sigaddset(&sig.set, SIGINT);
  sigaddset(&sig.set, SIGTERM);
  sigaddset(&sig.set, SIGUSR2); /* how the signal thread is told to go when the follow ended by itself */
  pthread_sigmask(SIG_BLOCK, &sig.set, NULL);
  signal(SIGPIPE, SIG_IGN); /* a closed pipe is an output error, not a silent death */
  fm_follow *f = NULL;
  rc = fm_follow_new(&o, &f, err, sizeof err);
  free(dirs_copy); /* the options are copied */
  if (rc != 0) {
    fprintf(stderr, "filermeta tail: %s\n", err);
    return 2;
  }
  if (!isatty(STDOUT_FILENO))
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

  sig.f = f;
  bool have_thread = pthread_create(&sig.thread, NULL, signal_thread, &sig) == 0;

  int64_t t0 = fm_mono_ns();
  err[0] = '\0';
  rc = fm_follow_run(f, err, sizeof err);
  if (have_thread) {
    pthread_kill(sig.thread, SIGUSR2);
    pthread_join(sig.thread, NULL);
  }
  fm_follow_stats st;
  fm_follow_stats_get(f, &st);
  int64_t resume = fm_follow_resume_ns(f);
  fm_follow_free(f);
  if (fflush(stdout) != 0 && t.failed == 0)
    t.failed = FM_EIO;
  if (quiet) {
    double secs = (double)(fm_mono_ns() - t0) / 1e9;
    printf("%" PRIu64 " events in %.3f s (%.0f/s), %" PRIu64 " filtered, %" PRIu64 " messages, %" PRIu64
           " refs, %" PRIu64 " reconnects, resume after ts %" PRId64 "\n",
           t.printed, secs, secs > 0 ? (double)t.printed / secs : 0.0, st.filtered, st.messages, st.refs, st.reconnects,
           resume);
    fflush(stdout);
  }
  if (t.failed != 0) {
    fprintf(stderr, "filermeta tail: writing the output: %s\n", fm_strerror(t.failed));
    return 1;
  }
  if (rc != 0) {
    fprintf(stderr, "filermeta tail %s: %s\n", filer, err[0] ? err : fm_strerror(rc));
    return 1;
  }
  return 0;
}
