/* The flusher: one thread that turns the filer's write-ahead event records into per-minute log files (PROTOCOL.md
 * section 4) in the chunk store, deletes the records once a file holds them, advances the MetaLogBuffer's flushed
 * watermark, and runs log retention. Started and stopped by main.c; fm_log_flusher_note is called from the filer's
 * event hook, the stats from the HTTP side. */
#ifndef FM_LOG_FLUSHER_H
#define FM_LOG_FLUSHER_H

#include <stddef.h>
#include <stdint.h>

#include "chunk_store.h"
#include "filer.h"
#include "log_buffer.h"
#include "store.h"

typedef struct fm_log_flusher fm_log_flusher;

/* Default largest chunk of a log file: 4 MiB. */
#define FM_LOG_CHUNK_BYTES_DEFAULT ((size_t)4 << 20)

typedef struct fm_log_flusher_config {
  fm_filer *filer; /* borrowed, as are the next three; they must outlive the flusher */
  fm_store *store;
  fm_chunk_store *chunks;
  fm_logbuf *logbuf;
  uint32_t filer_id;   /* the suffix of the files this process writes; fm_log_flusher_new_filer_id */
  int64_t interval_ns; /* a pass at least this often (-metaLog.flushIntervalSec) */
  size_t chunk_bytes;  /* largest chunk (cut on record boundaries; a bigger record gets a chunk alone); 0: default */
  int retention_days;  /* remove day directories that ended this many days ago; 0 keeps everything */
} fm_log_flusher_config;

/* A random positive int32, as upstream draws its UniqueFilerId at every start. */
uint32_t fm_log_flusher_new_filer_id(void);

/*
 * Recovery, before the server serves and before the filer's hook is set: loads into `logbuf` every write-ahead record
 * no log file holds yet (ts > the store's flushed ts), after setting the buffer's start to that flushed ts, so that
 * memory holds exactly what disk does not. The flusher's first pass then writes them out. Returns 0 or FM_E* with
 * `err`; *recovered is the number of records loaded.
 */
int fm_log_flusher_recover(fm_store *store, fm_logbuf *logbuf, size_t *recovered, char *err, size_t errlen);

/* Starts the thread; it runs retention at once and a pass at once if anything waits. Returns 0 or FM_E* with `err`. */
int fm_log_flusher_start(const fm_log_flusher_config *cfg, fm_log_flusher **out, char *err, size_t errlen);

/* From the filer's event hook: `bytes` more are waiting; a chunk's worth wakes the thread early. Any thread. */
void fm_log_flusher_note(fm_log_flusher *fl, size_t bytes);

/* Runs a final pass (what the filer has committed by now gets into files; whatever it cannot write stays in the
 * write-ahead records for the next start) and stops the thread; fm_log_flusher_note stays safe to call. Call before
 * fm_filer_free, which may still publish events. Idempotent; NULL is a no-op. */
void fm_log_flusher_stop(fm_log_flusher *fl);

/* Stops (if not yet) and frees; after fm_filer_free. NULL is a no-op. */
void fm_log_flusher_free(fm_log_flusher *fl);

typedef struct fm_log_flusher_stats {
  uint64_t passes;          /* passes that wrote something */
  uint64_t chunks;          /* chunks written (one file change each) */
  uint64_t records;         /* records written */
  uint64_t bytes;           /* record bytes written */
  uint64_t errors;          /* passes that stopped on an error (retried at the next one) */
  uint64_t pass_ns_total;   /* time spent in passes that wrote something */
  uint64_t last_pass_ns;    /* duration of the last pass that wrote something */
  uint64_t retired_days;    /* day directories removed by retention */
  int64_t flushed_ts_ns;    /* every event with ts <= this is in a log file */
  int64_t retained_from_ns; /* retention removed the files of events before this (0: none removed) */
  uint32_t filer_id;
} fm_log_flusher_stats;

void fm_log_flusher_get_stats(fm_log_flusher *fl, fm_log_flusher_stats *out);

#endif
