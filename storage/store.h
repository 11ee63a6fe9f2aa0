/* The filer store: one LevelDB database in <dir>/filer.db holding entries (listed
 * by directory in name order), the KV API's keys, and the event write-ahead
 * records ordered by ts_ns. Opened by server/main.c; reads from any thread,
 * writes (fm_store_write) from the filer's single committer thread. */
#ifndef FM_STORE_H
#define FM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fm_store fm_store;
typedef struct fm_store_batch fm_store_batch;

typedef struct fm_store_options {
  bool sync;          /* fsync the write-ahead log on fm_store_sync (-store.sync) */
  size_t cache_bytes; /* LevelDB block cache; 0 = LevelDB's default */
} fm_store_options;

/*
 * Opens (creating if needed) <dir>/filer.db. Returns 0; FM_EBUSY with "store
 * is locked ..." in `err` when another process (or this one) has it open;
 * FM_EIO otherwise. Caller frees with fm_store_free.
 */
int fm_store_open(const char *dir, const fm_store_options *opt, fm_store **out, char *err, size_t errlen);
void fm_store_free(fm_store *s);

/* A value read from the store; caller frees with fm_store_value_free. */
void fm_store_value_free(void *value);

/* ---- entries: keyed by (directory, name); the value is an encoded filer_pb.Entry ---- */

/* Reads the entry `name` in `dir`. Returns 0 with *value (caller frees with
 * fm_store_value_free), FM_ENOTFOUND, or FM_EIO with `err`. */
int fm_store_get_entry(fm_store *s, const char *dir, const char *name, void **value, size_t *len, char *err,
                       size_t errlen);

/* Called per listed entry, in name order; return false to stop. Both
 * pointers are valid only during the call. */
typedef bool (*fm_store_list_fn)(void *arg, const char *name, size_t name_len, const void *value, size_t len);

/*
 * Lists `dir`'s entries whose name starts with `prefix` (may be ""), from
 * `start` (inclusive or not; "" = the beginning), calling fn until it returns
 * false or the directory ends. All strings are borrowed for the call only;
 * fn may free or change `start`. Returns 0, FM_ENOMEM or FM_EIO.
 */
int fm_store_list(fm_store *s, const char *dir, const char *start, bool inclusive, const char *prefix,
                  fm_store_list_fn fn, void *arg, char *err, size_t errlen);

/* True if `dir` has at least one entry. */
int fm_store_has_children(fm_store *s, const char *dir, bool *has, char *err, size_t errlen);

/* ---- KV API ---- */

/* Returns 0 with the value (caller frees), FM_ENOTFOUND, or FM_EIO. */
int fm_store_kv_get(fm_store *s, const void *key, size_t klen, void **value, size_t *len, char *err, size_t errlen);

/* KV key of the filer signature (4 bytes big-endian), as upstream. */
#define FM_STORE_SIGNATURE_KEY "filer.store.id"

/*
 * Loads this filer's signature from FM_STORE_SIGNATURE_KEY. When the store
 * has none, stores `legacy` if non-zero (migration from the data directory
 * file) or else a new random non-zero value, durably. Returns 0 or FM_EIO.
 */
int fm_store_load_signature(fm_store *s, int32_t legacy, int32_t *sig, char *err, size_t errlen);

/* ---- event write-ahead records ---- */

/* Called per record in ts order; return false to stop. `event` is an encoded
 * SubscribeMetadataResponse, valid only during the call. */
typedef bool (*fm_store_event_fn)(void *arg, int64_t ts_ns, const void *event, size_t len);

/* Iterates the write-ahead records with ts_ns > after_ns. Returns 0 or FM_EIO. */
int fm_store_events(fm_store *s, int64_t after_ns, fm_store_event_fn fn, void *arg, char *err, size_t errlen);

/* The highest event ts the store has ever recorded (0 for a new store). */
int fm_store_last_ts(fm_store *s, int64_t *ts_ns, char *err, size_t errlen);

/* ---- the persisted log's state (written by the flusher and retention) ---- */

typedef struct fm_store_log_state {
  int64_t flushed_ts_ns;    /* every event with ts <= this is in a log file (its write-ahead record is gone) */
  int64_t records;          /* records written to log files so far: the next record's LogEntry.offset */
  int64_t retained_from_ns; /* retention removed the log files of every event before this (0: nothing removed) */
} fm_store_log_state;

/* Reads the log state; all zero for a store that never flushed. Returns 0, FM_EIO or FM_EDECODE. */
int fm_store_get_log_state(fm_store *s, fm_store_log_state *out, char *err, size_t errlen);

/* ---- writes: every change goes through a batch, applied atomically ---- */

fm_store_batch *fm_store_batch_new(void);
void fm_store_batch_free(fm_store_batch *b);
void fm_store_batch_clear(fm_store_batch *b);
void fm_store_batch_put_entry(fm_store_batch *b, const char *dir, const char *name, const void *value, size_t len);
void fm_store_batch_delete_entry(fm_store_batch *b, const char *dir, const char *name);
void fm_store_batch_put_kv(fm_store_batch *b, const void *key, size_t klen, const void *value, size_t len);
void fm_store_batch_delete_kv(fm_store_batch *b, const void *key, size_t klen);
/* A write-ahead record; also advances the store's clock high-water mark. */
void fm_store_batch_put_event(fm_store_batch *b, int64_t ts_ns, const void *event, size_t len);
void fm_store_batch_delete_event(fm_store_batch *b, int64_t ts_ns);

void fm_store_batch_put_log_state(fm_store_batch *b, const fm_store_log_state *st);

/* Applies `b` atomically, without fsync. Returns 0 or FM_EIO with `err`. */
int fm_store_write(fm_store *s, fm_store_batch *b, char *err, size_t errlen);

/* Appends src's operations to dst (the committer's group of batches). */
void fm_store_batch_append(fm_store_batch *dst, const fm_store_batch *src);

/*
 * With -store.sync: makes a group of already-written batches durable by
 * writing their concatenation `group` once more with fsync. Rewriting (not an
 * empty synced write) matters: LevelDB may have rotated its log since the
 * group began, and a sync covers only the current log file. Re-applying the
 * same operations in the same order from the only writer changes nothing.
 * Without -store.sync: a no-op. Returns 0 or FM_EIO.
 */
int fm_store_sync(fm_store *s, fm_store_batch *group, char *err, size_t errlen);

bool fm_store_sync_enabled(const fm_store *s);

#endif
