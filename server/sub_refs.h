/* Log-file refs for a subscription (PROTOCOL.md 5.7): the persisted part of a stream's range sent as LogFileChunkRef
 * lists, for clients that set client_supports_metadata_chunks and read the chunks themselves (LookupVolume, then
 * GET /<fid> on the HTTP side). Called from a stream's reader thread (sub_stream.c) before it reads any event; the
 * stream then sends the transition marker and goes on with events after the ts this returns. */
#ifndef FM_SUB_REFS_H
#define FM_SUB_REFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Refs in one response at most (PROTOCOL.md 5.7). */
#define FM_SUB_REFS_PER_RESPONSE 64
/* Chunks in one ref at most: a bigger file is sent as several refs of the same file, each a run of whole chunks
 * (whole records) with offsets rebased to 0, so that a response stays far below a client's 4 MiB message limit. */
#define FM_SUB_REFS_CHUNKS_PER_REF 256
/* A response is cut before it would pass this many encoded bytes (one ref alone may pass it). */
#define FM_SUB_REFS_RESPONSE_BYTES ((size_t)1 << 20)

/* Receives one encoded SubscribeMetadataResponse carrying only log_file_refs, and owns `bytes` (malloc'ed) from then
 * on. Returns false when the stream is over (the refs stop). */
typedef bool (*fm_sub_refs_emit)(void *arg, uint8_t *bytes, size_t len);

/*
 * Sends, through `emit`, refs to every log file that holds records with ts > since_ns (and, when until_ns != 0, that
 * may hold records <= until_ns): the files' chunks in offset order, without the leading chunks whose records are
 * all <= since_ns. No filter is applied. Sets *through_ns to T: every record with since_ns < ts <= T is in the
 * files sent, and a record the files hold above T is above until_ns. T is the ts of the last record flushed when
 * the listing was taken, read from the log state in a way that no chunk committed later is sent (the listing is
 * retried when a flush lands during it), clamped to until_ns. When nothing after since_ns is persisted, nothing is
 * sent and *through_ns is since_ns.
 *
 * Returns 0; FM_ECANCELED when emit returned false; FM_EDECODE (a damaged log file entry), FM_EIO or FM_ENOMEM with
 * `err`.
 */
int fm_sub_refs_send(fm_store *s, int64_t since_ns, int64_t until_ns, fm_sub_refs_emit emit, void *arg,
                     int64_t *through_ns, char *err, size_t errlen);

#endif
