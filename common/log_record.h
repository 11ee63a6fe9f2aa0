/* The byte format of persisted metadata log files (PROTOCOL.md §4): records of a 4-byte big-endian length and an
 * encoded filer_pb.LogEntry. The flusher encodes records; the subscription reader and the refs-mode client decode
 * them with an fm_log_reader over one buffer or a file's consecutive chunks. Nothing here is shared between
 * threads: a reader belongs to one thread, the encoders are reentrant. */
#ifndef FM_LOG_RECORD_H
#define FM_LOG_RECORD_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the big-endian length in front of every record. */
#define FM_LOG_RECORD_PREFIX 4

/* The largest record length (the LogEntry's bytes, prefix not counted) we write or accept: upstream's 1 GiB limit on
 * a length plus its prefix. */
#define FM_LOG_RECORD_MAX ((uint32_t)(1u << 30) - FM_LOG_RECORD_PREFIX)

/*
 * One record: the fields of filer_pb.LogEntry, and where the reader found it. For the encoders only the LogEntry
 * fields matter; the pointers are borrowed for the call.
 */
typedef struct fm_log_record {
  int64_t ts_ns;              /* LogEntry.ts_ns */
  int32_t partition_key_hash; /* LogEntry.partition_key_hash: fm_log_partition_hash(key) when we wrote it */
  const uint8_t *data;        /* LogEntry.data: an encoded SubscribeMetadataResponse; never NULL from the reader */
  size_t data_len;
  const uint8_t *key; /* LogEntry.key: the event's directory; never NULL from the reader */
  size_t key_len;
  int64_t offset; /* LogEntry.offset: the writer's running counter, not a byte position */
  /* set by fm_log_reader_next only */
  uint64_t pos;       /* absolute byte offset of the record's length prefix */
  const uint8_t *raw; /* the record's bytes as read, length prefix included */
  size_t raw_len;     /* FM_LOG_RECORD_PREFIX + the length */
} fm_log_record;

/* First 4 bytes of MD5(directory) read as a big-endian number, as the SeaweedFS filer fills
 * LogEntry.partition_key_hash (store it as int32_t). `directory` is borrowed for the call. Aborts if libcrypto cannot
 * compute MD5 at all (an OpenSSL configured FIPS-only), which no caller could work around. */
uint32_t fm_log_partition_hash(const char *directory, size_t len);

/* Fills `rec`'s LogEntry fields the way the filer does for an event: partition_key_hash from `directory`, data =
 * `event` (an encoded SubscribeMetadataResponse), key = `directory`. `rec` borrows both pointers. */
void fm_log_record_set(fm_log_record *rec, int64_t ts_ns, const void *event, size_t event_len, const char *directory,
                       size_t dir_len, int64_t offset);

/* Exact number of bytes fm_log_record_pack writes for `rec` (length prefix included), or 0 when it writes none. */
size_t fm_log_record_size(const fm_log_record *rec);

/*
 * Writes `rec` as one record (the big-endian length, then the LogEntry packed by protobuf-c) into out[0..cap).
 * Returns 0 with *written bytes; FM_ETOOBIG when the record is over FM_LOG_RECORD_MAX (*written = 0) or does not fit
 * in `cap` (*written = the size it needs, nothing written); FM_EINVAL when every field is zero or empty, because
 * such a LogEntry packs to no bytes and readers take a zero length for corruption (the filer's ts_ns is never 0).
 */
int fm_log_record_pack(const fm_log_record *rec, uint8_t *out, size_t cap, size_t *written);

/* fm_log_record_set + fm_log_record_pack: the record the flusher writes for one event. */
int fm_log_record_encode(int64_t ts_ns, const void *event, size_t event_len, const char *directory, size_t dir_len,
                         int64_t offset, uint8_t *out, size_t cap, size_t *written);

/* ---- reading ---- */

struct FilerPb__LogEntry;

/*
 * Reads records from one buffer (fm_log_reader_init) or from a file's consecutive chunks fed one at a time
 * (fm_log_reader_init_stream + fm_log_reader_feed), where a record may straddle chunks: its bytes are gathered into
 * a buffer the reader owns. Embedded in the caller's struct; every init is paired with fm_log_reader_destroy. The
 * fields are private.
 */
typedef struct fm_log_reader {
  const uint8_t *in; /* the current input, borrowed */
  size_t in_len;
  size_t in_pos;
  uint64_t in_base; /* absolute offset of in[0] */
  bool last;        /* no input follows the current one */
  uint8_t *carry;   /* the start of a record that began in an earlier chunk */
  size_t carry_len;
  size_t carry_cap;
  uint64_t carry_pos;              /* absolute offset of carry[0] */
  bool carry_returned;             /* carry holds the record the last call returned */
  uint32_t max_len;                /* longest record length accepted */
  int failed;                      /* 0, or the FM_EDECODE every later call returns */
  int damage;                      /* what failed (log_record.c) */
  uint32_t damage_len;             /* the length prefix of the failed record, if read */
  uint64_t damage_have;            /* bytes of the failed record present */
  struct FilerPb__LogEntry *entry; /* the last record decoded */
} fm_log_reader;

/* Starts reading `buf`, the whole byte stream: its end is the stream's end. base_offset is the absolute offset of
 * buf[0] in its file, used for rec->pos and in messages. `buf` is borrowed until the reader is destroyed. */
void fm_log_reader_init(fm_log_reader *r, const void *buf, size_t len, uint64_t base_offset);

/* Starts reading a stream given as chunks through fm_log_reader_feed; base_offset is the first chunk's absolute
 * offset. */
void fm_log_reader_init_stream(fm_log_reader *r, uint64_t base_offset);

/*
 * Gives the reader the chunk that follows the previous one; `last` says it ends the stream (a NULL, 0 chunk may
 * carry just that). Allowed once fm_log_reader_next has returned FM_ENOTFOUND for the previous chunk; the previous
 * chunk is no longer referenced from then on, and `chunk` is borrowed until next returns FM_ENOTFOUND again or the
 * reader is destroyed. Returns 0, or FM_EINVAL when the previous chunk is not consumed or the stream has ended.
 */
int fm_log_reader_feed(fm_log_reader *r, const void *chunk, size_t len, bool last);

/* Lowers the longest record length accepted (default and ceiling FM_LOG_RECORD_MAX). */
void fm_log_reader_set_max(fm_log_reader *r, uint32_t max_len);

/*
 * Decodes the next record into *rec. Returns:
 *   0             a record; rec->data and rec->key are borrowed, valid until the next call or destroy, and so is
 *                 rec->raw when the record straddled chunks (otherwise raw points into the caller's buffer);
 *   FM_ENOTFOUND  no more records: the stream ended cleanly, or (streaming) the chunk is consumed and the next
 *                 may be fed;
 *   FM_EDECODE    with "<what> at offset <n>" in err, n the absolute offset of the bad record's length prefix:
 *                 a length prefix or record cut short by the end of the stream (fm_log_reader_torn says so), a zero
 *                 length, a length over the limit, or bytes that do not decode as LogEntry. The reader stops
 *                 there: later calls return the same error;
 *   FM_ENOMEM     gathering a straddling record or decoding failed to allocate; calling again retries.
 */
int fm_log_reader_next(fm_log_reader *r, fm_log_record *rec, char *err, size_t errlen);

/*
 * Frames the next record without decoding it, for callers that decode records elsewhere (fm_log_record_decode):
 * *raw is the record's bytes, length prefix included (*raw_len bytes, a length within the limit), *pos the absolute
 * offset of its first byte. *raw is borrowed like rec->raw of fm_log_reader_next: it points into the caller's chunk,
 * or into the reader's own buffer (valid until the next call) when the record straddled chunks. Returns what
 * fm_log_reader_next does, except that bytes which do not decode as LogEntry are not noticed here.
 */
int fm_log_reader_next_raw(fm_log_reader *r, const uint8_t **raw, size_t *raw_len, uint64_t *pos, char *err,
                           size_t errlen);

/*
 * Decodes one framed record (raw[0..raw_len), as fm_log_reader_next_raw returned it; `pos` is its offset, for
 * messages) into *rec, with protobuf-c allocating from `alloc` (required; meant for an arena's allocator: the LogEntry
 * is never freed here, its memory goes when the arena is reset). rec->data and rec->key point into that memory,
 * rec->raw is `raw`. Returns 0; FM_EDECODE
 * with "log record does not decode as LogEntry at offset <pos> (length <n>)" in err; FM_ENOMEM when `alloc` failed;
 * FM_EINVAL when raw_len does not match the length prefix.
 */
int fm_log_record_decode(const uint8_t *raw, size_t raw_len, uint64_t pos, ProtobufCAllocator *alloc,
                         fm_log_record *rec, char *err, size_t errlen);

/* True after FM_EDECODE for a record cut short by the end of the stream: a torn tail, which a log-file reader
 * treats as the end of the file. False for damage a complete file cannot explain (zero or oversized length,
 * undecodable bytes): corruption to report. */
bool fm_log_reader_torn(const fm_log_reader *r);

/* Absolute offset of the first byte not yet returned in a record: the end of the last record, or after
 * FM_EDECODE the start of the bad one. */
uint64_t fm_log_reader_pos(const fm_log_reader *r);

void fm_log_reader_destroy(fm_log_reader *r);

#endif
