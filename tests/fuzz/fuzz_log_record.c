/* libFuzzer target for storage/log_record: arbitrary file bytes through the reader, whole and fed as three chunks
 * (both must agree record for record, down to the error); every record re-encodes to bytes that read back as the same
 * record and re-encode to themselves; and the input taken as one record's fields encodes and reads back exactly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                                                       \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

static bool same_fields(const fm_log_record *a, const fm_log_record *b)
{
  return a->ts_ns == b->ts_ns && a->partition_key_hash == b->partition_key_hash && a->offset == b->offset &&
         a->data_len == b->data_len && a->key_len == b->key_len && memcmp(a->data, b->data, a->data_len) == 0 &&
         memcmp(a->key, b->key, a->key_len) == 0;
}

/* Packs `rec`; the bytes must be one record that reads back with the same fields and packs to itself. Bytes the
 * reader accepted need not be what protobuf-c writes (field order, varint padding, unknown fields, repeated fields:
 * protobuf admits many encodings of one message), so equality with rec->raw is not required. Returns whether it
 * was. */
static bool check_repack(const fm_log_record *rec)
{
  size_t size = fm_log_record_size(rec);
  if (size == 0) {
    /* only a LogEntry of zero fields, which pack refuses: it would be a zero length */
    size_t written = 1;
    uint8_t byte;
    CHECK(rec->ts_ns == 0 && rec->partition_key_hash == 0 && rec->data_len == 0 && rec->key_len == 0 &&
          rec->offset == 0);
    CHECK(fm_log_record_pack(rec, &byte, 1, &written) == FM_EINVAL && written == 0);
    return false;
  }
  uint8_t *out = malloc(size);
  CHECK(out != NULL);
  size_t written = 0;
  CHECK(fm_log_record_pack(rec, out, size, &written) == 0 && written == size);

  fm_log_reader r;
  fm_log_reader_init(&r, out, size, 0);
  fm_log_record back;
  char err[FM_ERR_LEN];
  CHECK(fm_log_reader_next(&r, &back, err, sizeof err) == 0);
  CHECK(same_fields(rec, &back));
  CHECK(back.raw == out && back.raw_len == size);
  uint8_t *again = malloc(size);
  CHECK(again != NULL);
  CHECK(fm_log_record_pack(&back, again, size, &written) == 0 && written == size);
  CHECK(memcmp(again, out, size) == 0);
  CHECK(fm_log_reader_next(&r, &back, err, sizeof err) == FM_ENOTFOUND);
  fm_log_reader_destroy(&r);

  bool identical = rec->raw_len == size && memcmp(rec->raw, out, size) == 0;
  free(again);
  free(out);
  return identical;
}

/* What a read produced: a digest of every record, and how it ended. */
typedef struct outcome {
  size_t n;
  uint64_t digest;
  int rc;
  bool torn;
  uint64_t pos;
  char err[FM_ERR_LEN];
} outcome;

static uint64_t mix(uint64_t h, const void *p, size_t len)
{
  const uint8_t *b = p;
  for (size_t i = 0; i < len; i++)
    h = (h ^ b[i]) * 0x100000001b3u;
  return h;
}

static void note(outcome *o, const fm_log_record *rec)
{
  o->n++;
  o->digest = mix(o->digest, &rec->pos, sizeof rec->pos);
  o->digest = mix(o->digest, rec->raw, rec->raw_len);
}

/* Reads data[0..size) fed as chunks cut at c1 <= c2; each chunk is a copy freed once the reader is done with it. */
static void read_chunked(const uint8_t *data, size_t size, size_t c1, size_t c2, uint32_t max, outcome *o)
{
  memset(o, 0, sizeof *o);
  fm_log_reader r;
  fm_log_reader_init_stream(&r, 1000);
  if (max != 0)
    fm_log_reader_set_max(&r, max);
  size_t cuts[3] = { c1, c2, size }, from = 0;
  for (int c = 0; c < 3; c++) {
    uint8_t *chunk = malloc(cuts[c] - from + 1);
    CHECK(chunk != NULL);
    memcpy(chunk, data + from, cuts[c] - from);
    CHECK(fm_log_reader_feed(&r, chunk, cuts[c] - from, c == 2) == 0);
    from = cuts[c];
    fm_log_record rec;
    int rc;
    while ((rc = fm_log_reader_next(&r, &rec, o->err, sizeof o->err)) == 0)
      note(o, &rec);
    free(chunk);
    o->rc = rc;
    if (rc != FM_ENOTFOUND)
      break;
  }
  o->torn = fm_log_reader_torn(&r);
  o->pos = fm_log_reader_pos(&r);
  fm_log_reader_destroy(&r);
}

/* The input as the fields of one record. */
static void check_fields(const uint8_t *data, size_t size)
{
  if (size < 17)
    return;
  int64_t ts, offset;
  memcpy(&ts, data, 8);
  memcpy(&offset, data + 8, 8);
  size_t split = data[16] % (size - 16);
  const uint8_t *rest = data + 17;
  size_t rest_len = size - 17;
  if (split > rest_len)
    split = rest_len;
  fm_log_record rec;
  fm_log_record_set(&rec, ts, rest, split, (const char *)rest + split, rest_len - split, offset);
  size_t need = fm_log_record_size(&rec);
  CHECK(need > 0);
  uint8_t *out = malloc(need);
  CHECK(out != NULL);
  size_t written = 0;
  CHECK(fm_log_record_encode(ts, rest, split, (const char *)rest + split, rest_len - split, offset, out, need,
                             &written) == 0 &&
        written == need);
  fm_log_reader r;
  fm_log_reader_init(&r, out, written, 0);
  fm_log_record back;
  char err[FM_ERR_LEN];
  CHECK(fm_log_reader_next(&r, &back, err, sizeof err) == 0);
  CHECK(same_fields(&rec, &back));
  CHECK(check_repack(&back)); /* what we write is canonical: it packs back byte for byte */
  CHECK(fm_log_reader_next(&r, &back, err, sizeof err) == FM_ENOTFOUND);
  fm_log_reader_destroy(&r);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* a small limit now and then, so the too-big path is reached by short inputs */
  uint32_t max = size > 0 && data[0] == 0x7f ? 64 : 0;

  outcome whole;
  memset(&whole, 0, sizeof whole);
  fm_log_reader r;
  fm_log_reader_init(&r, data, size, 1000);
  if (max != 0)
    fm_log_reader_set_max(&r, max);
  fm_log_record rec;
  int rc;
  uint64_t prev_end = 1000;
  while ((rc = fm_log_reader_next(&r, &rec, whole.err, sizeof whole.err)) == 0) {
    CHECK(rec.pos == prev_end && rec.raw == data + (rec.pos - 1000));
    prev_end = rec.pos + rec.raw_len;
    CHECK(fm_log_reader_pos(&r) == prev_end);
    check_repack(&rec);
    note(&whole, &rec);
  }
  CHECK(rc == FM_ENOTFOUND || rc == FM_EDECODE);
  CHECK(fm_log_reader_pos(&r) == prev_end);
  CHECK(rc == FM_ENOTFOUND ? prev_end == 1000 + size : strstr(whole.err, " at offset ") != NULL);
  whole.rc = rc;
  whole.torn = fm_log_reader_torn(&r);
  whole.pos = fm_log_reader_pos(&r);
  fm_log_reader_destroy(&r);

  size_t c1 = size > 0 ? data[size - 1] % (size + 1) : 0;
  size_t c2 = c1 + (size > 1 ? data[size / 2] % (size - c1 + 1) : 0);
  outcome chunked;
  read_chunked(data, size, c1, c2, max, &chunked);
  CHECK(whole.n == chunked.n && whole.digest == chunked.digest && whole.rc == chunked.rc &&
        whole.torn == chunked.torn && whole.pos == chunked.pos && strcmp(whole.err, chunked.err) == 0);

  check_fields(data, size);
  return 0;
}
