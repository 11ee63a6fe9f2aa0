/* The exposition text in one growing buffer; an allocation failure sticks and
 * is reported by fm_metrics_take, so that callers need not check each line. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct fm_metrics {
  char *buf;
  size_t len, cap;
  bool failed;
  char family[128]; /* full name of the current family */
};

int fm_metrics_new(fm_metrics **out)
{
  fm_metrics *m = calloc(1, sizeof *m);
  if (m == NULL)
    return FM_ENOMEM;
  *out = m;
  return 0;
}

void fm_metrics_free(fm_metrics *m)
{
  if (m == NULL)
    return;
  free(m->buf);
  free(m);
}

static bool reserve(fm_metrics *m, size_t n)
{
  if (m->failed)
    return false;
  if (m->len + n + 1 <= m->cap)
    return true;
  size_t cap = m->cap != 0 ? m->cap : 4096;
  while (m->len + n + 1 > cap)
    cap *= 2;
  char *grown = realloc(m->buf, cap);
  if (grown == NULL) {
    m->failed = true;
    return false;
  }
  m->buf = grown;
  m->cap = cap;
  return true;
}

static void put(fm_metrics *m, const char *s, size_t n)
{
  if (!reserve(m, n))
    return;
  memcpy(m->buf + m->len, s, n);
  m->len += n;
  m->buf[m->len] = '\0';
}

static void put_str(fm_metrics *m, const char *s)
{
  put(m, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(fm_metrics *m, const char *fmt, ...)
{
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line) {
    m->failed = true; /* our own lines are short: a longer one is a bug */
    return;
  }
  put(m, line, (size_t)n);
}

/* Writes `s` escaped as the format asks: backslash and newline always, the
 * double quote too inside label values. */
static void put_escaped(fm_metrics *m, const char *s, bool quote)
{
  for (const char *p = s; *p != '\0'; p++) {
    if (*p == '\\')
      put_str(m, "\\\\");
    else if (*p == '\n')
      put_str(m, "\\n");
    else if (quote && *p == '"')
      put_str(m, "\\\"");
    else
      put(m, p, 1);
  }
}

void fm_metrics_family(fm_metrics *m, const char *name, fm_metrics_type type, const char *help)
{
  if (snprintf(m->family, sizeof m->family, "%s%s", FM_METRICS_PREFIX, name) >= (int)sizeof m->family) {
    m->failed = true;
    return;
  }
  putf(m, "# HELP %s ", m->family);
  put_escaped(m, help, false);
  putf(m, "\n# TYPE %s %s\n", m->family, type == FM_METRICS_COUNTER ? "counter" : "gauge");
}

void fm_metrics_histogram(fm_metrics *m, const char *name, const char *help, const char *const *le,
                          const uint64_t *buckets, size_t n, double sum, uint64_t count)
{
  if (snprintf(m->family, sizeof m->family, "%s%s", FM_METRICS_PREFIX, name) >= (int)sizeof m->family) {
    m->failed = true;
    return;
  }
  putf(m, "# HELP %s ", m->family);
  put_escaped(m, help, false);
  putf(m, "\n# TYPE %s histogram\n", m->family);
  for (size_t i = 0; i < n; i++)
    putf(m, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", m->family, le[i], buckets[i]);
  putf(m, "%s_sum %.9f\n%s_count %" PRIu64 "\n", m->family, sum, m->family, count);
}

static void put_labels(fm_metrics *m, const fm_metrics_label *labels, size_t n)
{
  if (n == 0)
    return;
  put_str(m, "{");
  for (size_t i = 0; i < n; i++) {
    putf(m, "%s%s=\"", i > 0 ? "," : "", labels[i].name);
    put_escaped(m, labels[i].value, true);
    put_str(m, "\"");
  }
  put_str(m, "}");
}

void fm_metrics_sample(fm_metrics *m, const fm_metrics_label *labels, size_t n, uint64_t value)
{
  put_str(m, m->family);
  put_labels(m, labels, n);
  putf(m, " %" PRIu64 "\n", value);
}

void fm_metrics_u64(fm_metrics *m, const char *name, fm_metrics_type type, const char *help, uint64_t value)
{
  fm_metrics_family(m, name, type, help);
  fm_metrics_sample(m, NULL, 0, value);
}

void fm_metrics_seconds(fm_metrics *m, const char *name, fm_metrics_type type, const char *help, int64_t ns)
{
  fm_metrics_family(m, name, type, help);
  uint64_t mag = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
  putf(m, "%s %s%" PRIu64 ".%09" PRIu64 "\n", m->family, ns < 0 ? "-" : "", mag / 1000000000u, mag % 1000000000u);
}

int fm_metrics_take(fm_metrics *m, char **text, size_t *len)
{
  if (m->failed || !reserve(m, 0)) {
    free(m->buf);
    m->buf = NULL;
    m->len = m->cap = 0;
    m->failed = false;
    return FM_ENOMEM;
  }
  *text = m->buf;
  *len = m->len;
  m->buf = NULL;
  m->len = m->cap = 0;
  return 0;
}
