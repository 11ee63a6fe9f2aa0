/* A Prometheus text exposition (format 0.0.4) built in memory: each family
 * with its # HELP and # TYPE lines, then its samples. Built afresh for every
 * GET /metrics by the HTTP side; an object is used by one thread. */
#ifndef FM_METRICS_H
#define FM_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct fm_metrics fm_metrics;

typedef enum fm_metrics_type {
  FM_METRICS_COUNTER, /* only goes up; name it *_total */
  FM_METRICS_GAUGE,
} fm_metrics_type;

typedef struct fm_metrics_label {
  const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]* */
  const char *value; /* any text; escaped on output */
} fm_metrics_label;

/* The prefix of every family name. */
#define FM_METRICS_PREFIX "filermeta_"

/* Returns 0 and an empty exposition in *out, or FM_ENOMEM. Caller frees with fm_metrics_free. */
int fm_metrics_new(fm_metrics **out);
void fm_metrics_free(fm_metrics *m);

/* Starts family FM_METRICS_PREFIX `name` (borrowed for the call). The
 * samples that follow, until the next family, belong to it. */
void fm_metrics_family(fm_metrics *m, const char *name, fm_metrics_type type, const char *help);

/* A sample of the current family with `n` labels (labels may be NULL when n is 0). */
void fm_metrics_sample(fm_metrics *m, const fm_metrics_label *labels, size_t n, uint64_t value);

/* A family with one unlabelled sample. */
void fm_metrics_u64(fm_metrics *m, const char *name, fm_metrics_type type, const char *help, uint64_t value);

/* A histogram family with no other labels: cumulative bucket counts for the upper bounds `le` (the last "+Inf"),
 * their sum and count. */
void fm_metrics_histogram(fm_metrics *m, const char *name, const char *help, const char *const *le,
                          const uint64_t *buckets, size_t n, double sum, uint64_t count);

/* A family with one unlabelled sample: a time (ns since the epoch) or a
 * duration in ns, written in seconds with nine decimals (the Prometheus unit;
 * the text keeps every digit). */
void fm_metrics_seconds(fm_metrics *m, const char *name, fm_metrics_type type, const char *help, int64_t ns);

/* Hands over the text: 0 with *text (caller frees with free()) and *len, or
 * FM_ENOMEM if any step ran out of memory. The object is left empty. */
int fm_metrics_take(fm_metrics *m, char **text, size_t *len);

#endif
