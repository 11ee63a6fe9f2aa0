/* Process-wide logging to stderr, one line per message with a UTC timestamp.
 * Leaf module; any thread (each line is written with one write(2)). */
#ifndef FM_LOG_H
#define FM_LOG_H

typedef enum fm_log_level { FM_LOG_ERROR = 0, FM_LOG_WARN = 1, FM_LOG_INFO = 2, FM_LOG_DEBUG = 3 } fm_log_level;

/* Messages above `level` are dropped. Default FM_LOG_INFO. */
void fm_log_set_level(fm_log_level level);

void fm_log(fm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define fm_log_error(...) fm_log(FM_LOG_ERROR, __VA_ARGS__)
#define fm_log_warn(...) fm_log(FM_LOG_WARN, __VA_ARGS__)
#define fm_log_info(...) fm_log(FM_LOG_INFO, __VA_ARGS__)
#define fm_log_debug(...) fm_log(FM_LOG_DEBUG, __VA_ARGS__)

#endif
