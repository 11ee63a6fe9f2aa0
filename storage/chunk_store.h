/* The chunk store: append-only volume files <dir>/<id>.dat + <id>.idx holding
 * needles (chunk bytes) addressed by SeaweedFS-style fids. The MetaLogBuffer
 * flusher and POST /<fid> assign and write; the HTTP side (GET /<fid>) reads;
 * retention deletes. Thread-safe: appends are serialized inside, and any number
 * of reads run alongside them. */
#ifndef FM_CHUNK_STORE_H
#define FM_CHUNK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fid.h"

typedef struct fm_chunk_store fm_chunk_store;

/* Default volume_bytes: a volume stops receiving new fids at 1 GiB. */
#define FM_CHUNK_VOLUME_BYTES_DEFAULT (UINT64_C(1) << 30)

typedef struct fm_chunk_store_options {
  bool sync; /* fsync .dat, then .idx, before a write or delete returns (as -store.sync) */
} fm_chunk_store_options;

/*
 * On-disk format (all integers big-endian):
 *
 *   <id>.dat  a 16-byte superblock "FMCV", u32 version (1), u32 volume id,
 *             u32 0; then needles back to back, each starting 8-byte aligned:
 *               u32 magic "FMND", u32 cookie, u64 key, u32 data size,
 *               u32 CRC-32 of the data (zlib's crc32, the IEEE polynomial;
 *               upstream uses Castagnoli), the data, zero padding to 8 bytes.
 *   <id>.idx  32-byte records appended in order:
 *               u64 key, u64 needle offset in .dat, u32 data size,
 *               u32 cookie, u8 type, 3 zero bytes, u32 CRC-32 of bytes 0..27.
 *             Types: 1 put (a needle was appended), 2 delete (a tombstone; the
 *             needle's bytes stay in .dat, space is never reclaimed), 3 key
 *             reservation (keys below `key` may have been handed out by
 *             fm_chunk_store_assign; offset and size are 0).
 *
 * A write appends the needle to .dat and then the record to .idx, so a crash
 * leaves at worst a needle without its record, or (an OS crash without sync)
 * a torn or zero-filled record or a record whose needle did not reach the
 * disk. fm_chunk_store_open repairs exactly these at the tail of a volume by
 * truncating back to the last complete needle, and logs what it dropped.
 *
 * volume_bytes works like upstream's volume size limit: assign hands out fids
 * in the newest volume until its .dat reaches volume_bytes, then creates the
 * next volume. A write always lands in its fid's volume, so a .dat may end up
 * to one needle (per fid assigned but not yet written) past volume_bytes.
 */

/*
 * Opens the volumes under `dir` (created if missing; its parent must exist),
 * loading every index into memory. Repairs a torn tail as described above;
 * any other inconsistency is FM_EDECODE with the file name and offset in
 * `err`. volume_bytes 0 means FM_CHUNK_VOLUME_BYTES_DEFAULT; `opt` may be
 * NULL. Returns 0, FM_EINVAL, FM_EBUSY (another handle or process has `dir` open),
 * FM_EDECODE, FM_EIO, FM_EPERM or FM_ENOMEM. Caller frees with
 * fm_chunk_store_free, after every other call on the handle has returned.
 */
int fm_chunk_store_open(const char *dir, uint64_t volume_bytes, const fm_chunk_store_options *opt, fm_chunk_store **out,
                        char *err, size_t errlen);
void fm_chunk_store_free(fm_chunk_store *s);

/*
 * A fresh fid in the current writable volume (created when there is none or
 * the newest is full): the next key that volume never used, persisted in its
 * index so it is never handed out again after a restart, and a random cookie.
 * Returns 0, FM_EIO or FM_ENOMEM.
 */
int fm_chunk_store_assign(fm_chunk_store *s, fm_fid *out);

/*
 * Appends `len` bytes (borrowed for the call) as the needle of `fid`, in
 * fid's volume. Returns 0; FM_ENOTFOUND when that volume does not exist;
 * FM_EEXIST when the key was ever written in it (deleted keys included);
 * FM_EINVAL when fm_chunk_store_assign never handed the key out (key 0, or a
 * key at or past the volume's next one: a later assign would hand it out
 * again); FM_ETOOBIG when the needle could not fit even an empty volume;
 * FM_EIO (nothing of the needle is left behind). `err` gets a reason.
 */
int fm_chunk_store_write(fm_chunk_store *s, const fm_fid *fid, const void *data, size_t len, char *err, size_t errlen);

/*
 * Reads fid's whole needle with one pread and checks its CRC. Returns 0 with
 * *data (caller frees with free(); never NULL, even for 0 bytes) and *len;
 * FM_ENOTFOUND for an unknown volume or key, a deleted needle or a wrong
 * cookie; FM_EDECODE ("crc mismatch in <file> at offset <n>", or a header that
 * does not match the index) or FM_EIO with `err`; FM_ENOMEM.
 */
int fm_chunk_store_read(fm_chunk_store *s, const fm_fid *fid, void **data, size_t *len, char *err, size_t errlen);

/*
 * As fm_chunk_store_read, for an HTTP Range: *data holds the needle's bytes
 * [offset, offset + length), length cut at the needle's end (UINT64_MAX: to
 * the end); offset == size gives 0 bytes, offset > size is FM_EINVAL (416).
 * It still reads and CRC-checks the whole needle: the CRC covers all of it,
 * and the HTTP side must know the bytes are good before it sends a 206 status
 * line, since corruption has to become a 500 instead. Needles are chunks of
 * at most a few MiB, so the extra read is bounded.
 */
int fm_chunk_store_read_range(fm_chunk_store *s, const fm_fid *fid, uint64_t offset, uint64_t length, void **data,
                              size_t *len, char *err, size_t errlen);

/* What fm_chunk_store_stat tells about a needle without reading its data. */
typedef struct fm_chunk_needle_info {
  uint64_t size; /* data bytes */
  uint32_t crc;  /* CRC-32 of all the data, as stored in the needle header (the HTTP ETag) */
} fm_chunk_needle_info;

/*
 * Looks fid's needle up: its size from the index and its CRC from the needle
 * header (one small pread, checked against the index; the data is neither
 * read nor checked: fm_chunk_store_read_range does that). Returns 0 with
 * *out; FM_ENOTFOUND as fm_chunk_store_read; FM_EDECODE or FM_EIO with `err`.
 */
int fm_chunk_store_stat(fm_chunk_store *s, const fm_fid *fid, fm_chunk_needle_info *out, char *err, size_t errlen);

/*
 * Deletes fid's needle by appending a tombstone record; its key is never
 * reused and its bytes stay in the .dat. Returns 0, FM_ENOTFOUND (unknown,
 * already deleted, or wrong cookie) or FM_EIO.
 */
int fm_chunk_store_delete(fm_chunk_store *s, const fm_fid *fid);

/* Makes what was written to volume `volume_id` durable (fdatasync of its .dat, then its .idx), for a writer that must
 * not go on before its needle is on disk even without the sync option (the flusher, before it deletes the records a
 * chunk holds). Returns 0, FM_ENOTFOUND or FM_EIO with `err`. */
int fm_chunk_store_sync(fm_chunk_store *s, uint32_t volume_id, char *err, size_t errlen);

/* True if volume `volume_id` exists (LookupVolume). */
bool fm_chunk_store_has_volume(fm_chunk_store *s, uint32_t volume_id);

/* A struct tag without a typedef: the name is the function's. */
struct fm_chunk_store_stats {
  uint64_t volumes;
  uint64_t needles;          /* live (not deleted) */
  uint64_t deleted_needles;  /* tombstoned; their bytes are still on disk */
  uint64_t live_bytes;       /* data bytes of live needles */
  uint64_t disk_bytes;       /* .dat plus .idx sizes */
  uint64_t repaired_volumes; /* volumes whose torn tail open truncated */
};

void fm_chunk_store_stats(fm_chunk_store *s, struct fm_chunk_store_stats *out);

#endif
