/* A set of SubscribeMetadata streams driven asynchronously by a few completion-queue threads over a chosen number of
 * connections: the subscribers of `bench live` and `bench fanout`. Opened and freed by one thread; the event callback
 * runs on the queue threads, never concurrently for one stream. */
#ifndef FM_BENCH_SUBS_H
#define FM_BENCH_SUBS_H

#include <stddef.h>
#include <stdint.h>

#include "filer.pb-c.h"

typedef struct fm_bench_subs fm_bench_subs;

/* One leaf event of a received response (a batch is handed over event by event; markers and keep-alives too), with
 * the CLOCK_MONOTONIC time its message came off the completion queue. `ev` is borrowed for the call. */
typedef void (*fm_bench_subs_fn)(void *arg, int sub, const FilerPb__SubscribeMetadataResponse *ev, int64_t recv_ns);

typedef struct fm_bench_subs_config {
  const char *target;      /* "host:grpcport" */
  int subs;                /* streams */
  int conns;               /* connections (each its own channel and TCP connection); stream i uses i % conns */
  int threads;             /* completion-queue threads; stream i is polled by thread i % threads */
  const char *client_name; /* request fields; borrowed until fm_bench_subs_open returns */
  const char *prefix;
  int64_t since_ns;
  fm_bench_subs_fn fn; /* may be NULL */
  void *arg;
} fm_bench_subs_config;

/* Starts every stream (they connect in the background). Returns 0 and the set in *out (caller frees with
 * fm_bench_subs_free), or FM_ENOMEM / FM_EIO with `err` filled. */
int fm_bench_subs_open(const fm_bench_subs_config *cfg, fm_bench_subs **out, char *err, size_t errlen);

/* Streams that have ended (the server sent a status) so far; when one ended with a status other than OK, the first
 * such is described in `why` (left empty otherwise). Any thread. */
int fm_bench_subs_ended(fm_bench_subs *s, char *why, size_t whylen);

/* CPU time the completion-queue threads used so far, in ns. */
int64_t fm_bench_subs_cpu_ns(fm_bench_subs *s);

/* Cancels every stream, waits until gRPC has given every call back, joins the threads and frees the set. NULL is a
 * no-op. */
void fm_bench_subs_free(fm_bench_subs *s);

#endif
