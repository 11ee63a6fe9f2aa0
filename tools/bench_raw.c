/*
 * filermeta bench raw: the raw-stream ceiling every catch-up figure is compared with.
 *
 * A private gRPC server in this process (common/rpc_server.c on 127.0.0.1, port 0, one completion-queue thread)
 * answers SubscribeMetadata by streaming n synthetic events that were encoded into memory beforehand: no storage, no
 * filter, no ring, one send in flight as the real sender keeps. The client is `bench catchup`'s: fm_rpc_client_stream
 * decoding every message with protobuf-c and counting the events (fm_bench_catchup_response). Modes:
 *   one    one event per message, no write flags;
 *   hint   one event per message, GRPC_WRITE_BUFFER_HINT on every message but the last. rpc_server.c drops the hint
 *          from a call's first message, which carries the initial metadata: gRPC core 1.51's chttp2 transport does
 *          not start a write for initial metadata batched with a hinted message (it only marks the stream writable,
 *          chttp2_transport.cc perform_stream_op_locked), while the batch completes only once those headers are
 *          written, so with one send in flight the stream would wait for some unrelated write, often forever;
 *   batch  FM_SUB_BATCH_MAX events per message, encoded per send as the real sender does (server/sub_batch.c).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "rpc_client.h"
#include "rpc_methods.h"
#include "rpc_server.h"
#include "sub_batch.h"
#include "tools.h"
#include "tools_internal.h"

typedef enum raw_mode { MODE_ONE, MODE_HINT, MODE_BATCH } raw_mode;

static const char *const mode_names[] = { "one", "hint", "batch" };

/* The events, encoded back to back: event i is data[off[i] .. off[i+1]). */
typedef struct raw_events {
  uint8_t *data;
  size_t *off; /* n + 1 entries */
  size_t n;
} raw_events;

/* The server side of one run; written by the completion-queue thread, read by the main thread after the stream
 * ended (the end of the call orders the two). */
typedef struct raw_server {
  const raw_events *ev;
  raw_mode mode;
  size_t next;          /* the next event to send */
  uint64_t messages;    /* messages sent */
  uint64_t bytes;       /* message bytes sent */
  int64_t cpu_start_ns; /* the completion-queue thread's CPU clock at the request and after the last send */
  int64_t cpu_end_ns;
  bool busy; /* a call is being served (one at a time) */
} raw_server;

static int64_t thread_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t process_cpu_ns(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* ================================================================ events */

/* Encodes n events of about `size` bytes each (a create of a file with inline content, ts 1 ns apart). */
static int make_events(size_t n, size_t size, raw_events *out, char *err, size_t errlen)
{
  static const uint8_t filler[4096];
  memset(out, 0, sizeof *out);
  out->off = malloc((n + 1) * sizeof *out->off);
  out->data = malloc(n * (size + 64));
  if (out->off == NULL || out->data == NULL) {
    snprintf(err, errlen, "out of memory for %zu events of %zu bytes", n, size);
    return FM_ENOMEM;
  }
  int64_t base = fm_now_ns();
  FilerPb__FuseAttributes attr = FILER_PB__FUSE_ATTRIBUTES__INIT;
  attr.file_mode = 0644;
  attr.mtime = attr.crtime = base / 1000000000;
  attr.uid = attr.gid = 1000;
  attr.mime = (char *)(uintptr_t) "application/octet-stream";
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.attributes = &attr;
  FilerPb__EventNotification note = FILER_PB__EVENT_NOTIFICATION__INIT;
  note.new_entry = &e;
  FilerPb__SubscribeMetadataResponse r = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  r.event_notification = &note;
  char dir[32], name[32];
  r.directory = dir;
  note.new_parent_path = dir;
  e.name = name;
  e.content.data = (uint8_t *)(uintptr_t)filler;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    snprintf(dir, sizeof dir, "/bench/raw/d%03zu", i % 1000);
    snprintf(name, sizeof name, "f%010zu", i);
    r.ts_ns = base + (int64_t)i;
    attr.file_size = 0;
    e.content.len = 0;
    size_t bare = filer_pb__subscribe_metadata_response__get_packed_size(&r);
    /* the content fills the event up to `size` (its own tag and length bytes included) */
    size_t fill = size > bare + 4 ? size - bare - 4 : 0;
    if (fill > sizeof filler)
      fill = sizeof filler;
    e.content.len = fill;
    attr.file_size = fill;
    out->off[i] = at;
    at += filer_pb__subscribe_metadata_response__pack(&r, out->data + at);
  }
  out->off[n] = at;
  out->n = n;
  return 0;
}

static void free_events(raw_events *ev)
{
  free(ev->data);
  free(ev->off);
}

/* ================================================================ server */

static void free_block(void *p)
{
  free(p);
}

/* Sends the next message, or ends the stream after the last. The call's completion-queue thread (or the request
 * callback, on the same thread). */
static void send_next(fm_rpc_call *call, raw_server *rs)
{
  const raw_events *ev = rs->ev;
  if (rs->next == ev->n) {
    rs->cpu_end_ns = thread_cpu_ns();
    fm_rpc_call_finish(call, GRPC_STATUS_OK, "");
    return;
  }
  size_t i = rs->next;
  grpc_slice slice;
  size_t count = 1;
  uint32_t flags = 0;
  if (rs->mode == MODE_BATCH) {
    fm_sub_bytes parts[FM_SUB_BATCH_MAX];
    count = ev->n - i < FM_SUB_BATCH_MAX ? ev->n - i : FM_SUB_BATCH_MAX;
    for (size_t k = 0; k < count; k++)
      parts[k] = (fm_sub_bytes){ ev->data + ev->off[i + k], ev->off[i + k + 1] - ev->off[i + k] };
    size_t size = fm_sub_batch_size(parts, count), written = 0;
    uint8_t *buf = malloc(size);
    if (buf == NULL || fm_sub_batch_encode(parts, count, buf, size, &written) != 0) {
      free(buf);
      fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot encode a batch");
      return;
    }
    slice = grpc_slice_new(buf, written, free_block);
  } else {
    /* the events outlive the server: no copy, no free */
    slice = grpc_slice_from_static_buffer(ev->data + ev->off[i], ev->off[i + 1] - ev->off[i]);
    if (rs->mode == MODE_HINT && i + 1 < ev->n)
      flags = GRPC_WRITE_BUFFER_HINT;
  }
  rs->next += count;
  rs->messages++;
  rs->bytes += GRPC_SLICE_LENGTH(slice);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  if (fm_rpc_call_send_buffer(call, bb, flags) != 0)
    rs->cpu_end_ns = thread_cpu_ns(); /* the call is over (the client went away) */
}

static void raw_on_request(fm_rpc_call *call, const ProtobufCMessage *req)
{
  (void)req;
  raw_server *rs = fm_rpc_call_ctx(call);
  if (rs->busy) {
    fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "one stream at a time");
    return;
  }
  rs->busy = true;
  fm_rpc_call_set_user(call, rs);
  rs->cpu_start_ns = thread_cpu_ns();
  send_next(call, rs);
}

static void raw_on_sent(fm_rpc_call *call, bool ok)
{
  raw_server *rs = fm_rpc_call_user(call);
  if (rs == NULL)
    return;
  if (ok)
    send_next(call, rs);
  else
    rs->cpu_end_ns = thread_cpu_ns();
}

/* ================================================================ one run */

typedef struct raw_result {
  fm_bench_catchup got;
  uint64_t messages, bytes;
  double seconds;
  int64_t server_cpu_ns, client_cpu_ns, process_cpu_ns;
} raw_result;

static int run_mode(const raw_events *ev, raw_mode mode, int64_t timeout_ms, raw_result *res, char *err, size_t errlen)
{
  memset(res, 0, sizeof *res);
  raw_server rs = { .ev = ev, .mode = mode };
  fm_rpc_method method = {
    .path = FM_BENCH_SUBSCRIBE,
    .kind = FM_RPC_SERVER_STREAMING,
    .request = &filer_pb__subscribe_metadata_request__descriptor,
    .on_request = raw_on_request,
    .on_sent = raw_on_sent,
    .ctx = &rs,
  };
  fm_rpc_methods *methods = NULL;
  fm_rpc_server *srv = NULL;
  fm_rpc_client *c = NULL;
  int rc = fm_rpc_methods_new(&methods);
  if (rc == 0)
    rc = fm_rpc_methods_add(methods, &method);
  if (rc != 0) {
    snprintf(err, errlen, "cannot build the method table: %s", fm_strerror(rc));
    goto out;
  }
  fm_rpc_server_config cfg = { .addr = "127.0.0.1:0", .threads = 1 };
  rc = fm_rpc_server_new(&cfg, methods, &srv, err, errlen);
  if (rc != 0)
    goto out;
  rc = fm_rpc_server_start(srv);
  if (rc != 0) {
    snprintf(err, errlen, "cannot start the server: %s", fm_strerror(rc));
    goto out;
  }
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", fm_rpc_server_port(srv));
  rc = fm_rpc_client_new(target, &c);
  if (rc != 0) {
    snprintf(err, errlen, "cannot create a client: %s", fm_strerror(rc));
    goto out;
  }
  FilerPb__SubscribeMetadataRequest req = FILER_PB__SUBSCRIBE_METADATA_REQUEST__INIT;
  req.client_name = (char *)(uintptr_t) "bench-raw";
  req.path_prefix = (char *)(uintptr_t) "/";
  grpc_status_code status = GRPC_STATUS_OK;
  int64_t cpu0 = thread_cpu_ns(), all0 = process_cpu_ns(), t0 = fm_mono_ns();
  rc = fm_rpc_client_stream(c, FM_BENCH_SUBSCRIBE, &req.base, &filer_pb__subscribe_metadata_response__descriptor,
                            timeout_ms, fm_bench_catchup_response, &res->got, &status, err, errlen);
  res->seconds = (double)(fm_mono_ns() - t0) / 1e9;
  res->client_cpu_ns = thread_cpu_ns() - cpu0;
  res->process_cpu_ns = process_cpu_ns() - all0;
  if (rc != 0 && status == GRPC_STATUS_DEADLINE_EXCEEDED)
    snprintf(err, errlen,
             "the stream stalled: %" PRIu64 " of %zu events received when the %" PRId64 " ms deadline "
             "passed",
             res->got.events, ev->n, timeout_ms);
out:
  fm_rpc_client_free(c);
  if (srv != NULL) {
    fm_rpc_server_shutdown(srv, 1000);
    fm_rpc_server_free(srv); /* the completion-queue thread is joined: rs can be read */
  }
  fm_rpc_methods_free(methods);
  res->messages = rs.messages;
  res->bytes = rs.bytes;
  res->server_cpu_ns = rs.cpu_end_ns > rs.cpu_start_ns ? rs.cpu_end_ns - rs.cpu_start_ns : 0;
  return rc;
}

/* ================================================================ the command */

int fm_bench_cmd_raw(int argc, char **argv)
{
  int64_t n = 1000000, size = 300, timeout = 120 * INT64_C(1000000000);
  const char *mode = "all";
  bool json = false;
  fm_flag flags[] = {
    { "n", FM_FLAG_INT, &n, "events to stream", 1, 100000000, false },
    { "size", FM_FLAG_INT, &size, "bytes per encoded event (about)", 100, 4096, false },
    { "mode", FM_FLAG_STRING, &mode, "one | hint | batch | all (the three, one after the other)", 0, 0, false },
    { "timeout", FM_FLAG_DURATION, &timeout, "deadline of each stream (a stalled stream ends there)", 1000000000,
      3600 * INT64_C(1000000000), false },
    { "json", FM_FLAG_BOOL, &json, "print one JSON object per mode", 0, 0, false },
  };
  const size_t nflags = sizeof flags / sizeof flags[0];
  char err[FM_ERR_LEN];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta bench raw [flags]\n\nThe raw-stream ceiling: an in-process server streams pre-encoded\n"
           "synthetic events from memory to `bench catchup`'s client.\n\nFlags:\n");
    fm_flags_usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta bench raw: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  bool run[3] = { false, false, false };
  if (strcmp(mode, "all") == 0) {
    run[0] = run[1] = run[2] = true;
  } else {
    for (int m = 0; m < 3; m++)
      if (strcmp(mode, mode_names[m]) == 0)
        run[m] = true;
    if (!run[0] && !run[1] && !run[2]) {
      fprintf(stderr, "filermeta bench raw: -mode \"%s\" is not one, hint, batch or all\n", mode);
      return 2;
    }
  }
  raw_events ev;
  if (make_events((size_t)n, (size_t)size, &ev, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta bench raw: %s\n", err);
    free_events(&ev);
    return 1;
  }
  if (!json)
    printf("bench raw: %zu events of %.0f bytes (average) from memory, one send in flight\n", ev.n,
           (double)ev.off[ev.n] / (double)ev.n);
  int exit_code = 0;
  for (int m = 0; m < 3; m++) {
    if (!run[m])
      continue;
    raw_result r;
    rc = run_mode(&ev, (raw_mode)m, timeout / 1000000, &r, err, sizeof err);
    bool complete = rc == 0 && r.got.events == ev.n && !r.got.out_of_order;
    double secs = r.seconds > 0 ? r.seconds : 1e-9;
    double rate = (double)r.got.events / secs, mbs = (double)r.bytes / secs / 1e6;
    double other = (double)(r.process_cpu_ns - r.client_cpu_ns - r.server_cpu_ns) / 1e9;
    if (json)
      printf("{\"bench\":\"raw\",\"mode\":\"%s\",\"events\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
             ",\"seconds\":%.3f,\"events_per_sec\":%.0f,\"mb_per_sec\":%.1f,\"server_cpu_s\":%.3f,"
             "\"client_cpu_s\":%.3f,\"other_threads_cpu_s\":%.3f,\"complete\":%s}\n",
             mode_names[m], r.got.events, r.messages, r.bytes, r.seconds, rate, mbs, (double)r.server_cpu_ns / 1e9,
             (double)r.client_cpu_ns / 1e9, other > 0 ? other : 0.0, complete ? "true" : "false");
    else
      printf("  %-5s %10" PRIu64 " events in %8" PRIu64 " messages, %.3f s: %9.0f events/s, %7.1f MB/s; cpu: server "
             "%.2f s, client %.2f s, other threads %.2f s\n",
             mode_names[m], r.got.events, r.messages, r.seconds, rate, mbs, (double)r.server_cpu_ns / 1e9,
             (double)r.client_cpu_ns / 1e9, other > 0 ? other : 0.0);
    if (!complete) {
      if (rc != 0)
        fprintf(stderr, "filermeta bench raw: mode %s: %s\n", mode_names[m], err);
      else
        fprintf(stderr, "filermeta bench raw: mode %s: %" PRIu64 " of %zu events%s\n", mode_names[m], r.got.events,
                ev.n, r.got.out_of_order ? ", out of order" : "");
      exit_code = 1;
    }
  }
  free_events(&ev);
  return exit_code;
}
