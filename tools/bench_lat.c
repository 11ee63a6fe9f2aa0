/* Latency percentiles for the bench workloads (tools_internal.h). */
#include <stdlib.h>

#include "tools_internal.h"

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* The q-th quantile (0 < q <= 1) of sorted v[0..n-1], nearest rank. */
static int64_t rank(const int64_t *v, size_t n, double q)
{
  size_t i = (size_t)((double)n * q);
  if (i > 0 && (double)i == (double)n * q)
    i--; /* an exact rank k is the k-th value, index k - 1 */
  return v[i < n ? i : n - 1];
}

void fm_bench_lat_summary(int64_t *ns, size_t n, fm_bench_lat *out)
{
  *out = (fm_bench_lat){ .n = n };
  if (n == 0)
    return;
  qsort(ns, n, sizeof *ns, cmp_i64);
  out->p50 = rank(ns, n, 0.50);
  out->p90 = rank(ns, n, 0.90);
  out->p99 = rank(ns, n, 0.99);
  out->p999 = rank(ns, n, 0.999);
  out->max = ns[n - 1];
}
