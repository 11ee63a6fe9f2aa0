/*
 * filermetad: flags, start-up, signals and the ordered shutdown.
 *
 * SIGINT and SIGTERM are blocked in every thread (they are blocked before any
 * thread starts, and threads inherit the mask) and taken by sigwait() on the
 * main thread, which then runs the shutdown in one fixed order.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk_store.h"
#include "data_dir.h"
#include "descriptor_index.h"
#include "descriptor_set.h"
#include "entries_service.h"
#include "error.h"
#include "filer.h"
#include "filer_service.h"
#include "flags.h"
#include "health_service.h"
#include "http_side.h"
#include "log.h"
#include "log_buffer.h"
#include "log_flusher.h"
#include "net_addr.h"
#include "reflection_service.h"
#include "rpc_server.h"
#include "store.h"
#include "sub_registry.h"
#include "sub_service.h"
#include "volume_service.h"

typedef struct options {
  int64_t port;
  int64_t grpc_port;
  const char *ip;
  const char *ip_bind;
  const char *dir;
  const char *port_file;
  int64_t max_mb;
  int64_t volume_size_mb;
  int64_t grpc_max_recv_mb;
  int64_t grpc_threads;
  int64_t grace_ms;
  int64_t verbosity;
  bool version;
  bool store_sync;
  int64_t logbuf_mb;
  int64_t flush_interval_sec;
  int64_t retention_days;
  int64_t log_chunk_kb;
  int64_t batch_behind_ns;
} options;

/* jemalloc's options, read at its first allocation (a plain global, ignored where jemalloc is not linked, as in
 * sanitizer builds; MALLOC_CONF in the environment still overrides it): a background thread hands freed pages back
 * after about a second instead of holding them for ten, which keeps the resident size close to what is in use
 * (measured: the peak RSS of 400k creates into a 64 MiB MetaLogBuffer dropped by ~10 MiB). */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

/* The filer's event hook: the MetaLogBuffer takes the event; the flusher counts what waits for it. */
typedef struct event_sink {
  fm_logbuf *logbuf;
  fm_log_flusher *flusher; /* NULL until started */
} event_sink;

static void on_event(void *arg, int64_t ts_ns, const uint8_t *event, size_t len)
{
  event_sink *sink = arg;
  fm_logbuf_event_hook(sink->logbuf, ts_ns, event, len);
  if (sink->flusher != NULL)
    fm_log_flusher_note(sink->flusher, len);
}

static void usage(FILE *out, const fm_flag *flags, size_t n)
{
  fprintf(out, "Usage: filermetad [flags]\n\n"
               "filermetad is a SeaweedFS-compatible filer metadata service: gRPC on -port.grpc,\n"
               "HTTP on -port, data in -dir.\n\n"
               "Flags:\n");
  fm_flags_usage(out, flags, n);
}

/* Writes "grpc=<port>\nhttp=<port>\n" to a temporary file renamed into place,
 * so that a reader never sees half of it. */
static int write_port_file(const char *path, int grpc_port, int http_port, char *err, size_t errlen)
{
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
    snprintf(err, errlen, "port file path too long");
    return FM_EINVAL;
  }
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    snprintf(err, errlen, "cannot write port file %s: %s", path, strerror(errno));
    return FM_EIO;
  }
  fprintf(f, "grpc=%d\nhttp=%d\n", grpc_port, http_port);
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write port file %s: %s", path, strerror(errno));
    unlink(tmp);
    return FM_EIO;
  }
  return 0;
}

int main(int argc, char **argv)
{
  options o = {
    .port = 8888,
    .grpc_port = 18888,
    .ip = "127.0.0.1",
    .ip_bind = "",
    .dir = "./data",
    .port_file = "",
    .max_mb = 4,
    .volume_size_mb = 1024,
    .grpc_max_recv_mb = 4,
    .grpc_threads = 0,
    .grace_ms = 2000,
    .verbosity = FM_LOG_INFO,
    .logbuf_mb = 64,
    .batch_behind_ns = FM_SUB_BATCH_BEHIND_DEFAULT,
    .flush_interval_sec = 60,
    .log_chunk_kb = 4096,
  };
  fm_flag flags[] = {
    { "port", FM_FLAG_INT, &o.port, "HTTP listen port (0 picks a free port)", 0, 65535, false },
    { "port.grpc", FM_FLAG_INT, &o.grpc_port, "gRPC listen port; 0 picks a free port; unset means -port + 10000", 0,
      65535, false },
    { "ip", FM_FLAG_STRING, &o.ip, "address this filer is reached at; also the bind address unless -ip.bind is set", 0,
      0, false },
    { "ip.bind", FM_FLAG_STRING, &o.ip_bind, "address to listen on (0.0.0.0 for all interfaces); default -ip", 0, 0,
      false },
    { "dir", FM_FLAG_STRING, &o.dir, "data directory, created if missing", 0, 0, false },
    { "port-file", FM_FLAG_STRING, &o.port_file, "after binding, write grpc=<port> and http=<port> lines here", 0, 0,
      false },
    { "maxMB", FM_FLAG_INT, &o.max_mb, "split files larger than this many MiB into chunks", 1, 1024, false },
    { "volumeSizeLimitMB", FM_FLAG_INT, &o.volume_size_mb,
      "a chunk volume takes no new chunks once its file reaches this many MiB", 1, 1024 * 1024, false },
    { "grpc.maxRecvMB", FM_FLAG_INT, &o.grpc_max_recv_mb, "largest gRPC request message accepted, in MiB", 1, 2047,
      false },
    { "grpc.threads", FM_FLAG_INT, &o.grpc_threads, "gRPC completion-queue threads (0 = one per core)", 0, 256, false },
    { "shutdown.graceMs", FM_FLAG_INT, &o.grace_ms,
      "on SIGTERM, how long unary calls in progress may finish before they are cancelled", 0, 600000, false },
    { "store.sync", FM_FLAG_BOOL, &o.store_sync,
      "fsync every group of writes before acknowledging it (safe against power loss, slower)", 0, 0, false },
    { "metaLogBuffer.sizeMB", FM_FLAG_INT, &o.logbuf_mb, "memory for recent metadata events, in MiB", 1, 1 << 20,
      false },
    { "metaLog.flushIntervalSec", FM_FLAG_INT, &o.flush_interval_sec,
      "write buffered metadata events to the per-minute log files at least this often", 1, 86400, false },
    { "metaLog.retentionDays", FM_FLAG_INT, &o.retention_days,
      "remove metadata log files of days that ended this many days ago (0 keeps them forever)", 0, 100000, false },
    { "metaLog.batchBehind", FM_FLAG_DURATION, &o.batch_behind_ns,
      "subscribers that asked for batches get up to 256 events per message while this far behind", 0, 0, false },
    { "metaLog.chunkKB", FM_FLAG_INT, &o.log_chunk_kb, "largest chunk of a metadata log file, in KiB", 1, 1 << 20,
      false },
    { "v", FM_FLAG_INT, &o.verbosity, "log level: 0 errors, 1 warnings, 2 info, 3 debug", 0, 3, false },
    { "version", FM_FLAG_BOOL, &o.version, "print the version and exit", 0, 0, false },
  };
  const size_t nflags = sizeof flags / sizeof flags[0];
  char err[FM_ERR_LEN];
  int first = 0;
  int rc = fm_flags_parse(flags, nflags, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    usage(stdout, flags, nflags);
    return 0;
  }
  if (rc != 0) {
    fprintf(stderr, "filermetad: %s (see filermetad -h)\n", err);
    return 2;
  }
  if (first < argc) {
    fprintf(stderr, "filermetad: unexpected argument \"%s\" (see filermetad -h)\n", argv[first]);
    return 2;
  }
  if (o.version) {
    printf("%s\n", fm_filer_version());
    return 0;
  }
  if (!fm_flags_find(flags, nflags, "port.grpc")->set)
    o.grpc_port = o.port == 0 ? 0 : o.port + 10000;
  if (o.grpc_port > 65535) {
    fprintf(stderr, "filermetad: -port %lld leaves no room for gRPC at -port + 10000; set -port.grpc\n",
            (long long)o.port);
    return 2;
  }
  const char *bind_ip = o.ip_bind[0] != '\0' ? o.ip_bind : o.ip;
  fm_log_set_level((fm_log_level)o.verbosity);

  /* Before any thread exists: signals go to sigwait() below, never to a handler. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  int exit_code = 1;
  fm_data_dir *dir = NULL;
  fm_store *store = NULL;
  fm_filer *engine = NULL;
  fm_chunk_store *chunks = NULL;
  fm_logbuf *logbuf = NULL;
  fm_log_flusher *flusher = NULL;
  event_sink sink = { 0 };
  fm_descriptor_index *index = NULL;
  fm_rpc_methods *methods = NULL;
  fm_rpc_server *server = NULL;
  fm_http_side *http = NULL;
  fm_filer_service filer = { 0 };
  fm_reflection_service reflection = { 0 };
  fm_volume_service volumes = { 0 };
  fm_sub_service subs = { 0 };
  fm_subreg *registry = NULL;
  fm_sub_threads readers;
  fm_sub_threads_init(&readers);
  fm_sub_live *live = NULL;

  if (fm_data_dir_open(o.dir, &dir, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  if (fm_descriptor_index_new(fm_descriptor_set, fm_descriptor_set_len, &index) != 0) {
    fprintf(stderr, "filermetad: the compiled-in descriptor set does not decode\n");
    goto out;
  }
  fm_store_options sopt = { .sync = o.store_sync };
  if (fm_store_open(o.dir, &sopt, &store, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  char chunk_dir[PATH_MAX];
  fm_chunk_store_options copt = { .sync = o.store_sync };
  if (snprintf(chunk_dir, sizeof chunk_dir, "%s/volumes", o.dir) >= (int)sizeof chunk_dir) {
    fprintf(stderr, "filermetad: -dir too long\n");
    goto out;
  }
  if (fm_chunk_store_open(chunk_dir, (uint64_t)o.volume_size_mb << 20, &copt, &chunks, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  /* the signature lives in the store; a first-version data dir kept it in a file */
  if (fm_store_load_signature(store, fm_data_dir_signature(dir), &filer.signature, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  if (fm_data_dir_signature(dir) != 0) {
    if (fm_data_dir_signature(dir) != filer.signature)
      fm_log_warn("ignoring %s/%s: the store already has signature %d", o.dir, FM_SIGNATURE_FILE, (int)filer.signature);
    fm_data_dir_forget_signature(dir);
  }
  fm_logbuf_options lopt = { .size_bytes = (size_t)o.logbuf_mb << 20 };
  if (fm_logbuf_new(&lopt, &logbuf) != 0) {
    fprintf(stderr, "filermetad: cannot allocate the metadata log buffer\n");
    goto out;
  }
  size_t recovered = 0;
  if (fm_log_flusher_recover(store, logbuf, &recovered, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  if (recovered > 0)
    fm_log_info("recovered %zu metadata events not yet in log files", recovered);
  if (fm_filer_new(store, filer.signature, &engine, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  sink.logbuf = logbuf;
  fm_filer_set_event_hook(engine, on_event, &sink);
  fm_log_flusher_config fcfg = {
    .filer = engine,
    .store = store,
    .chunks = chunks,
    .logbuf = logbuf,
    .filer_id = fm_log_flusher_new_filer_id(),
    .interval_ns = o.flush_interval_sec * 1000000000,
    .chunk_bytes = (size_t)o.log_chunk_kb << 10,
    .retention_days = (int)o.retention_days,
  };
  if (fm_log_flusher_start(&fcfg, &flusher, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  sink.flusher = flusher;
  filer.filer = engine;
  filer.max_mb = (uint32_t)o.max_mb;
  volumes.chunks = chunks;
  if (fm_rpc_methods_new(&methods) != 0 || fm_filer_service_register(methods, &filer) != 0 ||
      fm_entries_service_register(methods, &filer) != 0 || fm_health_service_register(methods) != 0 ||
      fm_volume_service_register(methods, &volumes) != 0 || fm_sub_service_register(methods, &subs) != 0) {
    fprintf(stderr, "filermetad: cannot build the method table\n");
    goto out;
  }
  reflection.index = index;
  reflection.methods = methods;
  if (fm_reflection_service_register(methods, &reflection) != 0) {
    fprintf(stderr, "filermetad: cannot build the method table\n");
    goto out;
  }

  char grpc_addr[300];
  if (fm_net_join(bind_ip, (int)o.grpc_port, grpc_addr, sizeof grpc_addr) != 0) {
    fprintf(stderr, "filermetad: -ip.bind too long\n");
    goto out;
  }
  fm_rpc_server_config cfg = {
    .addr = grpc_addr,
    .threads = (int)o.grpc_threads,
    .max_recv_bytes =
        (int)(o.grpc_max_recv_mb * 1024 * 1024 > INT32_MAX ? INT32_MAX : o.grpc_max_recv_mb * 1024 * 1024),
  };
  if (fm_rpc_server_new(&cfg, methods, &server, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  fm_http_side_config hcfg = {
    .ip = bind_ip,
    .port = (int)o.port,
    .chunks = chunks,
    .logbuf = logbuf,
    .flusher = flusher,
    .rpc = server,
    .max_upload_bytes = (uint64_t)o.max_mb << 20,
  };
  if (fm_http_side_start(&hcfg, &http, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  int grpc_port = fm_rpc_server_port(server);
  int http_port = fm_http_side_port(http);
  if (grpc_port == http_port + 10000)
    fm_net_join(o.ip, http_port, filer.filer_address, sizeof filer.filer_address);
  else {
    char hp[280];
    fm_net_join(o.ip, http_port, hp, sizeof hp);
    snprintf(filer.filer_address, sizeof filer.filer_address, "%s.%d", hp, grpc_port);
  }
  fm_net_join(o.ip, http_port, volumes.url, sizeof volumes.url);
  volumes.grpc_port = (uint32_t)grpc_port;
  if (fm_sub_live_new(logbuf, 0, &live) != 0) {
    fprintf(stderr, "filermetad: cannot start the live subscription dispatcher\n");
    goto out;
  }
  if (fm_subreg_new(filer.filer_address, &registry) != 0) {
    fprintf(stderr, "filermetad: cannot allocate the subscriber registry\n");
    goto out;
  }
  subs.stream = (fm_sub_stream_config){
    .store = store,
    .chunks = chunks,
    .logbuf = logbuf,
    .filer = engine,
    .signature = filer.signature,
    .batch_behind_ns = o.batch_behind_ns,
    .heartbeat_ns = FM_SUB_HEARTBEAT_DEFAULT,
    .flush_report_ns = FM_SUB_FLUSH_REPORT_DEFAULT,
    .registry = registry,
    .threads = &readers,
    .live = live,
  };
  subs.flusher = flusher;
  fm_http_side_set_subscribers(http, registry);
  if (fm_rpc_server_start(server) != 0) {
    fprintf(stderr, "filermetad: cannot start the gRPC server threads\n");
    goto out;
  }
  if (o.port_file[0] != '\0' && write_port_file(o.port_file, grpc_port, http_port, err, sizeof err) != 0) {
    fprintf(stderr, "filermetad: %s\n", err);
    goto out;
  }
  fm_log_info("filermetad %s serving gRPC on %s:%d and HTTP on %s:%d, data in %s, signature %d, metadata log files "
              "HH-MM.%08x",
              fm_filer_version(), bind_ip, grpc_port, bind_ip, http_port, fm_data_dir_path(dir), (int)filer.signature,
              fcfg.filer_id);

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  fm_log_info("received %s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  fm_http_side_set_stopping(http);
  fm_rpc_server_shutdown(server, o.grace_ms);
  exit_code = 0;

out:
  fm_http_side_free(http);
  /* Stop calls first, then let the filer finish (and answer) what it has
   * queued while the completion queues still run, then release the queues. */
  fm_rpc_server_shutdown(server, 0);
  /* the final flush goes through the filer, so it comes before the filer's end */
  fm_log_flusher_stop(flusher);
  if (logbuf != NULL)
    fm_logbuf_shutdown(logbuf);
  /* streams are ending (their calls finished, the buffer shut down): the dispatcher ends the live ones, the readers
   * the others; both use the filer and the stores */
  fm_sub_live_stop(live);
  fm_sub_threads_wait(&readers);
  fm_filer_free(engine);
  fm_rpc_server_free(server);   /* waits for every call */
  fm_log_flusher_free(flusher); /* late calls may still have asked it for the retained ts */
  fm_subreg_free(registry);
  fm_sub_live_free(live);
  fm_sub_threads_destroy(&readers);
  fm_store_free(store);
  fm_chunk_store_free(chunks);
  fm_logbuf_free(logbuf);
  fm_rpc_methods_free(methods);
  fm_descriptor_index_free(index);
  fm_data_dir_free(dir);
  if (exit_code == 0) {
    if (o.port_file[0] != '\0')
      unlink(o.port_file);
    fm_log_info("stopped");
  }
  return exit_code;
}
