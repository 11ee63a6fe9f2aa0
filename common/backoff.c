/* Backoff delays with "equal jitter": half of d fixed, half random, so attempts spread out but never come sooner
 * than d/2. */
#include "backoff.h"

#include "clock.h"

void fm_backoff_init(fm_backoff *b, int64_t initial_ms, int64_t max_ms, uint64_t seed)
{
  if (initial_ms < 1)
    initial_ms = 1;
  if (max_ms < initial_ms)
    max_ms = initial_ms;
  b->initial_ms = initial_ms;
  b->max_ms = max_ms;
  b->cur_ms = initial_ms;
  b->rng = seed != 0 ? seed : (uint64_t)fm_mono_ns() ^ UINT64_C(0x9e3779b97f4a7c15);
  if (b->rng == 0)
    b->rng = 1;
}

static uint64_t xorshift(fm_backoff *b)
{
  uint64_t x = b->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  b->rng = x;
  return x;
}

int64_t fm_backoff_next(fm_backoff *b)
{
  int64_t d = b->cur_ms;
  int64_t half = d / 2;
  int64_t delay = d - half + (int64_t)(xorshift(b) % (uint64_t)(half + 1)); /* [d - d/2, d] */
  if (delay < 1)
    delay = 1;
  b->cur_ms = d > b->max_ms / 2 ? b->max_ms : d * 2;
  return delay;
}

void fm_backoff_reset(fm_backoff *b)
{
  b->cur_ms = b->initial_ms;
}
