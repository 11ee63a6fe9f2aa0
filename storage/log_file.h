/* Persisted metadata log files (PROTOCOL.md section 4): their names and where they live in the filer's tree.
 * A file /topics/.system/log/YYYY-MM-DD/HH-MM.<filer id %08x> is an ordinary entry whose chunks (in the chunk store)
 * hold log records of the events of that UTC minute, written by that filer. The flusher (server/log_flusher.c) names
 * the files it writes with these functions; the log reader and retention parse them. Pure functions, any thread. */
#ifndef FM_LOG_FILE_H
#define FM_LOG_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
