/* The refs-mode half of the follow client (PROTOCOL.md §5.7): given the log-file refs a subscription sent, finds each
 * volume's HTTP location (LookupVolume, cached), fetches the chunks with libcurl and decodes and filters their records
 * (as the server would) on a few threads of its own, chunks ahead of delivery, and merges them across filer ids by
 * ts_ns. Owned by one follow (common/follow.c); fm_follow_refs_read runs on its thread, fm_follow_refs_cancel may
 * come from any thread. */
#ifndef FM_FOLLOW_REFS_H
#define FM_FOLLOW_REFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_filter.h"
#include "rpc_client.h"

struct FilerPb__LogFileChunkRef;
struct FilerPb__SubscribeMetadataResponse;

typedef struct fm_follow_refs fm_follow_refs;

typedef struct fm_follow_refs_config {
  const fm_event_filter *paths; /* the request's path filter; required */
  int32_t signature;            /* the request's: records carrying it are skipped (0: none) */
  int threads;                  /* fetch and decode threads, >= 1 */
  int prefetch;                 /* chunks fetched ahead of delivery, >= 1 (up to threads + 1 of them decoded) */
} fm_follow_refs_config;

/* Counts of one fm_follow_refs_read. */
typedef struct fm_follow_refs_counts {
  uint64_t records;   /* decoded */
  uint64_t delivered; /* handed to the callback */
  uint64_t filtered;  /* in the time range but refused by signature, system-log or path rules */
  uint64_t bytes;     /* content bytes fetched */
} fm_follow_refs_counts;

/* Called per record that passes, in merged ts order; `ev` is borrowed for the call. Non-zero stops the read. */
typedef int (*fm_follow_refs_fn)(void *arg, const struct FilerPb__SubscribeMetadataResponse *ev);

/* `cfg` is copied; what it points to is borrowed for the reader's life. Returns 0 or FM_ENOMEM. Caller frees with
 * fm_follow_refs_free. */
int fm_follow_refs_new(const fm_follow_refs_config *cfg, fm_follow_refs **out);
void fm_follow_refs_free(fm_follow_refs *r);

/* Records where a volume lives ("host:port" of its HTTP side), as LookupVolume would have said. Returns 0 or
 * FM_ENOMEM. */
int fm_follow_refs_set_location(fm_follow_refs *r, uint32_t volume_id, const char *url);

/* Forgets every cached location (after a failure that may mean they moved). */
void fm_follow_refs_forget_locations(fm_follow_refs *r);

/*
 * Reads the files `refs` (borrowed for the call; in the order the server sent them: each filer's files in time
 * order, every ref its own byte stream of whole records) and hands fn the records with after_ns < ts_ns <= upto_ns
 * (upto_ns 0: no bound) that pass the filter, merged by ts_ns across filer ids (equal ts_ns in filer-id order). A
 * torn last record ends its file. Volumes not in the cache are looked up with one LookupVolume over `rpc` (NULL: they
 * must have been set). Returns 0; FM_ECANCELED when fn or fm_follow_refs_cancel stopped it;
 * FM_EUNAVAILABLE (a fetch could not connect, or LookupVolume was UNAVAILABLE) and FM_ENOTFOUND (a volume or chunk
 * is gone) which a retry may cure; FM_EDECODE (corrupt content), FM_EIO, FM_ENOMEM otherwise. `err` names the file
 * and chunk.
 */
int fm_follow_refs_read(fm_follow_refs *r, fm_rpc_client *rpc, struct FilerPb__LogFileChunkRef *const *refs, size_t n,
                        int64_t after_ns, int64_t upto_ns, fm_follow_refs_fn fn, void *arg,
                        fm_follow_refs_counts *counts, char *err, size_t errlen);

/* Makes a read in progress (and every later one) return FM_ECANCELED soon: fetches are aborted. Any thread. */
void fm_follow_refs_cancel(fm_follow_refs *r);

#endif
