/* Inside storage/: the key layout of the filer store (store_keys.c), shared
 * by store.c and the unit tests, the big-endian integer helpers every on-disk
 * format in storage/ uses, and the protobuf-c allocator the log decoders use. */
#ifndef FM_STORAGE_INTERNAL_H
#define FM_STORAGE_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* protobuf-c's allocator plus a note of a failed allocation: unpack returns NULL for malformed bytes and for a failed
 * malloc alike, and only the first is damage. Blocks are plain malloc blocks, so the message is freed with the
 * default allocator. */
static inline void *fm_storage__pb_alloc(void *oom, size_t size)
{
  void *p = malloc(size);
  if (p == NULL && size > 0)
    *(bool *)oom = true;
  return p;
}

static inline void fm_storage__pb_free(void *oom, void *p)
{
  (void)oom;
  free(p);
}

/* The allocator above, noting failures in *oom. */
static inline ProtobufCAllocator fm_storage__oom_allocator(bool *oom)
{
  return (ProtobufCAllocator){ .alloc = fm_storage__pb_alloc, .free = fm_storage__pb_free, .allocator_data = oom };
}

/* Big-endian loads and stores: keys, signatures, record lengths, needles. */
static inline void fm_storage__put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static inline void fm_storage__put_be64(uint8_t *p, uint64_t v)
{
  fm_storage__put_be32(p, (uint32_t)(v >> 32));
  fm_storage__put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t fm_storage__get_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t fm_storage__get_be64(const uint8_t *p)
{
  return (uint64_t)fm_storage__get_be32(p) << 32 | fm_storage__get_be32(p + 4);
}

/*
 * Key ranges, one leading byte each:
 *   'E' dir '\0' name   an entry; '\0' cannot occur in paths, so a directory's
 *                       entries are one contiguous range in name order
 *   'K' key             the KV API
 *   'W' ts (8 bytes BE) an event write-ahead record; ts_ns > 0, so byte order
 *                       is time order
 *   'M' name            store metadata ("Mclock": highest ts ever assigned)
 */
#define FM_KEY_ENTRY 'E'
#define FM_KEY_KV 'K'
#define FM_KEY_EVENT 'W'
#define FM_KEY_META 'M'

/* A key in a small inline buffer, spilling to the heap when long. */
typedef struct fm_key {
  char *data;
  size_t len;
  char inline_buf[256];
} fm_key;

void fm_store__key_free(fm_key *k);

/* 'E' dir '\0' name. name may be "" for the directory's range prefix. */
int fm_store__key_entry(fm_key *k, const char *dir, const char *name);
int fm_store__key_kv(fm_key *k, const void *key, size_t klen);
int fm_store__key_event(fm_key *k, int64_t ts_ns);

/* Decodes an event key; returns 0 or FM_EDECODE. */
int fm_store__key_event_ts(const char *key, size_t len, int64_t *ts_ns);

#define FM_KEY_CLOCK "Mclock"
/* The persisted log's state: flushed ts, records, retained-from ts, 8 bytes BE each. */
#define FM_KEY_LOG_STATE "Mlog"

#endif
