/*
 * The filer's mutation engine.
 *
 * Writes are serialised by apply_mu. Each mutation is applied as one store
 * batch (entry changes + write-ahead events + clock); because a batch is
 * written before the next mutation is prepared, every mutation reads the
 * effects of all earlier ones without an overlay.
 *
 * With -store.sync a committer thread takes the whole queue as a group,
 * applies it, makes the group durable with one fsync (fm_store_sync), and only
 * then runs the event hook (in ts order) and completes each mutation: nothing
 * is acknowledged or published before it is on disk, and concurrent writers
 * share one fsync. Without -store.sync there is no fsync to share, so the
 * submitting thread applies, publishes and completes its mutation itself
 * (measured: handing each mutation to a thread and back cost more than the
 * write; futex wake-ups dominated the profile).
 */
#include "filer.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "fpath.h"
#include "log.h"

struct fm_filer {
  fm_store *store;
  int32_t signature;
  fm_filer_event_hook hook;
  void *hook_arg;

  pthread_t thread;
  bool started;
  pthread_mutex_t apply_mu; /* one writer at a time; guards clock, batch, group */
  pthread_mutex_t mu;       /* guards head, tail, stopping */
  pthread_cond_t cv;
  fm_mutation *head, *tail;
  bool stopping;

  /* under apply_mu */
  int64_t clock; /* last ts handed out */
  fm_store_batch *batch;
  fm_store_batch *group;

  atomic_llong committed_ts;
  atomic_bool closing; /* fm_filer_free has begun */
  /* A group fsync failed: its writes are applied but may not be durable, so
   * what is on disk is unknown. Like PostgreSQL after a failed fsync, the
   * filer stops taking writes (fail-stop) until it is restarted. */
  atomic_bool broken;
  char broken_reason[FM_ERR_LEN]; /* written once, before broken is set */
};

/* ================================================================ events */

static int64_t next_ts(fm_filer *f)
{
  int64_t now = fm_now_ns();
  f->clock = now > f->clock ? now : f->clock + 1;
  return f->clock;
}

static void drop_events(fm_mutation *m)
{
  for (size_t i = 0; i < m->nevents; i++)
    free(m->events[i].bytes);
  m->nevents = 0;
}

/*
 * Builds one event, adds its write-ahead record to the current batch and keeps
 * its bytes for the hook. `sigs` are the caller's signatures (may be NULL);
 * this filer's own is appended unless present. Events under the system log
 * directory are not recorded.
 */
static int stage_event(fm_filer *f, fm_mutation *m, const char *dir, const FilerPb__Entry *old_entry,
                       const FilerPb__Entry *new_entry, const char *new_parent, bool delete_chunks, bool from_other,
                       const int32_t *sigs, size_t nsigs)
{
  const char *name = old_entry != NULL ? old_entry->name : new_entry->name;
  char *full = fm_path_join(dir, name);
  if (full == NULL)
    return FM_ENOMEM;
  bool system = fm_path_is_under(full, FM_SYSTEM_LOG_DIR);
  free(full);
  if (system)
    return 0;

  int32_t *all = malloc((nsigs + 1) * sizeof *all);
  if (all == NULL)
    return FM_ENOMEM;
  size_t n = 0;
  bool have_own = false;
  for (size_t i = 0; i < nsigs; i++) {
    all[n++] = sigs[i];
    have_own |= sigs[i] == f->signature;
  }
  if (!have_own)
    all[n++] = f->signature;

  FilerPb__EventNotification en = FILER_PB__EVENT_NOTIFICATION__INIT;
  en.old_entry = (FilerPb__Entry *)(uintptr_t)old_entry;
  en.new_entry = (FilerPb__Entry *)(uintptr_t)new_entry;
  en.delete_chunks = delete_chunks;
  en.new_parent_path = (char *)(uintptr_t)(new_parent != NULL ? new_parent : "");
  en.is_from_other_cluster = from_other;
  en.n_signatures = n;
  en.signatures = all;
  FilerPb__SubscribeMetadataResponse ev = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  ev.directory = (char *)(uintptr_t)dir;
  ev.event_notification = &en;
  ev.ts_ns = next_ts(f);

  if (m->nevents == m->capevents) {
    size_t cap = m->capevents ? m->capevents * 2 : 4;
    fm_staged_event *grown = realloc(m->events, cap * sizeof *grown);
    if (grown == NULL) {
      free(all);
      return FM_ENOMEM;
    }
    m->events = grown;
    m->capevents = cap;
  }
  size_t len = filer_pb__subscribe_metadata_response__get_packed_size(&ev);
  uint8_t *bytes = malloc(len ? len : 1);
  if (bytes == NULL) {
    free(all);
    return FM_ENOMEM;
  }
  filer_pb__subscribe_metadata_response__pack(&ev, bytes);
  free(all);
  m->events[m->nevents++] = (fm_staged_event){ ev.ts_ns, bytes, len };
  fm_store_batch_put_event(f->batch, ev.ts_ns, bytes, len);
  return 0;
}

/* ================================================================ store helpers */

/* Reads and decodes an entry. Returns 0 (caller frees *e with
 * filer_pb__entry__free_unpacked), FM_ENOTFOUND, or FM_EIO/FM_EDECODE with message. */
static int load_entry(fm_filer *f, const char *dir, const char *name, FilerPb__Entry **e, char *err, size_t errlen)
{
  void *v = NULL;
  size_t len = 0;
  int rc = fm_store_get_entry(f->store, dir, name, &v, &len, err, errlen);
  if (rc != 0)
    return rc;
  *e = filer_pb__entry__unpack(NULL, len, v);
  fm_store_value_free(v);
  if (*e == NULL) {
    snprintf(err, errlen, "store: entry %s/%s does not decode", dir, name);
    return FM_EDECODE;
  }
  return 0;
}

static int put_entry(fm_filer *f, const char *dir, const FilerPb__Entry *e)
{
  size_t len = filer_pb__entry__get_packed_size(e);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL)
    return FM_ENOMEM;
  filer_pb__entry__pack(e, buf);
  fm_store_batch_put_entry(f->batch, dir, e->name, buf, len);
  free(buf);
  return 0;
}

typedef struct child_list {
  char **names;
  FilerPb__Entry **entries;
  size_t n, cap;
  int rc;
} child_list;

static bool collect_child(void *arg, const char *name, size_t nlen, const void *value, size_t len)
{
  child_list *cl = arg;
  if (cl->n == cl->cap) {
    size_t cap = cl->cap ? cl->cap * 2 : 64;
    char **nn = realloc(cl->names, cap * sizeof *nn);
    if (nn == NULL) {
      cl->rc = FM_ENOMEM;
      return false;
    }
    cl->names = nn;
    FilerPb__Entry **ne = realloc(cl->entries, cap * sizeof *ne);
    if (ne == NULL) {
      cl->rc = FM_ENOMEM;
      return false;
    }
    cl->entries = ne;
    cl->cap = cap;
  }
  FilerPb__Entry *e = filer_pb__entry__unpack(NULL, len, value);
  char *copy = strndup(name, nlen);
  if (e == NULL || copy == NULL) {
    if (e != NULL)
      filer_pb__entry__free_unpacked(e, NULL);
    free(copy);
    cl->rc = e == NULL ? FM_EDECODE : FM_ENOMEM;
    return false;
  }
  cl->names[cl->n] = copy;
  cl->entries[cl->n] = e;
  cl->n++;
  return true;
}

static void child_list_free(child_list *cl)
{
  for (size_t i = 0; i < cl->n; i++) {
    free(cl->names[i]);
    filer_pb__entry__free_unpacked(cl->entries[i], NULL);
  }
  free(cl->names);
  free(cl->entries);
}

/* Lists every child of `dir` into cl (whole directory; used by the subtree
 * operations, which write one batch anyway). */
static int list_children(fm_filer *f, const char *dir, child_list *cl, char *err, size_t errlen)
{
  memset(cl, 0, sizeof *cl);
  int rc = fm_store_list(f->store, dir, "", true, "", collect_child, cl, err, errlen);
  if (rc == 0 && cl->rc != 0) {
    rc = cl->rc;
    snprintf(err, errlen, "store: listing %s: %s", dir, fm_strerror(rc));
  }
  return rc;
}

static void fail(fm_mutation *m, grpc_status_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(fm_mutation *m, grpc_status_code code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  m->status = code;
  vsnprintf(m->message, sizeof m->message, fmt, ap);
  va_end(ap);
}

static void store_failed(fm_mutation *m, int rc, const char *err)
{
  m->status = rc == FM_ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL;
  snprintf(m->message, sizeof m->message, "%s", err[0] ? err : fm_strerror(rc));
}

/* ================================================================ CreateEntry */

/* Evaluates the clauses of a WriteCondition against the current entry (NULL:
 * missing). Returns 1 satisfied, 0 not, -1 unsupported kind (message set). */
static int condition_holds(fm_mutation *m, const FilerPb__WriteCondition *c, const FilerPb__Entry *current)
{
  if (c == NULL)
    return 1;
  for (size_t i = 0; i < c->n_clauses; i++) {
    switch (c->clauses[i]->kind) {
    case FILER_PB__WRITE_CONDITION__KIND__NONE:
      break;
    case FILER_PB__WRITE_CONDITION__KIND__IF_NOT_EXISTS:
      if (current != NULL)
        return 0;
      break;
    case FILER_PB__WRITE_CONDITION__KIND__IF_EXISTS:
      if (current == NULL)
        return 0;
      break;
    case FILER_PB__WRITE_CONDITION__KIND__IF_ETAG_MATCH:
    case FILER_PB__WRITE_CONDITION__KIND__IF_ETAG_NOT_MATCH:
    case FILER_PB__WRITE_CONDITION__KIND__IF_UNMODIFIED_SINCE:
    case FILER_PB__WRITE_CONDITION__KIND__IF_MODIFIED_SINCE:
    case FILER_PB__WRITE_CONDITION__KIND__IF_EXTENDED_NOT_EQUAL:
    case FILER_PB__WRITE_CONDITION__KIND__IF_EXTENDED_TIME_ELAPSED:
    case FILER_PB__WRITE_CONDITION__KIND__IF_CHUNKS_EQUAL:
    case _FILER_PB__WRITE_CONDITION__KIND_IS_INT_SIZE:
    default:
      /* never report success for a condition we did not evaluate */
      m->status = GRPC_STATUS_UNIMPLEMENTED;
      snprintf(m->message, sizeof m->message, "write condition kind %d is not supported by filermeta yet",
               (int)c->clauses[i]->kind);
      return -1;
    }
  }
  return 1;
}

/* Creates each missing ancestor of `dir` top-down, as upstream does: mode
 * dir | entry mode | 0111, the entry's owner, times now, an event carrying only
 * this filer's signature unless `quiet` (the entry being created is under the
 * system log directory: upstream creates its parents silently too). An
 * ancestor that is a file fails the mutation. */
static int ensure_parents(fm_filer *f, fm_mutation *m, const char *dir, const FilerPb__Entry *entry, bool from_other,
                          bool quiet, char *err, size_t errlen)
{
  if (strcmp(dir, "/") == 0)
    return 0;
  char *path = strdup(dir);
  if (path == NULL)
    return FM_ENOMEM;
  int rc = 0;
  /* walk "/a", "/a/b", ... by cutting at each '/' in turn */
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    char saved = *p;
    *p = '\0';
    const char *name;
    char *parent = fm_path_parent(path, &name);
    if (parent == NULL) {
      rc = FM_ENOMEM;
      break;
    }
    FilerPb__Entry *existing = NULL;
    rc = load_entry(f, parent, name, &existing, err, errlen);
    if (rc == 0) {
      bool is_dir = existing->is_directory;
      filer_pb__entry__free_unpacked(existing, NULL);
      if (!is_dir) {
        m->filer_error = FILER_PB__FILER_ERROR__PARENT_IS_FILE;
        snprintf(m->inband_error, sizeof m->inband_error, "%s: parent path is a file", path);
        free(parent);
        rc = FM_EEXIST;
        break;
      }
    } else if (rc == FM_ENOTFOUND) {
      int64_t now_ns = fm_now_ns();
      FilerPb__FuseAttributes attr = FILER_PB__FUSE_ATTRIBUTES__INIT;
      const FilerPb__FuseAttributes *ea = entry->attributes;
      attr.file_mode = FM_MODE_DIR | (ea != NULL ? ea->file_mode & 07777 : 0755) | 0111;
      if (ea != NULL) {
        attr.uid = ea->uid;
        attr.gid = ea->gid;
        attr.user_name = ea->user_name;
        attr.n_group_name = ea->n_group_name;
        attr.group_name = ea->group_name;
      }
      attr.mtime = attr.crtime = now_ns / 1000000000;
      attr.mtime_ns = attr.crtime_ns = (int32_t)(now_ns % 1000000000);
      FilerPb__Entry d = FILER_PB__ENTRY__INIT;
      d.name = (char *)(uintptr_t)name;
      d.is_directory = 1;
      d.attributes = &attr;
      rc = put_entry(f, parent, &d);
      if (rc == 0 && !quiet)
        rc = stage_event(f, m, parent, NULL, &d, parent, false, from_other, NULL, 0);
    }
    free(parent);
    if (rc != 0 || saved == '\0')
      break;
    *p = saved;
  }
  free(path);
  return rc;
}

static void apply_create(fm_filer *f, fm_mutation *m, char *err, size_t errlen)
{
  FilerPb__CreateEntryRequest *req = (FilerPb__CreateEntryRequest *)(uintptr_t)m->req;
  FilerPb__Entry *e = req->entry;
  const char *dir = req->directory;
  char *full = fm_path_join(dir, e->name);
  if (full == NULL) {
    store_failed(m, FM_ENOMEM, "");
    return;
  }
  FilerPb__Entry *old = NULL;
  int rc = load_entry(f, dir, e->name, &old, err, errlen);
  if (rc != 0 && rc != FM_ENOTFOUND) {
    store_failed(m, rc, err);
    goto out;
  }
  int holds = condition_holds(m, req->condition, old);
  if (holds < 0)
    goto out;
  if (holds == 0) {
    m->filer_error = FILER_PB__FILER_ERROR__PRECONDITION_FAILED;
    snprintf(m->inband_error, sizeof m->inband_error, "precondition failed");
    goto out;
  }
  if (e->is_directory && e->attributes != NULL)
    e->attributes->ttl_sec = 0; /* directories never expire */
  if (old != NULL) {
    if (req->o_excl) {
      m->filer_error = FILER_PB__FILER_ERROR__ENTRY_ALREADY_EXISTS;
      snprintf(m->inband_error, sizeof m->inband_error, "%s: entry already exists", full);
      goto out;
    }
    if (old->is_directory && !e->is_directory) {
      m->filer_error = FILER_PB__FILER_ERROR__EXISTING_IS_DIRECTORY;
      snprintf(m->inband_error, sizeof m->inband_error, "%s: existing entry is a directory", full);
      goto out;
    }
    if (!old->is_directory && e->is_directory) {
      m->filer_error = FILER_PB__FILER_ERROR__EXISTING_IS_FILE;
      snprintf(m->inband_error, sizeof m->inband_error, "%s: existing entry is a file", full);
      goto out;
    }
  } else if (!req->skip_check_parent_directory) {
    rc = ensure_parents(f, m, dir, e, req->is_from_other_cluster, fm_path_is_under(full, FM_SYSTEM_LOG_DIR), err,
                        errlen);
    if (rc == FM_EEXIST)
      goto out; /* PARENT_IS_FILE, already described */
    if (rc != 0) {
      store_failed(m, rc, err);
      goto out;
    }
  }
  rc = put_entry(f, dir, e);
  if (rc == 0)
    rc = stage_event(f, m, dir, old, e, dir, true, req->is_from_other_cluster, req->signatures, req->n_signatures);
  if (rc != 0)
    store_failed(m, rc, "");
out:
  if (old != NULL)
    filer_pb__entry__free_unpacked(old, NULL);
  free(full);
}

/* ================================================================ UpdateEntry */

static const ProtobufCBinaryData *extended_value(const FilerPb__Entry *e, const char *key)
{
  for (size_t i = 0; i < e->n_extended; i++)
    if (strcmp(e->extended[i]->key, key) == 0)
      return &e->extended[i]->value;
  return NULL;
}

static void apply_update(fm_filer *f, fm_mutation *m, char *err, size_t errlen)
{
  FilerPb__UpdateEntryRequest *req = (FilerPb__UpdateEntryRequest *)(uintptr_t)m->req;
  FilerPb__Entry *e = req->entry;
  const char *dir = req->directory;
  char *full = fm_path_join(dir, e->name);
  FilerPb__Entry *old = NULL;
  uint8_t *old_bytes = NULL, *new_bytes = NULL;
  if (full == NULL) {
    store_failed(m, FM_ENOMEM, "");
    return;
  }
  int rc = load_entry(f, dir, e->name, &old, err, errlen);
  if (rc == FM_ENOTFOUND) {
    fail(m, GRPC_STATUS_NOT_FOUND, "not found %s: %s", full, FM_NOT_FOUND_TEXT);
    goto out;
  }
  if (rc != 0) {
    store_failed(m, rc, err);
    goto out;
  }
  int holds = condition_holds(m, req->condition, old);
  if (holds < 0)
    goto out;
  if (holds == 0) {
    fail(m, GRPC_STATUS_FAILED_PRECONDITION, "%s: precondition failed", full);
    goto out;
  }
  for (size_t i = 0; i < req->n_expected_extended; i++) {
    const FilerPb__UpdateEntryRequest__ExpectedExtendedEntry *x = req->expected_extended[i];
    const ProtobufCBinaryData *have = extended_value(old, x->key);
    if (have == NULL || have->len != x->value.len || (have->len > 0 && memcmp(have->data, x->value.data, have->len))) {
      fail(m, GRPC_STATUS_FAILED_PRECONDITION, "%s: extended attribute %s mismatch", full, x->key);
      goto out;
    }
  }
  if (old->is_directory != e->is_directory) {
    fail(m, GRPC_STATUS_FAILED_PRECONDITION, "%s: existing entry is a %s", full,
         old->is_directory ? "directory" : "file");
    goto out;
  }
  if (e->is_directory && e->attributes != NULL)
    e->attributes->ttl_sec = 0;
  /* The new bytes are what gets stored; packed once, they also tell whether
   * the update changes anything (an identical one is not an event, as upstream). */
  size_t olen = filer_pb__entry__get_packed_size(old), nlen = filer_pb__entry__get_packed_size(e);
  new_bytes = malloc(nlen ? nlen : 1);
  if (new_bytes == NULL) {
    store_failed(m, FM_ENOMEM, "");
    goto out;
  }
  filer_pb__entry__pack(e, new_bytes);
  if (olen == nlen) {
    old_bytes = malloc(olen ? olen : 1);
    if (old_bytes == NULL) {
      store_failed(m, FM_ENOMEM, "");
      goto out;
    }
    filer_pb__entry__pack(old, old_bytes);
    if (memcmp(old_bytes, new_bytes, olen) == 0)
      goto out;
  }
  fm_store_batch_put_entry(f->batch, dir, e->name, new_bytes, nlen);
  rc = stage_event(f, m, dir, old, e, dir, true, req->is_from_other_cluster, req->signatures, req->n_signatures);
  if (rc != 0)
    store_failed(m, rc, "");
out:
  if (old != NULL)
    filer_pb__entry__free_unpacked(old, NULL);
  free(old_bytes);
  free(new_bytes);
  free(full);
}

/* ================================================================ DeleteEntry */

/* Deletes everything under directory `dir` (not dir itself): files in listing
 * order, each sub-directory after its own contents, as upstream. */
static int delete_subtree(fm_filer *f, fm_mutation *m, const char *dir, bool delete_data, bool from_other, char *err,
                          size_t errlen)
{
  child_list cl;
  int rc = list_children(f, dir, &cl, err, errlen);
  for (size_t i = 0; rc == 0 && i < cl.n; i++) {
    FilerPb__Entry *c = cl.entries[i];
    if (c->is_directory) {
      char *sub = fm_path_join(dir, cl.names[i]);
      if (sub == NULL) {
        rc = FM_ENOMEM;
        break;
      }
      rc = delete_subtree(f, m, sub, delete_data, from_other, err, errlen);
      free(sub);
      if (rc != 0)
        break;
    }
    fm_store_batch_delete_entry(f->batch, dir, cl.names[i]);
    rc = stage_event(f, m, dir, c, NULL, NULL, delete_data, from_other, NULL, 0);
  }
  child_list_free(&cl);
  return rc;
}

static void apply_delete(fm_filer *f, fm_mutation *m, char *err, size_t errlen)
{
  FilerPb__DeleteEntryRequest *req = (FilerPb__DeleteEntryRequest *)(uintptr_t)m->req;
  const char *dir = req->directory, *name = req->name;
  FilerPb__Entry *e = NULL;
  char *full = fm_path_join(dir, name);
  if (full == NULL) {
    store_failed(m, FM_ENOMEM, "");
    return;
  }
  int rc = load_entry(f, dir, name, &e, err, errlen);
  if (rc == FM_ENOTFOUND)
    goto out; /* as upstream: deleting what is not there succeeds quietly */
  if (rc != 0) {
    store_failed(m, rc, err);
    goto out;
  }
  if (req->if_not_modified_after > 0 && e->attributes != NULL && e->attributes->mtime > req->if_not_modified_after)
    goto out;
  if (e->is_directory) {
    bool has = false;
    rc = fm_store_has_children(f->store, full, &has, err, errlen);
    if (rc != 0) {
      store_failed(m, rc, err);
      goto out;
    }
    if (has && !req->is_recursive) {
      /* upstream's words; FUSE mounts match "fail to delete non-empty folder" */
      snprintf(m->inband_error, sizeof m->inband_error, "delete directory %s: fail to delete non-empty folder: %s",
               full, full);
      goto out;
    }
    if (has) {
      rc = delete_subtree(f, m, full, req->is_delete_data, req->is_from_other_cluster, err, errlen);
      if (rc != 0) {
        store_failed(m, rc, err);
        goto out;
      }
    }
  }
  fm_store_batch_delete_entry(f->batch, dir, name);
  rc = stage_event(f, m, dir, e, NULL, NULL, req->is_delete_data, req->is_from_other_cluster, req->signatures,
                   req->n_signatures);
  if (rc != 0)
    store_failed(m, rc, "");
out:
  if (e != NULL)
    filer_pb__entry__free_unpacked(e, NULL);
  free(full);
}

/* ================================================================ AtomicRenameEntry */

/* Moves entry `e` (named old_name in old_dir) to new_name in new_dir, then its
 * children, pre-order: one event per moved entry. */
static int move_entry(fm_filer *f, fm_mutation *m, const char *old_dir, FilerPb__Entry *e, const char *new_dir,
                      const char *new_name, const FilerPb__AtomicRenameEntryRequest *req, char *err, size_t errlen)
{
  char *old_name = strdup(e->name);
  if (old_name == NULL)
    return FM_ENOMEM;
  FilerPb__Entry moved = *e;
  moved.name = (char *)(uintptr_t)new_name;
  fm_store_batch_delete_entry(f->batch, old_dir, old_name);
  int rc = put_entry(f, new_dir, &moved);
  if (rc == 0)
    rc = stage_event(f, m, old_dir, e, &moved, new_dir, false, false, req->signatures, req->n_signatures);
  if (rc == 0 && e->is_directory) {
    char *old_full = fm_path_join(old_dir, old_name), *new_full = fm_path_join(new_dir, new_name);
    child_list cl = { 0 };
    rc = old_full != NULL && new_full != NULL ? list_children(f, old_full, &cl, err, errlen) : FM_ENOMEM;
    for (size_t i = 0; rc == 0 && i < cl.n; i++)
      rc = move_entry(f, m, old_full, cl.entries[i], new_full, cl.names[i], req, err, errlen);
    child_list_free(&cl);
    free(old_full);
    free(new_full);
  }
  free(old_name);
  return rc;
}

static void apply_rename(fm_filer *f, fm_mutation *m, char *err, size_t errlen)
{
  const FilerPb__AtomicRenameEntryRequest *req = (const FilerPb__AtomicRenameEntryRequest *)m->req;
  char *old_full = fm_path_join(req->old_directory, req->old_name);
  char *new_full = fm_path_join(req->new_directory, req->new_name);
  FilerPb__Entry *e = NULL, *target = NULL, *parent = NULL;
  if (old_full == NULL || new_full == NULL) {
    store_failed(m, FM_ENOMEM, "");
    goto out;
  }
  if (strcmp(old_full, new_full) == 0)
    goto out; /* onto itself: nothing to do, nothing to announce */
  int rc = load_entry(f, req->old_directory, req->old_name, &e, err, errlen);
  if (rc == FM_ENOTFOUND) {
    fail(m, GRPC_STATUS_NOT_FOUND, "%s not found: %s", old_full, FM_NOT_FOUND_TEXT);
    goto out;
  }
  if (rc != 0) {
    store_failed(m, rc, err);
    goto out;
  }
  if (e->is_directory && fm_path_is_under(new_full, old_full)) {
    fail(m, GRPC_STATUS_INVALID_ARGUMENT, "cannot move %s into its own subtree %s", old_full, new_full);
    goto out;
  }
  if (strcmp(req->new_directory, "/") != 0) {
    const char *pname;
    char *pdir = fm_path_parent(req->new_directory, &pname);
    rc = pdir != NULL ? load_entry(f, pdir, pname, &parent, err, errlen) : FM_ENOMEM;
    free(pdir);
    if (rc == FM_ENOTFOUND || (rc == 0 && !parent->is_directory)) {
      fail(m, rc == 0 ? GRPC_STATUS_FAILED_PRECONDITION : GRPC_STATUS_NOT_FOUND, "new directory %s %s",
           req->new_directory, rc == 0 ? "is a file" : "not found");
      goto out;
    }
    if (rc != 0) {
      store_failed(m, rc, err);
      goto out;
    }
  }
  rc = load_entry(f, req->new_directory, req->new_name, &target, err, errlen);
  if (rc == 0) {
    fail(m, GRPC_STATUS_ALREADY_EXISTS, "%s already exists", new_full);
    goto out;
  }
  if (rc != FM_ENOTFOUND) {
    store_failed(m, rc, err);
    goto out;
  }
  rc = move_entry(f, m, req->old_directory, e, req->new_directory, req->new_name, req, err, errlen);
  if (rc != 0)
    store_failed(m, rc, err);
out:
  if (e != NULL)
    filer_pb__entry__free_unpacked(e, NULL);
  if (target != NULL)
    filer_pb__entry__free_unpacked(target, NULL);
  if (parent != NULL)
    filer_pb__entry__free_unpacked(parent, NULL);
  free(old_full);
  free(new_full);
}

/* ================================================================ KvPut */

static void apply_kv_put(fm_filer *f, fm_mutation *m)
{
  const FilerPb__KvPutRequest *req = (const FilerPb__KvPutRequest *)m->req;
  if (req->value.len == 0)
    fm_store_batch_delete_kv(f->batch, req->key.data, req->key.len);
  else
    fm_store_batch_put_kv(f->batch, req->key.data, req->key.len, req->value.data, req->value.len);
}

/* ================================================================ the persisted log */

/* Appends the change's chunks to its log file entry (created when missing). */
static int append_log_file(fm_filer *f, fm_mutation *m, const fm_log_change *c, char *err, size_t errlen)
{
  FilerPb__Entry *old = NULL;
  int rc = load_entry(f, c->dir, c->name, &old, err, errlen);
  if (rc != 0 && rc != FM_ENOTFOUND)
    return rc;
  if (old != NULL && old->is_directory) {
    snprintf(err, errlen, "log file %s/%s is a directory", c->dir, c->name);
    filer_pb__entry__free_unpacked(old, NULL);
    return FM_EEXIST;
  }
  FilerPb__FuseAttributes attr = FILER_PB__FUSE_ATTRIBUTES__INIT;
  FilerPb__Entry fresh = FILER_PB__ENTRY__INIT;
  FilerPb__Entry *e = old != NULL ? old : &fresh;
  int64_t now_ns = fm_now_ns();
  if (old == NULL) {
    fresh.name = (char *)(uintptr_t)c->name;
    attr.file_mode = 0644;
    attr.uid = (uint32_t)getuid();
    attr.gid = (uint32_t)getgid();
    attr.crtime = now_ns / 1000000000;
    attr.crtime_ns = (int32_t)(now_ns % 1000000000);
    fresh.attributes = &attr;
    rc = ensure_parents(f, m, c->dir, &fresh, false, true, err, errlen);
    if (rc == FM_EEXIST)
      snprintf(err, errlen, "%.200s", m->inband_error); /* a parent is a file */
    if (rc != 0)
      return rc;
  } else if (e->attributes == NULL) {
    e->attributes = &attr;
  }
  /* the file's end: chunks never overlap, so the furthest chunk end */
  uint64_t end = 0;
  for (size_t i = 0; i < e->n_chunks; i++) {
    uint64_t ce = (uint64_t)e->chunks[i]->offset + e->chunks[i]->size;
    if (ce > end)
      end = ce;
  }
  FilerPb__FileChunk **all = malloc((e->n_chunks + c->nchunks) * sizeof *all);
  if (all == NULL) {
    rc = FM_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < e->n_chunks; i++)
    all[i] = e->chunks[i];
  for (size_t i = 0; i < c->nchunks; i++) {
    c->chunks[i]->offset += (int64_t)end;
    all[e->n_chunks + i] = c->chunks[i];
    if ((uint64_t)c->chunks[i]->offset + c->chunks[i]->size > e->attributes->file_size)
      e->attributes->file_size = (uint64_t)c->chunks[i]->offset + c->chunks[i]->size;
  }
  FilerPb__FileChunk **saved = e->chunks;
  size_t nsaved = e->n_chunks;
  e->chunks = all;
  e->n_chunks += c->nchunks;
  e->attributes->mtime = now_ns / 1000000000;
  e->attributes->mtime_ns = (int32_t)(now_ns % 1000000000);
  rc = put_entry(f, c->dir, e);
  e->chunks = saved;
  e->n_chunks = nsaved;
  free(all);
out:
  if (old != NULL) {
    if (old->attributes == &attr)
      old->attributes = NULL;
    filer_pb__entry__free_unpacked(old, NULL);
  }
  return rc;
}

static void apply_log(fm_filer *f, fm_mutation *m, char *err, size_t errlen)
{
  const fm_log_change *c = m->log;
  int rc = 0;
  if (c->dir != NULL)
    rc = append_log_file(f, m, c, err, errlen);
  for (size_t i = 0; rc == 0 && i < c->nwal; i++)
    fm_store_batch_delete_event(f->batch, c->wal_ts[i]);
  if (rc == 0 && c->retire_day != NULL) {
    char *day = fm_path_join(FM_SYSTEM_LOG_DIR, c->retire_day);
    rc = day == NULL ? FM_ENOMEM : delete_subtree(f, m, day, true, false, err, errlen);
    free(day);
    if (rc == 0)
      fm_store_batch_delete_entry(f->batch, FM_SYSTEM_LOG_DIR, c->retire_day);
  }
  if (rc == 0)
    fm_store_batch_put_log_state(f->batch, &c->state);
  if (rc != 0) {
    m->inband_error[0] = '\0';
    store_failed(m, rc, err);
  }
}

/* ================================================================ committer */

/* Applies one mutation as one batch. Leaves m->status / inband_error set. */
static void apply(fm_filer *f, fm_mutation *m)
{
  char err[FM_ERR_LEN] = "";
  m->status = GRPC_STATUS_OK;
  m->message[0] = m->inband_error[0] = '\0';
  m->filer_error = 0;
  m->last_event = NULL;
  fm_store_batch_clear(f->batch);
  switch (m->kind) {
  case FM_MUT_CREATE:
    apply_create(f, m, err, sizeof err);
    break;
  case FM_MUT_UPDATE:
    apply_update(f, m, err, sizeof err);
    break;
  case FM_MUT_DELETE:
    apply_delete(f, m, err, sizeof err);
    break;
  case FM_MUT_RENAME:
    apply_rename(f, m, err, sizeof err);
    break;
  case FM_MUT_KV_PUT:
    apply_kv_put(f, m);
    break;
  case FM_MUT_LOG:
    apply_log(f, m, err, sizeof err);
    break;
  }
  if (m->status != GRPC_STATUS_OK || m->inband_error[0] != '\0') {
    drop_events(m); /* nothing of a refused mutation is written */
    return;
  }
  int rc = fm_store_write(f->store, f->batch, err, sizeof err);
  if (rc != 0) {
    drop_events(m);
    fm_log_error("%s", err);
    store_failed(m, rc, err);
    return;
  }
  if (fm_store_sync_enabled(f->store))
    fm_store_batch_append(f->group, f->batch);
}

/* Runs the event hook for m's events (in ts order), then completes m. The
 * hook must see events in the order of their ts, so this runs under apply_mu. */
static void publish(fm_filer *f, fm_mutation *m)
{
  for (size_t i = 0; i < m->nevents; i++) {
    if (f->hook != NULL)
      f->hook(f->hook_arg, m->events[i].ts_ns, m->events[i].bytes, m->events[i].len);
    atomic_store(&f->committed_ts, m->events[i].ts_ns);
  }
  m->last_event = m->nevents > 0 ? &m->events[m->nevents - 1] : NULL;
  fm_staged_event *events = m->events;
  size_t nevents = m->nevents;
  m->events = NULL;
  m->nevents = m->capevents = 0;
  m->done(m);
  for (size_t i = 0; i < nevents; i++)
    free(events[i].bytes);
  free(events);
}

static void *committer(void *arg)
{
  fm_filer *f = arg;
  for (;;) {
    pthread_mutex_lock(&f->mu);
    while (f->head == NULL && !f->stopping)
      pthread_cond_wait(&f->cv, &f->mu);
    fm_mutation *list = f->head;
    f->head = f->tail = NULL;
    bool stop = f->stopping && list == NULL;
    pthread_mutex_unlock(&f->mu);
    if (stop)
      break;

    pthread_mutex_lock(&f->apply_mu);
    for (fm_mutation *m = list; m != NULL; m = m->next) {
      if (atomic_load(&f->broken)) {
        m->status = GRPC_STATUS_UNAVAILABLE;
        snprintf(m->message, sizeof m->message, "store sync failed earlier (%s); restart filermetad", f->broken_reason);
        m->inband_error[0] = '\0';
        m->filer_error = 0;
        m->last_event = NULL;
        continue;
      }
      apply(f, m);
    }

    char err[FM_ERR_LEN] = "";
    if (fm_store_sync_enabled(f->store)) {
      int rc = fm_store_sync(f->store, f->group, err, sizeof err);
      fm_store_batch_clear(f->group);
      if (rc != 0) {
        /* not durable, so not acknowledged and not published */
        fm_log_error("%s; refusing further writes until filermetad is restarted", err);
        if (!atomic_load(&f->broken)) {
          snprintf(f->broken_reason, sizeof f->broken_reason, "%s", err);
          atomic_store(&f->broken, true);
        }
        for (fm_mutation *m = list; m != NULL; m = m->next) {
          if (m->status == GRPC_STATUS_OK && m->inband_error[0] == '\0') {
            drop_events(m);
            store_failed(m, rc, err);
          }
        }
      }
    }

    for (fm_mutation *m = list, *next; m != NULL; m = next) {
      next = m->next; /* done() may free m */
      publish(f, m);
    }
    pthread_mutex_unlock(&f->apply_mu);
  }
  return NULL;
}

int fm_filer_submit(fm_filer *f, fm_mutation *m)
{
  m->next = NULL;
  m->events = NULL;
  m->nevents = m->capevents = 0;
  if (!fm_store_sync_enabled(f->store)) {
    pthread_mutex_lock(&f->apply_mu);
    bool stopping = atomic_load(&f->closing);
    if (!stopping) {
      apply(f, m);
      publish(f, m);
    }
    pthread_mutex_unlock(&f->apply_mu);
    return stopping ? FM_ESHUTDOWN : 0;
  }
  pthread_mutex_lock(&f->mu);
  if (f->stopping) {
    pthread_mutex_unlock(&f->mu);
    return FM_ESHUTDOWN;
  }
  if (f->tail != NULL)
    f->tail->next = m;
  else
    f->head = m;
  f->tail = m;
  pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
  return 0;
}

/* ================================================================ life cycle */

int fm_filer_new(fm_store *store, int32_t signature, fm_filer **out, char *err, size_t errlen)
{
  fm_filer *f = calloc(1, sizeof *f);
  if (f == NULL)
    return FM_ENOMEM;
  f->store = store;
  f->signature = signature;
  pthread_mutex_init(&f->mu, NULL);
  pthread_mutex_init(&f->apply_mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  atomic_init(&f->closing, false);
  atomic_init(&f->broken, false);
  int rc = fm_store_last_ts(store, &f->clock, err, errlen);
  if (rc != 0)
    goto err;
  atomic_init(&f->committed_ts, f->clock);
  f->batch = fm_store_batch_new();
  f->group = fm_store_batch_new();
  if (f->batch == NULL || f->group == NULL) {
    rc = FM_ENOMEM;
    goto err;
  }
  if (pthread_create(&f->thread, NULL, committer, f) != 0) {
    snprintf(err, errlen, "cannot start the committer thread");
    rc = FM_EIO;
    goto err;
  }
  f->started = true;
  *out = f;
  return 0;
err:
  fm_filer_free(f);
  return rc;
}

void fm_filer_set_event_hook(fm_filer *f, fm_filer_event_hook hook, void *arg)
{
  f->hook = hook;
  f->hook_arg = arg;
}

void fm_filer_free(fm_filer *f)
{
  if (f == NULL)
    return;
  atomic_store(&f->closing, true);
  /* wait out an inline mutation in progress */
  pthread_mutex_lock(&f->apply_mu);
  pthread_mutex_unlock(&f->apply_mu);
  if (f->started) {
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
  }
  fm_store_batch_free(f->batch);
  fm_store_batch_free(f->group);
  pthread_mutex_destroy(&f->mu);
  pthread_mutex_destroy(&f->apply_mu);
  pthread_cond_destroy(&f->cv);
  free(f);
}

int64_t fm_filer_fence_ts(fm_filer *f)
{
  /* under apply_mu no event is stamped but unpublished: stamping, writing and publishing all happen under it */
  pthread_mutex_lock(&f->apply_mu);
  int64_t now = fm_now_ns();
  if (now - 1 > f->clock)
    f->clock = now - 1;
  int64_t ts = f->clock;
  pthread_mutex_unlock(&f->apply_mu);
  return ts;
}

int64_t fm_filer_committed_ts(const fm_filer *f)
{
  return atomic_load(&f->committed_ts);
}

int32_t fm_filer_signature(const fm_filer *f)
{
  return f->signature;
}

fm_store *fm_filer_store(const fm_filer *f)
{
  return f->store;
}
