/* Logging: formats into a stack buffer and writes the line in one write(2) so
 * that lines from different threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = FM_LOG_INFO;

void fm_log_set_level(fm_log_level level)
{
  atomic_store(&log_level, (int)level);
}

void fm_log(fm_log_level level, const char *fmt, ...)
{
  static const char tags[] = "EWID";
  if ((int)level > atomic_load(&log_level))
    return;
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%c%02d%02d %02d:%02d:%02d.%06ld ", tags[level], tm.tm_mon + 1, tm.tm_mday,
                   tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
