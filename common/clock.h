/* Wall-clock and monotonic time in nanoseconds, and times written by people. Leaf module; any thread. */
#ifndef FM_CLOCK_H
#define FM_CLOCK_H

#include <stdint.h>

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t fm_now_ns(void);

/* Nanoseconds on CLOCK_MONOTONIC: for intervals and deadlines only. */
int64_t fm_mono_ns(void);

/* Parses a point in time given by a person: nanoseconds since the epoch ("1795562434680059206"), or RFC 3339
 * ("2026-11-24T10:00:00Z", "2026-11-24T10:00:00.25+01:00"; fractions to the ns). Returns 0 with *ns, or FM_EINVAL
 * (anything else, or a time before the epoch or past int64 ns). */
int fm_parse_time(const char *s, int64_t *ns);

#endif
