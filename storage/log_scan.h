/* The scan of the persisted metadata log: records in ts order across log files and filer ids, read with a readahead
 * thread. Used by `filermeta log` and by the subscription engine (issue 6) for the history part of a stream; built on
 * the listing and chunk reads of log_file.h. A scan belongs to one thread at a time; its readahead thread is its own
 * business. */
#ifndef FM_LOG_SCAN_H
#define FM_LOG_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_store.h"
#include "log_file.h"
#include "log_record.h"
#include "store.h"

/* The readahead budget when fm_log_scan_options.readahead_bytes is 0. */
#define FM_LOG_SCAN_READAHEAD_DEFAULT ((size_t)4 << 20)

typedef struct fm_log_scan_options {
  /* Chunk bytes fetched ahead of the reader that the readahead thread may hold (0: the default). The chunk the reader
   * is waiting for is always fetched, and every file the scan will read next gets its first chunk, so a scan holds
   * at most this plus one chunk per file it has in hand. */
  size_t readahead_bytes;
  bool synchronous;  /* no readahead thread: chunks are fetched in fm_log_scan_next's thread when needed */
  bool skip_damaged; /* a corrupt record or chunk ends its file with a warning instead of failing the scan */
} fm_log_scan_options;

/* What a scan has done so far. */
typedef struct fm_log_scan_stats {
  uint64_t records;     /* returned by fm_log_scan_next */
  uint64_t files;       /* opened */
  uint64_t chunks;      /* fetched */
  uint64_t bytes;       /* chunk bytes fetched */
  uint64_t fetch_waits; /* times fm_log_scan_next waited for a chunk that was not fetched yet */
} fm_log_scan_stats;

/*
 * A scan of the persisted log: the records with after_ns < ts <= until_ns (until_ns 0: no bound) of every filer id,
 * each once, in ts order (ties in filer id order). Each filer id's files are read in name order, each file as one
 * byte stream (its chunks concatenated); the filer ids' streams are merged with a min-heap. A readahead thread
 * (started with the first file) fetches the chunks the scan will read next while the caller decodes.
 */
typedef struct fm_log_scan fm_log_scan;

/*
 * Opens a scan. `s` and `cs` are borrowed until fm_log_scan_close; `opt` may be NULL. Returns 0, FM_EINVAL (a negative
 * time), FM_EIO or FM_ENOMEM with `err`. Caller frees with fm_log_scan_close.
 */
int fm_log_scan_open(fm_store *s, fm_chunk_store *cs, int64_t after_ns, int64_t until_ns,
                     const fm_log_scan_options *opt, fm_log_scan **out, char *err, size_t errlen);

/*
 * The next record. Returns:
 *   0             a record: rec's data, key and raw are borrowed, valid until the next call or close; rec->pos is its
 *                 offset in fm_log_scan_file();
 *   FM_ENOTFOUND  the end of what was persisted when the scan got there: day directories as of open, each day's
 *                 files as the scan lists them (a few ahead of reading), each file's chunks as of its listing. The end
 * is final (later calls return FM_ENOTFOUND again); to see what was written since, open a new scan after
 *                 fm_log_scan_last_ts();
 *   FM_EDECODE    "<file path> offset <n>: <what>": a corrupt record, a chunk that fails its checks, or an unusable
 *                 entry (not with skip_damaged, which ends that file with a warning instead);
 *   FM_EIO, FM_ENOMEM  with "<file path> offset <n>: <what>" where a file is concerned.
 * A torn last record ends its file (PROTOCOL.md section 5.7); a chunk missing from the chunk store (retention) ends
 * its file with a warning. Records whose ts does not increase within a filer id are dropped with a warning. Every
 * error ends the scan: later calls return it again.
 */
int fm_log_scan_next(fm_log_scan *scan, fm_log_record *rec, char *err, size_t errlen);

/* The ts of the last record fm_log_scan_next returned, or after_ns before the first. */
int64_t fm_log_scan_last_ts(const fm_log_scan *scan);

/* The path of the file the last record came from, or of the file the scan failed in; "" before either. Borrowed,
 * valid until the next call or close. */
const char *fm_log_scan_file(const fm_log_scan *scan);

void fm_log_scan_get_stats(fm_log_scan *scan, fm_log_scan_stats *out);

/* Stops the readahead thread (waiting for a chunk read in flight) and frees everything. NULL is a no-op. */
void fm_log_scan_close(fm_log_scan *scan);

#endif
