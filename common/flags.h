/* Command-line flags in the style of Go's `flag` package, as SeaweedFS uses
 * them: `-name value`, `-name=value`, `--name`, booleans as `-name` or
 * `-name=false`; parsing stops at the first non-flag argument or at `--`.
 * Called by the two binaries' main() and subcommands, on the main thread. */
#ifndef FM_FLAGS_H
#define FM_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum fm_flag_type {
  FM_FLAG_BOOL,     /* value: bool * */
  FM_FLAG_INT,      /* value: int64_t *, checked against [min, max] */
  FM_FLAG_STRING,   /* value: const char ** (borrowed from argv) */
  FM_FLAG_DURATION, /* value: int64_t * in ns; Go's time.ParseDuration syntax ("2m", "1.5s", "300ms", "1h30m"); at
                       least 0, checked against [min, max] */
} fm_flag_type;

typedef struct fm_flag {
  const char *name; /* without dashes, e.g. "port.grpc" */
  fm_flag_type type;
  void *value;      /* holds the default on entry, the parsed value on return */
  const char *help; /* one line for usage output */
  int64_t min, max; /* FM_FLAG_INT bounds (inclusive); both 0 = no bounds */
  bool set;         /* out: the flag appeared on the command line */
} fm_flag;

/* fm_flags_parse found -h, -help or --help: the caller prints usage, exits 0. */
#define FM_FLAGS_HELP 1

/*
 * Parses argv[1..argc-1] against `flags`. On return *first_arg is the index of
 * the first argument that is not a flag (argc when there is none; left as is on
 * FM_EINVAL). `set` is only ever turned on, never cleared. Returns 0,
 * FM_FLAGS_HELP, or FM_EINVAL with a one-line reason in `err` (for example
 * "flag provided but not defined: -foo", Go's wording).
 */
int fm_flags_parse(fm_flag *flags, size_t n, int argc, char **argv, int *first_arg, char *err, size_t errlen);

/* Finds a flag by name, or NULL. */
fm_flag *fm_flags_find(fm_flag *flags, size_t n, const char *name);

/* Prints one block per flag (name, type, default, help) to `out`. */
void fm_flags_usage(FILE *out, const fm_flag *flags, size_t n);

#endif
