/* libFuzzer target for storage/fid: arbitrary bytes parsed as a fid. What
 * parses must format to the same bytes exactly when the input was canonical
 * (and to a string that parses to the same fid otherwise); the fuzzer's bytes
 * read as a raw fid must survive format -> parse. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Canonical per upstream's FileId.String(): no leading zero in the volume id,
 * lowercase, an even number of key digits without a leading "00" byte
 * (except key 0, written "00"). Assumes `s` parsed. */
static bool canonical(const char *s, size_t len)
{
  if (s[0] == '0')
    return false;
  const char *comma = memchr(s, ',', len);
  const char *kh = comma + 1;
  size_t n = len - (size_t)(kh - s);
  size_t keylen = n - 8;
  for (size_t i = 0; i < n; i++)
    if (kh[i] >= 'A' && kh[i] <= 'F')
      return false;
  if (keylen % 2 != 0)
    return false;
  if (keylen > 2 && kh[0] == '0' && kh[1] == '0')
    return false;
  return true;
}

static void round_trip(const fm_fid *f)
{
  char buf[FM_FID_MAX];
  fm_fid g;
  if (f->volume_id == 0) {
    if (fm_fid_format(f, buf, sizeof buf) == 0)
      abort();
    return;
  }
  if (fm_fid_format(f, buf, sizeof buf) != 0 || fm_fid_parse(buf, strlen(buf), &g) != 0)
    abort();
  if (g.volume_id != f->volume_id || g.key != f->key || g.cookie != f->cookie)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  fm_fid f;
  if (fm_fid_parse(s, size, &f) == 0) {
    char buf[FM_FID_MAX];
    if (fm_fid_format(&f, buf, sizeof buf) != 0)
      abort();
    bool same = strlen(buf) == size && memcmp(buf, s, size) == 0;
    if (same != canonical(s, size))
      abort();
    round_trip(&f);
  }
  if (size >= 16) {
    fm_fid raw;
    memcpy(&raw.volume_id, data, 4);
    memcpy(&raw.key, data + 4, 8);
    memcpy(&raw.cookie, data + 12, 4);
    round_trip(&raw);
  }
  return 0;
}
