/* The reader of one subscription: every event with since < ts <= until, in ts order, each exactly once, from the
 * persisted log files (history) and then from the MetaLogBuffer (live), going back to the files whenever the stream
 * falls out of memory. It knows nothing of filters or sending: the subscription engine (server/sub_stream.c) calls
 * it from the stream's reader thread, filters what it returns and queues it for the sender. One reader belongs to
 * one thread. */
#ifndef FM_SUB_READER_H
#define FM_SUB_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_store.h"
#include "log_buffer.h"
#include "store.h"

typedef struct fm_sub_reader fm_sub_reader;

typedef struct fm_sub_reader_config {
  fm_store *store; /* borrowed, as are the next two: they outlive the reader */
  fm_chunk_store *chunks;
  fm_logbuf *logbuf;
  /* While memory does not yet hold what the files do not (the flusher is still writing a backlog out), the reader
   * polls the flushed watermark this often; 0 means 20 ms. */
  int64_t poll_ms;
} fm_sub_reader_config;

/* One event as the reader returns it: a view, valid until the next call on the reader. */
typedef struct fm_sub_event {
  int64_t ts_ns;
  const uint8_t *data; /* an encoded SubscribeMetadataResponse */
  size_t len;
  bool from_disk; /* read from a log file (else from memory) */
} fm_sub_event;

/* Opens a reader of the events with ts > since_ns and, when until_ns != 0, ts <= until_ns. Returns 0, FM_EINVAL (a
 * negative time) or FM_ENOMEM. Caller frees with fm_sub_reader_close. */
int fm_sub_reader_open(const fm_sub_reader_config *cfg, int64_t since_ns, int64_t until_ns, fm_sub_reader **out);

/*
 * The next event. Returns:
 *   0             *ev (a view valid until the next call or close);
 *   FM_ETIMEDOUT  caught up: nothing new within timeout_ms (0: do not wait; negative: wait until an event, the end
 *                 or shutdown);
 *   FM_ENOTFOUND  the end: everything up to until_ns has been returned (never when until_ns is 0);
 *   FM_ESHUTDOWN  the MetaLogBuffer is shutting down;
 *   FM_EDECODE, FM_EIO, FM_ENOMEM  reading the log files failed: "<file> offset <n>: <what>" in err. The reader
 *                 stops there; later calls return the same error.
 */
int fm_sub_reader_next(fm_sub_reader *r, fm_sub_event *ev, int64_t timeout_ms, char *err, size_t errlen);

/* Lets go of what the reader holds in memory (a pinned buffer segment) while keeping its position: for a reader about
 * to stop reading for long (its stream's queue is full). The next call looks its position up again. */
void fm_sub_reader_release(fm_sub_reader *r);

/* Moves a reader on to the events with ts > ts_ns (nothing happens when ts_ns is not past its position), dropping
 * what it holds: for a stream whose history up to ts_ns went out as log-file refs, or that the live set handed
 * back after serving it up to ts_ns. */
void fm_sub_reader_seek(fm_sub_reader *r, int64_t ts_ns);

/* The ts of the last event returned (since_ns before the first). */
int64_t fm_sub_reader_ts(const fm_sub_reader *r);

/* True while the reader reads log files (history), false once it reads memory. */
bool fm_sub_reader_on_disk(const fm_sub_reader *r);

void fm_sub_reader_close(fm_sub_reader *r);

#endif
