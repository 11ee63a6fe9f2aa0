/* Unit tests for common/flags.h: Go-style command-line flag parsing, lookup
 * and usage output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "flags.h"

/* The values behind one flag table. Each test gets a fresh copy from setup,
 * so defaults are known and `set` starts false. */
typedef struct fixture {
  int64_t port, grpc_port, count, offset;
  const char *dir;
  bool verbose, enabled;
  fm_flag flags[7];
} fixture;

enum { F_PORT, F_GRPC, F_COUNT, F_OFFSET, F_DIR, F_VERBOSE, F_ENABLED, F_N };

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  f->port = 8888;
  f->grpc_port = 18888;
  f->count = 0;
  f->offset = -1;
  f->dir = "/tmp/default";
  f->verbose = false;
  f->enabled = true;
  f->flags[F_PORT] = (fm_flag){ "port", FM_FLAG_INT, &f->port, "http listen port", 1, 65535, false };
  f->flags[F_GRPC] = (fm_flag){ "port.grpc", FM_FLAG_INT, &f->grpc_port, "grpc listen port", 1, 65535, false };
  f->flags[F_COUNT] = (fm_flag){ "count", FM_FLAG_INT, &f->count, "how many, unbounded", 0, 0, false };
  /* Bounds with max == 0 but min != 0 must still be enforced. */
  f->flags[F_OFFSET] = (fm_flag){ "offset", FM_FLAG_INT, &f->offset, "non-positive offset", -10, 0, false };
  f->flags[F_DIR] = (fm_flag){ "dir", FM_FLAG_STRING, &f->dir, "data directory", 0, 0, false };
  f->flags[F_VERBOSE] = (fm_flag){ "v", FM_FLAG_BOOL, &f->verbose, "verbose logging", 0, 0, false };
  f->flags[F_ENABLED] = (fm_flag){ "enabled", FM_FLAG_BOOL, &f->enabled, "feature switch", 0, 0, false };
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  free(*state);
  return 0;
}

/* Runs fm_flags_parse over a NULL-terminated list of arguments after "prog".
 * *argc_out receives the argc that was passed. */
static int parse(fixture *f, const char *const *args, int *first, char *err, size_t errlen, int *argc_out)
{
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)"prog";
  for (size_t i = 0; args[i] != NULL; i++) {
    assert_true(argc < 31);
    argv[argc++] = (char *)args[i];
  }
  argv[argc] = NULL;
  if (argc_out != NULL)
    *argc_out = argc;
  err[0] = '\0';
  *first = -12345;
  return fm_flags_parse(f->flags, F_N, argc, argv, first, err, errlen);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_space_separated_values(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first, argc;
  assert_int_equal(parse(f, ARGS("-port", "9000", "-dir", "/data"), &first, err, sizeof err, &argc), 0);
  assert_int_equal(first, argc);
  assert_int_equal(f->port, 9000);
  assert_string_equal(f->dir, "/data");
  assert_true(f->flags[F_PORT].set);
  assert_true(f->flags[F_DIR].set);
  /* Flags that did not appear keep their defaults and stay unset. */
  assert_false(f->flags[F_GRPC].set);
  assert_false(f->flags[F_VERBOSE].set);
  assert_int_equal(f->grpc_port, 18888);
  assert_true(f->enabled);
}

static void test_equals_values(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first, argc;
  assert_int_equal(parse(f, ARGS("-port=9001", "-dir=/x=y", "-port.grpc=19001"), &first, err, sizeof err, &argc), 0);
  assert_int_equal(first, argc);
  assert_int_equal(f->port, 9001);
  /* Only the first '=' separates name from value. */
  assert_string_equal(f->dir, "/x=y");
  assert_int_equal(f->grpc_port, 19001);
  assert_true(f->flags[F_GRPC].set);
}

static void test_double_dash_names(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first, argc;
  assert_int_equal(parse(f, ARGS("--port", "9002", "--v", "--dir=/d"), &first, err, sizeof err, &argc), 0);
  assert_int_equal(first, argc);
  assert_int_equal(f->port, 9002);
  assert_true(f->verbose);
  assert_string_equal(f->dir, "/d");
}

static void test_bool_forms(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first, argc;
  assert_int_equal(parse(f, ARGS("-v", "-enabled=false"), &first, err, sizeof err, &argc), 0);
  assert_int_equal(first, argc);
  assert_true(f->verbose);
  assert_false(f->enabled);
  assert_true(f->flags[F_ENABLED].set);

  /* Go's strconv.ParseBool spellings. */
  static const char *const yes[] = { "-v=1", "-v=t", "-v=T", "-v=true", "-v=TRUE", "-v=True" };
  static const char *const no[] = { "-v=0", "-v=f", "-v=F", "-v=false", "-v=FALSE", "-v=False" };
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    f->verbose = false;
    assert_int_equal(parse(f, ARGS(yes[i]), &first, err, sizeof err, NULL), 0);
    assert_true(f->verbose);
    assert_int_equal(parse(f, ARGS(no[i]), &first, err, sizeof err, NULL), 0);
    assert_false(f->verbose);
  }
}

/* A boolean never takes the next argument: "-v false" sets v and stops at "false". */
static void test_bool_does_not_consume_next(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-enabled", "false", "-port", "1"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(first, 2);
  assert_true(f->enabled);
  assert_false(f->flags[F_PORT].set);
  assert_int_equal(f->port, 8888);
}

static void test_bool_invalid(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-v=maybe"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_non_null(strstr(err, "maybe"));
  assert_non_null(strstr(err, "-v"));
  assert_false(f->verbose);
  assert_false(f->flags[F_VERBOSE].set);
}

static void test_stops_at_first_positional(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-v", "serve", "-port", "1"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(first, 2);
  assert_true(f->verbose);
  assert_int_equal(f->port, 8888);
  assert_false(f->flags[F_PORT].set);

  /* A lone "-" is an argument, not a flag, as in Go. */
  assert_int_equal(parse(f, ARGS("-", "-port", "1"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(first, 1);
  assert_int_equal(f->port, 8888);
}

static void test_double_dash_ends_flags(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first, argc;
  assert_int_equal(parse(f, ARGS("-v", "--", "-port", "1"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(first, 3);
  assert_false(f->flags[F_PORT].set);
  assert_int_equal(f->port, 8888);

  /* "--" as the last argument leaves no positional argument. */
  assert_int_equal(parse(f, ARGS("--"), &first, err, sizeof err, &argc), 0);
  assert_int_equal(first, argc);
  assert_int_equal(first, 2);
}

static void test_no_arguments(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  char *argv[] = { (char *)"prog", NULL };
  int first = -1;
  assert_int_equal(fm_flags_parse(f->flags, F_N, 1, argv, &first, err, sizeof err), 0);
  assert_int_equal(first, 1);
  for (size_t i = 0; i < F_N; i++)
    assert_false(f->flags[i].set);
}

static void test_help(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-h"), &first, err, sizeof err, NULL), FM_FLAGS_HELP);
  assert_int_equal(parse(f, ARGS("-help"), &first, err, sizeof err, NULL), FM_FLAGS_HELP);
  assert_int_equal(parse(f, ARGS("--help"), &first, err, sizeof err, NULL), FM_FLAGS_HELP);
  assert_int_equal(parse(f, ARGS("--h"), &first, err, sizeof err, NULL), FM_FLAGS_HELP);
  /* Help after valid flags still wins. */
  assert_int_equal(parse(f, ARGS("-v", "-port", "2", "-help"), &first, err, sizeof err, NULL), FM_FLAGS_HELP);
  /* After the flags end, "-h" is just an argument. */
  assert_int_equal(parse(f, ARGS("cmd", "-h"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(first, 1);
}

static void test_unknown_flag(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-foo"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_string_equal(err, "flag provided but not defined: -foo");
  assert_int_equal(parse(f, ARGS("-v", "--foo=1"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_string_equal(err, "flag provided but not defined: -foo");
  /* A prefix of a defined name is not that flag. */
  assert_int_equal(parse(f, ARGS("-por", "1"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_string_equal(err, "flag provided but not defined: -por");
}

static void test_missing_value(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-port"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_string_equal(err, "flag needs an argument: -port");
  assert_int_equal(parse(f, ARGS("-v", "--dir"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_string_equal(err, "flag needs an argument: -dir");
  assert_false(f->flags[F_DIR].set);
  assert_string_equal(f->dir, "/tmp/default");
}

/* A non-boolean flag takes the next argument even when it starts with '-', as Go does. */
static void test_value_may_start_with_dash(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first, argc;
  assert_int_equal(parse(f, ARGS("-count", "-5", "-dir", "-v"), &first, err, sizeof err, &argc), 0);
  assert_int_equal(first, argc);
  assert_int_equal(f->count, -5);
  assert_string_equal(f->dir, "-v");
  assert_false(f->verbose);
}

static void test_int_bounds(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-port", "1"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(f->port, 1);
  assert_int_equal(parse(f, ARGS("-port", "65535"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(f->port, 65535);

  f->flags[F_PORT].set = false;
  assert_int_equal(parse(f, ARGS("-port", "0"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_non_null(strstr(err, "-port"));
  assert_int_equal(f->port, 65535);
  assert_false(f->flags[F_PORT].set);
  assert_int_equal(parse(f, ARGS("-port=65536"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_non_null(strstr(err, "65536"));
  assert_int_equal(f->port, 65535);

  /* min = -10, max = 0: a zero max is a bound when min is not zero. */
  assert_int_equal(parse(f, ARGS("-offset=-10"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(f->offset, -10);
  assert_int_equal(parse(f, ARGS("-offset=0"), &first, err, sizeof err, NULL), 0);
  assert_int_equal(f->offset, 0);
  assert_int_equal(parse(f, ARGS("-offset=1"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_int_equal(parse(f, ARGS("-offset=-11"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_int_equal(f->offset, 0);

  /* min = max = 0 means no bounds: the whole int64 range is accepted. */
  assert_int_equal(parse(f, ARGS("-count=9223372036854775807"), &first, err, sizeof err, NULL), 0);
  assert_true(f->count == INT64_MAX);
  assert_int_equal(parse(f, ARGS("-count=-9223372036854775808"), &first, err, sizeof err, NULL), 0);
  assert_true(f->count == INT64_MIN);
}

/* Integers take Go's base prefixes, as SeaweedFS users may write them. */
static void test_int_base_prefixes(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("-count=0x1F90"), &first, err, sizeof err, NULL), 0);
  assert_true(f->count == 8080);
  assert_int_equal(parse(f, ARGS("-count=010"), &first, err, sizeof err, NULL), 0);
  assert_true(f->count == 8);
  assert_int_equal(parse(f, ARGS("-count=+7"), &first, err, sizeof err, NULL), 0);
  assert_true(f->count == 7);
}

static void test_int_not_integer(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  static const char *const bad[] = { "abc", "12x", "", "1.5", "9223372036854775808", " 5", "0x", "09" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(parse(f, ARGS("-count", bad[i]), &first, err, sizeof err, NULL), FM_EINVAL);
    assert_non_null(strstr(err, "-count"));
    assert_int_equal(f->count, 0);
    assert_false(f->flags[F_COUNT].set);
  }
}

static void test_bad_syntax(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  assert_int_equal(parse(f, ARGS("---port", "1"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_true(strlen(err) > 0);
  assert_int_equal(parse(f, ARGS("-=1"), &first, err, sizeof err, NULL), FM_EINVAL);
  assert_true(strlen(err) > 0);
  assert_int_equal(f->port, 8888);
}

static void test_string_values(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN];
  int first;
  /* An explicit empty value is a value, and marks the flag set. */
  assert_int_equal(parse(f, ARGS("-dir="), &first, err, sizeof err, NULL), 0);
  assert_string_equal(f->dir, "");
  assert_true(f->flags[F_DIR].set);
  /* The last occurrence wins, and the value is borrowed from argv. */
  const char *const args[] = { "-dir", "/a", "-dir=/b", NULL };
  assert_int_equal(parse(f, args, &first, err, sizeof err, NULL), 0);
  assert_ptr_equal(f->dir, args[2] + strlen("-dir="));
}

static void test_find(void **state)
{
  fixture *f = *state;
  assert_ptr_equal(fm_flags_find(f->flags, F_N, "port"), &f->flags[F_PORT]);
  assert_ptr_equal(fm_flags_find(f->flags, F_N, "port.grpc"), &f->flags[F_GRPC]);
  assert_ptr_equal(fm_flags_find(f->flags, F_N, "enabled"), &f->flags[F_ENABLED]);
  assert_null(fm_flags_find(f->flags, F_N, "por"));
  assert_null(fm_flags_find(f->flags, F_N, "port.grpcx"));
  assert_null(fm_flags_find(f->flags, F_N, ""));
  assert_null(fm_flags_find(f->flags, 0, "port"));
}

static void test_usage(void **state)
{
  fixture *f = *state;
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  assert_non_null(out);
  fm_flags_usage(out, f->flags, F_N);
  assert_int_equal(fclose(out), 0);
  assert_non_null(buf);
  for (size_t i = 0; i < F_N; i++) {
    char name[64];
    snprintf(name, sizeof name, "-%s", f->flags[i].name);
    assert_non_null(strstr(buf, name));
    assert_non_null(strstr(buf, f->flags[i].help));
  }
  /* Defaults are shown where they say something. */
  assert_non_null(strstr(buf, "(default 8888)"));
  assert_non_null(strstr(buf, "(default \"/tmp/default\")"));
  assert_non_null(strstr(buf, "(default true)"));
  free(buf);

  /* An empty table prints nothing. */
  buf = NULL;
  out = open_memstream(&buf, &len);
  assert_non_null(out);
  fm_flags_usage(out, f->flags, 0);
  assert_int_equal(fclose(out), 0);
  assert_int_equal(len, 0);
  free(buf);
}

/* Go duration syntax, non-negative. */
static void test_duration(void **state)
{
  (void)state;
  int64_t d = 120000000000;
  fm_flag flags[] = { { "behind", FM_FLAG_DURATION, &d, "how far behind", 0, 0, false } };
  struct {
    const char *in;
    int64_t ns;
  } ok[] = { { "2m", 120000000000 },
             { "1.5s", 1500000000 },
             { "300ms", 300000000 },
             { "1h30m", 5400000000000 },
             { "0", 0 },
             { "10us", 10000 },
             { "7ns", 7 },
             { "1m30s", 90000000000 },
             { "1.5h", 5400000000000 },
             { "2h45m", 9900000000000 },
             { "1\xc2\xb5s", 1000 } };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char *argv[] = { (char *)"prog", (char *)"-behind", (char *)ok[i].in, NULL };
    int first;
    char err[FM_ERR_LEN];
    assert_int_equal(fm_flags_parse(flags, 1, 3, argv, &first, err, sizeof err), 0);
    assert_int_equal(d, ok[i].ns);
  }
  const char *bad[] = { "", "2", "-1s", "1x", "s", "1.2.3s", "2m junk", "99999999999h" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *argv[] = { (char *)"prog", (char *)"-behind", (char *)bad[i], NULL };
    int first;
    char err[FM_ERR_LEN];
    assert_int_equal(fm_flags_parse(flags, 1, 3, argv, &first, err, sizeof err), FM_EINVAL);
    assert_non_null(strstr(err, "not a duration"));
  }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
    T(test_space_separated_values),
    cmocka_unit_test(test_duration),
    T(test_equals_values),
    T(test_double_dash_names),
    T(test_bool_forms),
    T(test_bool_does_not_consume_next),
    T(test_bool_invalid),
    T(test_stops_at_first_positional),
    T(test_double_dash_ends_flags),
    T(test_no_arguments),
    T(test_help),
    T(test_unknown_flag),
    T(test_missing_value),
    T(test_value_may_start_with_dash),
    T(test_int_bounds),
    T(test_int_base_prefixes),
    T(test_int_not_integer),
    T(test_bad_syntax),
    T(test_string_values),
    T(test_find),
    T(test_usage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
