/* An index over a serialized FileDescriptorSet: files by name, fully-qualified
 * symbols (messages, fields, enums, enum values, services, methods), and each file's
 * transitive dependencies. Built once at start-up; read-only and lock-free after. */
#ifndef FM_DESCRIPTOR_INDEX_H
#define FM_DESCRIPTOR_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fm_descriptor_index fm_descriptor_index;

/* Decodes `set` (borrowed for the duration of the call; everything is copied) with protobuf-c. Returns 0, FM_EDECODE or
 * FM_ENOMEM; caller frees *out with fm_descriptor_index_free. */
int fm_descriptor_index_new(const void *set, size_t len, fm_descriptor_index **out);
void fm_descriptor_index_free(fm_descriptor_index *idx);

size_t fm_descriptor_index_file_count(const fm_descriptor_index *idx);

/* The i-th file's name and serialized FileDescriptorProto (both borrowed). */
const char *fm_descriptor_index_file_name(const fm_descriptor_index *idx, size_t i);
const uint8_t *fm_descriptor_index_file_bytes(const fm_descriptor_index *idx, size_t i, size_t *len);

/* Index of the file named `name`, or -1. */
int fm_descriptor_index_find_file(const fm_descriptor_index *idx, const char *name);

/* Index of the file defining the fully-qualified `symbol` (no leading dot), or -1.
 * *is_message (may be NULL) tells whether the symbol is a message type. */
int fm_descriptor_index_find_symbol(const fm_descriptor_index *idx, const char *symbol, bool *is_message);

/*
 * Writes into out[0..] file `i` followed by its transitive dependencies, each
 * once. Returns how many were written (at most `cap`).
 */
size_t fm_descriptor_index_closure(const fm_descriptor_index *idx, size_t i, size_t *out, size_t cap);

#endif
