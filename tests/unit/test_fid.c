/* Unit tests for storage/fid.h: SeaweedFS file id parse and format, checked
 * against upstream's rules (weed/storage/needle/file_id.go, needle.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "fid.h"

/* ================================================================ helpers */

static void expect_format(uint32_t vid, uint64_t key, uint32_t cookie, const char *want)
{
  fm_fid f = { vid, key, cookie };
  char buf[FM_FID_MAX];
  assert_int_equal(fm_fid_format(&f, buf, sizeof buf), 0);
  assert_string_equal(buf, want);
}

static void expect_parse(const char *s, uint32_t vid, uint64_t key, uint32_t cookie)
{
  fm_fid f = { 0 };
  int rc = fm_fid_parse(s, strlen(s), &f);
  if (rc != 0)
    fail_msg("fm_fid_parse(\"%s\"): %d", s, rc);
  assert_int_equal(f.volume_id, vid);
  assert_true(f.key == key);
  assert_int_equal(f.cookie, cookie);
}

static void expect_reject(const char *s, size_t len)
{
  fm_fid f = { 7, 7, 7 };
  int rc = fm_fid_parse(s, len, &f);
  if (rc != FM_EINVAL)
    fail_msg("fm_fid_parse(\"%.*s\"): got %d, want FM_EINVAL", (int)len, s, rc);
  /* nothing written on failure */
  assert_int_equal(f.volume_id, 7);
}

/* ================================================================ tests */

/* Format then parse gives back the same triple, and the text is canonical:
 * formatting the parsed value yields the same bytes. */
static void test_round_trip(void **state)
{
  static const uint64_t keys[] = { 0,
                                   1,
                                   0xff,
                                   0x100,
                                   0xffff,
                                   0x10000,
                                   0x1637037,
                                   0x01637037,
                                   0xffffffff,
                                   UINT64_C(0x100000000),
                                   UINT64_C(0x00ff000000000000),
                                   UINT64_C(0x0100000000000000),
                                   INT64_MAX,
                                   UINT64_MAX };
  static const uint32_t cookies[] = { 0, 1, 0xd6, 0x637037d6, 0x80000000, 0xffffffff };
  static const uint32_t vids[] = { 1, 3, 9, 10, 4294967, UINT32_MAX - 1, UINT32_MAX };
  int n = 0;
  for (size_t v = 0; v < sizeof vids / sizeof vids[0]; v++)
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
      for (size_t c = 0; c < sizeof cookies / sizeof cookies[0]; c++) {
        fm_fid f = { vids[v], keys[k], cookies[c] }, g = { 0 };
        char buf[FM_FID_MAX], again[FM_FID_MAX];
        assert_int_equal(fm_fid_format(&f, buf, sizeof buf), 0);
        assert_true(strlen(buf) < FM_FID_MAX);
        assert_int_equal(fm_fid_parse(buf, strlen(buf), &g), 0);
        assert_int_equal(g.volume_id, f.volume_id);
        assert_true(g.key == f.key);
        assert_int_equal(g.cookie, f.cookie);
        assert_int_equal(fm_fid_format(&g, again, sizeof again), 0);
        assert_string_equal(again, buf);
        n++;
      }
  assert_int_equal(n, 7 * 14 * 6);
}

/* Exact strings, worked out by hand from upstream's formatNeedleIdCookie:
 * 8 big-endian key bytes + 4 cookie bytes, leading zero bytes of the key
 * dropped, lowercase hex. */
static void test_format_exact(void **state)
{
  expect_format(3, 0x01637037, 0xd6, "3,01637037000000d6");
  expect_format(3, 0x1, 0x637037d6, "3,01637037d6"); /* the README's example fid */
  expect_format(1, 1, 0, "1,0100000000");
  expect_format(1, 0xff, 0xffffffff, "1,ffffffffff");
  expect_format(1, 0x100, 0, "1,010000000000"); /* byte-aligned: "0100", not "100" */
  expect_format(7, 0xabc, 0x12, "7,0abc00000012");
  expect_format(42, UINT64_MAX, 0xffffffff, "42,ffffffffffffffffffffffff");
  expect_format(UINT32_MAX, UINT64_C(0x0102030405060708), 0x090a0b0c, "4294967295,0102030405060708090a0b0c");
  expect_format(1, UINT64_C(0x0100000000000000), 1, "1,010000000000000000000001");
  /* key 0: upstream strips every byte ("5,000000d6", which nobody can parse);
   * we keep one, as upstream's NeedleId.FileId pads */
  expect_format(5, 0, 0xd6, "5,00000000d6");
}

static void test_format_buffer(void **state)
{
  fm_fid f = { 3, 0x01637037, 0xd6 };
  char buf[FM_FID_MAX];
  const char *want = "3,01637037000000d6";
  size_t need = strlen(want) + 1;
  memset(buf, 'x', sizeof buf);
  assert_int_equal(fm_fid_format(&f, buf, need - 1), FM_ETOOBIG);
  assert_int_equal(buf[0], 'x'); /* nothing written */
  assert_int_equal(fm_fid_format(&f, buf, 0), FM_ETOOBIG);
  assert_int_equal(fm_fid_format(&f, buf, need), 0);
  assert_string_equal(buf, want);

  /* the longest fid fits FM_FID_MAX exactly */
  fm_fid max = { UINT32_MAX, UINT64_MAX, UINT32_MAX };
  assert_int_equal(fm_fid_format(&max, buf, FM_FID_MAX), 0);
  assert_int_equal(strlen(buf), FM_FID_MAX - 1);
  assert_int_equal(fm_fid_format(&max, buf, FM_FID_MAX - 1), FM_ETOOBIG);

  fm_fid zero = { 0, 1, 1 };
  assert_int_equal(fm_fid_format(&zero, buf, sizeof buf), FM_EINVAL);
}

/* Forms upstream's parser takes that our formatter never writes. */
static void test_parse_noncanonical(void **state)
{
  expect_parse("3,01637037d6", 3, 1, 0x637037d6);
  expect_parse("3,1637037000000d6", 3, 0x1637037, 0xd6);     /* odd number of key digits */
  expect_parse("3,ABCDEF12345678", 3, 0xabcdef, 0x12345678); /* uppercase: ParseUint base 16 */
  expect_parse("3,aBcDeF00DeadBeef", 3, 0xabcdef00, 0xdeadbeef);
  expect_parse("03,0100000000", 3, 1, 0); /* leading zeros in the volume id */
  expect_parse("0000000000003,0100000000", 3, 1, 0);
  expect_parse("3,000000000000000100000000", 3, 1, 0); /* 16 key digits with leading zeros */
  expect_parse("3,0000000000", 3, 0, 0);
  expect_parse("3,000000000", 3, 0, 0); /* 9 digits: 1 of key */
  expect_parse("4294967295,ffffffffffffffffffffffff", UINT32_MAX, UINT64_MAX, UINT32_MAX);
}

static void test_parse_rejects(void **state)
{
#define REJECT(lit) expect_reject(lit, sizeof(lit) - 1)
  REJECT("");
  REJECT(",");
  REJECT("3");
  REJECT("301637037d6");  /* no comma */
  REJECT(",01637037d6");  /* no volume id */
  REJECT("3,");           /* nothing after the comma */
  REJECT("0,01637037d6"); /* volume 0 */
  REJECT("00,01637037d6");
  REJECT("4294967296,01637037d6"); /* UINT32_MAX + 1: upstream truncates to 0 */
  REJECT("4294967299,01637037d6"); /* ... or to 3 */
  REJECT("99999999999999999999999,01637037d6");
  REJECT("-3,01637037d6");
  REJECT("+3,01637037d6");
  REJECT(" 3,01637037d6");
  REJECT("3 ,01637037d6");
  REJECT("0x3,01637037d6");
  REJECT("3a,01637037d6");
  REJECT("3,637037d6"); /* 8 digits: cookie only */
  REJECT("3,1");
  REJECT("3,0000000000000000000000000");  /* 25 digits */
  REJECT("3,0123456789abcdef0123456789"); /* 26 digits */
  REJECT("3,01637037g6");                 /* non-hex */
  REJECT("3,0163703 d6");
  REJECT("3,01637037d6 ");
  REJECT("3,0x637037d6");
  REJECT("3,-1637037d6");
  REJECT("3,+1637037d6");
  REJECT("3,01_637037d6");
  REJECT("3,01637037d6,");
  REJECT("3,01,637037d6");
  REJECT("3,01637037d6.jpg"); /* the extension is the HTTP side's to strip */
  REJECT("3/01637037d6");
  /* the volume server's "_<delta>" suffix (Needle.ParsePath) is not taken */
  REJECT("3,01637037d6_1");
  REJECT("3,01637037d6_12");
  REJECT("3,01637037d6_");
#undef REJECT
  /* an embedded NUL, and the length is what counts, not the NUL */
  expect_reject("3,01637\0"
                "037d6",
                13);
  expect_reject("3,01637037d6", 10); /* 8 digits counted */
  expect_parse("3,01637037d6", 3, 1, 0x637037d6);
  /* a length that stops inside a longer string */
  fm_fid f = { 0 };
  assert_int_equal(fm_fid_parse("3,01637037d6xyz", 12, &f), 0);
  assert_true(f.key == 1 && f.cookie == 0x637037d6);
  assert_int_equal(fm_fid_parse(NULL, 0, &f), FM_EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_format_exact),
    cmocka_unit_test(test_format_buffer), cmocka_unit_test(test_parse_noncanonical),
    cmocka_unit_test(test_parse_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
