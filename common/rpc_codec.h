/* Message encode/decode between protobuf-c messages and gRPC byte buffers.
 * Used by the RPC server and client layers; any thread, no shared state. */
#ifndef FM_RPC_CODEC_H
#define FM_RPC_CODEC_H

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/*
 * Decodes `bb` (borrowed) as a `desc` message. `alloc` may be NULL (malloc).
 * On success *out is caller-owned: free with protobuf_c_message_free_unpacked.
 * Returns 0 or FM_EDECODE.
 */
int fm_rpc_decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
                  ProtobufCMessage **out);

/* Decodes `len` bytes at `data` (borrowed); same contract as fm_rpc_decode. */
int fm_rpc_decode_bytes(const void *data, size_t len, const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *alloc,
                        ProtobufCMessage **out);

/*
 * Decodes a request the server received: as fm_rpc_decode, and also refuses
 * (FM_EINVAL) any string field holding a NUL byte, which C strings would
 * silently cut short ("a\0b" read as "a"); `why` then names the field
 * ("field entry.name contains a NUL byte"). Free *out with fm_rpc_request_free.
 */
int fm_rpc_decode_request(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                          char *why, size_t whylen);
void fm_rpc_request_free(ProtobufCMessage *msg);

/* Encodes `msg` into a new byte buffer; caller frees with grpc_byte_buffer_destroy.
 * Returns NULL only if allocation fails. */
grpc_byte_buffer *fm_rpc_encode(const ProtobufCMessage *msg);

/* Copies `len` bytes of an already-encoded message into a new byte buffer;
 * caller frees with grpc_byte_buffer_destroy. */
grpc_byte_buffer *fm_rpc_buffer_from_bytes(const void *data, size_t len);

#endif
