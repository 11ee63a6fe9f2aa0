/* Log file names (log_file.h): UTC calendar arithmetic without the C library's time zone state, so that it is
 * reentrant and independent of TZ. */
#include "log_file.h"

#include <string.h>

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes v's last n decimal digits, zero-padded. */
static void put_digits(char *out, unsigned v, int n)
{
  for (int i = n - 1; i >= 0; i--) {
    out[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

int64_t fm_log_minute_of(int64_t ts_ns)
{
  return ts_ns - ts_ns % FM_NS_PER_MINUTE;
}

void fm_log_file_path(int64_t ts_ns, uint32_t filer_id, char day_dir[FM_LOG_DAY_DIR_MAX],
                      char name[FM_LOG_FILE_NAME_MAX])
{
  int64_t days = ts_ns / FM_NS_PER_DAY;
  int64_t in_day = (ts_ns % FM_NS_PER_DAY) / FM_NS_PER_MINUTE;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  /* written digit by digit: the values are in range, but snprintf's truncation warnings cannot see that */
  memcpy(day_dir, FM_LOG_DIR "/", sizeof FM_LOG_DIR);
  char *p = day_dir + sizeof FM_LOG_DIR;
  put_digits(p, (unsigned)(y % 10000), 4);
  p[4] = '-';
  put_digits(p + 5, m, 2);
  p[7] = '-';
  put_digits(p + 8, d, 2);
  p[10] = '\0';
  put_digits(name, (unsigned)(in_day / 60), 2);
  name[2] = '-';
  put_digits(name + 3, (unsigned)(in_day % 60), 2);
  name[5] = '.';
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++)
    name[6 + i] = hex[(filer_id >> (28 - 4 * i)) & 0xf];
  name[14] = '\0';
}

static bool digits(const char *s, size_t n, unsigned *out)
{
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return true;
}

bool fm_log_parse_day(const char *day, size_t len, int64_t *day_ns)
{
  unsigned y, m, d;
  if (len != 10 || day[4] != '-' || day[7] != '-' || !digits(day, 4, &y) || !digits(day + 5, 2, &m) ||
      !digits(day + 8, 2, &d))
    return false;
  if (y < 1970 || m < 1 || m > 12 || d < 1)
    return false;
  static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[m - 1] + (m == 2 && leap))
    return false;
  int64_t days = days_from_civil(y, m, d);
  if (days > INT64_MAX / FM_NS_PER_DAY)
    return false; /* its start would not fit in int64 ns (after 2262-04-11) */
  *day_ns = days * FM_NS_PER_DAY;
  return true;
}

bool fm_log_parse_file_name(const char *name, size_t len, int64_t *minute_ns, uint32_t *filer_id)
{
  unsigned hh, mm;
  if (len < 7 || len > 14 || name[2] != '-' || name[5] != '.' || !digits(name, 2, &hh) || !digits(name + 3, 2, &mm) ||
      hh > 23 || mm > 59)
    return false;
  uint32_t id = 0;
  for (size_t i = 6; i < len; i++) {
    char c = name[i];
    unsigned v;
    if (c >= '0' && c <= '9')
      v = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v = (unsigned)(c - 'A' + 10);
    else
      return false;
    id = id << 4 | v;
  }
  *minute_ns = (int64_t)(hh * 60 + mm) * FM_NS_PER_MINUTE;
  *filer_id = id;
  return true;
}
