/* Unit tests for storage/data_dir.h: creating the data directory and keeping
 * the filer signature in <dir>/filer.signature across restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data_dir.h"
#include "error.h"

/* Each test gets its own fresh directory under /tmp. */
typedef struct fixture {
  char base[64];
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  snprintf(f->base, sizeof f->base, "/tmp/fm_test_data_dir.XXXXXX");
  if (mkdtemp(f->base) == NULL) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

static int teardown(void **state)
{
  fixture *f = *state;
  /* test_read_only_dir may fail with ro/ still read-only, and entries cannot
   * be removed from a read-only directory unless we are root. */
  char ro[PATH_MAX];
  snprintf(ro, sizeof ro, "%s/ro", f->base);
  chmod(ro, 0700);
  int rc = nftw(f->base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return rc == 0 ? 0 : -1;
}

static void join(char *out, size_t len, const char *a, const char *b)
{
  int n = snprintf(out, len, "%s/%s", a, b);
  assert_true(n > 0 && (size_t)n < len);
}

/* Reads a whole small file; returns its size, or -1. */
static ssize_t read_file(const char *path, uint8_t *buf, size_t cap)
{
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, cap);
  close(fd);
  return n;
}

static void write_file(const char *path, const void *data, size_t len)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
}

static void test_creates_nested_dirs(void **state)
{
  fixture *f = *state;
  char path[PATH_MAX];
  join(path, sizeof path, f->base, "a/b/c");
  char err[FM_ERR_LEN] = "";
  fm_data_dir *d = NULL;
  assert_int_equal(fm_data_dir_open(path, &d, err, sizeof err), 0);
  assert_non_null(d);
  assert_string_equal(fm_data_dir_path(d), path);

  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));

  /* the signature belongs to the store now: a new data dir gets no file */
  assert_int_equal(fm_data_dir_signature(d), 0);
  char sigfile[PATH_MAX];
  join(sigfile, sizeof sigfile, path, FM_SIGNATURE_FILE);
  assert_int_not_equal(access(sigfile, F_OK), 0);
  fm_data_dir_free(d);
}

/* A legacy signature file is read, kept until forgotten, then removed. */
static void test_forget_legacy_signature(void **state)
{
  fixture *f = *state;
  char sigfile[PATH_MAX];
  join(sigfile, sizeof sigfile, f->base, FM_SIGNATURE_FILE);
  write_file(sigfile, "\x01\x02\x03\x04", 4);
  char err[FM_ERR_LEN];
  fm_data_dir *d = NULL;
  assert_int_equal(fm_data_dir_open(f->base, &d, err, sizeof err), 0);
  assert_int_equal(fm_data_dir_signature(d), 0x01020304);
  assert_int_equal(fm_data_dir_forget_signature(d), 0);
  assert_int_equal(fm_data_dir_signature(d), 0);
  assert_int_not_equal(access(sigfile, F_OK), 0);
  /* forgetting twice is harmless */
  assert_int_equal(fm_data_dir_forget_signature(d), 0);
  fm_data_dir_free(d);
  d = NULL;
  assert_int_equal(fm_data_dir_open(f->base, &d, err, sizeof err), 0);
  assert_int_equal(fm_data_dir_signature(d), 0);
  fm_data_dir_free(d);
}

static void test_reads_existing_signature(void **state)
{
  fixture *f = *state;
  char sigfile[PATH_MAX];
  join(sigfile, sizeof sigfile, f->base, FM_SIGNATURE_FILE);
  char err[FM_ERR_LEN];

  write_file(sigfile, "\x12\x34\x56\x78", 4);
  fm_data_dir *d = NULL;
  assert_int_equal(fm_data_dir_open(f->base, &d, err, sizeof err), 0);
  assert_int_equal(fm_data_dir_signature(d), 0x12345678);
  fm_data_dir_free(d);

  write_file(sigfile, "\xff\xff\xff\xfe", 4);
  d = NULL;
  assert_int_equal(fm_data_dir_open(f->base, &d, err, sizeof err), 0);
  assert_int_equal(fm_data_dir_signature(d), -2);
  fm_data_dir_free(d);
}

/* A signature file of the wrong size is reported, never replaced: replacing
 * it would silently give the filer a new identity. */
static void test_wrong_size_signature(void **state)
{
  fixture *f = *state;
  char sigfile[PATH_MAX];
  join(sigfile, sizeof sigfile, f->base, FM_SIGNATURE_FILE);
  static const struct {
    const char *bytes;
    size_t len;
  } cases[] = { { "", 0 }, { "\x01\x02\x03", 3 }, { "\x01\x02\x03\x04\x05", 5 }, { "0123456789abcdef", 16 } };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_file(sigfile, cases[i].bytes, cases[i].len);
    char err[FM_ERR_LEN] = "";
    fm_data_dir *const sentinel = (fm_data_dir *)(uintptr_t)0x1;
    fm_data_dir *d = sentinel;
    assert_int_equal(fm_data_dir_open(f->base, &d, err, sizeof err), FM_EDECODE);
    assert_ptr_equal(d, sentinel);
    if (strstr(err, sigfile) == NULL)
      fail_msg("error \"%s\" does not name %s", err, sigfile);

    uint8_t now[32];
    assert_int_equal(read_file(sigfile, now, sizeof now), (ssize_t)cases[i].len);
    assert_memory_equal(now, cases[i].bytes, cases[i].len);
  }
}

/* 0 means "no signature" on the wire, so a file holding it is damaged: refused
 * and left as it is, never silently replaced by a new identity. */
static void test_zero_signature_refused(void **state)
{
  fixture *f = *state;
  char sigfile[PATH_MAX];
  join(sigfile, sizeof sigfile, f->base, FM_SIGNATURE_FILE);
  write_file(sigfile, "\0\0\0\0", 4);
  char err[FM_ERR_LEN] = "";
  fm_data_dir *d = NULL;
  assert_int_equal(fm_data_dir_open(f->base, &d, err, sizeof err), FM_EDECODE);
  assert_null(d);
  assert_non_null(strstr(err, "signature 0"));
  uint8_t now[8];
  assert_int_equal(read_file(sigfile, now, sizeof now), 4);
  assert_memory_equal(now, "\0\0\0\0", 4);
}

/* A directory where the signature file belongs is reported as what it is. */
static void test_signature_path_is_directory(void **state)
{
  fixture *f = *state;
  char sigfile[PATH_MAX];
  join(sigfile, sizeof sigfile, f->base, FM_SIGNATURE_FILE);
  assert_int_equal(mkdir(sigfile, 0700), 0);
  char err[FM_ERR_LEN] = "";
  fm_data_dir *d = NULL;
  assert_true(fm_data_dir_open(f->base, &d, err, sizeof err) < 0);
  assert_null(d);
  assert_non_null(strstr(err, strerror(EISDIR)));
}

static void test_parent_is_regular_file(void **state)
{
  fixture *f = *state;
  char file[PATH_MAX], path[PATH_MAX];
  join(file, sizeof file, f->base, "plain");
  write_file(file, "x", 1);
  join(path, sizeof path, file, "sub/dir");
  char err[FM_ERR_LEN] = "";
  fm_data_dir *d = NULL;
  int rc = fm_data_dir_open(path, &d, err, sizeof err);
  assert_true(rc < 0);
  assert_true(strlen(err) > 0);
  assert_non_null(strstr(err, file));
  assert_null(d);
}

static void test_path_is_regular_file(void **state)
{
  fixture *f = *state;
  char file[PATH_MAX];
  join(file, sizeof file, f->base, "plain");
  write_file(file, "x", 1);
  char err[FM_ERR_LEN] = "";
  fm_data_dir *d = NULL;
  int rc = fm_data_dir_open(file, &d, err, sizeof err);
  assert_true(rc < 0);
  assert_non_null(strstr(err, file));
  assert_null(d);
  /* The file is left as it was. */
  uint8_t b[8];
  assert_int_equal(read_file(file, b, sizeof b), 1);
}

/* What fm_data_dir_open returned in a child process. */
typedef struct open_result {
  int dropped; /* 1 if the child runs without root's permission bypass */
  int rc;
  int got_dir; /* *out was set */
  char err[FM_ERR_LEN];
} open_result;

/* Runs fm_data_dir_open(path) in a child process. Root bypasses permission
 * bits, so a root child first becomes nobody (65534); when it cannot,
 * res->dropped is 0 and the caller skips. Child-side checks avoid cmocka's
 * assertions, which would unwind into the child's copy of the test runner. */
static void open_in_child(const char *path, open_result *res)
{
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    open_result r;
    memset(&r, 0, sizeof r);
    r.dropped = geteuid() != 0 || (setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0);
    if (r.dropped) {
      fm_data_dir *d = NULL;
      r.rc = fm_data_dir_open(path, &d, r.err, sizeof r.err);
      r.got_dir = d != NULL;
      fm_data_dir_free(d);
    }
    ssize_t w = write(fds[1], &r, sizeof r);
    _exit(w == (ssize_t)sizeof r ? 0 : 1);
  }
  close(fds[1]);
  size_t got = 0;
  while (got < sizeof *res) {
    ssize_t n = read(fds[0], (char *)res + got, sizeof *res - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(got, sizeof *res);
}

static void test_read_only_dir(void **state)
{
  fixture *f = *state;
  char ro[PATH_MAX], sub[PATH_MAX];
  join(ro, sizeof ro, f->base, "ro");
  /* The unprivileged child must be able to reach ro/ through base/. */
  assert_int_equal(chmod(f->base, 0755), 0);
  assert_int_equal(mkdir(ro, 0755), 0);
  /* With a valid signature already there, nothing needs writing: only the
   * writability check can refuse the directory. */
  char sigfile[PATH_MAX];
  join(sigfile, sizeof sigfile, ro, FM_SIGNATURE_FILE);
  write_file(sigfile, "\x12\x34\x56\x78", 4);
  assert_int_equal(chmod(ro, 0555), 0);

  open_result r;
  open_in_child(ro, &r);
  if (!r.dropped)
    skip();
  assert_int_equal(r.rc, FM_EPERM);
  assert_false(r.got_dir);
  if (strstr(r.err, ro) == NULL)
    fail_msg("error \"%s\" does not name %s", r.err, ro);

  /* A directory to be created inside it fails the same way. */
  join(sub, sizeof sub, ro, "sub");
  open_in_child(sub, &r);
  assert_int_equal(r.rc, FM_EPERM);
  assert_false(r.got_dir);
  assert_true(strlen(r.err) > 0);
  assert_int_not_equal(access(sub, F_OK), 0);
  assert_int_equal(chmod(ro, 0755), 0);
}

/* An empty -dir is an error, not the current directory. */
static void test_empty_path(void **state)
{
  char err[FM_ERR_LEN] = "";
  fm_data_dir *d = NULL;
  assert_int_equal(fm_data_dir_open("", &d, err, sizeof err), FM_EINVAL);
  assert_non_null(strstr(err, "empty"));
  assert_null(d);
}

/* Redundant slashes are harmless, as with mkdir -p. */
static void test_slashes(void **state)
{
  fixture *f = *state;
  char path[PATH_MAX];
  join(path, sizeof path, f->base, "x//y/");
  char err[FM_ERR_LEN];
  fm_data_dir *d = NULL;
  assert_int_equal(fm_data_dir_open(path, &d, err, sizeof err), 0);
  fm_data_dir_free(d);
  struct stat st;
  join(path, sizeof path, f->base, "x/y");
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
}

static void test_free_null(void **state)
{
  fm_data_dir_free(NULL);
  /* Reaching here without a crash is the test. */
  assert_string_equal(FM_SIGNATURE_FILE, "filer.signature");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
    T(test_creates_nested_dirs),
    T(test_forget_legacy_signature),
    T(test_reads_existing_signature),
    T(test_wrong_size_signature),
    T(test_zero_signature_refused),
    T(test_signature_path_is_directory),
    T(test_parent_is_regular_file),
    T(test_path_is_regular_file),
    T(test_read_only_dir),
    T(test_slashes),
    cmocka_unit_test(test_empty_path),
    cmocka_unit_test(test_free_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
