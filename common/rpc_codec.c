/* protobuf-c <-> grpc_byte_buffer. A received buffer made of one slice is
 * decoded in place; a fragmented one is joined once with readall. */
#include "rpc_codec.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/*
 * protobuf-c accepts field number 0 when its tag is written as an over-long
 * varint ("80 00"), keeps it as an unknown field, and writes it back in the
 * short form, which it (like every other decoder) rejects. Field 0 is invalid
 * protobuf, so such input is refused here, at any depth, before anything is
 * stored or forwarded that could not be read back.
 */
static bool has_field_zero(const ProtobufCMessage *m)
{
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0)
      return true;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  for (unsigned f = 0; f < d->n_fields; f++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[f];
    if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(const void *)(base + fd->quantifier_offset);
      ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)(const void *)(base + fd->offset);
      for (size_t k = 0; k < n; k++)
        if (items[k] != NULL && has_field_zero(items[k]))
          return true;
      continue;
    }
    /* a oneof member is only meaningful when its case is the selected one */
    if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(const void *)(base + fd->quantifier_offset) != fd->id)
      continue;
    const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(const void *)(base + fd->offset);
    if (sub != NULL && has_field_zero(sub))
      return true;
  }
  return false;
}

int fm_rpc_decode_bytes(const void *data, size_t len, const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
                        ProtobufCMessage **out)
{
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, alloc, len, (const uint8_t *)data);
  if (m == NULL)
    return FM_EDECODE;
  if (has_field_zero(m)) {
    protobuf_c_message_free_unpacked(m, alloc);
    return FM_EDECODE;
  }
  *out = m;
  return 0;
}

int fm_rpc_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
                  ProtobufCMessage **out)
{
  /* The common case: one uncompressed slice, decoded where it lies. */
  if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
      bb->data.raw.slice_buffer.count == 1) {
    grpc_slice s = bb->data.raw.slice_buffer.slices[0];
    return fm_rpc_decode_bytes(GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), desc, alloc, out);
  }
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb))
    return FM_EDECODE; /* compressed with an algorithm we cannot undo */
  grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  int rc = fm_rpc_decode_bytes(GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), desc, alloc, out);
  grpc_slice_unref(s);
  return rc;
}

/* ---------------------------------------------------------------- requests */

/*
 * Requests are decoded through an allocator that keeps each block's size in
 * front of it. protobuf-c allocates exactly len + 1 bytes for a string of len
 * bytes, so a string whose strlen is shorter than its block held a NUL.
 */
#define SIZED_HEADER 16 /* keeps the max_align_t alignment of malloc */

static void *sized_alloc(void *data, size_t size)
{
  (void)data;
  unsigned char *p = malloc(size + SIZED_HEADER);
  if (p == NULL)
    return NULL;
  memcpy(p, &size, sizeof size);
  return p + SIZED_HEADER;
}

static void sized_free(void *data, void *ptr)
{
  (void)data;
  if (ptr != NULL)
    free((unsigned char *)ptr - SIZED_HEADER);
}

static ProtobufCAllocator sized_allocator = { sized_alloc, sized_free, NULL };

static bool string_has_nul(const char *s)
{
  size_t size;
  memcpy(&size, s - SIZED_HEADER, sizeof size);
  return strlen(s) + 1 != size;
}

/* Appends "name" (or ".name") to the dotted field path in `path`. */
static void path_push(char *path, size_t len, const char *name)
{
  size_t at = strlen(path);
  snprintf(path + at, len - at, "%s%s", at > 0 ? "." : "", name);
}

/*
 * Whether any string in m (at any depth) holds a NUL; if so `path` names it
 * ("entry.name"). Strings still pointing at the descriptor's default were
 * never allocated and are skipped.
 */
static bool has_nul_string(const ProtobufCMessage *m, char *path, size_t len)
{
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  size_t mark = strlen(path);
  for (unsigned f = 0; f < d->n_fields; f++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[f];
    if (fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(const void *)(base + fd->quantifier_offset) != fd->id)
      continue;
    path_push(path, len, fd->name);
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(const void *)(base + fd->quantifier_offset);
      void *const *items = *(void *const *const *)(const void *)(base + fd->offset);
      for (size_t k = 0; k < n; k++) {
        if (items[k] == NULL)
          continue;
        if (fd->type == PROTOBUF_C_TYPE_STRING ? string_has_nul(items[k]) : has_nul_string(items[k], path, len))
          return true;
      }
    } else {
      const void *v = *(const void *const *)(const void *)(base + fd->offset);
      if (v != NULL && v != fd->default_value &&
          (fd->type == PROTOBUF_C_TYPE_STRING ? string_has_nul(v) : has_nul_string(v, path, len)))
        return true;
    }
    path[mark] = '\0';
  }
  return false;
}

int fm_rpc_decode_request(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                          char *why, size_t whylen)
{
  ProtobufCMessage *m = NULL;
  int rc = fm_rpc_decode(bb, desc, &sized_allocator, &m);
  if (rc != 0)
    return rc;
  char path[256] = "";
  if (has_nul_string(m, path, sizeof path)) {
    snprintf(why, whylen, "field %s contains a NUL byte", path);
    protobuf_c_message_free_unpacked(m, &sized_allocator);
    return FM_EINVAL;
  }
  *out = m;
  return 0;
}

void fm_rpc_request_free(ProtobufCMessage *msg)
{
  if (msg != NULL)
    protobuf_c_message_free_unpacked(msg, &sized_allocator);
}

/* ---------------------------------------------------------------- encoding */

grpc_byte_buffer *fm_rpc_encode(const ProtobufCMessage *msg)
{
  size_t len = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(len);
  size_t packed = protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  if (packed != len) {
    grpc_slice_unref(s);
    return NULL;
  }
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

grpc_byte_buffer *fm_rpc_buffer_from_bytes(const void *data, size_t len)
{
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}
