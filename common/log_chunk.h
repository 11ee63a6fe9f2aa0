/* A chunk of a persisted metadata log file as chunk lists name it (PROTOCOL.md §4): the needle it lives in, and the
 * decode of its stored bytes (AES-256-GCM when it has a cipher_key, gzip when is_compressed) into its content. Used by
 * the server's log-file reader (storage/log_file.c) and by the refs-mode follow client (common/follow_refs.c). Pure
 * functions; any thread. */
#ifndef FM_LOG_CHUNK_H
#define FM_LOG_CHUNK_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fid.h"

struct FilerPb__FileChunk;

/* The needle a chunk names: its file_id text, or else its fid struct (upstream's compact form). Returns 0, FM_EINVAL
 * (a file_id that does not parse) or FM_ENOTFOUND (neither is set). */
int fm_log_chunk_fid(const struct FilerPb__FileChunk *pb, fm_fid *out);

/*
 * Turns a chunk's stored bytes into its content, in place: *buf (malloc'ed, len *len; ownership stays with the
 * caller, but the block may be replaced) is decrypted when `cipher_key` is non-NULL and non-empty (AES-256-GCM, the
 * 12-byte nonce first and the 16-byte tag last, as upstream's util.Encrypt writes), then gunzipped when `compressed`,
 * and must then hold exactly `size` bytes. `fid` names the chunk in messages ("chunk <fid>: <what>"). Returns 0, or
 * FM_EDECODE / FM_ENOMEM with `err`; on error *buf is still the caller's to free.
 */
int fm_log_chunk_decode(const ProtobufCBinaryData *cipher_key, bool compressed, uint64_t size, const char *fid,
                        void **buf, size_t *len, char *err, size_t errlen);

#endif
