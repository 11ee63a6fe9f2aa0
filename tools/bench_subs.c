/*
 * Subscriber streams for the benches (bench_subs.h).
 *
 * Each stream is one call with three batches in flight at most: the start (metadata, request, half-close, initial
 * metadata), the status, and one RECV_MESSAGE re-armed after every message. Tags are small structs embedded in the
 * stream whose first field says which batch completed. A stream is quiet once all its batches have completed; the
 * set is freed only when every stream is quiet, so gRPC never writes into freed memory.
 */
#include "bench_subs.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "clock.h"
#include "error.h"
#include "rpc_client.h"
#include "rpc_codec.h"
#include "rpc_core.h"
#include "tools_internal.h"

typedef enum tag_kind { TAG_START, TAG_RECV, TAG_STATUS } tag_kind;

typedef struct sub sub;

typedef struct sub_tag {
  tag_kind kind; /* first field: the completion says which batch this was */
  sub *s;
} sub_tag;

struct sub {
  sub_tag t_start, t_recv, t_status;
  fm_bench_subs *set;
  int id;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md_initial, md_trailing;
  grpc_status_code status;
  grpc_slice details;
  atomic_int pending; /* batches started and not yet completed */
  fm_arena arena;
};

struct fm_bench_subs {
  fm_bench_subs_fn fn;
  void *arg;
  int nsubs, nconns, nthreads;
  sub *subs;
  grpc_channel **chans;
  grpc_completion_queue **cqs;
  pthread_t *threads;
  clockid_t *clocks;
  int started_threads;
  bool grpc_up;        /* fm_rpc_core_init was called */
  atomic_bool closing; /* statuses after this are our own cancellations */

  pthread_mutex_t mu; /* guards what follows */
  pthread_cond_t cv;
  int quiet; /* streams with no batch pending */
  int ended; /* statuses received */
  char why[FM_ERR_LEN];
};

/* ================================================================ completions */

/* One batch of stream s completed. */
static void batches_done(sub *s, int n)
{
  if (n == 0 || atomic_fetch_sub(&s->pending, n) != n)
    return;
  fm_bench_subs *set = s->set;
  pthread_mutex_lock(&set->mu);
  set->quiet++;
  pthread_cond_broadcast(&set->cv);
  pthread_mutex_unlock(&set->mu);
}

static void batch_done(sub *s)
{
  batches_done(s, 1);
}

static bool start_recv(sub *s)
{
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->recv;
  return grpc_call_start_batch(s->call, &op, 1, &s->t_recv, NULL) == GRPC_CALL_OK;
}

static void on_recv(sub *s, bool ok)
{
  int64_t now = fm_mono_ns();
  grpc_byte_buffer *bb = s->recv;
  s->recv = NULL;
  if (!ok || bb == NULL) {
    if (bb != NULL)
      grpc_byte_buffer_destroy(bb);
    batch_done(s); /* the stream ended; its status says how */
    return;
  }
  ProtobufCAllocator alloc = fm_arena_allocator(&s->arena);
  ProtobufCMessage *m = NULL;
  if (fm_rpc_decode(bb, &filer_pb__subscribe_metadata_response__descriptor, &alloc, &m) == 0) {
    const FilerPb__SubscribeMetadataResponse *r = (const FilerPb__SubscribeMetadataResponse *)m;
    if (s->set->fn != NULL) {
      s->set->fn(s->set->arg, s->id, r, now);
      for (size_t i = 0; i < r->n_events; i++)
        s->set->fn(s->set->arg, s->id, r->events[i], now);
    }
  } else {
    pthread_mutex_lock(&s->set->mu);
    if (s->set->why[0] == '\0')
      snprintf(s->set->why, sizeof s->set->why, "stream %d: a response does not decode", s->id);
    pthread_mutex_unlock(&s->set->mu);
  }
  fm_arena_reset(&s->arena);
  grpc_byte_buffer_destroy(bb);
  if (!start_recv(s))
    batch_done(s);
}

static void on_status(sub *s)
{
  fm_bench_subs *set = s->set;
  pthread_mutex_lock(&set->mu);
  set->ended++;
  if (s->status != GRPC_STATUS_OK && !atomic_load(&set->closing) && set->why[0] == '\0')
    snprintf(set->why, sizeof set->why, "stream %d: %s: %.*s", s->id, fm_rpc_status_name(s->status),
             (int)GRPC_SLICE_LENGTH(s->details), (const char *)GRPC_SLICE_START_PTR(s->details));
  pthread_cond_broadcast(&set->cv);
  pthread_mutex_unlock(&set->mu);
  batch_done(s);
}

static void *cq_thread(void *arg)
{
  grpc_completion_queue *cq = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      return NULL;
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    sub_tag *t = ev.tag;
    switch (t->kind) {
    case TAG_START:
      grpc_byte_buffer_destroy(t->s->send);
      t->s->send = NULL;
      batch_done(t->s);
      break;
    case TAG_RECV:
      on_recv(t->s, ev.success != 0);
      break;
    case TAG_STATUS:
      on_status(t->s);
      break;
    }
  }
}

/* ================================================================ set */

static grpc_channel *new_channel(const char *target)
{
  static char k_max_recv[] = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  /* without it, channels with equal arguments share one subchannel, that is one TCP connection */
  static char k_local_pool[] = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
  grpc_arg args[2];
  memset(args, 0, sizeof args);
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = k_max_recv;
  args[0].value.integer = -1;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = k_local_pool;
  args[1].value.integer = 1;
  grpc_channel_args ca = { 2, args };
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  return ch;
}

/* Starts stream s: its call, the start batch, the status batch and the first receive. On failure the batches that
 * did start complete through the queue (the call is cancelled) and the others are counted done at once. */
static int start_stream(fm_bench_subs *set, sub *s, const FilerPb__SubscribeMetadataRequest *req)
{
  atomic_store(&s->pending, 3); /* counted before any batch can complete on the queue thread */
  s->call = grpc_channel_create_call(set->chans[s->id % set->nconns], NULL, GRPC_PROPAGATE_DEFAULTS,
                                     set->cqs[s->id % set->nthreads], grpc_slice_from_static_string(FM_BENCH_SUBSCRIBE),
                                     NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
  s->send = fm_rpc_encode(&req->base);
  int started = 0;
  if (s->call != NULL && s->send != NULL) {
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_initial;
    grpc_op st;
    memset(&st, 0, sizeof st);
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.status = &s->status;
    st.data.recv_status_on_client.status_details = &s->details;
    st.data.recv_status_on_client.trailing_metadata = &s->md_trailing;
    if (grpc_call_start_batch(s->call, ops, 4, &s->t_start, NULL) == GRPC_CALL_OK)
      started++;
    if (grpc_call_start_batch(s->call, &st, 1, &s->t_status, NULL) == GRPC_CALL_OK)
      started++;
    if (start_recv(s))
      started++;
  }
  if (started == 3)
    return 0;
  if (s->call != NULL)
    grpc_call_cancel(s->call, NULL);
  batches_done(s, 3 - started);
  return s->call == NULL || s->send == NULL ? FM_ENOMEM : FM_EIO;
}

int fm_bench_subs_open(const fm_bench_subs_config *cfg, fm_bench_subs **out, char *err, size_t errlen)
{
  *out = NULL;
  if (cfg->subs < 1 || cfg->conns < 1 || cfg->threads < 1) {
    snprintf(err, errlen, "subscribers, connections and threads must be at least 1");
    return FM_EINVAL;
  }
  fm_bench_subs *set = calloc(1, sizeof *set);
  if (set == NULL)
    goto nomem;
  pthread_mutex_init(&set->mu, NULL);
  pthread_cond_init(&set->cv, NULL);
  atomic_init(&set->closing, false);
  set->fn = cfg->fn;
  set->arg = cfg->arg;
  set->nsubs = cfg->subs;
  set->nconns = cfg->conns < cfg->subs ? cfg->conns : cfg->subs;
  set->nthreads = cfg->threads < cfg->subs ? cfg->threads : cfg->subs;
  set->subs = calloc((size_t)set->nsubs, sizeof *set->subs);
  set->chans = calloc((size_t)set->nconns, sizeof *set->chans);
  set->cqs = calloc((size_t)set->nthreads, sizeof *set->cqs);
  set->threads = calloc((size_t)set->nthreads, sizeof *set->threads);
  set->clocks = calloc((size_t)set->nthreads, sizeof *set->clocks);
  if (set->subs == NULL || set->chans == NULL || set->cqs == NULL || set->threads == NULL || set->clocks == NULL) {
    fm_bench_subs_free(set);
    goto nomem;
  }
  fm_rpc_core_init();
  set->grpc_up = true;
  for (int i = 0; i < set->nconns; i++)
    set->chans[i] = new_channel(cfg->target);
  for (int i = 0; i < set->nthreads; i++)
    set->cqs[i] = grpc_completion_queue_create_for_next(NULL);
  for (int i = 0; i < set->nthreads; i++) {
    if (pthread_create(&set->threads[i], NULL, cq_thread, set->cqs[i]) != 0) {
      snprintf(err, errlen, "cannot start a completion-queue thread");
      fm_bench_subs_free(set);
      return FM_EIO;
    }
    set->started_threads++;
    pthread_getcpuclockid(set->threads[i], &set->clocks[i]);
  }
  FilerPb__SubscribeMetadataRequest req = FILER_PB__SUBSCRIBE_METADATA_REQUEST__INIT;
  req.client_name = (char *)(uintptr_t)cfg->client_name;
  req.path_prefix = (char *)(uintptr_t)cfg->prefix;
  req.since_ns = cfg->since_ns;
  for (int i = 0; i < set->nsubs; i++) {
    sub *s = &set->subs[i];
    s->t_start = (sub_tag){ TAG_START, s };
    s->t_recv = (sub_tag){ TAG_RECV, s };
    s->t_status = (sub_tag){ TAG_STATUS, s };
    s->set = set;
    s->id = i;
    s->details = grpc_empty_slice();
    grpc_metadata_array_init(&s->md_initial);
    grpc_metadata_array_init(&s->md_trailing);
    fm_arena_init(&s->arena, 0, 0);
  }
  for (int i = 0; i < set->nsubs; i++) {
    int rc = start_stream(set, &set->subs[i], &req);
    if (rc != 0) {
      snprintf(err, errlen, "cannot start subscriber stream %d: %s", i, fm_strerror(rc));
      /* the streams after it never started: nothing of theirs is pending */
      pthread_mutex_lock(&set->mu);
      set->quiet += set->nsubs - i - 1;
      pthread_mutex_unlock(&set->mu);
      fm_bench_subs_free(set);
      return rc;
    }
  }
  *out = set;
  return 0;
nomem:
  snprintf(err, errlen, "out of memory");
  return FM_ENOMEM;
}

int fm_bench_subs_ended(fm_bench_subs *s, char *why, size_t whylen)
{
  pthread_mutex_lock(&s->mu);
  int n = s->ended;
  snprintf(why, whylen, "%s", s->why);
  pthread_mutex_unlock(&s->mu);
  return n;
}

int64_t fm_bench_subs_cpu_ns(fm_bench_subs *s)
{
  int64_t sum = 0;
  for (int i = 0; i < s->started_threads; i++) {
    struct timespec ts;
    if (clock_gettime(s->clocks[i], &ts) == 0)
      sum += (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  }
  return sum;
}

void fm_bench_subs_free(fm_bench_subs *set)
{
  if (set == NULL)
    return;
  if (set->grpc_up) {
    atomic_store(&set->closing, true);
    for (int i = 0; i < set->nsubs; i++)
      if (set->subs[i].call != NULL)
        grpc_call_cancel(set->subs[i].call, NULL);
    if (set->started_threads == set->nthreads) {
      pthread_mutex_lock(&set->mu);
      while (set->quiet < set->nsubs)
        pthread_cond_wait(&set->cv, &set->mu);
      pthread_mutex_unlock(&set->mu);
    }
    for (int i = 0; i < set->nthreads; i++)
      if (set->cqs[i] != NULL)
        grpc_completion_queue_shutdown(set->cqs[i]);
    for (int i = 0; i < set->started_threads; i++)
      pthread_join(set->threads[i], NULL);
    for (int i = 0; i < set->nsubs; i++) {
      sub *s = &set->subs[i];
      if (s->call != NULL)
        grpc_call_unref(s->call);
      if (s->send != NULL)
        grpc_byte_buffer_destroy(s->send);
      if (s->recv != NULL)
        grpc_byte_buffer_destroy(s->recv);
      if (s->set != NULL) { /* initialised */
        grpc_slice_unref(s->details);
        grpc_metadata_array_destroy(&s->md_initial);
        grpc_metadata_array_destroy(&s->md_trailing);
        fm_arena_destroy(&s->arena);
      }
    }
    for (int i = 0; i < set->nthreads; i++)
      if (set->cqs[i] != NULL)
        grpc_completion_queue_destroy(set->cqs[i]);
    for (int i = 0; i < set->nconns; i++)
      if (set->chans[i] != NULL)
        grpc_channel_destroy(set->chans[i]);
    fm_rpc_core_shutdown();
  }
  free(set->subs);
  free(set->chans);
  free(set->cqs);
  free(set->threads);
  free(set->clocks);
  pthread_mutex_destroy(&set->mu);
  pthread_cond_destroy(&set->cv);
  free(set);
}
