/* A binary min-heap in an array that doubles when full. */
#include "ts_heap.h"

#include <stdlib.h>

#include "error.h"

void fm_ts_heap_init(fm_ts_heap *h)
{
  *h = (fm_ts_heap){ 0 };
}

void fm_ts_heap_destroy(fm_ts_heap *h)
{
  free(h->a);
  *h = (fm_ts_heap){ 0 };
}

static bool less(const fm_ts_heap_item *x, const fm_ts_heap_item *y)
{
  return x->ts_ns < y->ts_ns || (x->ts_ns == y->ts_ns && x->tie < y->tie);
}

int fm_ts_heap_push(fm_ts_heap *h, int64_t ts_ns, uint32_t tie, void *ptr)
{
  if (h->n == h->cap) {
    size_t cap = h->cap > 0 ? h->cap * 2 : 16;
    fm_ts_heap_item *a = realloc(h->a, cap * sizeof *a);
    if (a == NULL)
      return FM_ENOMEM;
    h->a = a;
    h->cap = cap;
  }
  fm_ts_heap_item it = { ts_ns, tie, ptr };
  size_t i = h->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!less(&it, &h->a[parent]))
      break;
    h->a[i] = h->a[parent];
    i = parent;
  }
  h->a[i] = it;
  return 0;
}

bool fm_ts_heap_pop(fm_ts_heap *h, fm_ts_heap_item *out)
{
  if (h->n == 0)
    return false;
  *out = h->a[0];
  fm_ts_heap_item last = h->a[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n)
      break;
    if (c + 1 < h->n && less(&h->a[c + 1], &h->a[c]))
      c++;
    if (!less(&h->a[c], &last))
      break;
    h->a[i] = h->a[c];
    i = c;
  }
  if (h->n > 0)
    h->a[i] = last;
  return true;
}

size_t fm_ts_heap_size(const fm_ts_heap *h)
{
  return h->n;
}
