/* The serialized FileDescriptorSet of every .proto in proto/, compiled in by
 * the build (proto/embed.c). Read by the server's reflection service. */
#ifndef FM_DESCRIPTOR_SET_H
#define FM_DESCRIPTOR_SET_H
#include <stddef.h>
extern const unsigned char fm_descriptor_set[];
extern const size_t fm_descriptor_set_len;
#endif
