/* The per-stream event filter of a metadata subscription (PROTOCOL.md §5.3): which encoded events a stream gets,
 * the bytes it sends for them (with this filer's signature appended where missing), and the count behind the
 * progress marker. The subscription engine embeds one per stream and calls it from that stream's reader thread. */
#ifndef FM_SUB_FILTER_H
#define FM_SUB_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "error.h"
#include "event_filter.h"

struct FilerPb__SubscribeMetadataRequest;

/* The SystemLogDir of upstream: events whose source path starts with these bytes are never sent. */
#define FM_SUB_SYSTEM_LOG_PREFIX FM_EVENT_SYSTEM_LOG_PREFIX

/* MaxUnsyncedEvents of upstream: a progress marker is due when more events than this were examined since the last
 * delivery or marker. */
#define FM_SUB_MAX_UNSYNCED 1000

/* What fm_sub_filter_check decided for one event. */
typedef enum fm_sub_verdict {
  FM_SUB_DELIVER = 0,     /* send it: the result's bytes */
  FM_SUB_SKIP_SIGNATURE,  /* the subscriber's own signature is in the event's signatures (loop prevention) */
  FM_SUB_SKIP_SYSTEM_LOG, /* the source path is under FM_SUB_SYSTEM_LOG_PREFIX */
  FM_SUB_SKIP_PATH,       /* neither the source nor the target matches the prefixes and directories */
  FM_SUB_SKIP_NOT_EVENT,  /* no event_notification: nothing to deliver (our filer never logs such a record) */
  FM_SUB_BEFORE_SINCE,    /* ts_ns <= since_ns: not part of the stream, not counted as examined */
  FM_SUB_AFTER_UNTIL      /* until_ns > 0 and ts_ns > until_ns: the stream is over, not counted */
} fm_sub_verdict;

typedef struct fm_sub_result {
  fm_sub_verdict verdict;
  int64_t ts_ns; /* the event's ts_ns */
  /* FM_SUB_DELIVER only: the bytes to send. The event passed in (borrowed from the caller) when it already carries
   * this filer's signature; otherwise a re-encoding with the signature appended, owned by the filter and valid until
   * the next check or destroy (`reencoded` is then true). */
  const uint8_t *bytes;
  size_t len;
  bool reencoded;
} fm_sub_result;

/* Embedded in the stream; init/destroy pair. The fields are private. */
typedef struct fm_sub_filter {
  fm_event_filter paths; /* path_prefix, path_prefixes, directories */
  int32_t signature;     /* the subscriber's: events carrying it are skipped; 0 = none */
  int32_t own_signature; /* this filer's: appended to delivered events that lack it */
  int64_t since_ns;
  int64_t until_ns;
  uint64_t unsynced;        /* events examined since the last delivery or marker */
  int64_t last_examined_ts; /* ts_ns of the last event examined */
  fm_arena arena;           /* the decoded event and its paths; reset per check */
  uint8_t *out;             /* re-encoded event */
  size_t out_cap;
} fm_sub_filter;

/*
 * Copies from `req` (borrowed for the call) what filtering needs: path_prefix, path_prefixes, directories,
 * signature, since_ns, until_ns; `own_signature` is this filer's signature. Validates the request (§5.1, ours): a
 * non-empty path_prefix, and every path_prefixes and directories element (empty ones included), must start with
 * '/'; since_ns and until_ns must not be negative; a non-zero until_ns must not be below since_ns. Returns 0;
 * FM_EINVAL with a message naming the field in err (the RPC answers INVALID_ARGUMENT with it); FM_ENOMEM. On error
 * nothing is left to destroy.
 */
int fm_sub_filter_init(fm_sub_filter *f, const struct FilerPb__SubscribeMetadataRequest *req, int32_t own_signature,
                       char *err, size_t errlen);

/* Frees what the filter owns, including the bytes of the last result. */
void fm_sub_filter_destroy(fm_sub_filter *f);

/*
 * Decides one event: `event` is an encoded SubscribeMetadataResponse (a log record's data, or a MetaLogBuffer
 * entry), borrowed for the call. Time bounds are tested first (they need no path, and an event past until_ns ends
 * the stream whatever its path); then, in the order of §5.3: signature loop prevention, system-log exclusion, path
 * match. Since all must pass, the delivered set is that of §5.3. Every event that passes the time bounds counts
 * towards the progress marker (fm_sub_filter_marker_due); a delivery resets the count.
 *
 * Returns 0 with *res filled; FM_EDECODE when the bytes do not decode (err says so; the filter stays usable, the
 * event is not counted); FM_ENOMEM when decoding or re-encoding could not allocate.
 */
int fm_sub_filter_check(fm_sub_filter *f, const uint8_t *event, size_t len, fm_sub_result *res, char *err,
                        size_t errlen);

/* True when more than FM_SUB_MAX_UNSYNCED events were examined since the last delivery or marker: the engine sends
 * fm_sub_batch_marker(*ts_ns) (ts of the last event examined) and then calls fm_sub_filter_marker_sent. */
bool fm_sub_filter_marker_due(const fm_sub_filter *f, int64_t *ts_ns);

/* Resets the count after a progress marker was sent. */
void fm_sub_filter_marker_sent(fm_sub_filter *f);

#endif
