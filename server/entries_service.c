/*
 * SeaweedFiler's entry and KV methods. Mutations are validated on the
 * completion-queue thread and handed to the filer's committer, which finishes
 * the call once the change and its event are durable. Reads (lookup, listing,
 * traversal, KvGet) go to the store directly; listings stream in pages with
 * one send in flight.
 */
#include "entries_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.h"
#include "filer.pb-c.h"
#include "fpath.h"
#include "rpc_codec.h"
#include "rpc_server.h"

/* Entries read from the store per listing page, and the most encoded bytes a
 * page may hold (entries can be megabytes; pages must stay small). */
#define PAGE 1024
#define PAGE_BYTES (4u << 20)

/* ================================================================ validation */

/* Checks a directory field and strips a trailing '/' in place. On failure the
 * call is finished with INVALID_ARGUMENT and false returned. */
static bool check_dir(fm_rpc_call *call, char *dir, const char *field)
{
  char err[FM_ERR_LEN] = "", *norm = NULL;
  int rc = fm_path_check_dir(dir, strlen(dir), field, &norm, err, sizeof err);
  if (rc != 0) {
    fm_rpc_call_finish(call, rc == FM_ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT, err);
    return false;
  }
  dir[strlen(norm)] = '\0'; /* the normal form is a prefix of the original */
  free(norm);
  return true;
}

/* Checks a name field. Returns 0, FM_ETOOBIG (valid but too long; the caller
 * decides), or FM_EINVAL after finishing the call with INVALID_ARGUMENT. */
static int check_name(fm_rpc_call *call, const char *name, const char *field)
{
  char err[FM_ERR_LEN];
  int rc = fm_path_check_name(name, strlen(name), field, err, sizeof err);
  if (rc == FM_EINVAL)
    fm_rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, err);
  return rc;
}

/* Checks the directory and entry of a Create/UpdateEntryRequest. Returns 0,
 * FM_ETOOBIG (name too long; the caller answers), or FM_EINVAL after
 * finishing the call with INVALID_ARGUMENT. */
static int check_entry_request(fm_rpc_call *call, char *directory, const FilerPb__Entry *entry)
{
  if (!check_dir(call, directory, "directory"))
    return FM_EINVAL;
  if (entry == NULL) {
    fm_rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "entry is missing");
    return FM_EINVAL;
  }
  return check_name(call, entry->name, "entry.name");
}

static FilerPb__SubscribeMetadataResponse *decode_event(const fm_staged_event *e)
{
  return e != NULL ? filer_pb__subscribe_metadata_response__unpack(NULL, e->len, e->bytes) : NULL;
}

/* The root directory, which always exists and is never stored. */
static void root_entry(FilerPb__Entry *e, FilerPb__FuseAttributes *attr)
{
  filer_pb__entry__init(e);
  filer_pb__fuse_attributes__init(attr);
  attr->file_mode = FM_MODE_DIR | 0755;
  e->name = (char *)(uintptr_t) "";
  e->is_directory = 1;
  e->attributes = attr;
}

/* ================================================================ mutations */

typedef struct mut_call {
  fm_mutation m;
  fm_rpc_call *call; /* referenced until done */
  ProtobufCMessage *req;
  const fm_filer_service *svc;
} mut_call;

static void mut_release(mut_call *mc)
{
  fm_rpc_request_free(mc->req);
  fm_rpc_call_unref(mc->call);
  free(mc);
}

/* Hands the (kept) request to the committer; `done` replies. */
static void submit(fm_rpc_call *call, const ProtobufCMessage *req, fm_mutation_kind kind, void (*done)(fm_mutation *))
{
  const fm_filer_service *svc = fm_rpc_call_ctx(call);
  mut_call *mc = calloc(1, sizeof *mc);
  if (mc == NULL) {
    fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  fm_rpc_call_keep_request(call);
  fm_rpc_call_ref(call);
  mc->call = call;
  mc->req = (ProtobufCMessage *)(uintptr_t)req;
  mc->svc = svc;
  mc->m.kind = kind;
  mc->m.req = req;
  mc->m.done = done;
  mc->m.arg = mc;
  if (fm_filer_submit(svc->filer, &mc->m) != 0) {
    fm_rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "server shutting down");
    mut_release(mc);
  }
}

/* The response fields every mutation reply shares: metadata_event (the
 * mutation's last event, or NULL; caller frees with
 * filer_pb__subscribe_metadata_response__free_unpacked, which accepts NULL),
 * and the log_ts_ns / log_signature that go with it. */
static FilerPb__SubscribeMetadataResponse *event_fields(const mut_call *mc, int64_t *log_ts_ns, int32_t *log_signature)
{
  FilerPb__SubscribeMetadataResponse *ev = decode_event(mc->m.last_event);
  if (ev != NULL) {
    *log_ts_ns = ev->ts_ns;
    *log_signature = mc->svc->signature;
  }
  return ev;
}

static void create_done(fm_mutation *m)
{
  mut_call *mc = m->arg;
  if (m->status != GRPC_STATUS_OK) {
    fm_rpc_call_finish(mc->call, m->status, m->message);
  } else {
    FilerPb__CreateEntryResponse r = FILER_PB__CREATE_ENTRY_RESPONSE__INIT;
    r.error = m->inband_error;
    r.error_code = (FilerPb__FilerError)m->filer_error;
    r.metadata_event = event_fields(mc, &r.log_ts_ns, &r.log_signature);
    fm_rpc_call_reply(mc->call, &r.base);
    filer_pb__subscribe_metadata_response__free_unpacked(r.metadata_event, NULL);
  }
  mut_release(mc);
}

static void on_create(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  FilerPb__CreateEntryRequest *req = (FilerPb__CreateEntryRequest *)(uintptr_t)msg;
  int rc = check_entry_request(call, req->directory, req->entry);
  if (rc == FM_EINVAL)
    return;
  if (rc == FM_ETOOBIG) { /* upstream answers this in the response, not the status */
    FilerPb__CreateEntryResponse r = FILER_PB__CREATE_ENTRY_RESPONSE__INIT;
    r.error = (char *)(uintptr_t) "entry name too long";
    r.error_code = FILER_PB__FILER_ERROR__ENTRY_NAME_TOO_LONG;
    fm_rpc_call_reply(call, &r.base);
    return;
  }
  submit(call, msg, FM_MUT_CREATE, create_done);
}

static void update_done(fm_mutation *m)
{
  mut_call *mc = m->arg;
  if (m->status != GRPC_STATUS_OK) {
    fm_rpc_call_finish(mc->call, m->status, m->message);
  } else {
    FilerPb__UpdateEntryResponse r = FILER_PB__UPDATE_ENTRY_RESPONSE__INIT;
    r.metadata_event = event_fields(mc, &r.log_ts_ns, &r.log_signature);
    fm_rpc_call_reply(mc->call, &r.base);
    filer_pb__subscribe_metadata_response__free_unpacked(r.metadata_event, NULL);
  }
  mut_release(mc);
}

static void on_update(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  FilerPb__UpdateEntryRequest *req = (FilerPb__UpdateEntryRequest *)(uintptr_t)msg;
  int rc = check_entry_request(call, req->directory, req->entry);
  if (rc == FM_EINVAL)
    return;
  if (rc == FM_ETOOBIG) {
    fm_rpc_call_finishf(call, GRPC_STATUS_NOT_FOUND, "not found %s/%.40s...: %s", req->directory, req->entry->name,
                        FM_NOT_FOUND_TEXT);
    return;
  }
  submit(call, msg, FM_MUT_UPDATE, update_done);
}

static void delete_done(fm_mutation *m)
{
  mut_call *mc = m->arg;
  if (m->status != GRPC_STATUS_OK) {
    fm_rpc_call_finish(mc->call, m->status, m->message);
  } else {
    FilerPb__DeleteEntryResponse r = FILER_PB__DELETE_ENTRY_RESPONSE__INIT;
    r.error = m->inband_error;
    r.metadata_event = decode_event(m->last_event);
    fm_rpc_call_reply(mc->call, &r.base);
    filer_pb__subscribe_metadata_response__free_unpacked(r.metadata_event, NULL);
  }
  mut_release(mc);
}

static void on_delete(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  FilerPb__DeleteEntryRequest *req = (FilerPb__DeleteEntryRequest *)(uintptr_t)msg;
  if (!check_dir(call, req->directory, "directory"))
    return;
  if (strcmp(req->directory, "/") == 0 && req->name[0] == '\0') {
    FilerPb__DeleteEntryResponse r = FILER_PB__DELETE_ENTRY_RESPONSE__INIT;
    fm_rpc_call_reply(call, &r.base); /* as upstream: the root is never deleted */
    return;
  }
  int rc = check_name(call, req->name, "name");
  if (rc == FM_EINVAL)
    return;
  if (rc == FM_ETOOBIG) { /* cannot exist, so there is nothing to delete */
    FilerPb__DeleteEntryResponse r = FILER_PB__DELETE_ENTRY_RESPONSE__INIT;
    fm_rpc_call_reply(call, &r.base);
    return;
  }
  submit(call, msg, FM_MUT_DELETE, delete_done);
}

static void rename_done(fm_mutation *m)
{
  mut_call *mc = m->arg;
  if (m->status != GRPC_STATUS_OK) {
    fm_rpc_call_finish(mc->call, m->status, m->message);
  } else {
    FilerPb__AtomicRenameEntryResponse r = FILER_PB__ATOMIC_RENAME_ENTRY_RESPONSE__INIT;
    fm_rpc_call_reply(mc->call, &r.base);
  }
  mut_release(mc);
}

static void on_rename(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  FilerPb__AtomicRenameEntryRequest *req = (FilerPb__AtomicRenameEntryRequest *)(uintptr_t)msg;
  if (!check_dir(call, req->old_directory, "old_directory") || !check_dir(call, req->new_directory, "new_directory"))
    return;
  int rc = check_name(call, req->old_name, "old_name");
  if (rc == FM_EINVAL)
    return;
  if (rc == FM_ETOOBIG) {
    fm_rpc_call_finishf(call, GRPC_STATUS_NOT_FOUND, "%s/%.40s... not found", req->old_directory, req->old_name);
    return;
  }
  rc = check_name(call, req->new_name, "new_name");
  if (rc == FM_EINVAL)
    return;
  if (rc == FM_ETOOBIG) {
    fm_rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "new_name: entry name too long");
    return;
  }
  submit(call, msg, FM_MUT_RENAME, rename_done);
}

static void kv_put_done(fm_mutation *m)
{
  mut_call *mc = m->arg;
  FilerPb__KvPutResponse r = FILER_PB__KV_PUT_RESPONSE__INIT;
  /* as upstream, store failures travel in `error` */
  r.error = m->status != GRPC_STATUS_OK ? m->message : (char *)(uintptr_t) "";
  fm_rpc_call_reply(mc->call, &r.base);
  mut_release(mc);
}

static void on_kv_put(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  submit(call, msg, FM_MUT_KV_PUT, kv_put_done);
}

/* ================================================================ point reads */

static void on_kv_get(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const FilerPb__KvGetRequest *req = (const FilerPb__KvGetRequest *)msg;
  const fm_filer_service *svc = fm_rpc_call_ctx(call);
  char err[FM_ERR_LEN] = "";
  void *v = NULL;
  size_t len = 0;
  FilerPb__KvGetResponse r = FILER_PB__KV_GET_RESPONSE__INIT;
  int rc = fm_store_kv_get(fm_filer_store(svc->filer), req->key.data, req->key.len, &v, &len, err, sizeof err);
  if (rc == 0) {
    r.value.data = v;
    r.value.len = len;
  } else if (rc != FM_ENOTFOUND) {
    r.error = err; /* a missing key is not an error, as upstream */
  }
  fm_rpc_call_reply(call, &r.base);
  fm_store_value_free(v);
}

static void on_lookup(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  FilerPb__LookupDirectoryEntryRequest *req = (FilerPb__LookupDirectoryEntryRequest *)(uintptr_t)msg;
  const fm_filer_service *svc = fm_rpc_call_ctx(call);
  if (!check_dir(call, req->directory, "directory"))
    return;
  FilerPb__LookupDirectoryEntryResponse r = FILER_PB__LOOKUP_DIRECTORY_ENTRY_RESPONSE__INIT;
  /* a fence taken before the read: every event up to it is reflected below */
  r.log_ts_ns = fm_filer_committed_ts(svc->filer);
  r.log_signature = svc->signature;
  if (strcmp(req->directory, "/") == 0 && req->name[0] == '\0') {
    FilerPb__Entry root;
    FilerPb__FuseAttributes attr;
    root_entry(&root, &attr);
    r.entry = &root;
    fm_rpc_call_reply(call, &r.base);
    return;
  }
  int rc = check_name(call, req->name, "name");
  if (rc == FM_EINVAL)
    return;
  char err[FM_ERR_LEN] = "";
  void *v = NULL;
  size_t len = 0;
  if (rc == 0)
    rc = fm_store_get_entry(fm_filer_store(svc->filer), req->directory, req->name, &v, &len, err, sizeof err);
  if (rc == FM_ENOTFOUND || rc == FM_ETOOBIG) {
    fm_rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, FM_NOT_FOUND_TEXT);
    return;
  }
  if (rc != 0) {
    fm_rpc_call_finish(call, GRPC_STATUS_INTERNAL, err);
    return;
  }
  r.entry = filer_pb__entry__unpack(NULL, len, v);
  fm_store_value_free(v);
  if (r.entry == NULL) {
    fm_rpc_call_finishf(call, GRPC_STATUS_DATA_LOSS, "stored entry %s/%s does not decode", req->directory, req->name);
    return;
  }
  fm_rpc_call_reply(call, &r.base);
  filer_pb__entry__free_unpacked(r.entry, NULL);
}

/* ================================================================ paged streams */

/*
 * A server stream fed in pages: fill() encodes the next page of responses,
 * the sender sends them one at a time (one send in flight) and asks for the
 * next page when the current one is out. Used by ListEntries and TraverseBfsMetadata.
 */
typedef struct pager pager;
struct pager {
  fm_rpc_call *call;
  const fm_filer_service *svc;
  ProtobufCMessage *req; /* kept */
  int (*fill)(pager *p); /* appends to buf; sets eof when nothing more will come */
  grpc_byte_buffer **buf;
  size_t n, pos, cap;
  size_t bytes; /* encoded bytes queued in buf */
  bool eof;
  char err[FM_ERR_LEN];

  /* ListEntries: the cursor */
  char *last;         /* name of the last entry listed, NULL before the first page */
  uint64_t remaining; /* entries still allowed by `limit`; UINT64_MAX when none */
  int64_t snapshot;

  /* TraverseBfsMetadata: directories still to list, and the one being listed */
  char **queue;
  size_t qhead, qlen, qcap;
  char *cur; /* directory being listed; NULL between directories */
};

static int pager_push(pager *p, const ProtobufCMessage *m)
{
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    grpc_byte_buffer **grown = realloc(p->buf, cap * sizeof *grown);
    if (grown == NULL)
      return FM_ENOMEM;
    p->buf = grown;
    p->cap = cap;
  }
  grpc_byte_buffer *bb = fm_rpc_encode(m);
  if (bb == NULL)
    return FM_ENOMEM;
  p->buf[p->n++] = bb;
  p->bytes += grpc_byte_buffer_length(bb);
  return 0;
}

static void pager_free(pager *p)
{
  for (size_t i = p->pos; i < p->n; i++)
    grpc_byte_buffer_destroy(p->buf[i]);
  free(p->buf);
  free(p->last);
  for (size_t i = p->qhead; i < p->qlen; i++)
    free(p->queue[i]);
  free(p->queue);
  free(p->cur);
  fm_rpc_request_free(p->req);
  free(p);
}

/* Sends the next queued response, refilling or finishing as needed. */
static void pager_next(pager *p)
{
  while (p->pos == p->n && !p->eof) {
    for (size_t i = 0; i < p->n; i++)
      p->buf[i] = NULL; /* all sent; the call owned and released them */
    p->n = p->pos = 0;
    p->bytes = 0;
    if (p->fill(p) != 0) {
      fm_rpc_call_finish(p->call, GRPC_STATUS_INTERNAL, p->err[0] ? p->err : "listing failed");
      return;
    }
  }
  if (p->pos == p->n) {
    fm_rpc_call_finish(p->call, GRPC_STATUS_OK, "");
    return;
  }
  /* No GRPC_WRITE_BUFFER_HINT here: with one send in flight, gRPC core 1.51
   * holds a hinted message until something else is written, and completes its
   * send only then, so the stream would stall (seen: a two-entry listing hung
   * until its deadline). */
  fm_rpc_call_send_buffer(p->call, p->buf[p->pos++], 0);
}

static void pager_on_sent(fm_rpc_call *call, bool ok)
{
  if (ok)
    pager_next(fm_rpc_call_user(call));
}

static void pager_on_done(fm_rpc_call *call)
{
  pager *p = fm_rpc_call_user(call);
  if (p != NULL)
    pager_free(p);
}

static pager *pager_start(fm_rpc_call *call, const ProtobufCMessage *req, int (*fill)(pager *))
{
  pager *p = calloc(1, sizeof *p);
  if (p == NULL) {
    fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  fm_rpc_call_keep_request(call);
  p->call = call;
  p->svc = fm_rpc_call_ctx(call);
  p->req = (ProtobufCMessage *)(uintptr_t)req;
  p->fill = fill;
  fm_rpc_call_set_user(call, p);
  return p;
}

/* ---------------------------------------------------------------- ListEntries */

typedef struct list_page {
  pager *p;
  bool omit_chunks;
  size_t got;
  int rc;
} list_page;

static bool list_one(void *arg, const char *name, size_t nlen, const void *value, size_t len)
{
  list_page *lp = arg;
  pager *p = lp->p;
  FilerPb__Entry *e = filer_pb__entry__unpack(NULL, len, value);
  if (e == NULL) {
    snprintf(p->err, sizeof p->err, "stored entry %.*s does not decode", (int)nlen, name);
    lp->rc = FM_EDECODE;
    return false;
  }
  size_t saved_chunks = e->n_chunks;
  if (lp->omit_chunks)
    e->n_chunks = 0;
  FilerPb__ListEntriesResponse r = FILER_PB__LIST_ENTRIES_RESPONSE__INIT;
  r.entry = e;
  r.snapshot_ts_ns = p->snapshot;
  lp->rc = pager_push(p, &r.base);
  e->n_chunks = saved_chunks;
  filer_pb__entry__free_unpacked(e, NULL);
  if (lp->rc != 0)
    return false;
  free(p->last);
  p->last = strndup(name, nlen);
  if (p->last == NULL) {
    lp->rc = FM_ENOMEM;
    return false;
  }
  lp->got++;
  if (p->remaining != UINT64_MAX)
    p->remaining--;
  return lp->got < PAGE && p->bytes < PAGE_BYTES && p->remaining > 0;
}

static int list_fill(pager *p)
{
  const FilerPb__ListEntriesRequest *req = (const FilerPb__ListEntriesRequest *)p->req;
  if (p->remaining == 0) {
    p->eof = true;
    return 0;
  }
  list_page lp = { p, req->omit_chunks, 0, 0 };
  bool first = p->last == NULL;
  const char *start = first ? req->startfromfilename : p->last;
  bool inclusive = first ? req->inclusivestartfrom : false;
  int rc = fm_store_list(fm_filer_store(p->svc->filer), req->directory, start, inclusive, req->prefix, list_one, &lp,
                         p->err, sizeof p->err);
  if (rc == 0)
    rc = lp.rc;
  /* a page cut short by PAGE_BYTES is not the end; one short of PAGE without it is */
  if ((lp.got < PAGE && p->bytes < PAGE_BYTES) || p->remaining == 0)
    p->eof = true;
  return rc;
}

static void on_list(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  FilerPb__ListEntriesRequest *req = (FilerPb__ListEntriesRequest *)(uintptr_t)msg;
  if (!check_dir(call, req->directory, "directory"))
    return;
  pager *p = pager_start(call, msg, list_fill);
  if (p == NULL)
    return;
  p->remaining = req->limit > 0 ? req->limit : UINT64_MAX;
  p->snapshot = req->snapshot_ts_ns > 0 ? req->snapshot_ts_ns : fm_filer_committed_ts(p->svc->filer);
  pager_next(p);
}

/* ---------------------------------------------------------------- TraverseBfsMetadata */

static bool excluded(const FilerPb__TraverseBfsMetadataRequest *req, const char *path)
{
  for (size_t i = 0; i < req->n_excluded_prefixes; i++)
    if (req->excluded_prefixes[i][0] != '\0' && fm_path_is_under(path, req->excluded_prefixes[i]))
      return true;
  return false;
}

static int enqueue(pager *p, char *dir)
{
  if (p->qlen == p->qcap) {
    size_t cap = p->qcap ? p->qcap * 2 : 64;
    char **grown = realloc(p->queue, cap * sizeof *grown);
    if (grown == NULL) {
      free(dir);
      return FM_ENOMEM;
    }
    p->queue = grown;
    p->qcap = cap;
  }
  p->queue[p->qlen++] = dir;
  return 0;
}

typedef struct bfs_page {
  pager *p;
  size_t got;
  int rc;
} bfs_page;

static bool bfs_one(void *arg, const char *name, size_t nlen, const void *value, size_t len)
{
  bfs_page *bp = arg;
  pager *p = bp->p;
  const FilerPb__TraverseBfsMetadataRequest *req = (const FilerPb__TraverseBfsMetadataRequest *)p->req;
  free(p->last);
  p->last = strndup(name, nlen);
  char *full = p->last != NULL ? fm_path_join(p->cur, p->last) : NULL;
  if (full == NULL) {
    bp->rc = FM_ENOMEM;
    return false;
  }
  bp->got++;
  if (excluded(req, full)) {
    free(full);
    return bp->got < PAGE;
  }
  FilerPb__Entry *e = filer_pb__entry__unpack(NULL, len, value);
  if (e == NULL) {
    snprintf(p->err, sizeof p->err, "stored entry %s does not decode", full);
    free(full);
    bp->rc = FM_EDECODE;
    return false;
  }
  FilerPb__TraverseBfsMetadataResponse r = FILER_PB__TRAVERSE_BFS_METADATA_RESPONSE__INIT;
  r.directory = p->cur;
  r.entry = e;
  bp->rc = pager_push(p, &r.base);
  bool is_dir = e->is_directory;
  filer_pb__entry__free_unpacked(e, NULL);
  if (bp->rc == 0 && is_dir)
    bp->rc = enqueue(p, full);
  else
    free(full);
  return bp->rc == 0 && bp->got < PAGE && p->bytes < PAGE_BYTES;
}

static int bfs_fill(pager *p)
{
  for (;;) {
    if (p->cur == NULL) {
      if (p->qhead == p->qlen) {
        p->eof = true;
        return 0;
      }
      p->cur = p->queue[p->qhead++];
      free(p->last);
      p->last = NULL;
    }
    bfs_page bp = { p, 0, 0 };
    int rc = fm_store_list(fm_filer_store(p->svc->filer), p->cur, p->last ? p->last : "", false, "", bfs_one, &bp,
                           p->err, sizeof p->err);
    if (rc == 0)
      rc = bp.rc;
    if (rc != 0)
      return rc;
    if (bp.got < PAGE && p->bytes < PAGE_BYTES) { /* this directory is done */
      free(p->cur);
      p->cur = NULL;
    }
    if (p->n > 0)
      return 0;
  }
}

static void on_traverse(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  FilerPb__TraverseBfsMetadataRequest *req = (FilerPb__TraverseBfsMetadataRequest *)(uintptr_t)msg;
  const fm_filer_service *svc = fm_rpc_call_ctx(call);
  if (!check_dir(call, req->directory, "directory"))
    return;
  FilerPb__Entry *start = NULL, root;
  FilerPb__FuseAttributes attr;
  char *parent = NULL;
  const char *name = "";
  if (strcmp(req->directory, "/") == 0) {
    root_entry(&root, &attr);
    parent = strdup("/");
  } else {
    parent = fm_path_parent(req->directory, &name);
    char err[FM_ERR_LEN] = "";
    void *v = NULL;
    size_t len = 0;
    int rc = parent != NULL ? fm_store_get_entry(fm_filer_store(svc->filer), parent, name, &v, &len, err, sizeof err)
                            : FM_ENOMEM;
    if (rc == 0) {
      start = filer_pb__entry__unpack(NULL, len, v);
      fm_store_value_free(v);
    }
    if (rc != 0 || start == NULL) {
      free(parent);
      fm_rpc_call_finishf(call, rc == FM_ENOTFOUND ? GRPC_STATUS_NOT_FOUND : GRPC_STATUS_INTERNAL, "find dir %s: %s",
                          req->directory, rc == FM_ENOTFOUND ? FM_NOT_FOUND_TEXT : err);
      return;
    }
  }
  pager *p = pager_start(call, msg, bfs_fill);
  if (p != NULL) {
    FilerPb__TraverseBfsMetadataResponse r = FILER_PB__TRAVERSE_BFS_METADATA_RESPONSE__INIT;
    r.directory = parent;
    r.entry = start != NULL ? start : &root;
    int rc = pager_push(p, &r.base);
    if (rc == 0 && r.entry->is_directory) {
      char *d = strdup(req->directory);
      rc = d != NULL ? enqueue(p, d) : FM_ENOMEM;
    }
    if (rc != 0)
      fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    else
      pager_next(p);
  }
  if (start != NULL)
    filer_pb__entry__free_unpacked(start, NULL);
  free(parent);
}

/* ================================================================ table */

#define METHOD(name, kind_, req, fn)                                                                                   \
  {                                                                                                                    \
    .path = "/filer_pb.SeaweedFiler/" name, .kind = kind_, .request = &req, .on_request = fn,                          \
  }
#define STREAM(name, req, fn)                                                                                          \
  {                                                                                                                    \
    .path = "/filer_pb.SeaweedFiler/" name, .kind = FM_RPC_SERVER_STREAMING, .request = &req, .on_request = fn,        \
    .on_sent = pager_on_sent, .on_done = pager_on_done,                                                                \
  }

static fm_rpc_method methods[] = {
  METHOD("CreateEntry", FM_RPC_UNARY, filer_pb__create_entry_request__descriptor, on_create),
  METHOD("UpdateEntry", FM_RPC_UNARY, filer_pb__update_entry_request__descriptor, on_update),
  METHOD("DeleteEntry", FM_RPC_UNARY, filer_pb__delete_entry_request__descriptor, on_delete),
  METHOD("AtomicRenameEntry", FM_RPC_UNARY, filer_pb__atomic_rename_entry_request__descriptor, on_rename),
  METHOD("LookupDirectoryEntry", FM_RPC_UNARY, filer_pb__lookup_directory_entry_request__descriptor, on_lookup),
  METHOD("KvGet", FM_RPC_UNARY, filer_pb__kv_get_request__descriptor, on_kv_get),
  METHOD("KvPut", FM_RPC_UNARY, filer_pb__kv_put_request__descriptor, on_kv_put),
  STREAM("ListEntries", filer_pb__list_entries_request__descriptor, on_list),
  STREAM("TraverseBfsMetadata", filer_pb__traverse_bfs_metadata_request__descriptor, on_traverse),
};

int fm_entries_service_register(fm_rpc_methods *t, fm_filer_service *svc)
{
  return fm_rpc_methods_add_all(t, methods, sizeof methods / sizeof methods[0], svc);
}
