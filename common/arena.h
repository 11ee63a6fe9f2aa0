/* A bump arena: many small allocations freed at once by a reset, and a protobuf-c allocator over it so that a
 * decoded message costs no malloc per nested field. Embedded in its owner (a subscription filter, a follow client);
 * one thread at a time. Leaf module. */
#ifndef FM_ARENA_H
#define FM_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

/* The fields are private. After warm-up (a reset that followed the largest use so far) one block holds everything
 * and allocating calls no malloc. */
typedef struct fm_arena {
  struct fm_arena_block *head; /* the block allocations come from; older blocks follow */
  size_t used;                 /* bytes of head taken */
  size_t total;                /* bytes handed out since the last reset, padding included */
  size_t min_block;            /* size of the first block */
  size_t hint;                 /* size of the next first block: what the last cycle needed */
  size_t keep_max;             /* a reset never keeps a block larger than this */
  size_t mallocs;              /* blocks allocated since init */
  size_t block;                /* retaining arenas: the size of every block (0: merging arena) */
  struct fm_arena_block *kept; /* retaining arenas: blocks kept by the last reset, not in use yet */
  bool failed;                 /* a block could not be allocated since the last reset */
} fm_arena;

/* Prepares an empty arena; nothing is allocated until the first fm_arena_alloc. `min_block` is the first block's
 * size (0: 4 KiB); a reset keeps one block big enough for everything allocated since the previous reset, but never
 * more than `keep_max` bytes (0: 1 MiB), so one huge message does not pin its memory for the owner's lifetime. */
void fm_arena_init(fm_arena *a, size_t min_block, size_t keep_max);

/* Prepares an empty retaining arena, for cycles of many megabytes: every block is `block` bytes (a larger single
 * allocation gets a block of its own), and a reset keeps the blocks, up to `keep_max` bytes of them, for the next
 * cycle instead of merging them into one. So blocks stay a size the allocator caches and reuses (one merged block of
 * many megabytes is one the allocator gives back to the system, and then faults in again page by page). Blocks of
 * 1 MiB or more are rounded up (with their header) to whole huge pages of 2 MiB and ask for transparent ones. */
void fm_arena_init_retaining(fm_arena *a, size_t block, size_t keep_max);

/* Frees every block. The arena may be initialised again. */
void fm_arena_destroy(fm_arena *a);

/* `size` bytes aligned for any type, valid until the next reset or destroy; never NULL for size 0. NULL when a block
 * could not be allocated (fm_arena_failed says so until the next reset). */
void *fm_arena_alloc(fm_arena *a, size_t size);

/* Releases everything allocated since the last reset. When the arena needed more than one block since then, they
 * are replaced by one block of the combined size (bounded by keep_max), so the same load next time needs no
 * malloc; a retaining arena keeps its blocks instead (up to keep_max bytes). */
void fm_arena_reset(fm_arena *a);

/* True when an allocation failed since the last reset: tells protobuf-c's NULL for "out of memory" from NULL for
 * malformed bytes. */
bool fm_arena_failed(const fm_arena *a);

/* Blocks allocated since init (for tests and metrics: flat once warmed up). */
size_t fm_arena_mallocs(const fm_arena *a);

/* A protobuf-c allocator over `a`: alloc is fm_arena_alloc, free does nothing (the reset frees). A message unpacked
 * with it must not be freed with protobuf_c_message_free_unpacked by anything but this allocator, and is gone after
 * the next reset. `a` is borrowed for as long as the allocator is used. */
ProtobufCAllocator fm_arena_allocator(fm_arena *a);

#endif
