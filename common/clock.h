/* Wall-clock and monotonic time in nanoseconds. Leaf module; any thread. */
#ifndef FM_CLOCK_H
#define FM_CLOCK_H

#include <stdint.h>

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t fm_now_ns(void);

/* Nanoseconds on CLOCK_MONOTONIC: for intervals and deadlines only. */
int64_t fm_mono_ns(void);

#endif
