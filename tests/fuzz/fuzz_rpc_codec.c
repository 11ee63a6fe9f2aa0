/* libFuzzer target for the RPC layer's request decoding (common/rpc_codec):
 * arbitrary network bytes decoded as every request type filermetad accepts,
 * as one slice and split across two slices; what decodes must re-encode to
 * bytes that decode again. */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filer.pb-c.h"
#include "health.pb-c.h"
#include "reflection_v1alpha.pb-c.h"
#include "rpc_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const requests[] = {
  &filer_pb__ping_request__descriptor,
  &filer_pb__get_filer_configuration_request__descriptor,
  &filer_pb__subscribe_metadata_request__descriptor,
  &filer_pb__create_entry_request__descriptor,
  &grpc__health__v1__health_check_request__descriptor,
  &grpc__reflection__v1alpha__server_reflection_request__descriptor,
};

static void check(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d)
{
  ProtobufCMessage *m = NULL;
  if (fm_rpc_decode(bb, d, NULL, &m) != 0)
    return;
  grpc_byte_buffer *again = fm_rpc_encode(m);
  ProtobufCMessage *m2 = NULL;
  if (again == NULL || fm_rpc_decode(again, d, NULL, &m2) != 0)
    abort(); /* we produced bytes we cannot read back */
  protobuf_c_message_free_unpacked(m2, NULL);
  grpc_byte_buffer_destroy(again);
  protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int initialised;
  if (!initialised) {
    grpc_init();
    initialised = 1;
  }
  grpc_slice whole = grpc_slice_from_copied_buffer((const char *)data, size);
  grpc_byte_buffer *one = grpc_raw_byte_buffer_create(&whole, 1);
  size_t cut = size / 2;
  grpc_slice parts[2] = { grpc_slice_from_copied_buffer((const char *)data, cut),
                          grpc_slice_from_copied_buffer((const char *)data + cut, size - cut) };
  grpc_byte_buffer *two = grpc_raw_byte_buffer_create(parts, 2);
  for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
    check(one, requests[i]);
    check(two, requests[i]);
  }
  grpc_byte_buffer_destroy(one);
  grpc_byte_buffer_destroy(two);
  grpc_slice_unref(whole);
  grpc_slice_unref(parts[0]);
  grpc_slice_unref(parts[1]);
  return 0;
}
