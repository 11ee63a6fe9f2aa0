/* Thin wrappers over clock_gettime, and the parser of times written by people. */
#include "clock.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "error.h"

static int64_t read_clock(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t fm_now_ns(void)
{
  return read_clock(CLOCK_REALTIME);
}

int64_t fm_mono_ns(void)
{
  return read_clock(CLOCK_MONOTONIC);
}

/* n digits at s as a number; false unless all are digits. */
static bool digits(const char *s, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int fm_parse_time(const char *s, int64_t *ns)
{
  size_t len = strlen(s);
  if (len > 0 && strspn(s, "0123456789") == len) {
    if (len > 19)
      return FM_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++)
      v = v * 10 + (uint64_t)(s[i] - '0');
    if (v > (uint64_t)INT64_MAX)
      return FM_EINVAL;
    *ns = (int64_t)v;
    return 0;
  }
  /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
  int y, mo, d, h, mi, sec;
  if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
      (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
      s[16] != ':' || !digits(s + 17, 2, &sec))
    return FM_EINVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return FM_EINVAL;
  const char *p = s + 19;
  int64_t frac = 0;
  if (*p == '.') {
    int n = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, n++)
      if (n < 9)
        frac = frac * 10 + (*p - '0');
    if (n == 0)
      return FM_EINVAL;
    for (; n < 9; n++)
      frac *= 10;
  }
  int64_t offset = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return FM_EINVAL;
    offset = (*p == '-' ? -1 : 1) * ((int64_t)oh * 3600 + (int64_t)om * 60);
    p += 6;
  } else {
    return FM_EINVAL;
  }
  if (*p != '\0')
    return FM_EINVAL;
  struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
  time_t t = timegm(&tm);
  if (tm.tm_mday != d) /* Feb 30 and the like roll over */
    return FM_EINVAL;
  int64_t secs = (int64_t)t - offset;
  if (secs < 0 || secs > INT64_MAX / 1000000000 - 1)
    return FM_EINVAL;
  *ns = secs * 1000000000 + frac;
  return 0;
}
