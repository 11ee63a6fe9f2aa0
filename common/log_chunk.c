/* Chunk needles and the decode of stored chunk bytes: OpenSSL's EVP AES-256-GCM and zlib do the work. */
#include "log_chunk.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "error.h"
#include "filer.pb-c.h"

int fm_log_chunk_fid(const FilerPb__FileChunk *pb, fm_fid *out)
{
  if (pb->file_id != NULL && pb->file_id[0] != '\0')
    return fm_fid_parse(pb->file_id, strlen(pb->file_id), out) == 0 ? 0 : FM_EINVAL;
  if (pb->fid != NULL && pb->fid->volume_id != 0) {
    *out = (fm_fid){ pb->fid->volume_id, pb->fid->file_key, pb->fid->cookie };
    return 0;
  }
  return FM_ENOTFOUND;
}

#define GCM_NONCE 12
#define GCM_TAG 16

/* Replaces *buf (nonce, ciphertext, tag: Go's gcm.Seal(nonce, nonce, ...) as upstream's util.Encrypt) with its
 * plaintext. */
static int decrypt(const ProtobufCBinaryData *key, void **buf, size_t *len, const char *fid, char *err, size_t errlen)
{
  if (key->len != 32) {
    snprintf(err, errlen, "chunk %s: cipher key of %zu bytes (AES-256-GCM needs 32)", fid, key->len);
    return FM_EDECODE;
  }
  if (*len < GCM_NONCE + GCM_TAG) {
    snprintf(err, errlen, "chunk %s: %zu encrypted bytes cannot hold a nonce and a tag", fid, *len);
    return FM_EDECODE;
  }
  uint8_t *in = *buf;
  size_t clen = *len - GCM_NONCE - GCM_TAG;
  uint8_t *out = malloc(clen > 0 ? clen : 1);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (out == NULL || ctx == NULL) {
    free(out);
    EVP_CIPHER_CTX_free(ctx);
    return FM_ENOMEM;
  }
  int n = 0, fin = 0;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE, NULL) == 1 &&
            EVP_DecryptInit_ex(ctx, NULL, NULL, key->data, in) == 1 &&
            EVP_DecryptUpdate(ctx, out, &n, in + GCM_NONCE, (int)clen) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, in + GCM_NONCE + clen) == 1 &&
            EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    free(out);
    snprintf(err, errlen, "chunk %s: does not decrypt with its cipher key (AES-256-GCM)", fid);
    return FM_EDECODE;
  }
  free(in);
  *buf = out;
  *len = clen;
  return 0;
}

/* Replaces *buf (a gzip stream) with what it decompresses to, which must be exactly `size` bytes. */
static int gunzip(void **buf, size_t *len, uint64_t size, const char *fid, char *err, size_t errlen)
{
  if (*len > UINT32_MAX) {
    snprintf(err, errlen, "chunk %s: %zu compressed bytes is too many", fid, *len);
    return FM_EDECODE;
  }
  uint8_t *out = malloc(size > 0 ? (size_t)size : 1);
  if (out == NULL)
    return FM_ENOMEM;
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    free(out);
    return FM_ENOMEM;
  }
  zs.next_in = *buf;
  zs.avail_in = (uInt)*len;
  zs.next_out = out;
  zs.avail_out = (uInt)size;
  int zr = inflate(&zs, Z_FINISH);
  char why[96];
  snprintf(why, sizeof why, "%s", zs.msg != NULL ? zs.msg : "truncated");
  bool full = zs.avail_out == 0;
  uint64_t got = zs.total_out;
  inflateEnd(&zs);
  if (zr == Z_MEM_ERROR) {
    free(out);
    return FM_ENOMEM;
  }
  if (zr != Z_STREAM_END) {
    free(out);
    if (zr == Z_BUF_ERROR && full)
      snprintf(err, errlen, "chunk %s: decompresses to more than its size, %" PRIu64 " bytes", fid, size);
    else
      snprintf(err, errlen, "chunk %s: is_compressed but does not gunzip (%s)", fid, why);
    return FM_EDECODE;
  }
  if (got != size) {
    free(out);
    snprintf(err, errlen, "chunk %s: decompresses to %" PRIu64 " bytes, its size is %" PRIu64, fid, got, size);
    return FM_EDECODE;
  }
  free(*buf);
  *buf = out;
  *len = (size_t)size;
  return 0;
}

int fm_log_chunk_decode(const ProtobufCBinaryData *cipher_key, bool compressed, uint64_t size, const char *fid,
                        void **buf, size_t *len, char *err, size_t errlen)
{
  int rc = 0;
  if (cipher_key != NULL && cipher_key->len > 0)
    rc = decrypt(cipher_key, buf, len, fid, err, errlen);
  if (rc == 0 && compressed)
    rc = gunzip(buf, len, size, fid, err, errlen);
  if (rc == 0 && *len != size) {
    snprintf(err, errlen, "chunk %s: holds %zu bytes, its size is %" PRIu64, fid, *len, size);
    rc = FM_EDECODE;
  }
  return rc;
}
