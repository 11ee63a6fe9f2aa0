/* The subscriber registry: the set of live SubscribeMetadata / SubscribeLocalMetadata streams, with the client-identity
 * rules of PROTOCOL.md §5.2 and what ListMetadataSubscribers, /debug/subscribers and /metrics show of them. The
 * subscription engine registers and unregisters streams (gRPC completion-queue and reader threads) and updates each
 * stream's counters; listings come from any thread. One mutex guards the set; the per-stream counters are atomics
 * written without it. */
#ifndef FM_SUB_REGISTRY_H
#define FM_SUB_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "error.h"
#include "filer.pb-c.h"

typedef struct fm_subreg fm_subreg;
typedef struct fm_subreg_stream fm_subreg_stream;

/* Which RPC a stream serves. The registry does the negation of §5.2 itself: a FM_SUBREG_LOCAL stream is registered,
 * deduplicated, refused and listed under -client_id (as upstream lists it), so the caller always passes the request
 * as it came. -INT32_MIN wraps to INT32_MIN, as in Go. client_id 0 is anonymous in both. */
typedef enum fm_subreg_rpc {
  FM_SUBREG_AGGREGATED, /* SubscribeMetadata */
  FM_SUBREG_LOCAL,      /* SubscribeLocalMetadata */
} fm_subreg_rpc;

/* Called once when a newer stream with the same id supersedes this one; see fm_subreg_register. */
typedef void (*fm_subreg_wake_fn)(void *arg);

/* Creates an empty registry. `filer_address` (host:port of this filer, copied) is what listings give as
 * filer_address. Returns 0, FM_EINVAL or FM_ENOMEM. Caller frees with fm_subreg_free. */
int fm_subreg_new(const char *filer_address, fm_subreg **out);

/* Frees the registry. Every stream must have been unregistered first. NULL is a no-op. */
void fm_subreg_free(fm_subreg *r);

/* ================================================================ registration */

/*
 * Registers a stream for `req` (borrowed for the call: its client_name, path_prefix, path_prefixes, directories,
 * client_id, client_epoch, since_ns and client_supports_* flags are copied) from `peer` (the client's address,
 * borrowed for the call). Display name = client_name "@" peer; connected_at_ns = now.
 *
 * id 0 is anonymous: always registered, never deduplicated. For a non-zero id (negated for FM_SUBREG_LOCAL): if no
 * stream holds the id, or its epoch is lower than req->client_epoch, the new stream takes the id and the older one is
 * superseded: it leaves the set at once (listings no longer show it; its own fm_subreg_unregister will not touch the
 * new one), fm_subreg_stream_superseded(old) turns true, and old's `wake` (if not NULL) is called with its `wake_arg`
 * on this thread, without the registry lock held, so it may take any lock; the engine then ends the old stream with OK.
 * Otherwise (stored epoch >= request epoch) returns FM_EEXIST and puts the upstream text in `err`:
 * "duplicated subscription detected for client <name> id <id>" (aggregated) or
 * "duplicated local subscription detected for client <name> clientId:<negated id>" (local).
 *
 * Returns 0 and *out (caller ends it with fm_subreg_unregister), FM_EEXIST, FM_EINVAL (NULL argument), or FM_ENOMEM;
 * `err` (may be NULL) says why on failure.
 */
int fm_subreg_register(fm_subreg *r, fm_subreg_rpc rpc, const FilerPb__SubscribeMetadataRequest *req, const char *peer,
                       fm_subreg_wake_fn wake, void *wake_arg, fm_subreg_stream **out, char err[FM_ERR_LEN]);

/*
 * The stream's exit: removes it from the set if it is still there (a superseded stream is not, so its replacement
 * stays), waits for a wake call in progress on it to return, and frees it. After this returns its wake is never
 * called again. Must not be called from the stream's own wake callback. NULL is a no-op.
 */
void fm_subreg_unregister(fm_subreg *r, fm_subreg_stream *s);

/* ================================================================ a stream (any thread, no lock) */

/* True once a newer epoch with the same id has replaced this stream: the engine ends it with OK at its next check. */
bool fm_subreg_stream_superseded(const fm_subreg_stream *s);

/* The display name (client_name@peer) and the id as registered (negated for local); borrowed, valid until
 * fm_subreg_unregister. For the engine's log lines. */
const char *fm_subreg_stream_name(const fm_subreg_stream *s);
int32_t fm_subreg_stream_id(const fm_subreg_stream *s);

/* The ts_ns the stream has delivered through (an event's ts, or a heartbeat's delivered-through), so that lag =
 * now - position. Starts at the request's since_ns; 0 means nothing known, and such a stream has no lag. */
void fm_subreg_stream_set_position(fm_subreg_stream *s, int64_t ts_ns);

/* Adds `events` events and `bytes` encoded response bytes to what the stream has sent. */
void fm_subreg_stream_count_sent(fm_subreg_stream *s, uint64_t events, uint64_t bytes);

/* Slots in use in the stream's ring (0..1024), as the reader or sender last saw it. */
void fm_subreg_stream_set_ring_fill(fm_subreg_stream *s, uint32_t slots);

/* ================================================================ listings */

/*
 * ListMetadataSubscribers: the streams whose client_type (the request's client_name) equals one of
 * req->client_types exactly (none given = all; req may be NULL), sorted by display name then path_prefix, anonymous
 * ones included. Each gives client_name = display name, client_type, address = peer, path_prefix, client_id (negated
 * for local), client_epoch, connected_at_ns and filer_address = this filer. Returns 0 and *out (caller frees with
 * fm_subreg_list_free), or FM_ENOMEM.
 */
int fm_subreg_list(fm_subreg *r, const FilerPb__ListMetadataSubscribersRequest *req,
                   FilerPb__ListMetadataSubscribersResponse **out);

/* Frees what fm_subreg_list made. NULL is a no-op. */
void fm_subreg_list_free(FilerPb__ListMetadataSubscribersResponse *resp);

/*
 * /debug/subscribers: a JSON array, in fm_subreg_list order, of one object per stream: name, client_type, peer, rpc
 * ("aggregated" or "local"), id, epoch, path_prefix, path_prefixes, directories, connected_at_ns, position_ts_ns,
 * lag_seconds (now_ns - position, at least 0; null when the position is 0), events_sent, bytes_sent, ring_fill, and
 * the booleans batching, refs, heartbeat. Returns 0 and *out (caller releases with json_object_put), or FM_ENOMEM.
 */
int fm_subreg_debug_json(fm_subreg *r, int64_t now_ns, json_object **out);

/* Upper bounds of the lag histogram's buckets, in seconds: 0.001, 0.01, 0.1, 1, 10, 60, 600, +Inf. */
#define FM_SUBREG_LAG_BUCKETS 8

/* The bounds as Prometheus `le` label values ("0.001" ... "+Inf"), index-aligned with fm_subreg_stats.lag_le. */
extern const char *const fm_subreg_lag_le[FM_SUBREG_LAG_BUCKETS];

typedef struct fm_subreg_stats {
  uint64_t streams;                       /* streams in the set, anonymous ones included */
  uint64_t anonymous;                     /* of which client_id 0 */
  uint64_t lag_le[FM_SUBREG_LAG_BUCKETS]; /* cumulative: streams whose lag <= the bound (Prometheus _bucket) */
  uint64_t lag_count;                     /* streams with a position (_count; == lag_le[last]) */
  double lag_sum_seconds;                 /* sum of their lags (_sum; a double, as ns could overflow) */
} fm_subreg_stats;

/* Counts for /metrics at `now_ns`: streams, and the lag histogram over the streams with a position (lag as in
 * fm_subreg_debug_json). */
void fm_subreg_get_stats(fm_subreg *r, int64_t now_ns, fm_subreg_stats *out);

#endif
