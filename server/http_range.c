/* Range header parsing: "bytes=" then one range spec, spaces allowed around it. */
#include "http_range.h"

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

static const char *skip_spaces(const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* Reads 1 or more decimal digits at *p, saturating at UINT64_MAX (such a
 * position is past any body, such a suffix covers all of it). */
static bool parse_number(const char **p, uint64_t *out)
{
  const char *s = *p;
  uint64_t v = 0;
  if (*s < '0' || *s > '9')
    return false;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  *p = s;
  *out = v;
  return true;
}

fm_http_range fm_http_range_parse(const char *header, uint64_t size, uint64_t *offset, uint64_t *length)
{
  if (header == NULL)
    return FM_HTTP_RANGE_WHOLE;
  const char *p = skip_spaces(header);
  if (strncasecmp(p, "bytes", 5) != 0)
    return FM_HTTP_RANGE_WHOLE;
  p = skip_spaces(p + 5);
  if (*p != '=')
    return FM_HTTP_RANGE_WHOLE;
  p = skip_spaces(p + 1);

  bool suffix = *p == '-';
  uint64_t first = 0, last = UINT64_MAX;
  if (suffix) {
    p++;
    if (!parse_number(&p, &last))
      return FM_HTTP_RANGE_WHOLE;
  } else {
    if (!parse_number(&p, &first) || *p != '-')
      return FM_HTTP_RANGE_WHOLE;
    p++;
    if (*p >= '0' && *p <= '9') {
      parse_number(&p, &last);
      if (last < first)
        return FM_HTTP_RANGE_WHOLE; /* invalid, not unsatisfiable */
    }
  }
  p = skip_spaces(p);
  if (*p != '\0')
    return FM_HTTP_RANGE_WHOLE; /* several ranges, or trailing bytes */

  if (suffix) {
    /* `last` holds the suffix length */
    if (last == 0 || size == 0)
      return FM_HTTP_RANGE_UNSATISFIABLE;
    uint64_t n = last < size ? last : size;
    *offset = size - n;
    *length = n;
    return FM_HTTP_RANGE_PARTIAL;
  }
  if (first >= size)
    return FM_HTTP_RANGE_UNSATISFIABLE;
  if (last >= size)
    last = size - 1;
  *offset = first;
  *length = last - first + 1;
  return FM_HTTP_RANGE_PARTIAL;
}
