/*
 * Log-file refs for a subscription (sub_refs.h).
 *
 * Where the refs end. The flusher commits each chunk in one store batch with the log state, whose flushed_ts_ns is
 * then the ts of that chunk's last record, and it writes records in ts order, one UTC minute per file. So with S the
 * log state read before a listing and M the minute of S.flushed_ts_ns:
 * - a file of a minute before M is complete: a later chunk holds records above S, so in minute M or later;
 * - files of minute M may still grow; if the log state reads S again after the listing, no chunk was committed
 *   in between, and the listing is exactly the state S describes: every record <= S.flushed_ts_ns, nothing above.
 * Files before M are sent as the listing reaches them; the files of minute M are held until the second read
 * agrees. If it does not (a flush landed), the files before M have gone out, and the listing is taken again from M.
 * After enough failed tries (a flush during every listing of one minute's files) the refs end at M - 1 instead:
 * still exact, since every record below M is in the files sent and every record from M on comes as events.
 */
#include "sub_refs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "log_file.h"

/* Listings of minute M before the refs settle for M - 1. */
#define SETTLE_TRIES 16

typedef struct piece {
  FilerPb__LogFileChunkRef ref;
  FilerPb__FileChunk *chunks; /* copies of the entry's chunks with offsets rebased; strings borrowed from it */
  FilerPb__FileChunk **ptrs;
  char filer_id[FM_LOG_FILE_NAME_MAX];
} piece;

/* One response being filled. The files its pieces borrow from are freed once it is packed, except a file whose later
 * pieces go into the next response: it moves to that one. */
typedef struct response {
  piece pieces[FM_SUB_REFS_PER_RESPONSE];
  size_t n;
  size_t bytes;                                     /* packed size of the pieces so far */
  fm_log_file *files[FM_SUB_REFS_PER_RESPONSE + 1]; /* one more: a file whose first piece waits for a flush */
  size_t nfiles;
  fm_sub_refs_emit emit;
  void *arg;
} response;

static void response_clear(response *r, fm_log_file *keep)
{
  for (size_t i = 0; i < r->n; i++) {
    free(r->pieces[i].chunks);
    free(r->pieces[i].ptrs);
  }
  r->n = 0;
  r->bytes = 0;
  size_t kept = 0;
  for (size_t i = 0; i < r->nfiles; i++) {
    if (r->files[i] == keep)
      r->files[kept++] = keep;
    else
      fm_log_file_free(r->files[i]);
  }
  r->nfiles = kept;
}

/* Packs and emits the pieces so far, if any. `keep`: a file with pieces still to come (it stays). */
static int response_flush(response *r, fm_log_file *keep)
{
  if (r->n == 0)
    return 0;
  FilerPb__LogFileChunkRef *refs[FM_SUB_REFS_PER_RESPONSE];
  for (size_t i = 0; i < r->n; i++)
    refs[i] = &r->pieces[i].ref;
  FilerPb__SubscribeMetadataResponse msg = FILER_PB__SUBSCRIBE_METADATA_RESPONSE__INIT;
  msg.n_log_file_refs = r->n;
  msg.log_file_refs = refs;
  size_t len = filer_pb__subscribe_metadata_response__get_packed_size(&msg);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) {
    response_clear(r, keep);
    return FM_ENOMEM;
  }
  filer_pb__subscribe_metadata_response__pack(&msg, buf);
  response_clear(r, keep);
  return r->emit(r->arg, buf, len) ? 0 : FM_ECANCELED;
}

/* Adds file f's chunks [from, to) as one ref. */
static int add_piece(response *r, fm_log_file *f, size_t from, size_t to)
{
  piece p = { .ref = FILER_PB__LOG_FILE_CHUNK_REF__INIT };
  size_t n = to - from;
  p.chunks = malloc(n * sizeof *p.chunks);
  p.ptrs = malloc(n * sizeof *p.ptrs);
  if (p.chunks == NULL || p.ptrs == NULL) {
    free(p.chunks);
    free(p.ptrs);
    return FM_ENOMEM;
  }
  uint64_t base = f->chunks[from].offset;
  for (size_t i = 0; i < n; i++) {
    p.chunks[i] = *f->chunks[from + i].pb;
    p.chunks[i].offset = (int64_t)(f->chunks[from + i].offset - base);
    p.ptrs[i] = &p.chunks[i];
  }
  const char *dot = strrchr(f->name, '.');
  snprintf(p.filer_id, sizeof p.filer_id, "%s", dot != NULL ? dot + 1 : "");
  p.ref.n_chunks = n;
  p.ref.chunks = p.ptrs;
  p.ref.file_ts_ns = f->file_ts_ns;
  p.ref.filer_id = p.filer_id;
  size_t size = filer_pb__log_file_chunk_ref__get_packed_size(&p.ref) + 6; /* the field-5 tag and length */
  if (r->n == FM_SUB_REFS_PER_RESPONSE || (r->n > 0 && r->bytes + size > FM_SUB_REFS_RESPONSE_BYTES)) {
    int rc = response_flush(r, f);
    if (rc != 0) {
      free(p.chunks);
      free(p.ptrs);
      return rc;
    }
  }
  r->pieces[r->n++] = p;
  /* pointers into the piece array moved with the copy: point the ref at its own arrays again */
  r->pieces[r->n - 1].ref.filer_id = r->pieces[r->n - 1].filer_id;
  r->bytes += size;
  return 0;
}

/* Sends file f (owned from here on): its chunks after the leading ones whose records are all <= since_ns. */
static int add_file(response *r, fm_log_file *f, int64_t since_ns)
{
  size_t first = 0;
  /* a chunk's modified_ts_ns is never before its last record (the flusher's rule; 0 when unknown) */
  while (first < f->nchunks && f->chunks[first].pb->modified_ts_ns > 0 &&
         f->chunks[first].pb->modified_ts_ns <= since_ns)
    first++;
  if (first == f->nchunks) {
    fm_log_file_free(f);
    return 0;
  }
  r->files[r->nfiles++] = f; /* room: a response holds at most as many files as pieces, and is flushed when full */
  for (size_t at = first; at < f->nchunks; at += FM_SUB_REFS_CHUNKS_PER_REF) {
    size_t to = f->nchunks - at > FM_SUB_REFS_CHUNKS_PER_REF ? at + FM_SUB_REFS_CHUNKS_PER_REF : f->nchunks;
    int rc = add_piece(r, f, at, to);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static bool same_state(const fm_store_log_state *a, const fm_store_log_state *b)
{
  return a->flushed_ts_ns == b->flushed_ts_ns && a->records == b->records && a->retained_from_ns == b->retained_from_ns;
}

int fm_sub_refs_send(fm_store *s, int64_t since_ns, int64_t until_ns, fm_sub_refs_emit emit, void *arg,
                     int64_t *through_ns, char *err, size_t errlen)
{
  *through_ns = since_ns;
  response *r = calloc(1, sizeof *r);
  if (r == NULL)
    return FM_ENOMEM;
  r->emit = emit;
  r->arg = arg;
  fm_log_file *held[FM_SUB_REFS_PER_RESPONSE]; /* files of minute M waiting for the second read of the state */
  size_t nheld = 0;
  int64_t sent_below = 0; /* every file of a minute before this has been sent */
  int64_t through = since_ns;
  int rc = 0;
  bool settled = false;
  for (int tries = 0; tries < SETTLE_TRIES && rc == 0 && !settled; tries++) {
    fm_store_log_state s1, s2;
    rc = fm_store_get_log_state(s, &s1, err, errlen);
    if (rc != 0)
      break;
    if (s1.flushed_ts_ns <= since_ns) {
      settled = true; /* nothing after since_ns is persisted (any more than was sent) */
      break;
    }
    int64_t m = fm_log_minute_of(s1.flushed_ts_ns);
    int64_t hi = until_ns != 0 && until_ns < s1.flushed_ts_ns ? until_ns : s1.flushed_ts_ns;
    fm_log_files *l = NULL;
    rc = fm_log_files_open(s, since_ns, hi, &l, err, errlen);
    if (rc != 0)
      break;
    for (;;) {
      fm_log_file *f = NULL;
      rc = fm_log_files_next(l, &f, err, errlen);
      if (rc == FM_ENOTFOUND) {
        rc = 0;
        break;
      }
      if (rc != 0)
        break;
      if (f->file_ts_ns < sent_below || f->file_ts_ns > m) {
        fm_log_file_free(f);
        continue;
      }
      if (f->file_ts_ns < m) {
        rc = add_file(r, f, since_ns);
        if (rc != 0)
          break;
        continue;
      }
      if (nheld == FM_SUB_REFS_PER_RESPONSE) { /* that many filer ids in one minute: send them and settle for M - 1 */
        fm_log_file_free(f);
        tries = SETTLE_TRIES;
        continue;
      }
      held[nheld++] = f;
    }
    fm_log_files_free(l);
    if (rc != 0)
      break;
    sent_below = m;
    through = m - 1 > through ? m - 1 : through;
    if (tries < SETTLE_TRIES) {
      rc = fm_store_get_log_state(s, &s2, err, errlen);
      if (rc != 0)
        break;
      if (same_state(&s1, &s2)) {
        for (size_t i = 0; i < nheld; i++) {
          if (rc == 0)
            rc = add_file(r, held[i], since_ns); /* takes the file, also on an error */
          else
            fm_log_file_free(held[i]);
        }
        nheld = 0;
        through = hi;
        settled = true;
        break;
      }
    }
    for (size_t i = 0; i < nheld; i++)
      fm_log_file_free(held[i]);
    nheld = 0;
  }
  for (size_t i = 0; i < nheld; i++)
    fm_log_file_free(held[i]);
  if (rc == 0)
    rc = response_flush(r, NULL);
  response_clear(r, NULL);
  free(r);
  if (rc == 0) {
    if (until_ns != 0 && through > until_ns)
      through = until_ns;
    *through_ns = through > since_ns ? through : since_ns;
  }
  return rc;
}
