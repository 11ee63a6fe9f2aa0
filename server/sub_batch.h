/* Response framing for subscription streams (PROTOCOL.md §5.5, §5.7): batches built from already-encoded events
 * (the one place we write protobuf framing by hand), and the progress marker and keep-alive messages. The
 * subscription sender calls it on its own thread; every function is reentrant. */
#ifndef FM_SUB_BATCH_H
#define FM_SUB_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Most events in one batched response. */
#define FM_SUB_BATCH_MAX 256

/* Longest frame fm_sub_batch_frame writes: the field-4 tag and a 64-bit varint length. */
#define FM_SUB_BATCH_FRAME_MAX 11

/* Buffer size that holds any message of fm_sub_batch_marker and fm_sub_batch_heartbeat. */
#define FM_SUB_KEEPALIVE_MAX 32

/* One encoded single-event SubscribeMetadataResponse; borrowed. */
typedef struct fm_sub_bytes {
  const uint8_t *data; /* may be NULL when len is 0 */
  size_t len;
} fm_sub_bytes;

/*
 * Writes into hdr the bytes that make the `event_len` bytes following them one `events` entry (field 4, wire type
 * 2) of the enclosing SubscribeMetadataResponse: the tag, then the length as a varint. Returns the bytes written
 * (2..FM_SUB_BATCH_FRAME_MAX). For a sender that gathers slices instead of copying.
 */
size_t fm_sub_batch_frame(uint8_t hdr[FM_SUB_BATCH_FRAME_MAX], size_t event_len);

/* Exact size of the batch fm_sub_batch_encode writes for `events`. */
size_t fm_sub_batch_size(const fm_sub_bytes *events, size_t n);

/*
 * Writes one SubscribeMetadataResponse carrying n events (§5.7): events[0]'s bytes as they are (its fields become
 * the top-level ones), then each other event wrapped by fm_sub_batch_frame. Every input must be a single event
 * (no `events` of its own), so a batch is never nested deeper than one level; n = 1 writes events[0] unchanged.
 * Returns 0 with *written bytes; FM_EINVAL when n is 0 or over FM_SUB_BATCH_MAX; FM_ETOOBIG when `cap` is too small
 * (*written = the size needed, nothing written).
 */
int fm_sub_batch_encode(const fm_sub_bytes *events, size_t n, uint8_t *out, size_t cap, size_t *written);

/* The progress or transition marker {event_notification: {} (present, empty), ts_ns} (§5.3 item 5, §5.7), packed
 * by protobuf-c into out; returns its length. It may travel inside a batch. */
size_t fm_sub_batch_marker(int64_t ts_ns, uint8_t out[FM_SUB_KEEPALIVE_MAX]);

/* The keep-alive {ts_ns, flushed_ts_ns} (§5.5; the flush report is ts_ns 0), packed by protobuf-c into out; returns
 * its length. Never batched. */
size_t fm_sub_batch_heartbeat(int64_t ts_ns, int64_t flushed_ts_ns, uint8_t out[FM_SUB_KEEPALIVE_MAX]);

#endif
