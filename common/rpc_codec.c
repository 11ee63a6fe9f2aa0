/* protobuf-c <-> grpc_byte_buffer. A received buffer made of one slice is
 * decoded in place; a fragmented one is joined once with readall. */
#include "rpc_codec.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <string.h>

#include "error.h"

int fm_rpc_decode_bytes(const void *data, size_t len, const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
                        ProtobufCMessage **out)
{
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, alloc, len, (const uint8_t *)data);
  if (m == NULL)
    return FM_EDECODE;
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
