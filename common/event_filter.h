/* The path part of a subscription's filter (PROTOCOL.md §5.3 items 2 and 3): which events a request's path_prefix,
 * path_prefixes and directories select, the system log never. The server's per-stream filter (server/sub_filter.c)
 * and the refs-mode follow client (common/follow_refs.c), which filters log-file records itself, embed one each;
 * a filter is read-only after init, so any number of threads may check against it. */
#ifndef FM_EVENT_FILTER_H
#define FM_EVENT_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

struct FilerPb__SubscribeMetadataResponse;

/* The SystemLogDir of upstream: events whose source path starts with these bytes are never sent. */
#define FM_EVENT_SYSTEM_LOG_PREFIX "/topics/.system/log"

/* A byte string the filter owns: a prefix or a directory of the request. */
typedef struct fm_event_str {
  char *s;
  size_t len;
} fm_event_str;

/* Embedded in its owner; init/destroy pair. The fields are private. */
typedef struct fm_event_filter {
  fm_event_str path_prefix; /* "" matches every event (the quirk of §5.3) */
  fm_event_str *prefixes;   /* path_prefixes: raw byte prefixes */
  size_t n_prefixes;
  fm_event_str *directories; /* exact parent directories */
  size_t n_directories;
} fm_event_filter;

typedef enum fm_event_verdict {
  FM_EVENT_MATCH = 0,  /* the source or the target matches */
  FM_EVENT_SYSTEM_LOG, /* the source path is under FM_EVENT_SYSTEM_LOG_PREFIX */
  FM_EVENT_NO_MATCH    /* neither the source nor the target matches the prefixes and directories */
} fm_event_verdict;

/*
 * Copies the request's path fields (borrowed for the call; NULL path_prefix means ""). Validates them (§5.1, ours):
 * a non-empty path_prefix, and every path_prefixes and directories element (empty ones included), must start with
 * '/'. Returns 0; FM_EINVAL with a message naming the field ("path_prefixes[1] \"x\" does not start with '/'");
 * FM_ENOMEM. On error nothing is left to destroy.
 */
int fm_event_filter_init(fm_event_filter *f, const char *path_prefix, char *const *path_prefixes, size_t n_prefixes,
                         char *const *directories, size_t n_directories, char *err, size_t errlen);

void fm_event_filter_destroy(fm_event_filter *f);

/*
 * Decides one decoded event that has an event_notification (borrowed for the call): system-log exclusion on the
 * source path, then the path match of the source pair, or of the target pair when the event has a new entry.
 * Joined paths are built in `scratch` (the caller resets it). Returns 0 with *out, or FM_ENOMEM when `scratch`
 * cannot allocate.
 */
int fm_event_filter_check(const fm_event_filter *f, const struct FilerPb__SubscribeMetadataResponse *m,
                          fm_arena *scratch, fm_event_verdict *out);

#endif
