/* SeaweedFS file ids ("<volume>,<key hex><cookie 8 hex>"): the text form that
 * names a needle in the chunk store, on the wire and in chunk lists. Parsed
 * and formatted exactly as upstream (weed/storage/needle/file_id.go) does.
 * Called by the chunk store, the HTTP side, the gRPC volume RPCs and the
 * refs-mode follow client; pure functions, any thread. */
#ifndef FM_FID_H
#define FM_FID_H

#include <stddef.h>
#include <stdint.h>

typedef struct fm_fid {
  uint32_t volume_id; /* never 0 in a valid fid */
  uint64_t key;       /* needle key, unique within its volume */
  uint32_t cookie;    /* random; a read with the wrong cookie finds nothing */
} fm_fid;

/* Bytes of the longest formatted fid, NUL included: 10 decimal digits of the
 * volume id, ',', 16 hex digits of the key, 8 of the cookie, '\0'. */
#define FM_FID_MAX 36

/*
 * Parses `len` bytes of `s` (not NUL-terminated; no NUL may occur in it) as a
 * fid, accepting what upstream's ParseFileIdFromString accepts with two
 * exceptions that make it stricter: a volume id above UINT32_MAX (upstream
 * truncates it) and volume id 0 are rejected. So: 1 or more decimal digits
 * (leading zeros allowed), ',', then 9 to 24 hex digits (either case) of which
 * the last 8 are the cookie and the rest the key. The volume server's "_<n>"
 * delta suffix is not accepted. Returns 0 with *out, or FM_EINVAL.
 */
int fm_fid_parse(const char *s, size_t len, fm_fid *out);

/*
 * Writes f's canonical text and a NUL into buf: the volume id in decimal, ','
 * then the key's 8 big-endian bytes without their leading zero bytes, in
 * lowercase hex, then the cookie's 4 bytes. Identical to upstream's
 * FileId.String() for every key but 0, whose bytes upstream strips entirely
 * (giving a string that neither it nor fm_fid_parse accepts): key 0 keeps one
 * zero byte ("00"), as upstream's NeedleId.FileId pads it. Returns 0,
 * FM_EINVAL for volume id 0, or FM_ETOOBIG when `len` is too short (FM_FID_MAX
 * always suffices).
 */
int fm_fid_format(const fm_fid *f, char *buf, size_t len);

#endif
