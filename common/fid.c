/* SeaweedFS file ids: the parse and format rules of upstream's
 * weed/storage/needle/file_id.go and needle.go (ParseNeedleIdCookie). */
#include "fid.h"

#include <stdbool.h>

#include "error.h"

/* Hex digits after the comma: more than the cookie's 8, at most key + cookie. */
#define COOKIE_HEX 8
#define KEYHASH_MAX_HEX 24

static int hex_value(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10; /* Go's strconv.ParseUint(s, 16, ...) takes either case */
  return -1;
}

/* Parses 1..16 hex digits; the caller has bounded n so no overflow occurs. */
static bool parse_hex(const char *s, size_t n, uint64_t *out)
{
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    int d = hex_value(s[i]);
    if (d < 0)
      return false;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return true;
}

int fm_fid_parse(const char *s, size_t len, fm_fid *out)
{
  if (s == NULL)
    return FM_EINVAL;
  /* the first comma splits, as upstream's strings.Index; a later one is
   * then simply not a hex digit */
  size_t comma = 0;
  while (comma < len && s[comma] != ',')
    comma++;
  if (comma == 0 || comma == len)
    return FM_EINVAL;

  uint64_t vid = 0;
  for (size_t i = 0; i < comma; i++) {
    if (s[i] < '0' || s[i] > '9')
      return FM_EINVAL;
    vid = vid * 10 + (uint64_t)(s[i] - '0');
    if (vid > UINT32_MAX)
      return FM_EINVAL; /* upstream parses 64 bits and truncates; we refuse */
  }
  if (vid == 0)
    return FM_EINVAL;

  const char *kh = s + comma + 1;
  size_t n = len - comma - 1;
  if (n <= COOKIE_HEX || n > KEYHASH_MAX_HEX)
    return FM_EINVAL;
  uint64_t key, cookie;
  if (!parse_hex(kh, n - COOKIE_HEX, &key) || !parse_hex(kh + n - COOKIE_HEX, COOKIE_HEX, &cookie))
    return FM_EINVAL;
  out->volume_id = (uint32_t)vid;
  out->key = key;
  out->cookie = (uint32_t)cookie;
  return 0;
}

int fm_fid_format(const fm_fid *f, char *buf, size_t len)
{
  static const char digits[] = "0123456789abcdef";
  if (f->volume_id == 0)
    return FM_EINVAL;

  char tmp[FM_FID_MAX];
  size_t n = 0;
  char dec[10];
  size_t nd = 0;
  for (uint32_t v = f->volume_id; v != 0; v /= 10)
    dec[nd++] = (char)('0' + v % 10);
  while (nd > 0)
    tmp[n++] = dec[--nd];
  tmp[n++] = ',';

  /* the key's big-endian bytes from the first non-zero one; key 0 keeps its
   * last byte so that the result parses (see fid.h) */
  int first = 7;
  for (int i = 0; i < 8; i++) {
    if ((uint8_t)(f->key >> (8 * (7 - i))) != 0) {
      first = i;
      break;
    }
  }
  for (int i = first; i < 8; i++) {
    uint8_t b = (uint8_t)(f->key >> (8 * (7 - i)));
    tmp[n++] = digits[b >> 4];
    tmp[n++] = digits[b & 15];
  }
  for (int i = 0; i < 4; i++) {
    uint8_t b = (uint8_t)(f->cookie >> (8 * (3 - i)));
    tmp[n++] = digits[b >> 4];
    tmp[n++] = digits[b & 15];
  }
  if (len < n + 1)
    return FM_ETOOBIG;
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[i];
  buf[n] = '\0';
  return 0;
}
