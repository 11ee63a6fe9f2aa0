/* The bump arena: a list of blocks, newest first; allocations come from the newest. A retaining arena also has a list
 * of kept blocks, which it uses before it allocates. */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define ARENA_ALIGN alignof(max_align_t)
#define ARENA_MIN_BLOCK_DEFAULT ((size_t)4 << 10)
#define ARENA_KEEP_MAX_DEFAULT ((size_t)1 << 20)
/* the transparent huge page size of x86-64 and arm64 (4 KiB base pages) */
#define HUGE_PAGE ((size_t)2 << 20)

struct fm_arena_block {
  struct fm_arena_block *next;
  size_t size; /* bytes of data */
  max_align_t data[];
};

void fm_arena_init(fm_arena *a, size_t min_block, size_t keep_max)
{
  *a = (fm_arena){ 0 };
  a->min_block = min_block > 0 ? min_block : ARENA_MIN_BLOCK_DEFAULT;
  a->keep_max = keep_max > 0 ? keep_max : ARENA_KEEP_MAX_DEFAULT;
  if (a->keep_max < a->min_block)
    a->keep_max = a->min_block;
}

void fm_arena_init_retaining(fm_arena *a, size_t block, size_t keep_max)
{
  fm_arena_init(a, block, keep_max);
  a->block = a->min_block;
}

static void free_blocks(struct fm_arena_block *b)
{
  while (b != NULL) {
    struct fm_arena_block *next = b->next;
    free(b);
    b = next;
  }
}

void fm_arena_destroy(fm_arena *a)
{
  free_blocks(a->head);
  free_blocks(a->kept);
  a->head = NULL;
  a->kept = NULL;
  a->used = 0;
  a->total = 0;
}

/* A retaining arena's next block for an allocation of n bytes: a kept one when it is big enough, else a new one of
 * a->block bytes (n when larger). */
static struct fm_arena_block *retained_block(fm_arena *a, size_t n)
{
  struct fm_arena_block *b = a->kept;
  if (b != NULL && b->size >= n) {
    a->kept = b->next;
    return b;
  }
  size_t bsize = n > a->block ? n : a->block;
  if (bsize > SIZE_MAX - sizeof(struct fm_arena_block) - HUGE_PAGE)
    return NULL;
  size_t total = sizeof *b + bsize;
  if (total < HUGE_PAGE / 2) {
    b = malloc(total);
  } else {
    /* rounded up to whole huge pages, asking for transparent ones: the first use of a block then costs a fault per
     * 2 MiB instead of one per 4 KiB (advice only; pages never written are never backed) */
    total = (total + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = NULL;
    b = posix_memalign(&p, HUGE_PAGE, total) == 0 ? p : NULL;
    if (b != NULL)
      (void)madvise(b, total, MADV_HUGEPAGE);
  }
  if (b != NULL) {
    a->mallocs++;
    b->size = total - sizeof *b;
  }
  return b;
}

void *fm_arena_alloc(fm_arena *a, size_t size)
{
  /* size 0 still takes one unit so that every pointer is distinct and non-NULL */
  if (size > SIZE_MAX - ARENA_ALIGN) {
    a->failed = true;
    return NULL;
  }
  size_t n = size == 0 ? ARENA_ALIGN : (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if ((a->head == NULL || a->head->size - a->used < n) && a->block > 0) {
    struct fm_arena_block *b = retained_block(a, n);
    if (b == NULL) {
      a->failed = true;
      return NULL;
    }
    b->next = a->head;
    a->head = b;
    a->used = 0;
  } else if (a->head == NULL || a->head->size - a->used < n) {
    /* a new block: what the last cycle needed, else twice the current one, and at least this allocation */
    size_t bsize = a->head == NULL ? (a->hint > a->min_block ? a->hint : a->min_block) : a->head->size;
    if (a->head != NULL && bsize <= (SIZE_MAX - sizeof(struct fm_arena_block)) / 2)
      bsize *= 2;
    if (bsize < n)
      bsize = n;
    if (bsize > SIZE_MAX - sizeof(struct fm_arena_block)) {
      a->failed = true;
      return NULL;
    }
    struct fm_arena_block *b = malloc(sizeof *b + bsize);
    if (b == NULL) {
      a->failed = true;
      return NULL;
    }
    a->mallocs++;
    b->size = bsize;
    b->next = a->head;
    a->head = b;
    a->used = 0;
  }
  void *p = (unsigned char *)a->head->data + a->used;
  a->used += n;
  a->total += n;
  return p;
}

void fm_arena_reset(fm_arena *a)
{
  if (a->block > 0) {
    /* keep blocks (the kept ones first) up to keep_max bytes in all; free the rest */
    size_t kept = 0;
    for (struct fm_arena_block *b = a->kept; b != NULL; b = b->next)
      kept += b->size;
    while (a->head != NULL) {
      struct fm_arena_block *b = a->head;
      a->head = b->next;
      if (kept + b->size <= a->keep_max) {
        kept += b->size;
        b->next = a->kept;
        a->kept = b;
      } else {
        free(b);
      }
    }
  } else if (a->head != NULL && (a->head->next != NULL || a->head->size > a->keep_max)) {
    /* several blocks (or one too big to keep): next time one block of the combined size, allocated when needed */
    a->hint = a->total < a->keep_max ? a->total : a->keep_max;
    free_blocks(a->head);
    a->head = NULL;
  }
  a->used = 0;
  a->total = 0;
  a->failed = false;
}

bool fm_arena_failed(const fm_arena *a)
{
  return a->failed;
}

size_t fm_arena_mallocs(const fm_arena *a)
{
  return a->mallocs;
}

/* protobuf-c calls this for every message, string and array it decodes: the common case (room in the current block)
 * is done here, without the call. */
static void *arena_pb_alloc(void *data, size_t size)
{
  fm_arena *a = data;
  size_t n = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if (size - 1 < SIZE_MAX - ARENA_ALIGN && a->head != NULL && a->head->size - a->used >= n) {
    void *p = (unsigned char *)a->head->data + a->used;
    a->used += n;
    a->total += n;
    return p;
  }
  return fm_arena_alloc(a, size); /* size 0, a new block, or too big */
}

static void arena_pb_free(void *data, void *p)
{
  (void)data;
  (void)p;
}

ProtobufCAllocator fm_arena_allocator(fm_arena *a)
{
  return (ProtobufCAllocator){ .alloc = arena_pb_alloc, .free = arena_pb_free, .allocator_data = a };
}
