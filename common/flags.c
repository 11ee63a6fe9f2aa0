/* Go-style flag parsing over a caller-provided table. */
#include "flags.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

fm_flag *fm_flags_find(fm_flag *flags, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(flags[i].name, name) == 0)
      return &flags[i];
  return NULL;
}

static int parse_bool(const char *s, bool *out)
{
  static const char *yes[] = { "1", "t", "T", "true", "TRUE", "True" };
  static const char *no[] = { "0", "f", "F", "false", "FALSE", "False" };
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return FM_EINVAL;
}

/* Go's time.ParseDuration for non-negative values: one or more <decimal number><unit> with units ns, us (or µs),
 * ms, s, m, h; "0" alone is allowed. Returns 0 with *ns, or FM_EINVAL (also on overflow). */
static int parse_duration(const char *s, int64_t *ns)
{
  static const struct {
    const char *unit;
    double ns;
  } units[] = { { "ns", 1 },  { "us", 1e3 }, { "\xc2\xb5s", 1e3 }, { "ms", 1e6 },
                { "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 } };
  if (strcmp(s, "0") == 0) {
    *ns = 0;
    return 0;
  }
  double total = 0;
  const char *p = s;
  if (*p == '\0')
    return FM_EINVAL;
  while (*p != '\0') {
    if (!isdigit((unsigned char)*p) && *p != '.')
      return FM_EINVAL;
    char *end = NULL;
    double v = strtod(p, &end);
    if (end == p)
      return FM_EINVAL;
    p = end;
    size_t best = 0, best_len = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      size_t l = strlen(units[i].unit);
      if (strncmp(p, units[i].unit, l) == 0 && l > best_len) {
        best = i;
        best_len = l;
      }
    }
    if (best_len == 0)
      return FM_EINVAL;
    /* the longest unit that matches: "ms" is not "m" then "s" */
    total += v * units[best].ns;
    p += best_len;
  }
  if (total > 9.2e18)
    return FM_EINVAL;
  *ns = (int64_t)total;
  return 0;
}

/* Stores `val` into flag `f`; fills err on a bad value. */
static int set_value(fm_flag *f, const char *val, char *err, size_t errlen)
{
  switch (f->type) {
  case FM_FLAG_BOOL:
    if (parse_bool(val, (bool *)f->value) != 0) {
      snprintf(err, errlen, "invalid boolean value \"%s\" for flag -%s", val, f->name);
      return FM_EINVAL;
    }
    break;
  case FM_FLAG_INT: {
    char *end = NULL;
    errno = 0;
    /* base 0 like Go's flag package: 0x1f, 017 (octal) and 31 are all accepted */
    long long v = strtoll(val, &end, 0);
    if (errno != 0 || end == val || *end != '\0' || isspace((unsigned char)val[0])) {
      snprintf(err, errlen, "invalid value \"%s\" for flag -%s: not an integer", val, f->name);
      return FM_EINVAL;
    }
    if ((f->min != 0 || f->max != 0) && (v < f->min || v > f->max)) {
      snprintf(err, errlen, "invalid value \"%s\" for flag -%s: must be between %" PRId64 " and %" PRId64, val, f->name,
               f->min, f->max);
      return FM_EINVAL;
    }
    *(int64_t *)f->value = (int64_t)v;
    break;
  }
  case FM_FLAG_STRING:
    *(const char **)f->value = val;
    break;
  case FM_FLAG_DURATION: {
    int64_t ns = 0;
    if (parse_duration(val, &ns) != 0) {
      snprintf(err, errlen, "invalid value \"%s\" for flag -%s: not a duration (e.g. 2m, 30s, 500ms)", val, f->name);
      return FM_EINVAL;
    }
    if ((f->min != 0 || f->max != 0) && (ns < f->min || ns > f->max)) {
      snprintf(err, errlen, "invalid value \"%s\" for flag -%s: out of range", val, f->name);
      return FM_EINVAL;
    }
    *(int64_t *)f->value = ns;
    break;
  }
  }
  f->set = true;
  return 0;
}

int fm_flags_parse(fm_flag *flags, size_t n, int argc, char **argv, int *first_arg, char *err, size_t errlen)
{
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0')
      break; /* first positional argument */
    a++;
    if (*a == '-') {
      a++;
      if (*a == '\0') { /* "--" ends the flags */
        i++;
        break;
      }
    }
    if (*a == '-' || *a == '=') {
      snprintf(err, errlen, "bad flag syntax: %s", argv[i]);
      return FM_EINVAL;
    }
    char name[128];
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    if (len >= sizeof name) {
      snprintf(err, errlen, "flag provided but not defined: -%.*s", 100, a);
      return FM_EINVAL;
    }
    memcpy(name, a, len);
    name[len] = '\0';
    if (strcmp(name, "h") == 0 || strcmp(name, "help") == 0) {
      *first_arg = i + 1;
      return FM_FLAGS_HELP;
    }
    fm_flag *f = fm_flags_find(flags, n, name);
    if (f == NULL) {
      snprintf(err, errlen, "flag provided but not defined: -%s", name);
      return FM_EINVAL;
    }
    const char *val;
    if (eq != NULL) {
      val = eq + 1;
    } else if (f->type == FM_FLAG_BOOL) {
      val = "true";
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      snprintf(err, errlen, "flag needs an argument: -%s", name);
      return FM_EINVAL;
    }
    int rc = set_value(f, val, err, errlen);
    if (rc != 0)
      return rc;
  }
  *first_arg = i;
  return 0;
}

void fm_flags_usage(FILE *out, const fm_flag *flags, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const fm_flag *f = &flags[i];
    switch (f->type) {
    case FM_FLAG_BOOL:
      fprintf(out, "  -%s\n    \t%s%s\n", f->name, f->help, *(bool *)f->value ? " (default true)" : "");
      break;
    case FM_FLAG_INT:
      fprintf(out, "  -%s int\n    \t%s (default %" PRId64 ")\n", f->name, f->help, *(int64_t *)f->value);
      break;
    case FM_FLAG_DURATION: {
      int64_t v = *(int64_t *)f->value;
      if (v % 60000000000 == 0)
        fprintf(out, "  -%s duration\n    \t%s (default %" PRId64 "m)\n", f->name, f->help, v / 60000000000);
      else if (v % 1000000000 == 0)
        fprintf(out, "  -%s duration\n    \t%s (default %" PRId64 "s)\n", f->name, f->help, v / 1000000000);
      else
        fprintf(out, "  -%s duration\n    \t%s (default %" PRId64 "ms)\n", f->name, f->help, v / 1000000);
      break;
    }
    case FM_FLAG_STRING: {
      const char *d = *(const char **)f->value;
      if (d != NULL && *d != '\0')
        fprintf(out, "  -%s string\n    \t%s (default \"%s\")\n", f->name, f->help, d);
      else
        fprintf(out, "  -%s string\n    \t%s\n", f->name, f->help);
      break;
    }
    }
  }
}
