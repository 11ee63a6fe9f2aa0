/*
 * Log records: protobuf-c packs and unpacks the LogEntry, libcrypto computes the partition hash, and this file adds
 * only the 4-byte big-endian framing and its checks.
 *
 * Decoding copies: protobuf-c's unpack always copies `bytes` fields into its own allocations, and finding the field
 * inside the caller's buffer instead would mean parsing protobuf by hand. So the reader keeps the unpacked LogEntry
 * (malloc'ed by protobuf-c) until the next call and lends out its data and key. Callers that decode many records
 * elsewhere frame them with fm_log_reader_next_raw and decode them with fm_log_record_decode into an arena (the
 * refs-mode client, which mostly skips even that: proto/log_entry_view.proto decodes a record and its event at once).
 */
#include "log_record.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"

/* What stopped a reader (fm_log_reader.damage). */
enum {
  DAMAGE_NONE,
  DAMAGE_SHORT_PREFIX, /* torn: fewer than 4 bytes of length prefix before the end */
  DAMAGE_SHORT_RECORD, /* torn: the stream ends inside the record */
  DAMAGE_ZERO,
  DAMAGE_TOO_BIG,
  DAMAGE_UNDECODABLE,
};

/* Given to the reader for a record whose data or key is empty, so callers never see NULL. */
static const uint8_t empty_bytes[1];

static void put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* protobuf-c's allocator plus a note of a failed allocation: unpack returns NULL for malformed bytes and for a failed
 * malloc alike, and only the first is damage. The blocks are plain malloc blocks. */
static void *oom_alloc(void *oom, size_t size)
{
  void *p = malloc(size);
  if (p == NULL && size > 0)
    *(bool *)oom = true;
  return p;
}

static void oom_free(void *oom, void *p)
{
  (void)oom;
  free(p);
}

/* ================================================================ encoding */

uint32_t fm_log_partition_hash(const char *directory, size_t len)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(directory, len, md, &md_len, EVP_md5(), NULL) != 1 || md_len < 4) {
    fprintf(stderr, "filermeta: libcrypto cannot compute MD5, needed for log partition hashes\n");
    abort();
  }
  return get_be32(md);
}

void fm_log_record_set(fm_log_record *rec, int64_t ts_ns, const void *event, size_t event_len, const char *directory,
                       size_t dir_len, int64_t offset)
{
  memset(rec, 0, sizeof *rec);
  rec->ts_ns = ts_ns;
  rec->partition_key_hash = (int32_t)fm_log_partition_hash(directory, dir_len);
  rec->data = event;
  rec->data_len = event_len;
  rec->key = (const uint8_t *)directory;
  rec->key_len = dir_len;
  rec->offset = offset;
}

/* The LogEntry for `rec`. protobuf-c's binary fields are not const, but packing only reads them. Returns false when
 * a field alone is over the limit: protobuf-c sizes fields as uint32 and must not see lengths it would wrap. */
static bool to_entry(const fm_log_record *rec, FilerPb__LogEntry *e)
{
  if (rec->data_len > FM_LOG_RECORD_MAX || rec->key_len > FM_LOG_RECORD_MAX)
    return false;
  filer_pb__log_entry__init(e);
  e->ts_ns = rec->ts_ns;
  e->partition_key_hash = rec->partition_key_hash;
  e->data.data = (uint8_t *)rec->data;
  e->data.len = rec->data_len;
  e->key.data = (uint8_t *)rec->key;
  e->key.len = rec->key_len;
  e->offset = rec->offset;
  return true;
}

size_t fm_log_record_size(const fm_log_record *rec)
{
  FilerPb__LogEntry e;
  if (!to_entry(rec, &e))
    return 0;
  size_t n = filer_pb__log_entry__get_packed_size(&e);
  return n == 0 || n > FM_LOG_RECORD_MAX ? 0 : FM_LOG_RECORD_PREFIX + n;
}

int fm_log_record_pack(const fm_log_record *rec, uint8_t *out, size_t cap, size_t *written)
{
  *written = 0;
  FilerPb__LogEntry e;
  if (!to_entry(rec, &e))
    return FM_ETOOBIG;
  size_t n = filer_pb__log_entry__get_packed_size(&e);
  if (n > FM_LOG_RECORD_MAX)
    return FM_ETOOBIG;
  if (n == 0)
    return FM_EINVAL;
  if (cap < FM_LOG_RECORD_PREFIX + n) {
    *written = FM_LOG_RECORD_PREFIX + n;
    return FM_ETOOBIG;
  }
  put_be32(out, (uint32_t)n);
  size_t packed = filer_pb__log_entry__pack(&e, out + FM_LOG_RECORD_PREFIX);
  if (packed != n)
    abort(); /* protobuf-c disagrees with itself about the size */
  *written = FM_LOG_RECORD_PREFIX + n;
  return 0;
}

int fm_log_record_encode(int64_t ts_ns, const void *event, size_t event_len, const char *directory, size_t dir_len,
                         int64_t offset, uint8_t *out, size_t cap, size_t *written)
{
  fm_log_record rec;
  fm_log_record_set(&rec, ts_ns, event, event_len, directory, dir_len, offset);
  return fm_log_record_pack(&rec, out, cap, written);
}

/* ================================================================ reading */

static void reader_init(fm_log_reader *r, const void *buf, size_t len, uint64_t base_offset, bool last)
{
  memset(r, 0, sizeof *r);
  r->in = buf;
  r->in_len = len;
  r->in_base = base_offset;
  r->last = last;
  r->max_len = FM_LOG_RECORD_MAX;
}

void fm_log_reader_init(fm_log_reader *r, const void *buf, size_t len, uint64_t base_offset)
{
  reader_init(r, buf, len, base_offset, true);
}

void fm_log_reader_init_stream(fm_log_reader *r, uint64_t base_offset)
{
  reader_init(r, NULL, 0, base_offset, false);
}

int fm_log_reader_feed(fm_log_reader *r, const void *chunk, size_t len, bool last)
{
  if (r->last || r->in_pos != r->in_len)
    return FM_EINVAL;
  r->in_base += r->in_len;
  r->in = chunk;
  r->in_len = len;
  r->in_pos = 0;
  r->last = last;
  return 0;
}

void fm_log_reader_set_max(fm_log_reader *r, uint32_t max_len)
{
  r->max_len = max_len < FM_LOG_RECORD_MAX ? max_len : FM_LOG_RECORD_MAX;
}

bool fm_log_reader_torn(const fm_log_reader *r)
{
  return r->failed != 0 && (r->damage == DAMAGE_SHORT_PREFIX || r->damage == DAMAGE_SHORT_RECORD);
}

uint64_t fm_log_reader_pos(const fm_log_reader *r)
{
  if (r->carry_len > 0 && !r->carry_returned)
    return r->carry_pos;
  return r->in_base + r->in_pos;
}

void fm_log_reader_destroy(fm_log_reader *r)
{
  if (r->entry != NULL)
    filer_pb__log_entry__free_unpacked(r->entry, NULL);
  free(r->carry);
  memset(r, 0, sizeof *r);
}

/* Writes the message for the reader's damage. The offset is always the bad record's first byte. */
static int report(const fm_log_reader *r, char *err, size_t errlen)
{
  uint64_t at = fm_log_reader_pos(r);
  switch (r->damage) {
  case DAMAGE_SHORT_PREFIX:
    snprintf(err, errlen, "log record length cut short at offset %" PRIu64 " (%" PRIu64 " of %d bytes)", at,
             r->damage_have, FM_LOG_RECORD_PREFIX);
    break;
  case DAMAGE_SHORT_RECORD:
    snprintf(err, errlen, "log record cut short at offset %" PRIu64 " (length %" PRIu32 ", %" PRIu64 " bytes present)",
             at, r->damage_len, r->damage_have);
    break;
  case DAMAGE_ZERO:
    snprintf(err, errlen, "zero-length log record at offset %" PRIu64, at);
    break;
  case DAMAGE_TOO_BIG:
    snprintf(err, errlen, "log record too big at offset %" PRIu64 " (length %" PRIu32 ", limit %" PRIu32 ")", at,
             r->damage_len, r->max_len);
    break;
  case DAMAGE_UNDECODABLE:
    snprintf(err, errlen, "log record does not decode as LogEntry at offset %" PRIu64 " (length %" PRIu32 ")", at,
             r->damage_len);
    break;
  default:
    snprintf(err, errlen, "log record damaged at offset %" PRIu64, at);
    break;
  }
  return r->failed;
}

/* Stops the reader at the record that starts at fm_log_reader_pos(). */
static int fail(fm_log_reader *r, int damage, uint32_t len, uint64_t have, char *err, size_t errlen)
{
  r->failed = FM_EDECODE;
  r->damage = damage;
  r->damage_len = len;
  r->damage_have = have;
  return report(r, err, errlen);
}

/* Checks a record's length prefix; the record starts at fm_log_reader_pos(). */
static int check_len(fm_log_reader *r, uint32_t len, char *err, size_t errlen)
{
  if (len == 0)
    return fail(r, DAMAGE_ZERO, len, FM_LOG_RECORD_PREFIX, err, errlen);
  if (len > r->max_len)
    return fail(r, DAMAGE_TOO_BIG, len, FM_LOG_RECORD_PREFIX, err, errlen);
  return 0;
}

/* Moves up to `want` bytes of the current input to the end of the carry buffer. Returns 0 or FM_ENOMEM (nothing
 * moved). */
static int take(fm_log_reader *r, size_t want)
{
  size_t n = r->in_len - r->in_pos;
  if (n > want)
    n = want;
  if (n == 0)
    return 0;
  if (r->carry_len == 0)
    r->carry_pos = r->in_base + r->in_pos;
  if (r->carry_cap - r->carry_len < n) {
    /* grow by what arrives, doubling, so a bogus length never allocates ahead of the bytes */
    size_t cap = r->carry_cap > 0 ? r->carry_cap : 64;
    while (cap - r->carry_len < n)
      cap *= 2;
    uint8_t *p = realloc(r->carry, cap);
    if (p == NULL)
      return FM_ENOMEM;
    r->carry = p;
    r->carry_cap = cap;
  }
  memcpy(r->carry + r->carry_len, r->in + r->in_pos, n);
  r->carry_len += n;
  r->in_pos += n;
  return 0;
}

/* A protobuf-c allocator over another one that notes a failed allocation (see oom_alloc). */
typedef struct noting {
  ProtobufCAllocator *inner;
  bool oom;
} noting;

static void *noting_alloc(void *data, size_t size)
{
  noting *n = data;
  void *p = n->inner->alloc(n->inner->allocator_data, size);
  if (p == NULL && size > 0)
    n->oom = true;
  return p;
}

static void noting_free(void *data, void *p)
{
  noting *n = data;
  n->inner->free(n->inner->allocator_data, p);
}

/* Unpacks the LogEntry of len bytes at `body` into *e: 0, FM_ENOMEM, or FM_EDECODE (no message). */
static int unpack_entry(ProtobufCAllocator *alloc, const uint8_t *body, uint32_t len, FilerPb__LogEntry **e)
{
  noting n = { .inner = alloc, .oom = false };
  ProtobufCAllocator a = { .alloc = noting_alloc, .free = noting_free, .allocator_data = &n };
  if (alloc == NULL)
    a = (ProtobufCAllocator){ .alloc = oom_alloc, .free = oom_free, .allocator_data = &n.oom };
  *e = filer_pb__log_entry__unpack(&a, len, body);
  if (*e != NULL)
    return 0;
  return n.oom ? FM_ENOMEM : FM_EDECODE;
}

/* Fills *rec from a decoded entry and the record's place. */
static void fill(fm_log_record *rec, const FilerPb__LogEntry *e, const uint8_t *raw, uint32_t len, uint64_t pos)
{
  memset(rec, 0, sizeof *rec);
  rec->ts_ns = e->ts_ns;
  rec->partition_key_hash = e->partition_key_hash;
  rec->data = e->data.len > 0 ? e->data.data : empty_bytes;
  rec->data_len = e->data.len;
  rec->key = e->key.len > 0 ? e->key.data : empty_bytes;
  rec->key_len = e->key.len;
  rec->offset = e->offset;
  rec->pos = pos;
  rec->raw = raw;
  rec->raw_len = FM_LOG_RECORD_PREFIX + (size_t)len;
}

int fm_log_record_decode(const uint8_t *raw, size_t raw_len, uint64_t pos, ProtobufCAllocator *alloc,
                         fm_log_record *rec, char *err, size_t errlen)
{
  if (raw_len <= FM_LOG_RECORD_PREFIX || raw_len - FM_LOG_RECORD_PREFIX != get_be32(raw)) {
    snprintf(err, errlen, "log record framing does not match its %zu bytes at offset %" PRIu64, raw_len, pos);
    return FM_EINVAL;
  }
  uint32_t len = (uint32_t)(raw_len - FM_LOG_RECORD_PREFIX);
  FilerPb__LogEntry *e = NULL;
  int rc = unpack_entry(alloc, raw + FM_LOG_RECORD_PREFIX, len, &e);
  if (rc == FM_EDECODE)
    snprintf(err, errlen, "log record does not decode as LogEntry at offset %" PRIu64 " (length %" PRIu32 ")", pos,
             len);
  if (rc != 0)
    return rc;
  fill(rec, e, raw, len, pos);
  return 0;
}

/* Unpacks the record at raw[0..4+len) into *rec. The record starts at fm_log_reader_pos(). */
static int decode(fm_log_reader *r, const uint8_t *raw, uint32_t len, fm_log_record *rec, char *err, size_t errlen)
{
  FilerPb__LogEntry *e = NULL;
  int rc = unpack_entry(NULL, raw + FM_LOG_RECORD_PREFIX, len, &e);
  if (rc == FM_ENOMEM)
    return rc;
  if (rc != 0)
    return fail(r, DAMAGE_UNDECODABLE, len, (uint64_t)FM_LOG_RECORD_PREFIX + len, err, errlen);
  r->entry = e;
  fill(rec, e, raw, len, fm_log_reader_pos(r));
  return 0;
}

/* The next record when one began in an earlier chunk: completes it in the carry buffer from the current input. */
static int find_carried(fm_log_reader *r, const uint8_t **raw, uint32_t *len_out, char *err, size_t errlen)
{
  if (r->carry_len < FM_LOG_RECORD_PREFIX) {
    if (take(r, FM_LOG_RECORD_PREFIX - r->carry_len) != 0)
      return FM_ENOMEM;
    if (r->carry_len < FM_LOG_RECORD_PREFIX)
      return r->last ? fail(r, DAMAGE_SHORT_PREFIX, 0, r->carry_len, err, errlen) : FM_ENOTFOUND;
  }
  uint32_t len = get_be32(r->carry);
  int rc = check_len(r, len, err, errlen);
  if (rc != 0)
    return rc;
  size_t need = FM_LOG_RECORD_PREFIX + (size_t)len;
  if (take(r, need - r->carry_len) != 0)
    return FM_ENOMEM;
  if (r->carry_len < need)
    return r->last ? fail(r, DAMAGE_SHORT_RECORD, len, r->carry_len, err, errlen) : FM_ENOTFOUND;
  *raw = r->carry;
  *len_out = len;
  return 0;
}

/* Finds the next whole record, at fm_log_reader_pos(), without decoding it or moving past it: *raw is its first byte
 * (in the carry buffer or the current input), *len_out its length. Returns 0, FM_ENOTFOUND, FM_EDECODE (the reader
 * fails) or FM_ENOMEM. */
static int find(fm_log_reader *r, const uint8_t **raw, uint32_t *len_out, char *err, size_t errlen)
{
  if (r->carry_returned) {
    r->carry_len = 0;
    r->carry_returned = false;
  }
  if (r->failed != 0)
    return report(r, err, errlen);
  if (r->carry_len > 0)
    return find_carried(r, raw, len_out, err, errlen);

  size_t left = r->in_len - r->in_pos;
  if (left == 0)
    return FM_ENOTFOUND;
  const uint8_t *p = r->in + r->in_pos;
  if (left < FM_LOG_RECORD_PREFIX) {
    if (r->last)
      return fail(r, DAMAGE_SHORT_PREFIX, 0, left, err, errlen);
    return take(r, left) != 0 ? FM_ENOMEM : FM_ENOTFOUND;
  }
  uint32_t len = get_be32(p);
  int rc = check_len(r, len, err, errlen);
  if (rc != 0)
    return rc;
  if (left - FM_LOG_RECORD_PREFIX < len) {
    if (r->last)
      return fail(r, DAMAGE_SHORT_RECORD, len, left, err, errlen);
    return take(r, left) != 0 ? FM_ENOMEM : FM_ENOTFOUND;
  }
  *raw = p;
  *len_out = len;
  return 0;
}

/* Moves past the record find() returned. */
static void commit(fm_log_reader *r, const uint8_t *raw, uint32_t len)
{
  if (raw == r->carry)
    r->carry_returned = true;
  else
    r->in_pos += FM_LOG_RECORD_PREFIX + (size_t)len;
}

int fm_log_reader_next(fm_log_reader *r, fm_log_record *rec, char *err, size_t errlen)
{
  if (r->entry != NULL) {
    filer_pb__log_entry__free_unpacked(r->entry, NULL);
    r->entry = NULL;
  }
  const uint8_t *raw = NULL;
  uint32_t len = 0;
  int rc = find(r, &raw, &len, err, errlen);
  if (rc != 0)
    return rc;
  rc = decode(r, raw, len, rec, err, errlen);
  if (rc == 0)
    commit(r, raw, len);
  return rc;
}

int fm_log_reader_next_raw(fm_log_reader *r, const uint8_t **raw, size_t *raw_len, uint64_t *pos, char *err,
                           size_t errlen)
{
  uint32_t len = 0;
  int rc = find(r, raw, &len, err, errlen);
  if (rc != 0)
    return rc;
  *pos = fm_log_reader_pos(r);
  *raw_len = FM_LOG_RECORD_PREFIX + (size_t)len;
  commit(r, *raw, len);
  return 0;
}
