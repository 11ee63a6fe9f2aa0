/* Unit tests for server/filer.h: the mutation engine over a real store, with
 * and without -store.sync (the committer thread). Checks the entries written,
 * the events handed to the hook and the write-ahead records, and the clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "error.h"
#include "filer.h"
#include "filer.pb-c.h"
#include "store.h"

/* This filer's signature in every test. */
#define SIG 0x5eed
/* Directory mode bit as Go's os.FileMode stores it in FuseAttributes.file_mode. */
#define GO_MODE_DIR 0x80000000u

/* ================================================================ fixture */

/* One event as the hook saw it (a copy). */
typedef struct hook_event {
  int64_t ts;
  uint8_t *bytes;
  size_t len;
} hook_event;

/*
 * Each test gets a fresh directory, a store (with or without sync) and a
 * filer whose hook records every event. Contract breaches seen off the main
 * thread (where cmocka cannot fail a test) are kept in `violation` and checked
 * by the main thread after each mutation.
 */
typedef struct fixture {
  char base[64];
  bool sync;
  fm_store *store;
  fm_filer *filer;

  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t cv;  /* a mutation completed */
  hook_event *events;
  size_t nevents, cap;
  char violation[512];
} fixture;

static void violate(fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Holds mu. Keeps the first violation only. */
static void violate(fixture *f, const char *fmt, ...)
{
  if (f->violation[0] != '\0')
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->violation, sizeof f->violation, fmt, ap);
  va_end(ap);
}

static void check_violation(fixture *f)
{
  pthread_mutex_lock(&f->mu);
  char v[sizeof f->violation];
  memcpy(v, f->violation, sizeof v);
  pthread_mutex_unlock(&f->mu);
  if (v[0] != '\0')
    fail_msg("%s", v);
}

/* The first write-ahead record after a given ts, as the hook looks it up. */
typedef struct first_record {
  bool found;
  int64_t ts;
  uint8_t *bytes;
  size_t len;
} first_record;

static bool take_first_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  first_record *r = arg;
  r->found = true;
  r->ts = ts_ns;
  r->bytes = malloc(len ? len : 1);
  if (r->bytes != NULL)
    memcpy(r->bytes, event, len);
  r->len = len;
  return false;
}

/* The hook: runs on the submitting thread (no sync) or the committer (sync).
 * Checks that the event's write-ahead record is already in the store with
 * the same bytes, and that ts only grows; keeps a copy. */
static void record_event(void *arg, int64_t ts_ns, const uint8_t *event, size_t len)
{
  fixture *f = arg;
  char err[FM_ERR_LEN] = "";
  first_record r = { 0 };
  int rc = fm_store_events(f->store, ts_ns - 1, take_first_record, &r, err, sizeof err);
  uint8_t *copy = malloc(len ? len : 1);

  pthread_mutex_lock(&f->mu);
  if (rc != 0)
    violate(f, "hook: fm_store_events: %d: %s", rc, err);
  else if (!r.found || r.ts != ts_ns)
    violate(f, "hook called for ts %lld before its write-ahead record was written", (long long)ts_ns);
  else if (r.len != len || (len > 0 && memcmp(r.bytes, event, len) != 0))
    violate(f, "hook bytes for ts %lld differ from the write-ahead record", (long long)ts_ns);
  if (f->nevents > 0 && ts_ns <= f->events[f->nevents - 1].ts)
    violate(f, "hook ts %lld after %lld: not strictly increasing", (long long)ts_ns,
            (long long)f->events[f->nevents - 1].ts);
  if (f->nevents == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    hook_event *grown = realloc(f->events, cap * sizeof *grown);
    if (grown == NULL) {
      violate(f, "hook: out of memory");
      free(copy);
      copy = NULL;
    } else {
      f->events = grown;
      f->cap = cap;
    }
  }
  if (copy != NULL) {
    if (len > 0)
      memcpy(copy, event, len);
    f->events[f->nevents++] = (hook_event){ ts_ns, copy, len };
  } else {
    violate(f, "hook: out of memory");
  }
  pthread_mutex_unlock(&f->mu);
  free(r.bytes);
}

static void open_all(fixture *f)
{
  char err[FM_ERR_LEN] = "";
  fm_store_options opt = { .sync = f->sync, .cache_bytes = 0 };
  int rc = fm_store_open(f->base, &opt, &f->store, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_open(%s): %d: %s", f->base, rc, err);
  assert_int_equal(fm_store_sync_enabled(f->store), f->sync);
  rc = fm_filer_new(f->store, SIG, &f->filer, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_filer_new: %d: %s", rc, err);
  fm_filer_set_event_hook(f->filer, record_event, f);
}

static void close_all(fixture *f)
{
  fm_filer_free(f->filer);
  f->filer = NULL;
  fm_store_free(f->store);
  f->store = NULL;
}

static int setup_mode(void **state, bool sync)
{
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  f->sync = sync;
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  snprintf(f->base, sizeof f->base, "/tmp/fm_test_filer.XXXXXX");
  if (mkdtemp(f->base) == NULL) {
    free(f);
    return -1;
  }
  *state = f;
  open_all(f);
  return 0;
}

static int setup(void **state)
{
  return setup_mode(state, false);
}

static int setup_sync(void **state)
{
  return setup_mode(state, true);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

static int teardown(void **state)
{
  fixture *f = *state;
  close_all(f);
  int rc = nftw(f->base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  for (size_t i = 0; i < f->nevents; i++)
    free(f->events[i].bytes);
  free(f->events);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
  free(f);
  return rc == 0 ? 0 : -1;
}

/* Closes the filer and the store and opens both again. */
static void reopen(fixture *f)
{
  close_all(f);
  open_all(f);
}

static size_t hook_count(fixture *f)
{
  pthread_mutex_lock(&f->mu);
  size_t n = f->nevents;
  pthread_mutex_unlock(&f->mu);
  return n;
}

/* ================================================================ mutations */

/* A submitted mutation and what `done` copied out of it. */
typedef struct call {
  fm_mutation m;
  fixture *f;
  bool done;
  pthread_t done_thread;
  grpc_status_code status;
  char message[512];
  char inband[512];
  int filer_error;
  bool has_event;
  int64_t last_ts;
  uint8_t *last_bytes;
  size_t last_len;
  bool last_hooked;         /* the hook had seen last_event when done ran */
  size_t hooks_before_done; /* hook calls so far when done ran */
} call;

static void on_done(fm_mutation *m)
{
  call *c = m->arg;
  fixture *f = c->f;
  c->status = m->status;
  memcpy(c->message, m->message, sizeof c->message);
  memcpy(c->inband, m->inband_error, sizeof c->inband);
  c->filer_error = m->filer_error;
  c->has_event = m->last_event != NULL;
  if (c->has_event) {
    c->last_ts = m->last_event->ts_ns;
    c->last_len = m->last_event->len;
    c->last_bytes = malloc(c->last_len ? c->last_len : 1);
    if (c->last_bytes != NULL && c->last_len > 0)
      memcpy(c->last_bytes, m->last_event->bytes, c->last_len);
  }
  pthread_mutex_lock(&f->mu);
  if (c->has_event && c->last_bytes == NULL)
    violate(f, "done: out of memory");
  c->hooks_before_done = f->nevents;
  for (size_t i = 0; c->has_event && i < f->nevents; i++) {
    const hook_event *e = &f->events[i];
    if (e->ts == c->last_ts && e->len == c->last_len && c->last_bytes != NULL &&
        (e->len == 0 || memcmp(e->bytes, c->last_bytes, e->len) == 0))
      c->last_hooked = true;
  }
  c->done_thread = pthread_self();
  c->done = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

static void call_init(call *c, fixture *f, fm_mutation_kind kind, const ProtobufCMessage *req)
{
  memset(c, 0, sizeof *c);
  c->f = f;
  c->m.kind = kind;
  c->m.req = req;
  c->m.done = on_done;
  c->m.arg = c;
}

static void call_wait(call *c)
{
  fixture *f = c->f;
  pthread_mutex_lock(&f->mu);
  while (!c->done)
    pthread_cond_wait(&f->cv, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

static void call_free(call *c)
{
  free(c->last_bytes);
  c->last_bytes = NULL;
}

/* Submits c and waits for done; checks on which thread done ran and that
 * every event of this mutation reached the hook before done. */
static void run(call *c)
{
  fixture *f = c->f;
  size_t before = hook_count(f);
  int rc = fm_filer_submit(f->filer, &c->m);
  if (rc != 0)
    fail_msg("fm_filer_submit: %d (%s)", rc, fm_strerror(rc));
  if (!f->sync) {
    /* no sync: applied and completed on this thread before submit returns */
    pthread_mutex_lock(&f->mu);
    bool done = c->done;
    pthread_mutex_unlock(&f->mu);
    assert_true(done);
    assert_true(pthread_equal(c->done_thread, pthread_self()));
  } else {
    call_wait(c);
    assert_false(pthread_equal(c->done_thread, pthread_self()));
  }
  check_violation(f);
  size_t after = hook_count(f);
  assert_true(after >= before);
  assert_int_equal(c->hooks_before_done, after);
  if (c->has_event) {
    assert_true(c->last_hooked);
    assert_true(after > before);
    /* the last event handed to done is the last one the hook saw */
    pthread_mutex_lock(&f->mu);
    int64_t last = f->events[after - 1].ts;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(c->last_ts, last);
  } else {
    assert_int_equal(after, before);
  }
}

static char *str(const char *s)
{
  return (char *)(uintptr_t)s;
}

/* An entry with its attributes, kept together. */
typedef struct test_entry {
  FilerPb__Entry e;
  FilerPb__FuseAttributes attr;
} test_entry;

static void entry_init(test_entry *t, const char *name, bool is_dir, uint64_t size)
{
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  FilerPb__FuseAttributes a = FILER_PB__FUSE_ATTRIBUTES__INIT;
  t->e = e;
  t->attr = a;
  t->e.name = str(name);
  t->e.is_directory = is_dir;
  t->e.attributes = &t->attr;
  t->attr.file_size = size;
  t->attr.mtime = 1700000000;
  t->attr.crtime = 1700000000;
  t->attr.file_mode = is_dir ? GO_MODE_DIR | 0750 : 0640;
  t->attr.uid = 1000;
  t->attr.gid = 100;
  t->attr.user_name = str("alice");
}

typedef struct create_opts {
  bool o_excl;
  bool skip_parent;
  const int32_t *sigs;
  size_t nsigs;
  FilerPb__WriteCondition *condition;
} create_opts;

/* Submits a CreateEntry and waits; c holds the result (call_free it). */
static void create_with(fixture *f, call *c, const char *dir, test_entry *t, const create_opts *o)
{
  FilerPb__CreateEntryRequest req = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
  req.directory = str(dir);
  req.entry = &t->e;
  if (o != NULL) {
    req.o_excl = o->o_excl;
    req.skip_check_parent_directory = o->skip_parent;
    req.signatures = (int32_t *)(uintptr_t)o->sigs;
    req.n_signatures = o->nsigs;
    req.condition = o->condition;
  }
  call_init(c, f, FM_MUT_CREATE, &req.base);
  run(c);
}

static void expect_ok(const call *c)
{
  if (c->status != GRPC_STATUS_OK)
    fail_msg("status %d: %s", (int)c->status, c->message);
  if (c->inband[0] != '\0')
    fail_msg("in-band error: %s", c->inband);
  assert_int_equal(c->filer_error, 0);
}

/* Creates a file (or directory) that must succeed; returns its event count. */
static size_t create_ok(fixture *f, const char *dir, const char *name, bool is_dir, uint64_t size)
{
  test_entry t;
  entry_init(&t, name, is_dir, size);
  call c;
  size_t before = hook_count(f);
  create_with(f, &c, dir, &t, NULL);
  expect_ok(&c);
  assert_true(c.has_event);
  call_free(&c);
  return hook_count(f) - before;
}

static void delete_with(fixture *f, call *c, const char *dir, const char *name, bool recursive, bool delete_data,
                        const int32_t *sigs, size_t nsigs)
{
  FilerPb__DeleteEntryRequest req = FILER_PB__DELETE_ENTRY_REQUEST__INIT;
  req.directory = str(dir);
  req.name = str(name);
  req.is_recursive = recursive;
  req.is_delete_data = delete_data;
  req.signatures = (int32_t *)(uintptr_t)sigs;
  req.n_signatures = nsigs;
  call_init(c, f, FM_MUT_DELETE, &req.base);
  run(c);
}

static void update_with(fixture *f, call *c, const char *dir, test_entry *t)
{
  FilerPb__UpdateEntryRequest req = FILER_PB__UPDATE_ENTRY_REQUEST__INIT;
  req.directory = str(dir);
  req.entry = &t->e;
  call_init(c, f, FM_MUT_UPDATE, &req.base);
  run(c);
}

static void rename_with(fixture *f, call *c, const char *old_dir, const char *old_name, const char *new_dir,
                        const char *new_name)
{
  FilerPb__AtomicRenameEntryRequest req = FILER_PB__ATOMIC_RENAME_ENTRY_REQUEST__INIT;
  req.old_directory = str(old_dir);
  req.old_name = str(old_name);
  req.new_directory = str(new_dir);
  req.new_name = str(new_name);
  call_init(c, f, FM_MUT_RENAME, &req.base);
  run(c);
}

static void kv_put(fixture *f, call *c, const char *key, const char *value)
{
  FilerPb__KvPutRequest req = FILER_PB__KV_PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)(uintptr_t)key;
  req.key.len = strlen(key);
  req.value.data = (uint8_t *)(uintptr_t)value;
  req.value.len = strlen(value);
  call_init(c, f, FM_MUT_KV_PUT, &req.base);
  run(c);
}

/* ================================================================ checks */

/* Decodes hook event i; caller frees with
 * filer_pb__subscribe_metadata_response__free_unpacked. */
static FilerPb__SubscribeMetadataResponse *hook_decode(fixture *f, size_t i)
{
  pthread_mutex_lock(&f->mu);
  size_t n = f->nevents;
  hook_event e = i < n ? f->events[i] : (hook_event){ 0 };
  pthread_mutex_unlock(&f->mu);
  if (i >= n)
    fail_msg("hook event %zu: the hook saw only %zu", i, n);
  FilerPb__SubscribeMetadataResponse *ev = filer_pb__subscribe_metadata_response__unpack(NULL, e.len, e.bytes);
  if (ev == NULL)
    fail_msg("hook event %zu does not decode", i);
  assert_int_equal(ev->ts_ns, e.ts);
  assert_non_null(ev->event_notification);
  return ev;
}

static int64_t hook_ts(fixture *f, size_t i)
{
  pthread_mutex_lock(&f->mu);
  size_t n = f->nevents;
  int64_t ts = i < n ? f->events[i].ts : 0;
  pthread_mutex_unlock(&f->mu);
  if (i >= n)
    fail_msg("hook event %zu: the hook saw only %zu", i, n);
  return ts;
}

static void expect_sigs(const FilerPb__EventNotification *en, const int32_t *want, size_t n)
{
  if (en->n_signatures != n) {
    char got[256] = "";
    for (size_t i = 0; i < en->n_signatures; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%d,", (int)en->signatures[i]);
    fail_msg("signatures [%s]: want %zu of them", got, n);
  }
  for (size_t i = 0; i < n; i++)
    assert_int_equal(en->signatures[i], want[i]);
}

/*
 * Asserts hook event i: its directory, the old and new entries by name (NULL:
 * absent), new_parent_path (NULL: ""), delete_chunks. Returns the decoded
 * event for further checks; caller frees.
 */
static FilerPb__SubscribeMetadataResponse *expect_event(fixture *f, size_t i, const char *dir, const char *old_name,
                                                        const char *new_name, const char *new_parent,
                                                        bool delete_chunks)
{
  FilerPb__SubscribeMetadataResponse *ev = hook_decode(f, i);
  const FilerPb__EventNotification *en = ev->event_notification;
  assert_string_equal(ev->directory, dir);
  if (old_name == NULL) {
    assert_null(en->old_entry);
  } else {
    assert_non_null(en->old_entry);
    assert_string_equal(en->old_entry->name, old_name);
  }
  if (new_name == NULL) {
    assert_null(en->new_entry);
  } else {
    assert_non_null(en->new_entry);
    assert_string_equal(en->new_entry->name, new_name);
  }
  assert_string_equal(en->new_parent_path, new_parent != NULL ? new_parent : "");
  assert_int_equal(en->delete_chunks, delete_chunks);
  return ev;
}

static void expect_event_free(fixture *f, size_t i, const char *dir, const char *old_name, const char *new_name,
                              const char *new_parent, bool delete_chunks)
{
  filer_pb__subscribe_metadata_response__free_unpacked(
      expect_event(f, i, dir, old_name, new_name, new_parent, delete_chunks), NULL);
}

/* Compares the write-ahead records with what the hook saw: the same events,
 * in the same order, with the same bytes. */
typedef struct wal_cmp {
  fixture *f;
  size_t i;
  char bad[256];
} wal_cmp;

static bool compare_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  wal_cmp *w = arg;
  const fixture *f = w->f;
  if (w->i >= f->nevents) {
    snprintf(w->bad, sizeof w->bad, "record %zu (ts %lld) was never handed to the hook", w->i, (long long)ts_ns);
    return false;
  }
  const hook_event *e = &f->events[w->i];
  if (e->ts != ts_ns || e->len != len || (len > 0 && memcmp(e->bytes, event, len) != 0)) {
    snprintf(w->bad, sizeof w->bad, "record %zu (ts %lld) differs from hook event %zu (ts %lld)", w->i,
             (long long)ts_ns, w->i, (long long)e->ts);
    return false;
  }
  w->i++;
  return true;
}

static void expect_wal_matches_hook(fixture *f)
{
  char err[FM_ERR_LEN] = "";
  wal_cmp w = { .f = f };
  pthread_mutex_lock(&f->mu);
  int rc = fm_store_events(f->store, 0, compare_record, &w, err, sizeof err);
  size_t n = f->nevents;
  pthread_mutex_unlock(&f->mu);
  if (rc != 0)
    fail_msg("fm_store_events: %d: %s", rc, err);
  if (w.bad[0] != '\0')
    fail_msg("%s", w.bad);
  if (w.i != n)
    fail_msg("%zu write-ahead records, but the hook saw %zu events", w.i, n);
  check_violation(f);
}

static bool count_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  (*(size_t *)arg)++;
  return true;
}

static size_t wal_count(fixture *f)
{
  char err[FM_ERR_LEN] = "";
  size_t n = 0;
  int rc = fm_store_events(f->store, 0, count_record, &n, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_events: %d: %s", rc, err);
  return n;
}

/* Reads a stored entry; NULL when missing. Caller frees with
 * filer_pb__entry__free_unpacked. */
static FilerPb__Entry *load(fixture *f, const char *dir, const char *name)
{
  char err[FM_ERR_LEN] = "";
  void *v = NULL;
  size_t len = 0;
  int rc = fm_store_get_entry(f->store, dir, name, &v, &len, err, sizeof err);
  if (rc == FM_ENOTFOUND)
    return NULL;
  if (rc != 0)
    fail_msg("fm_store_get_entry(%s, %s): %d: %s", dir, name, rc, err);
  FilerPb__Entry *e = filer_pb__entry__unpack(NULL, len, v);
  fm_store_value_free(v);
  if (e == NULL)
    fail_msg("entry %s/%s does not decode", dir, name);
  return e;
}

static void expect_present(fixture *f, const char *dir, const char *name, bool is_dir)
{
  FilerPb__Entry *e = load(f, dir, name);
  if (e == NULL)
    fail_msg("%s / %s: missing", dir, name);
  assert_string_equal(e->name, name);
  assert_int_equal(e->is_directory, is_dir);
  filer_pb__entry__free_unpacked(e, NULL);
}

static void expect_absent(fixture *f, const char *dir, const char *name)
{
  FilerPb__Entry *e = load(f, dir, name);
  if (e != NULL) {
    filer_pb__entry__free_unpacked(e, NULL);
    fail_msg("%s / %s: present, want missing", dir, name);
  }
}

static bool collect_name(void *arg, const char *name, size_t name_len, const void *value, size_t len)
{
  char *out = arg;
  size_t at = strlen(out);
  if (at + name_len + 2 > 512)
    return false;
  memcpy(out + at, name, name_len);
  out[at + name_len] = ',';
  out[at + name_len + 1] = '\0';
  return true;
}

/* Lists `dir` as "a,b,"; out has 512 bytes. */
static const char *list(fixture *f, const char *dir, char out[512])
{
  char err[FM_ERR_LEN] = "";
  out[0] = '\0';
  int rc = fm_store_list(f->store, dir, "", true, "", collect_name, out, err, sizeof err);
  if (rc != 0)
    fail_msg("fm_store_list(%s): %d: %s", dir, rc, err);
  return out;
}

/* ================================================================ life cycle */

static void test_free_null(void **state)
{
  fm_filer_free(NULL);
  /* Reaching here without a crash is the test. */
  assert_string_equal(FM_SYSTEM_LOG_DIR, "/topics/.system/log");
}

static void test_accessors(void **state)
{
  fixture *f = *state;
  assert_int_equal(fm_filer_signature(f->filer), SIG);
  assert_ptr_equal(fm_filer_store(f->filer), f->store);
  /* a new store: nothing committed yet */
  assert_int_equal(fm_filer_committed_ts(f->filer), 0);
  expect_wal_matches_hook(f);
}

/* ================================================================ CreateEntry */

static void test_create_makes_parents(void **state)
{
  fixture *f = *state;
  static const int32_t sigs[] = { 7, -9 };
  test_entry t;
  entry_init(&t, "c.txt", false, 42);
  create_opts o = { .sigs = sigs, .nsigs = 2 };
  call c;
  create_with(f, &c, "/a/b", &t, &o);
  expect_ok(&c);
  assert_int_equal(hook_count(f), 3);

  /* the directories top-down, then the file */
  static const int32_t own[] = { SIG };
  static const int32_t file_sigs[] = { 7, -9, SIG };
  FilerPb__SubscribeMetadataResponse *ev = expect_event(f, 0, "/", NULL, "a", "/", false);
  const FilerPb__Entry *d = ev->event_notification->new_entry;
  assert_true(d->is_directory);
  assert_non_null(d->attributes);
  /* mode dir | entry's permission bits | 0111, the entry's owner */
  assert_int_equal(d->attributes->file_mode, GO_MODE_DIR | 0751);
  assert_int_equal(d->attributes->uid, 1000);
  assert_int_equal(d->attributes->gid, 100);
  assert_string_equal(d->attributes->user_name, "alice");
  assert_true(d->attributes->mtime > 0);
  expect_sigs(ev->event_notification, own, 1);
  assert_false(ev->event_notification->is_from_other_cluster);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);

  ev = expect_event(f, 1, "/a", NULL, "b", "/a", false);
  assert_true(ev->event_notification->new_entry->is_directory);
  expect_sigs(ev->event_notification, own, 1);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);

  ev = expect_event(f, 2, "/a/b", NULL, "c.txt", "/a/b", true);
  assert_false(ev->event_notification->new_entry->is_directory);
  assert_int_equal(ev->event_notification->new_entry->attributes->file_size, 42);
  expect_sigs(ev->event_notification, file_sigs, 3);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);

  /* done saw the file's event as the last one, with the same bytes */
  assert_true(c.has_event);
  assert_int_equal(c.last_ts, hook_ts(f, 2));
  assert_true(hook_ts(f, 0) < hook_ts(f, 1) && hook_ts(f, 1) < hook_ts(f, 2));
  assert_int_equal(fm_filer_committed_ts(f->filer), hook_ts(f, 2));
  call_free(&c);

  expect_present(f, "/", "a", true);
  expect_present(f, "/a", "b", true);
  expect_present(f, "/a/b", "c.txt", false);
  expect_wal_matches_hook(f);
}

/* The request already carries this filer's signature: not added twice. */
static void test_create_signature_not_duplicated(void **state)
{
  fixture *f = *state;
  static const int32_t sigs[] = { SIG, 3 };
  test_entry t;
  entry_init(&t, "f", false, 1);
  create_opts o = { .sigs = sigs, .nsigs = 2 };
  call c;
  create_with(f, &c, "/", &t, &o);
  expect_ok(&c);
  call_free(&c);
  assert_int_equal(hook_count(f), 1);
  FilerPb__SubscribeMetadataResponse *ev = expect_event(f, 0, "/", NULL, "f", "/", true);
  expect_sigs(ev->event_notification, sigs, 2);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  expect_wal_matches_hook(f);
}

static void test_create_o_excl_existing(void **state)
{
  fixture *f = *state;
  assert_int_equal(create_ok(f, "/a/b", "c.txt", false, 1), 3);
  int64_t committed = fm_filer_committed_ts(f->filer);
  size_t records = wal_count(f);
  assert_int_equal(records, 3);

  test_entry t;
  entry_init(&t, "c.txt", false, 2);
  create_opts o = { .o_excl = true };
  call c;
  create_with(f, &c, "/a/b", &t, &o);
  assert_int_equal(c.status, GRPC_STATUS_OK);
  assert_int_equal(c.filer_error, FILER_PB__FILER_ERROR__ENTRY_ALREADY_EXISTS);
  assert_int_equal(c.filer_error, 5);
  assert_string_equal(c.inband, "/a/b/c.txt: entry already exists");
  assert_false(c.has_event);
  call_free(&c);

  assert_int_equal(hook_count(f), 3);
  assert_int_equal(wal_count(f), records);
  assert_int_equal(fm_filer_committed_ts(f->filer), committed);
  /* the stored entry is the first one */
  FilerPb__Entry *e = load(f, "/a/b", "c.txt");
  assert_non_null(e);
  assert_int_equal(e->attributes->file_size, 1);
  filer_pb__entry__free_unpacked(e, NULL);
  expect_wal_matches_hook(f);
}

/* Without o_excl an existing entry of the same kind is replaced: one event
 * with the old and the new entry, no parent events. */
static void test_create_overwrites(void **state)
{
  fixture *f = *state;
  assert_int_equal(create_ok(f, "/o", "f", false, 1), 2);
  test_entry t;
  entry_init(&t, "f", false, 2);
  call c;
  create_with(f, &c, "/o", &t, NULL);
  expect_ok(&c);
  call_free(&c);
  assert_int_equal(hook_count(f), 3);
  FilerPb__SubscribeMetadataResponse *ev = expect_event(f, 2, "/o", "f", "f", "/o", true);
  assert_int_equal(ev->event_notification->old_entry->attributes->file_size, 1);
  assert_int_equal(ev->event_notification->new_entry->attributes->file_size, 2);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  FilerPb__Entry *e = load(f, "/o", "f");
  assert_non_null(e);
  assert_int_equal(e->attributes->file_size, 2);
  filer_pb__entry__free_unpacked(e, NULL);
  expect_wal_matches_hook(f);
}

/* A file over a directory and a directory over a file are refused. */
static void test_create_kind_mismatch(void **state)
{
  fixture *f = *state;
  create_ok(f, "/", "dir", true, 0);
  create_ok(f, "/", "file", false, 1);
  size_t n = hook_count(f);

  test_entry t;
  entry_init(&t, "dir", false, 1);
  call c;
  create_with(f, &c, "/", &t, NULL);
  assert_int_equal(c.status, GRPC_STATUS_OK);
  assert_int_equal(c.filer_error, FILER_PB__FILER_ERROR__EXISTING_IS_DIRECTORY);
  assert_string_equal(c.inband, "/dir: existing entry is a directory");
  assert_false(c.has_event);
  call_free(&c);

  entry_init(&t, "file", true, 0);
  create_with(f, &c, "/", &t, NULL);
  assert_int_equal(c.filer_error, FILER_PB__FILER_ERROR__EXISTING_IS_FILE);
  assert_string_equal(c.inband, "/file: existing entry is a file");
  assert_false(c.has_event);
  call_free(&c);

  assert_int_equal(hook_count(f), n);
  expect_present(f, "/", "dir", true);
  expect_present(f, "/", "file", false);
  expect_wal_matches_hook(f);
}

static void test_create_parent_is_file(void **state)
{
  fixture *f = *state;
  /* /x/y is a file; /x itself exists as a directory */
  assert_int_equal(create_ok(f, "/x", "y", false, 1), 2);
  size_t records = wal_count(f);

  test_entry t;
  entry_init(&t, "z.txt", false, 1);
  call c;
  create_with(f, &c, "/x/y/deeper", &t, NULL);
  assert_int_equal(c.status, GRPC_STATUS_OK);
  assert_int_equal(c.filer_error, FILER_PB__FILER_ERROR__PARENT_IS_FILE);
  assert_int_equal(c.filer_error, 2);
  assert_string_equal(c.inband, "/x/y: parent path is a file");
  assert_false(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), 2);
  assert_int_equal(wal_count(f), records);
  expect_absent(f, "/x/y", "deeper");
  expect_absent(f, "/x/y/deeper", "z.txt");
  expect_wal_matches_hook(f);
}

/* The file parent is found after a missing ancestor has been staged: the
 * staged ancestor must not be written either. */
static void test_create_parent_is_file_below_missing_dir(void **state)
{
  fixture *f = *state;
  /* /p/q is a file whose directory /p was never created */
  test_entry t;
  entry_init(&t, "q", false, 1);
  create_opts o = { .skip_parent = true };
  call c;
  create_with(f, &c, "/p", &t, &o);
  expect_ok(&c);
  call_free(&c);
  assert_int_equal(hook_count(f), 1);
  expect_absent(f, "/", "p");
  int64_t committed = fm_filer_committed_ts(f->filer);

  entry_init(&t, "s.txt", false, 1);
  create_with(f, &c, "/p/q/r", &t, NULL);
  assert_int_equal(c.status, GRPC_STATUS_OK);
  assert_int_equal(c.filer_error, FILER_PB__FILER_ERROR__PARENT_IS_FILE);
  assert_string_equal(c.inband, "/p/q: parent path is a file");
  assert_false(c.has_event);
  call_free(&c);

  assert_int_equal(hook_count(f), 1);
  assert_int_equal(wal_count(f), 1);
  assert_int_equal(fm_filer_committed_ts(f->filer), committed);
  expect_absent(f, "/", "p");
  expect_absent(f, "/p/q", "r");
  expect_absent(f, "/p/q/r", "s.txt");
  expect_wal_matches_hook(f);
}

static void test_create_condition(void **state)
{
  fixture *f = *state;
  create_ok(f, "/", "e", false, 1);
  size_t n = hook_count(f);

  FilerPb__WriteCondition__Clause clause = FILER_PB__WRITE_CONDITION__CLAUSE__INIT;
  FilerPb__WriteCondition__Clause *clauses[] = { &clause };
  FilerPb__WriteCondition cond = FILER_PB__WRITE_CONDITION__INIT;
  cond.n_clauses = 1;
  cond.clauses = clauses;
  create_opts o = { .condition = &cond };
  test_entry t;
  call c;

  clause.kind = FILER_PB__WRITE_CONDITION__KIND__IF_NOT_EXISTS;
  entry_init(&t, "e", false, 2);
  create_with(f, &c, "/", &t, &o);
  assert_int_equal(c.status, GRPC_STATUS_OK);
  assert_int_equal(c.filer_error, FILER_PB__FILER_ERROR__PRECONDITION_FAILED);
  assert_string_equal(c.inband, "precondition failed");
  call_free(&c);

  /* a kind the filer does not evaluate is never reported as holding */
  clause.kind = FILER_PB__WRITE_CONDITION__KIND__IF_ETAG_MATCH;
  create_with(f, &c, "/", &t, &o);
  assert_int_equal(c.status, GRPC_STATUS_UNIMPLEMENTED);
  assert_false(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), n);

  /* and one that holds */
  clause.kind = FILER_PB__WRITE_CONDITION__KIND__IF_EXISTS;
  create_with(f, &c, "/", &t, &o);
  expect_ok(&c);
  assert_true(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), n + 1);
  expect_wal_matches_hook(f);
}

/* ================================================================ UpdateEntry */

static void test_update(void **state)
{
  fixture *f = *state;
  assert_int_equal(create_ok(f, "/u", "f.txt", false, 10), 2);
  int64_t committed = fm_filer_committed_ts(f->filer);

  /* identical to what is stored: no event */
  test_entry t;
  entry_init(&t, "f.txt", false, 10);
  call c;
  update_with(f, &c, "/u", &t);
  expect_ok(&c);
  assert_false(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), 2);
  assert_int_equal(wal_count(f), 2);
  assert_int_equal(fm_filer_committed_ts(f->filer), committed);

  /* changed: one event with the old and the new entry */
  entry_init(&t, "f.txt", false, 20);
  static const int32_t sigs[] = { 11 };
  FilerPb__UpdateEntryRequest req = FILER_PB__UPDATE_ENTRY_REQUEST__INIT;
  req.directory = str("/u");
  req.entry = &t.e;
  req.signatures = (int32_t *)(uintptr_t)sigs;
  req.n_signatures = 1;
  call_init(&c, f, FM_MUT_UPDATE, &req.base);
  run(&c);
  expect_ok(&c);
  assert_true(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), 3);
  FilerPb__SubscribeMetadataResponse *ev = expect_event(f, 2, "/u", "f.txt", "f.txt", "/u", true);
  assert_int_equal(ev->event_notification->old_entry->attributes->file_size, 10);
  assert_int_equal(ev->event_notification->new_entry->attributes->file_size, 20);
  static const int32_t want[] = { 11, SIG };
  expect_sigs(ev->event_notification, want, 2);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  assert_true(fm_filer_committed_ts(f->filer) > committed);
  FilerPb__Entry *e = load(f, "/u", "f.txt");
  assert_non_null(e);
  assert_int_equal(e->attributes->file_size, 20);
  filer_pb__entry__free_unpacked(e, NULL);
  expect_wal_matches_hook(f);
}

static void test_update_refused(void **state)
{
  fixture *f = *state;
  create_ok(f, "/", "file", false, 1);
  size_t n = hook_count(f);
  test_entry t;
  call c;

  entry_init(&t, "missing", false, 1);
  update_with(f, &c, "/", &t);
  assert_int_equal(c.status, GRPC_STATUS_NOT_FOUND);
  assert_non_null(strstr(c.message, "/missing"));
  assert_false(c.has_event);
  call_free(&c);
  expect_absent(f, "/", "missing");

  entry_init(&t, "file", true, 0);
  update_with(f, &c, "/", &t);
  assert_int_equal(c.status, GRPC_STATUS_FAILED_PRECONDITION);
  assert_false(c.has_event);
  call_free(&c);
  expect_present(f, "/", "file", false);

  assert_int_equal(hook_count(f), n);
  expect_wal_matches_hook(f);
}

/* ================================================================ DeleteEntry */

static void test_delete_recursive_post_order(void **state)
{
  fixture *f = *state;
  create_ok(f, "/t", "a.txt", false, 1);
  create_ok(f, "/t/d", "x.txt", false, 1);
  create_ok(f, "/t/d", "e", true, 0);
  create_ok(f, "/t", "z.txt", false, 1);
  size_t n = hook_count(f);
  assert_int_equal(n, 6);

  static const int32_t sigs[] = { 21 };
  call c;
  delete_with(f, &c, "/", "t", true, true, sigs, 1);
  expect_ok(&c);
  assert_true(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), n + 6);

  /* each directory after its own contents, in name order within one */
  expect_event_free(f, n + 0, "/t", "a.txt", NULL, NULL, true);
  expect_event_free(f, n + 1, "/t/d", "e", NULL, NULL, true);
  expect_event_free(f, n + 2, "/t/d", "x.txt", NULL, NULL, true);
  expect_event_free(f, n + 3, "/t", "d", NULL, NULL, true);
  expect_event_free(f, n + 4, "/t", "z.txt", NULL, NULL, true);
  FilerPb__SubscribeMetadataResponse *ev = expect_event(f, n + 5, "/", "t", NULL, NULL, true);
  static const int32_t want[] = { 21, SIG };
  expect_sigs(ev->event_notification, want, 2);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  assert_int_equal(c.last_ts, hook_ts(f, n + 5));

  char buf[512];
  assert_string_equal(list(f, "/", buf), "");
  assert_string_equal(list(f, "/t", buf), "");
  assert_string_equal(list(f, "/t/d", buf), "");
  expect_wal_matches_hook(f);
}

static void test_delete_non_recursive(void **state)
{
  fixture *f = *state;
  create_ok(f, "/n", "f.txt", false, 1);
  size_t n = hook_count(f);

  call c;
  delete_with(f, &c, "/", "n", false, false, NULL, 0);
  assert_int_equal(c.status, GRPC_STATUS_OK);
  assert_non_null(strstr(c.inband, "fail to delete non-empty folder"));
  assert_false(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), n);
  expect_present(f, "/", "n", true);
  expect_present(f, "/n", "f.txt", false);

  /* the file, then the now empty directory, without data */
  delete_with(f, &c, "/n", "f.txt", false, false, NULL, 0);
  expect_ok(&c);
  call_free(&c);
  delete_with(f, &c, "/", "n", false, false, NULL, 0);
  expect_ok(&c);
  call_free(&c);
  assert_int_equal(hook_count(f), n + 2);
  expect_event_free(f, n, "/n", "f.txt", NULL, NULL, false);
  expect_event_free(f, n + 1, "/", "n", NULL, NULL, false);
  expect_absent(f, "/", "n");
  expect_absent(f, "/n", "f.txt");

  /* deleting what is not there succeeds quietly */
  delete_with(f, &c, "/", "n", true, true, NULL, 0);
  expect_ok(&c);
  assert_false(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), n + 2);
  expect_wal_matches_hook(f);
}

/* ================================================================ AtomicRenameEntry */

static void test_rename_directory(void **state)
{
  fixture *f = *state;
  create_ok(f, "/src", "one.txt", false, 1);
  create_ok(f, "/src", "two.txt", false, 2);
  create_ok(f, "/", "dst", true, 0);
  size_t n = hook_count(f);
  assert_int_equal(n, 4);

  call c;
  rename_with(f, &c, "/", "src", "/dst", "moved");
  expect_ok(&c);
  assert_true(c.has_event);
  call_free(&c);
  assert_int_equal(hook_count(f), n + 3);

  /* pre-order: the directory, then its children */
  FilerPb__SubscribeMetadataResponse *ev = expect_event(f, n, "/", "src", "moved", "/dst", false);
  assert_true(ev->event_notification->new_entry->is_directory);
  static const int32_t own[] = { SIG };
  expect_sigs(ev->event_notification, own, 1);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  expect_event_free(f, n + 1, "/src", "one.txt", "one.txt", "/dst/moved", false);
  ev = expect_event(f, n + 2, "/src", "two.txt", "two.txt", "/dst/moved", false);
  assert_int_equal(ev->event_notification->new_entry->attributes->file_size, 2);
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);

  char buf[512];
  assert_string_equal(list(f, "/dst/moved", buf), "one.txt,two.txt,");
  assert_string_equal(list(f, "/dst", buf), "moved,");
  assert_string_equal(list(f, "/src", buf), "");
  assert_string_equal(list(f, "/", buf), "dst,");
  expect_present(f, "/dst", "moved", true);
  expect_absent(f, "/", "src");
  expect_wal_matches_hook(f);
}

static void test_rename_refused(void **state)
{
  fixture *f = *state;
  create_ok(f, "/d", "f", false, 1);
  create_ok(f, "/", "g", false, 1);
  size_t n = hook_count(f);
  call c;

  rename_with(f, &c, "/", "missing", "/", "x");
  assert_int_equal(c.status, GRPC_STATUS_NOT_FOUND);
  call_free(&c);
  rename_with(f, &c, "/", "d", "/d", "inside");
  assert_int_equal(c.status, GRPC_STATUS_INVALID_ARGUMENT);
  call_free(&c);
  rename_with(f, &c, "/d", "f", "/", "g");
  assert_int_equal(c.status, GRPC_STATUS_ALREADY_EXISTS);
  call_free(&c);
  rename_with(f, &c, "/d", "f", "/nowhere", "f");
  assert_int_equal(c.status, GRPC_STATUS_NOT_FOUND);
  call_free(&c);
  rename_with(f, &c, "/d", "f", "/g", "f");
  assert_int_equal(c.status, GRPC_STATUS_FAILED_PRECONDITION);
  call_free(&c);
  /* onto itself: nothing to do */
  rename_with(f, &c, "/d", "f", "/d", "f");
  expect_ok(&c);
  assert_false(c.has_event);
  call_free(&c);

  assert_int_equal(hook_count(f), n);
  expect_present(f, "/d", "f", false);
  expect_present(f, "/", "g", false);
  expect_wal_matches_hook(f);
}

/* ================================================================ KvPut */

static void test_kv_put(void **state)
{
  fixture *f = *state;
  char err[FM_ERR_LEN] = "";
  call c;
  kv_put(f, &c, "key", "value");
  expect_ok(&c);
  assert_false(c.has_event);
  call_free(&c);
  void *v = NULL;
  size_t len = 0;
  assert_int_equal(fm_store_kv_get(f->store, "key", 3, &v, &len, err, sizeof err), 0);
  assert_int_equal(len, 5);
  assert_memory_equal(v, "value", 5);
  fm_store_value_free(v);

  /* an empty value deletes */
  kv_put(f, &c, "key", "");
  expect_ok(&c);
  assert_false(c.has_event);
  call_free(&c);
  v = NULL;
  assert_int_equal(fm_store_kv_get(f->store, "key", 3, &v, &len, err, sizeof err), FM_ENOTFOUND);
  assert_null(v);

  assert_int_equal(hook_count(f), 0);
  assert_int_equal(wal_count(f), 0);
  assert_int_equal(fm_filer_committed_ts(f->filer), 0);
  expect_wal_matches_hook(f);
}

/* ================================================================ clock */

static void test_clock_across_reopen(void **state)
{
  fixture *f = *state;
  create_ok(f, "/c", "1", false, 1);
  int64_t first = fm_filer_committed_ts(f->filer);
  assert_int_equal(first, hook_ts(f, 1));
  create_ok(f, "/c", "2", false, 1);
  int64_t second = fm_filer_committed_ts(f->filer);
  assert_true(second > first);
  assert_int_equal(second, hook_ts(f, 2));
  expect_wal_matches_hook(f);

  reopen(f);
  assert_int_equal(fm_filer_committed_ts(f->filer), second);
  create_ok(f, "/c", "3", false, 1);
  assert_int_equal(hook_count(f), 4);
  assert_true(hook_ts(f, 3) > second);
  assert_int_equal(fm_filer_committed_ts(f->filer), hook_ts(f, 3));
  /* the earlier records survived the reopen, in order, before the new one */
  expect_wal_matches_hook(f);
}

/* A clock ahead of the wall clock (recorded in the store, its record since
 * deleted) is recovered: new events come after it, not at "now". */
static void test_clock_recovered_ahead_of_now(void **state)
{
  fixture *f = *state;
  create_ok(f, "/", "a", false, 1);
  close_all(f);

  char err[FM_ERR_LEN] = "";
  fm_store_options opt = { .sync = f->sync, .cache_bytes = 0 };
  assert_int_equal(fm_store_open(f->base, &opt, &f->store, err, sizeof err), 0);
  int64_t future = fm_now_ns() + 3600 * INT64_C(1000000000);
  fm_store_batch *b = fm_store_batch_new();
  assert_non_null(b);
  fm_store_batch_put_event(b, future, "x", 1);
  fm_store_batch_delete_event(b, future);
  assert_int_equal(fm_store_write(f->store, b, err, sizeof err), 0);
  fm_store_batch_free(b);
  assert_int_equal(fm_filer_new(f->store, SIG, &f->filer, err, sizeof err), 0);
  fm_filer_set_event_hook(f->filer, record_event, f);

  assert_int_equal(fm_filer_committed_ts(f->filer), future);
  create_ok(f, "/", "b", false, 1);
  assert_int_equal(hook_count(f), 2);
  assert_int_equal(hook_ts(f, 1), future + 1);
  assert_int_equal(fm_filer_committed_ts(f->filer), future + 1);
  expect_wal_matches_hook(f);
}

/* ================================================================ system log */

static void test_system_log_dir_no_events(void **state)
{
  fixture *f = *state;
  /* its ancestors are ordinary directories */
  assert_int_equal(create_ok(f, "/topics", ".system", true, 0), 2);
  int64_t committed = fm_filer_committed_ts(f->filer);

  test_entry t;
  entry_init(&t, "segment", false, 9);
  call c;
  create_with(f, &c, FM_SYSTEM_LOG_DIR "/2024-01-01", &t, NULL);
  expect_ok(&c);
  assert_false(c.has_event);
  call_free(&c);
  expect_present(f, "/topics/.system", "log", true);
  expect_present(f, FM_SYSTEM_LOG_DIR, "2024-01-01", true);
  expect_present(f, FM_SYSTEM_LOG_DIR "/2024-01-01", "segment", false);
  assert_int_equal(hook_count(f), 2);
  assert_int_equal(wal_count(f), 2);
  assert_int_equal(fm_filer_committed_ts(f->filer), committed);

  /* deleting there is silent too */
  delete_with(f, &c, FM_SYSTEM_LOG_DIR, "2024-01-01", true, true, NULL, 0);
  expect_ok(&c);
  assert_false(c.has_event);
  call_free(&c);
  expect_absent(f, FM_SYSTEM_LOG_DIR, "2024-01-01");
  assert_int_equal(hook_count(f), 2);

  /* a sibling that merely shares the prefix is not under it */
  assert_int_equal(create_ok(f, "/topics/.system", "logs", false, 1), 1);
  expect_wal_matches_hook(f);
}

/* ================================================================ concurrency */

#define WRITERS 4
#define PER_WRITER 10

typedef struct writer {
  fixture *f;
  int id;
  int failed; /* count of mutations that did not succeed as expected */
} writer;

static void *write_files(void *arg)
{
  writer *w = arg;
  fixture *f = w->f;
  char dir[32], name[32];
  snprintf(dir, sizeof dir, "/w/t%d", w->id);
  for (int i = 0; i < PER_WRITER; i++) {
    snprintf(name, sizeof name, "f%02d", i);
    test_entry t;
    entry_init(&t, name, false, (uint64_t)i);
    FilerPb__CreateEntryRequest req = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
    req.directory = dir;
    req.entry = &t.e;
    call c;
    call_init(&c, f, FM_MUT_CREATE, &req.base);
    if (fm_filer_submit(f->filer, &c.m) != 0) {
      w->failed++;
      continue;
    }
    call_wait(&c);
    if (c.status != GRPC_STATUS_OK || c.inband[0] != '\0' || !c.has_event || !c.last_hooked)
      w->failed++;
    call_free(&c);
  }
  return NULL;
}

/* Writers on several threads: the hook still sees ts strictly increasing,
 * in write-ahead order, each mutation's events before its done. */
static void test_concurrent_writers(void **state)
{
  fixture *f = *state;
  pthread_t th[WRITERS];
  writer w[WRITERS];
  for (int i = 0; i < WRITERS; i++) {
    w[i] = (writer){ .f = f, .id = i };
    assert_int_equal(pthread_create(&th[i], NULL, write_files, &w[i]), 0);
  }
  for (int i = 0; i < WRITERS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].failed, 0);
  }
  check_violation(f);
  /* /w, each /w/tN, and every file */
  assert_int_equal(hook_count(f), 1 + WRITERS + WRITERS * PER_WRITER);
  assert_int_equal(fm_filer_committed_ts(f->filer), hook_ts(f, hook_count(f) - 1));
  char buf[512];
  assert_string_equal(list(f, "/w", buf), "t0,t1,t2,t3,");
  assert_string_equal(list(f, "/w/t2", buf), "f00,f01,f02,f03,f04,f05,f06,f07,f08,f09,");
  expect_wal_matches_hook(f);
}

/* fm_filer_free completes every mutation submitted before it. */
static void test_free_completes_queued(void **state)
{
  fixture *f = *state;
  enum { N = 8 };
  test_entry t[N];
  FilerPb__CreateEntryRequest req[N];
  call c[N];
  char names[N][8];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "q%d", i);
    entry_init(&t[i], names[i], false, 1);
    FilerPb__CreateEntryRequest r = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
    req[i] = r;
    req[i].directory = str("/q");
    req[i].entry = &t[i].e;
    call_init(&c[i], f, FM_MUT_CREATE, &req[i].base);
    assert_int_equal(fm_filer_submit(f->filer, &c[i].m), 0);
  }
  fm_filer_free(f->filer);
  f->filer = NULL;
  check_violation(f);
  for (int i = 0; i < N; i++) {
    pthread_mutex_lock(&f->mu);
    bool done = c[i].done;
    pthread_mutex_unlock(&f->mu);
    assert_true(done);
    expect_ok(&c[i]);
    assert_true(c[i].last_hooked);
    call_free(&c[i]);
  }
  assert_int_equal(hook_count(f), N + 1);
  char buf[512];
  assert_string_equal(list(f, "/q", buf), "q0,q1,q2,q3,q4,q5,q6,q7,");
  expect_wal_matches_hook(f);
}

/* Every filer test runs against a store without and with -store.sync. */
#define T(fn)                                                                                                          \
  cmocka_unit_test_setup_teardown(fn, setup, teardown),                                                                \
  {                                                                                                                    \
#fn "_sync", fn, setup_sync, teardown, NULL                                                                        \
  }

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_free_null),
    T(test_accessors),
    T(test_create_makes_parents),
    T(test_create_signature_not_duplicated),
    T(test_create_o_excl_existing),
    T(test_create_overwrites),
    T(test_create_kind_mismatch),
    T(test_create_parent_is_file),
    T(test_create_parent_is_file_below_missing_dir),
    T(test_create_condition),
    T(test_update),
    T(test_update_refused),
    T(test_delete_recursive_post_order),
    T(test_delete_non_recursive),
    T(test_rename_directory),
    T(test_rename_refused),
    T(test_kv_put),
    T(test_clock_across_reopen),
    T(test_clock_recovered_ahead_of_now),
    T(test_system_log_dir_no_events),
    T(test_concurrent_writers),
    T(test_free_completes_queued),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
