/* The per-stream event filter: request validation, the decision for one encoded event, and the re-encoding that
 * appends this filer's signature. */
#include "sub_filter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filer.pb-c.h"

/* The first arena block: a typical event (a few hundred bytes encoded) decodes into well under this. */
#define FILTER_ARENA_MIN ((size_t)8 << 10)
/* The most the arena keeps between events; a bigger event's memory is returned after its check. */
#define FILTER_ARENA_KEEP ((size_t)1 << 20)

/* ================================================================ request */

int fm_sub_filter_init(fm_sub_filter *f, const FilerPb__SubscribeMetadataRequest *req, int32_t own_signature, char *err,
                       size_t errlen)
{
  int rc;
  *f = (fm_sub_filter){ 0 };
  if (req->since_ns < 0) {
    snprintf(err, errlen, "since_ns %" PRId64 " is negative", req->since_ns);
    return FM_EINVAL;
  }
  if (req->until_ns < 0) {
    snprintf(err, errlen, "until_ns %" PRId64 " is negative", req->until_ns);
    return FM_EINVAL;
  }
  if (req->until_ns > 0 && req->until_ns < req->since_ns) {
    snprintf(err, errlen, "until_ns %" PRId64 " is before since_ns %" PRId64, req->until_ns, req->since_ns);
    return FM_EINVAL;
  }
  rc = fm_event_filter_init(&f->paths, req->path_prefix, req->path_prefixes, req->n_path_prefixes, req->directories,
                            req->n_directories, err, errlen);
  if (rc != 0)
    return rc;
  f->signature = req->signature;
  f->own_signature = own_signature;
  f->since_ns = req->since_ns;
  f->until_ns = req->until_ns;
  fm_arena_init(&f->arena, FILTER_ARENA_MIN, FILTER_ARENA_KEEP);
  return 0;
}

void fm_sub_filter_destroy(fm_sub_filter *f)
{
  fm_event_filter_destroy(&f->paths);
  fm_arena_destroy(&f->arena);
  free(f->out);
  *f = (fm_sub_filter){ 0 };
}

/* ================================================================ events */

/* Packs `m` with this filer's signature appended to its notification into f->out. */
static int reencode(fm_sub_filter *f, FilerPb__SubscribeMetadataResponse *m, fm_sub_result *res, char *err,
                    size_t errlen)
{
  FilerPb__EventNotification *en = m->event_notification;
  int32_t *sigs = fm_arena_alloc(&f->arena, (en->n_signatures + 1) * sizeof *sigs);
  if (sigs == NULL)
    goto oom;
  if (en->n_signatures > 0)
    memcpy(sigs, en->signatures, en->n_signatures * sizeof *sigs);
  sigs[en->n_signatures] = f->own_signature;
  en->signatures = sigs;
  en->n_signatures++;
  size_t size = filer_pb__subscribe_metadata_response__get_packed_size(m);
  if (size > f->out_cap) {
    uint8_t *p = realloc(f->out, size);
    if (p == NULL)
      goto oom;
    f->out = p;
    f->out_cap = size;
  }
  res->len = filer_pb__subscribe_metadata_response__pack(m, f->out);
  res->bytes = f->out;
  res->reencoded = true;
  return 0;
oom:
  snprintf(err, errlen, "out of memory appending the filer signature to an event");
  return FM_ENOMEM;
}

/* The decision of fm_sub_filter_check, without the progress count. */
static int decide(fm_sub_filter *f, const uint8_t *event, size_t len, fm_sub_result *res, char *err, size_t errlen)
{
  fm_arena_reset(&f->arena);
  ProtobufCAllocator alloc = fm_arena_allocator(&f->arena);
  FilerPb__SubscribeMetadataResponse *m = filer_pb__subscribe_metadata_response__unpack(&alloc, len, event);
  if (m == NULL) {
    if (fm_arena_failed(&f->arena)) {
      snprintf(err, errlen, "out of memory decoding an event of %zu bytes", len);
      return FM_ENOMEM;
    }
    snprintf(err, errlen, "event of %zu bytes does not decode as SubscribeMetadataResponse", len);
    return FM_EDECODE;
  }
  res->ts_ns = m->ts_ns;

  /* §5.3 item 4 (§5.4), first: see the header */
  if (m->ts_ns <= f->since_ns) {
    res->verdict = FM_SUB_BEFORE_SINCE;
    return 0;
  }
  if (f->until_ns > 0 && m->ts_ns > f->until_ns) {
    res->verdict = FM_SUB_AFTER_UNTIL;
    return 0;
  }
  FilerPb__EventNotification *en = m->event_notification;
  if (en == NULL) {
    res->verdict = FM_SUB_SKIP_NOT_EVENT;
    return 0;
  }

  /* 1. signature loop prevention */
  bool has_own = false;
  for (size_t i = 0; i < en->n_signatures; i++) {
    if (f->signature != 0 && en->signatures[i] == f->signature) {
      res->verdict = FM_SUB_SKIP_SIGNATURE;
      return 0;
    }
    if (en->signatures[i] == f->own_signature)
      has_own = true;
  }

  /* 2. system log exclusion, on the source path; 3. path match: the source pair, or the target pair of an event
   * with a new entry */
  fm_event_verdict v;
  if (fm_event_filter_check(&f->paths, m, &f->arena, &v) != 0)
    goto oom;
  if (v != FM_EVENT_MATCH) {
    res->verdict = v == FM_EVENT_SYSTEM_LOG ? FM_SUB_SKIP_SYSTEM_LOG : FM_SUB_SKIP_PATH;
    return 0;
  }

  res->verdict = FM_SUB_DELIVER;
  if (has_own) {
    res->bytes = event;
    res->len = len;
    return 0;
  }
  return reencode(f, m, res, err, errlen);
oom:
  snprintf(err, errlen, "out of memory filtering an event");
  return FM_ENOMEM;
}

int fm_sub_filter_check(fm_sub_filter *f, const uint8_t *event, size_t len, fm_sub_result *res, char *err,
                        size_t errlen)
{
  *res = (fm_sub_result){ 0 };
  int rc = decide(f, event, len, res, err, errlen);
  if (rc != 0) {
    *res = (fm_sub_result){ 0 };
    return rc;
  }
  switch (res->verdict) {
  case FM_SUB_BEFORE_SINCE:
  case FM_SUB_AFTER_UNTIL:
    break;
  case FM_SUB_DELIVER:
    f->unsynced = 0;
    f->last_examined_ts = res->ts_ns;
    break;
  case FM_SUB_SKIP_SIGNATURE:
  case FM_SUB_SKIP_SYSTEM_LOG:
  case FM_SUB_SKIP_PATH:
  case FM_SUB_SKIP_NOT_EVENT:
    f->unsynced++;
    f->last_examined_ts = res->ts_ns;
    break;
  }
  return 0;
}

bool fm_sub_filter_marker_due(const fm_sub_filter *f, int64_t *ts_ns)
{
  if (f->unsynced <= FM_SUB_MAX_UNSYNCED)
    return false;
  *ts_ns = f->last_examined_ts;
  return true;
}

void fm_sub_filter_marker_sent(fm_sub_filter *f)
{
  f->unsynced = 0;
}
