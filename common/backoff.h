/* Exponential backoff with jitter between reconnect attempts: each delay is drawn from [d/2, d] where d doubles from
 * `initial_ms` up to `max_ms`, and a success resets d. The follow client embeds one; one thread at a time. */
#ifndef FM_BACKOFF_H
#define FM_BACKOFF_H

#include <stdint.h>

/* The fields are private. */
typedef struct fm_backoff {
  int64_t initial_ms, max_ms;
  int64_t cur_ms; /* d for the next delay */
  uint64_t rng;   /* xorshift state, never 0 */
} fm_backoff;

/* initial_ms >= 1 and max_ms >= initial_ms (smaller values are raised to these); `seed` 0 draws one from the clock. */
void fm_backoff_init(fm_backoff *b, int64_t initial_ms, int64_t max_ms, uint64_t seed);

/* The next delay in ms, in [d/2, d] (at least 1), and doubles d up to max_ms. */
int64_t fm_backoff_next(fm_backoff *b);

/* After a success: the next delay starts from initial_ms again. */
void fm_backoff_reset(fm_backoff *b);

#endif
