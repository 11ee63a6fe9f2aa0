/* Persisted metadata log files (PROTOCOL.md section 4): /topics/.system/log/YYYY-MM-DD/HH-MM.<filer id %08x>, an
 * ordinary entry whose chunks (in the chunk store) hold the log records of one filer id from that UTC minute on. Owns
 * their names (the flusher in server/ names what it writes), their listing (retention, refs mode) and the scan that
 * reads them back in ts order with a readahead thread (the subscription engine). Names and parsers are pure; a
 * listing or a scan belongs to one thread at a time (a scan's readahead thread is its own business). */
#ifndef FM_LOG_FILE_H
#define FM_LOG_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_store.h"
#include "fid.h"
#include "log_chunk.h"
#include "log_record.h"
#include "store.h"

/* The directory under which every log file lives (events under it are never published). */
#define FM_LOG_DIR "/topics/.system/log"

#define FM_NS_PER_MINUTE INT64_C(60000000000)
#define FM_NS_PER_DAY (INT64_C(1440) * FM_NS_PER_MINUTE)

/* Bytes of a day directory's full path, NUL included: FM_LOG_DIR "/YYYY-MM-DD". */
#define FM_LOG_DAY_DIR_MAX (sizeof FM_LOG_DIR + 11)
/* Bytes of a day directory's name "YYYY-MM-DD", NUL included. */
#define FM_LOG_DAY_NAME_MAX 11
/* Bytes of a file name "HH-MM.xxxxxxxx", NUL included. */
#define FM_LOG_FILE_NAME_MAX 15
/* Bytes of a log file's full path, NUL included: FM_LOG_DIR "/YYYY-MM-DD/HH-MM.xxxxxxxx". */
#define FM_LOG_PATH_MAX (FM_LOG_DAY_DIR_MAX + FM_LOG_FILE_NAME_MAX)

/* The start of ts_ns's UTC minute, in ns (ts_ns >= 0). */
int64_t fm_log_minute_of(int64_t ts_ns);

/* The day directory ("/topics/.system/log/YYYY-MM-DD") and file name ("HH-MM.<filer_id %08x>") of the log file
 * holding the events of ts_ns's minute written by filer_id. ts_ns must be >= 0. */
void fm_log_file_path(int64_t ts_ns, uint32_t filer_id, char day_dir[FM_LOG_DAY_DIR_MAX],
                      char name[FM_LOG_FILE_NAME_MAX]);

/* Parses a day directory name "YYYY-MM-DD" (exactly that form, a real calendar date from 1970-01-01 through
 * 2262-04-11, whose start fits in int64 ns) into the ns of its 00:00 UTC. Returns true on success. */
bool fm_log_parse_day(const char *day, size_t len, int64_t *day_ns);

/* Parses a log file name "HH-MM.<id>": HH 00-23, MM 00-59, then a '.' and the filer id as 1 to 8 hex digits (we
 * write exactly 8 lowercase; readers accept what upstream's %x parse does). *minute_ns is the offset within its day.
 * Returns true on success; false for any other name (the reader skips it). */
bool fm_log_parse_file_name(const char *name, size_t len, int64_t *minute_ns, uint32_t *filer_id);

/* ================================================================ listing */

struct FilerPb__Entry;
struct FilerPb__FileChunk;

/* One chunk of a log file. */
typedef struct fm_log_chunk {
  fm_fid fid;      /* the chunk's file_id text, or its fid message when the text is empty */
  uint64_t offset; /* where its bytes go in the file's byte stream */
  uint64_t size;   /* how many bytes it contributes (after decryption and decompression) */
  /* the chunk as stored (e_tag, cipher_key, is_compressed, ...), for refs mode; borrowed from the file's entry */
  const struct FilerPb__FileChunk *pb;
} fm_log_chunk;

/* A listed log file. chunks[] is sorted by offset and contiguous (each starts where the previous ends). */
typedef struct fm_log_file {
  char day[FM_LOG_DAY_NAME_MAX];   /* "YYYY-MM-DD" */
  char name[FM_LOG_FILE_NAME_MAX]; /* "HH-MM.<filer id>" as stored */
  char path[FM_LOG_PATH_MAX];      /* FM_LOG_DIR "/" day "/" name, for messages */
  int64_t file_ts_ns;              /* the minute its name says, in ns since the epoch (UTC) */
  uint32_t filer_id;
  size_t nchunks; /* at least 1 */
  fm_log_chunk *chunks;
  struct FilerPb__Entry *entry; /* the decoded entry; chunks[i].pb point into it */
} fm_log_file;

void fm_log_file_free(fm_log_file *f);

/* A lazy listing of the log files that may hold events in a time range, in (day, name) order: day directories are
 * listed once when it is opened, each day's files in batches as the listing reaches them. */
typedef struct fm_log_files fm_log_files;

/*
 * Opens a listing of the files that may hold events with ts > after_ns and, if until_ns != 0, ts <= until_ns: from
 * the minute one minute before after_ns (a file named for minute M may hold events up to about M + 2 min when upstream
 * wrote it; our flusher writes only M's) through until_ns's minute. `s` is borrowed until fm_log_files_free. Returns
 * 0, FM_EINVAL (a negative time), FM_EIO or FM_ENOMEM with `err`. Caller frees with fm_log_files_free.
 */
int fm_log_files_open(fm_store *s, int64_t after_ns, int64_t until_ns, fm_log_files **out, char *err, size_t errlen);

/*
 * The next file: 0 with *file (caller frees with fm_log_file_free), FM_ENOTFOUND at the end. Skips names that do not
 * parse (with a warning), directories and entries without chunks. FM_EDECODE with "<path> offset <n>: <what>" for an
 * entry that does not decode or whose chunk list is unusable (a bad file id, a gap, a chunk manifest, S3 SSE); the
 * next call goes on with the following file. FM_EIO or FM_ENOMEM otherwise (the next call tries again).
 */
int fm_log_files_next(fm_log_files *l, fm_log_file **file, char *err, size_t errlen);

/* The path and minute of the file fm_log_files_next looked at last (a damaged one included), for messages; "" and 0
 * before the first. */
const char *fm_log_files_path(const fm_log_files *l);
int64_t fm_log_files_ts(const fm_log_files *l);

void fm_log_files_free(fm_log_files *l);

/* The minute (ns) of the oldest log file that fm_log_files_next would return, or 0 when there is none. Damaged
 * entries are passed over. Returns 0, FM_EIO or FM_ENOMEM with `err`. Any thread. */
int fm_log_files_oldest(fm_store *s, int64_t *oldest_minute_ns, char *err, size_t errlen);

/*
 * Reads a chunk's bytes for a log file's byte stream: fetches the needle, decrypts it when the chunk has a cipher_key
 * (AES-256-GCM, nonce first, as upstream) and gunzips it when is_compressed, and checks that the result has the
 * chunk's size. Returns 0 with *data (caller frees with free(); never NULL) and *len; FM_ENOTFOUND when the needle is
 * missing (retention deleted it); FM_EDECODE (bad CRC, decryption, gzip or size), FM_EIO or FM_ENOMEM. `err` gets
 * "chunk <fid>: <what>". Any thread (the chunk store is thread-safe).
 */
int fm_log_chunk_read(fm_chunk_store *cs, const fm_log_chunk *c, void **data, size_t *len, char *err, size_t errlen);

#endif
