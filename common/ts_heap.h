/* A min-heap of items keyed by (ts_ns, tie): the merge of several ts-ordered streams into one, equal timestamps
 * taken in `tie` order (e.g. the rank of the stream's filer id), so the merge is stable. The refs-mode follow client
 * merges log files of several filers with it. Embedded in its owner; one thread at a time. */
#ifndef FM_TS_HEAP_H
#define FM_TS_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fm_ts_heap_item {
  int64_t ts_ns;
  uint32_t tie; /* smaller first among equal ts_ns */
  void *ptr;    /* the owner's, untouched */
} fm_ts_heap_item;

/* The fields are private. */
typedef struct fm_ts_heap {
  fm_ts_heap_item *a;
  size_t n, cap;
} fm_ts_heap;

void fm_ts_heap_init(fm_ts_heap *h);
void fm_ts_heap_destroy(fm_ts_heap *h);

/* Adds an item. Returns 0 or FM_ENOMEM (the heap is unchanged). */
int fm_ts_heap_push(fm_ts_heap *h, int64_t ts_ns, uint32_t tie, void *ptr);

/* Removes the smallest item into *out; false when the heap is empty. Among items with equal (ts_ns, tie) the order
 * is unspecified: give each stream its own tie. */
bool fm_ts_heap_pop(fm_ts_heap *h, fm_ts_heap_item *out);

size_t fm_ts_heap_size(const fm_ts_heap *h);

#endif
