/* Batches of encoded events, and the small messages of a subscription stream. */
#include "sub_batch.h"

#include <string.h>

#include "filer.pb-c.h"

/* SubscribeMetadataResponse.events = 4, wire type 2 (length-delimited): (4 << 3) | 2. */
#define EVENTS_TAG 0x22

size_t fm_sub_batch_frame(uint8_t hdr[FM_SUB_BATCH_FRAME_MAX], size_t event_len)
{
  size_t n = 0;
  uint64_t v = event_len;
  hdr[n++] = EVENTS_TAG;
  while (v >= 0x80) {
    hdr[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  hdr[n++] = (uint8_t)v;
  return n;
}

static size_t varint_size(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t fm_sub_batch_size(const fm_sub_bytes *events, size_t n)
{
  if (n == 0)
    return 0;
  size_t size = events[0].len;
  for (size_t i = 1; i < n; i++)
    size += 1 + varint_size(events[i].len) + events[i].len;
  return size;
}

int fm_sub_batch_encode(const fm_sub_bytes *events, size_t n, uint8_t *out, size_t cap, size_t *written)
{
  *written = 0;
  if (n == 0 || n > FM_SUB_BATCH_MAX)
    return FM_EINVAL;
  size_t size = fm_sub_batch_size(events, n);
  if (size > cap) {
    *written = size;
    return FM_ETOOBIG;
  }
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    if (i > 0)
      at += fm_sub_batch_frame(out + at, events[i].len);
    if (events[i].len > 0)
      memcpy(out + at, events[i].data, events[i].len);
    at += events[i].len;
  }
  *written = at;
  return 0;
}

size_t fm_sub_batch_marker(int64_t ts_ns, uint8_t out[FM_SUB_KEEPALIVE_MAX])
{
  FilerPb__EventNotification empty = FILER_PB__EVENT_NOTIFICATION__INIT;
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  m.event_notification = &empty;
  m.ts_ns = ts_ns;
  return filer_pb__subscribe_metadata_response__pack(&m, out);
}

size_t fm_sub_batch_heartbeat(int64_t ts_ns, int64_t flushed_ts_ns, uint8_t out[FM_SUB_KEEPALIVE_MAX])
{
  FilerPb__SubscribeMetadataResponse m = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  m.ts_ns = ts_ns;
  m.flushed_ts_ns = flushed_ts_ns;
  return filer_pb__subscribe_metadata_response__pack(&m, out);
}
