/*
 * The HTTP side over libmicrohttpd, a thread per connection.
 *
 * libmicrohttpd calls on_request once when the headers are in, then (for a
 * body) once per piece of it, then once more with no data. A response queued
 * on the first call makes it close the connection (it cannot know what to do
 * with a body it did not read), so reads and pages answer on the second call,
 * after marking the first with HEADERS_SEEN in *con_cls; uploads keep an
 * `upload` there until the last call, and on_completed frees it on every
 * path, aborted ones included.
 * Only the Range header value is parsed here (http_range.c): libmicrohttpd
 * parses everything else, multipart bodies included.
 */
#include "http_side.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <zlib.h>

#include "clock.h"
#include "error.h"
#include "fid.h"
#include "http_range.h"
#include "log.h"
#include "metrics.h"
#include "net_addr.h"
#include "rpc_client.h"

#define DEFAULT_MAX_CONNECTIONS 256

/* *con_cls of a read or page request whose headers have been seen. */
static char headers_seen;
#define HEADERS_SEEN ((void *)&headers_seen)
#define POST_BUFFER_SIZE 65536

struct fm_http_side {
  struct MHD_Daemon *daemon;
  int port;
  atomic_bool stopping;
  fm_chunk_store *chunks;
  fm_logbuf *logbuf;
  fm_log_flusher *flusher;
  _Atomic(fm_subreg *) subscribers;
  const fm_rpc_server *rpc;
  uint64_t max_upload;
};

/* ================================================================ responses */

/* Queues `r` with `code` and drops our reference; a NULL r (out of memory)
 * makes libmicrohttpd close the connection. */
static enum MHD_Result queue(struct MHD_Connection *conn, unsigned int code, struct MHD_Response *r)
{
  if (r == NULL)
    return MHD_NO;
  enum MHD_Result ret = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return ret;
}

static struct MHD_Response *text_response(const char *body)
{
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  if (r != NULL)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  return r;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int code, const char *body)
{
  return queue(conn, code, text_response(body));
}

__attribute__((format(printf, 3, 4))) static enum MHD_Result reply_textf(struct MHD_Connection *conn, unsigned int code,
                                                                         const char *fmt, ...)
{
  char body[FM_ERR_LEN + 128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  return reply_text(conn, code, body);
}

static enum MHD_Result reply_not_allowed(struct MHD_Connection *conn, const char *allow)
{
  struct MHD_Response *r = text_response("method not allowed\n");
  if (r != NULL)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  return queue(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
}

/* Sends `len` bytes of `buf` (malloc'ed; ownership taken on every path). */
static enum MHD_Result reply_owned(struct MHD_Connection *conn, unsigned int code, const char *content_type, void *buf,
                                   size_t len)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(buf);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  return queue(conn, code, r);
}

/* Sends a json-c object (released here) as the body. */
static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned int code, json_object *o)
{
  char *text = NULL;
  if (o != NULL) {
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    text = s != NULL ? malloc(strlen(s) + 2) : NULL;
    if (text != NULL)
      sprintf(text, "%s\n", s);
    json_object_put(o);
  }
  if (text == NULL)
    return MHD_NO;
  return reply_owned(conn, code, "application/json", text, strlen(text));
}

/* {"error": message}, as upstream's volume server reports a failed upload. */
static enum MHD_Result reply_json_error(struct MHD_Connection *conn, unsigned int code, const char *message)
{
  json_object *o = json_object_new_object();
  if (o != NULL)
    json_object_object_add(o, "error", json_object_new_string(message));
  return reply_json(conn, code, o);
}

/* ================================================================ /metrics */

/* Each source of metrics is one function over the exposition; a new source
 * is one more function and one more call in on_metrics. */

static void metrics_logbuf(fm_metrics *m, fm_logbuf *b)
{
  fm_logbuf_stats st;
  fm_logbuf_get_stats(b, &st);
  fm_metrics_u64(m, "logbuf_events_appended_total", FM_METRICS_COUNTER, "Events appended to the MetaLogBuffer.",
                 st.events_appended);
  fm_metrics_u64(m, "logbuf_bytes_appended_total", FM_METRICS_COUNTER,
                 "Event bytes appended to the MetaLogBuffer (framing not counted).", st.bytes_appended);
  fm_metrics_u64(m, "logbuf_append_failures_total", FM_METRICS_COUNTER,
                 "Appends lost to memory exhaustion (the events stay in the store's write-ahead records).",
                 st.append_failures);
  fm_metrics_u64(m, "logbuf_evictions_total", FM_METRICS_COUNTER, "Flushed segments evicted from memory.",
                 st.evictions);
  fm_metrics_u64(m, "logbuf_events", FM_METRICS_GAUGE, "Events in memory.", st.events);
  fm_metrics_u64(m, "logbuf_bytes", FM_METRICS_GAUGE, "Bytes of records in memory (events and framing).", st.bytes);
  fm_metrics_u64(m, "logbuf_alloc_bytes", FM_METRICS_GAUGE, "Capacity of the segments in memory.", st.alloc_bytes);
  fm_metrics_u64(m, "logbuf_bound_bytes", FM_METRICS_GAUGE, "The memory bound (-metaLogBuffer.sizeMB).", st.size_bytes);
  fm_metrics_u64(m, "logbuf_overshoot_bytes", FM_METRICS_GAUGE,
                 "Segment capacity beyond the bound, kept because it is not yet flushed.", st.overshoot_bytes);
  fm_metrics_u64(m, "logbuf_max_overshoot_bytes", FM_METRICS_GAUGE, "The largest overshoot seen.",
                 st.max_overshoot_bytes);
  fm_metrics_u64(m, "logbuf_pinned_bytes", FM_METRICS_GAUGE, "Capacity of evicted segments that readers still hold.",
                 st.pinned_bytes);
  fm_metrics_u64(m, "logbuf_segments", FM_METRICS_GAUGE, "Segments in the buffer.", st.segments);
  fm_metrics_seconds(m, "logbuf_oldest_event_timestamp_seconds", FM_METRICS_GAUGE,
                     "Time of the oldest event in memory (0: none).", st.oldest_ts);
  fm_metrics_seconds(m, "logbuf_newest_event_timestamp_seconds", FM_METRICS_GAUGE,
                     "Time of the newest event appended (0: none).", st.newest_ts);
  fm_metrics_seconds(m, "logbuf_flushed_timestamp_seconds", FM_METRICS_GAUGE,
                     "Events up to this time are in log files.", st.flushed_ts);
}

static void metrics_chunks(fm_metrics *m, fm_chunk_store *chunks)
{
  struct fm_chunk_store_stats st;
  fm_chunk_store_stats(chunks, &st);
  fm_metrics_u64(m, "chunk_volumes", FM_METRICS_GAUGE, "Volumes in the chunk store.", st.volumes);
  fm_metrics_u64(m, "chunk_needles", FM_METRICS_GAUGE, "Live (not deleted) needles in the chunk store.", st.needles);
  fm_metrics_u64(m, "chunk_deleted_needles", FM_METRICS_GAUGE, "Deleted needles, whose bytes stay on disk.",
                 st.deleted_needles);
  fm_metrics_u64(m, "chunk_live_bytes", FM_METRICS_GAUGE, "Data bytes of live needles.", st.live_bytes);
  fm_metrics_u64(m, "chunk_disk_bytes", FM_METRICS_GAUGE, "Bytes of the volume and index files.", st.disk_bytes);
}

static void metrics_flusher(fm_metrics *m, fm_log_flusher *fl)
{
  fm_log_flusher_stats st;
  fm_log_flusher_get_stats(fl, &st);
  fm_metrics_u64(m, "log_flushes_total", FM_METRICS_COUNTER, "Flush passes that wrote events to log files.", st.passes);
  fm_metrics_u64(m, "log_flush_chunks_total", FM_METRICS_COUNTER, "Log file chunks written.", st.chunks);
  fm_metrics_u64(m, "log_flush_records_total", FM_METRICS_COUNTER, "Records written to log files.", st.records);
  fm_metrics_u64(m, "log_flush_bytes_total", FM_METRICS_COUNTER, "Record bytes written to log files.", st.bytes);
  fm_metrics_u64(m, "log_flush_errors_total", FM_METRICS_COUNTER, "Flush passes stopped by an error (retried).",
                 st.errors);
  fm_metrics_seconds(m, "log_flush_duration_seconds_total", FM_METRICS_COUNTER,
                     "Time spent in flush passes that wrote something.", (int64_t)st.pass_ns_total);
  fm_metrics_seconds(m, "log_flush_last_duration_seconds", FM_METRICS_GAUGE,
                     "Duration of the last flush pass that wrote something.", (int64_t)st.last_pass_ns);
  fm_metrics_u64(m, "log_retired_days_total", FM_METRICS_COUNTER, "Day directories removed by retention.",
                 st.retired_days);
  fm_metrics_seconds(m, "log_flushed_timestamp_seconds", FM_METRICS_GAUGE,
                     "Every event up to this time is in a log file.", st.flushed_ts_ns);
  fm_metrics_seconds(m, "log_retained_from_timestamp_seconds", FM_METRICS_GAUGE,
                     "Retention removed the log files of events before this time (0: none removed).",
                     st.retained_from_ns);
}

static void metrics_subscribers(fm_metrics *m, fm_subreg *r)
{
  fm_subreg_stats st;
  fm_subreg_get_stats(r, fm_now_ns(), &st);
  fm_metrics_u64(m, "subscribers", FM_METRICS_GAUGE, "Open SubscribeMetadata and SubscribeLocalMetadata streams.",
                 st.streams);
  fm_metrics_u64(m, "subscribers_anonymous", FM_METRICS_GAUGE, "Of which with client_id 0.", st.anonymous);
  fm_metrics_histogram(m, "subscriber_lag_seconds",
                       "How far each stream's last delivered event is behind now (streams that delivered something).",
                       fm_subreg_lag_le, st.lag_le, FM_SUBREG_LAG_BUCKETS, st.lag_sum_seconds, st.lag_count);
}

static void rpc_count(void *arg, const char *method, grpc_status_code code, uint64_t count)
{
  fm_metrics_label labels[] = { { "method", method }, { "code", fm_rpc_status_name(code) } };
  fm_metrics_sample(arg, labels, 2, count);
}

static void metrics_rpc(fm_metrics *m, const fm_rpc_server *rpc)
{
  fm_metrics_family(m, "grpc_calls_total", FM_METRICS_COUNTER,
                    "gRPC calls by method and status code; paths not served count as method \"" FM_RPC_UNKNOWN_METHOD
                    "\"; calls that ended without a status count as CANCELLED.");
  fm_rpc_server_each_count(rpc, rpc_count, m);
}

static enum MHD_Result on_metrics(fm_http_side *h, struct MHD_Connection *conn)
{
  fm_metrics *m = NULL;
  if (fm_metrics_new(&m) != 0)
    return MHD_NO;
  if (h->rpc != NULL)
    metrics_rpc(m, h->rpc);
  if (h->logbuf != NULL)
    metrics_logbuf(m, h->logbuf);
  if (h->chunks != NULL)
    metrics_chunks(m, h->chunks);
  if (h->flusher != NULL)
    metrics_flusher(m, h->flusher);
  fm_subreg *subs = atomic_load(&h->subscribers);
  if (subs != NULL)
    metrics_subscribers(m, subs);
  char *text = NULL;
  size_t len = 0;
  int rc = fm_metrics_take(m, &text, &len);
  fm_metrics_free(m);
  if (rc != 0)
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  return reply_owned(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* ================================================================ /debug/logbuffer */

static void json_u64(json_object *o, const char *key, uint64_t v)
{
  json_object_object_add(o, key, json_object_new_uint64(v));
}

static void json_i64(json_object *o, const char *key, int64_t v)
{
  json_object_object_add(o, key, json_object_new_int64(v));
}

static enum MHD_Result on_debug_logbuffer(fm_http_side *h, struct MHD_Connection *conn)
{
  if (h->logbuf == NULL)
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "this server has no MetaLogBuffer\n");
  fm_logbuf_stats st;
  fm_logbuf_get_stats(h->logbuf, &st);
  json_object *o = json_object_new_object();
  if (o == NULL)
    return MHD_NO;
  json_u64(o, "events_appended", st.events_appended);
  json_u64(o, "bytes_appended", st.bytes_appended);
  json_u64(o, "append_failures", st.append_failures);
  json_u64(o, "evictions", st.evictions);
  json_u64(o, "events", st.events);
  json_u64(o, "bytes", st.bytes);
  json_u64(o, "alloc_bytes", st.alloc_bytes);
  json_u64(o, "size_bytes", st.size_bytes);
  json_u64(o, "overshoot_bytes", st.overshoot_bytes);
  json_u64(o, "max_overshoot_bytes", st.max_overshoot_bytes);
  json_u64(o, "pinned_bytes", st.pinned_bytes);
  json_u64(o, "segments", st.segments);
  json_i64(o, "oldest_ts_ns", st.oldest_ts);
  json_i64(o, "newest_ts_ns", st.newest_ts);
  json_i64(o, "flushed_ts_ns", st.flushed_ts);
  json_i64(o, "floor_ts_ns", st.floor_ts);
  return reply_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result on_debug_subscribers(fm_http_side *h, struct MHD_Connection *conn)
{
  fm_subreg *subs = atomic_load(&h->subscribers);
  if (subs == NULL)
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "this server has no subscriber registry\n");
  json_object *o = NULL;
  if (fm_subreg_debug_json(subs, fm_now_ns(), &o) != 0)
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  return reply_json(conn, MHD_HTTP_OK, o);
}

/* ================================================================ GET, HEAD /<fid> */

/* Parses the fid in a request path (without its leading '/'); on failure
 * answers 400 with the reason and returns false. */
static bool parse_fid(struct MHD_Connection *conn, const char *text, fm_fid *fid, enum MHD_Result *ret)
{
  if (fm_fid_parse(text, strlen(text), fid) == 0)
    return true;
  *ret = reply_textf(conn, MHD_HTTP_BAD_REQUEST,
                     "bad file id \"%.80s\": expected <volume id>,<key hex><8 hex digits of cookie>\n", text);
  return false;
}

/* True if an If-None-Match value names `etag` (quoted) or is "*". Weak tags
 * compare by their opaque part, as the header's weak comparison asks. */
static bool etag_matches(const char *header, const char *etag)
{
  size_t elen = strlen(etag);
  const char *p = header;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p == '\0')
      return false;
    if (*p == '*')
      return true;
    if (strncmp(p, "W/", 2) == 0)
      p += 2;
    const char *end = p;
    if (*p == '"') {
      end = strchr(p + 1, '"');
      if (end == NULL)
        return false;
      end++;
    } else {
      while (*end != '\0' && *end != ',')
        end++;
    }
    if ((size_t)(end - p) == elen && memcmp(p, etag, elen) == 0)
      return true;
    p = end;
  }
}

/* Maps a chunk store read error to a response; logs what the operator must see. */
static enum MHD_Result reply_read_error(struct MHD_Connection *conn, const char *fid_text, int rc, const char *err)
{
  switch (rc) {
  case FM_ENOTFOUND:
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
  case FM_EDECODE:
    fm_log_error("GET /%s: corrupt needle: %s", fid_text, err);
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "chunk is corrupt\n");
  default:
    fm_log_error("GET /%s: %s: %s", fid_text, fm_strerror(rc), err);
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read chunk\n");
  }
}

/*
 * A needle as a volume server serves it: ETag (its CRC-32), Range (one range;
 * 206, or 416), If-None-Match (304). The bytes are read and CRC-checked as a
 * whole before any status goes out, so that corruption is a 500 and never a
 * truncated 200. HEAD reads and checks them too and gets the same status.
 */
static enum MHD_Result on_read(fm_http_side *h, struct MHD_Connection *conn, const char *fid_text)
{
  enum MHD_Result ret;
  fm_fid fid;
  if (!parse_fid(conn, fid_text, &fid, &ret))
    return ret;
  char err[FM_ERR_LEN] = "";
  fm_chunk_needle_info info;
  int rc = fm_chunk_store_stat(h->chunks, &fid, &info, err, sizeof err);
  if (rc != 0)
    return reply_read_error(conn, fid_text, rc, err);
  char etag[16];
  snprintf(etag, sizeof etag, "\"%08" PRIx32 "\"", info.crc);

  const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
  if (inm != NULL && etag_matches(inm, etag)) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r != NULL)
      MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    return queue(conn, MHD_HTTP_NOT_MODIFIED, r);
  }

  uint64_t offset = 0, length = UINT64_MAX;
  const char *range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  fm_http_range kind = fm_http_range_parse(range, info.size, &offset, &length);
  char content_range[80];
  if (kind == FM_HTTP_RANGE_UNSATISFIABLE) {
    struct MHD_Response *r = text_response("range not satisfiable\n");
    snprintf(content_range, sizeof content_range, "bytes */%" PRIu64, info.size);
    if (r != NULL)
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    return queue(conn, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
  }

  void *data = NULL;
  size_t len = 0;
  rc = fm_chunk_store_read_range(h->chunks, &fid, offset, length, &data, &len, err, sizeof err);
  if (rc != 0)
    return reply_read_error(conn, fid_text, rc, err);
  struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(data);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
  MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  if (kind == FM_HTTP_RANGE_PARTIAL) {
    snprintf(content_range, sizeof content_range, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, offset, offset + len - 1,
             info.size);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    return queue(conn, MHD_HTTP_PARTIAL_CONTENT, r);
  }
  return queue(conn, MHD_HTTP_OK, r);
}

/* ================================================================ POST, PUT /<fid> */

/* One upload in progress, from the headers to the end of the body. */
typedef struct upload {
  fm_fid fid;
  char fid_text[FM_FID_MAX + 8];
  /* an answer decided before the body ended; the body is still read (and
   * dropped) so that the client gets the answer rather than a reset */
  unsigned int status;
  char error[FM_ERR_LEN];
  uint64_t limit;
  uint8_t *data; /* the chunk's bytes */
  size_t len, cap;
  /* multipart/form-data: the part kept is the first with a file name, or
   * the first part if none has one */
  struct MHD_PostProcessor *pp;
  bool part_started;  /* a part has begun */
  bool part_kept;     /* the current part is the one kept */
  bool kept_has_name; /* the kept part has a file name */
  bool have_kept;
  uint64_t part_bytes; /* bytes seen of the current part */
  char *part_key;      /* the current part's form name */
  char *part_name;     /* the current part's file name (NULL: none) */
  char *name;          /* the kept part's file name */
} upload;

static void upload_free(upload *u)
{
  if (u == NULL)
    return;
  if (u->pp != NULL)
    MHD_destroy_post_processor(u->pp);
  free(u->data);
  free(u->part_key);
  free(u->part_name);
  free(u->name);
  free(u);
}

/* Sets the answer unless one is set already: the first problem is the one reported. */
__attribute__((format(printf, 3, 4))) static void upload_fail(upload *u, unsigned int status, const char *fmt, ...)
{
  if (u->status != 0)
    return;
  u->status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(u->error, sizeof u->error, fmt, ap);
  va_end(ap);
  free(u->data);
  u->data = NULL;
  u->len = u->cap = 0;
}

/* Appends body bytes of the chunk, enforcing the size limit. */
static void upload_append(upload *u, const char *data, size_t size)
{
  if (u->status != 0 || size == 0)
    return;
  if (size > u->limit - u->len) {
    /* upstream's text: its filer lowers its chunk size when it sees it */
    upload_fail(u, MHD_HTTP_CONTENT_TOO_LARGE, "file over the limited %" PRIu64 " bytes", u->limit);
    return;
  }
  if (u->len + size > u->cap) {
    size_t cap = u->cap != 0 ? u->cap : 64 * 1024;
    while (cap < u->len + size)
      cap *= 2;
    uint8_t *grown = realloc(u->data, cap);
    if (grown == NULL) {
      upload_fail(u, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
      return;
    }
    u->data = grown;
    u->cap = cap;
  }
  memcpy(u->data + u->len, data, size);
  u->len += size;
}

static bool same_str(const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Starts a new part of a multipart body: decides whether it is kept. */
static void upload_part_start(upload *u, const char *key, const char *filename)
{
  free(u->part_key);
  free(u->part_name);
  u->part_key = strdup(key != NULL ? key : "");
  u->part_name = filename != NULL ? strdup(filename) : NULL;
  if (u->part_key == NULL || (filename != NULL && u->part_name == NULL)) {
    upload_fail(u, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return;
  }
  u->part_started = true;
  u->part_bytes = 0;
  u->part_kept = false;
  if (!u->have_kept || (!u->kept_has_name && filename != NULL)) {
    /* the first part, or the first one with a file name after nameless ones */
    u->len = 0;
    free(u->name);
    u->name = strdup(filename != NULL ? filename : "");
    if (u->name == NULL) {
      upload_fail(u, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
      return;
    }
    u->have_kept = true;
    u->kept_has_name = filename != NULL;
    u->part_kept = true;
  }
}

/*
 * libmicrohttpd hands each part's bytes over in pieces, `off` counting from 0
 * within the part; a part may begin with an empty piece. So a piece at off 0
 * starts a new part unless it continues one that has had no bytes yet under
 * the same names (an empty part merging into the next is harmless).
 */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
  upload *u = cls;
  (void)kind;
  (void)content_type;
  (void)transfer_encoding;
  if (off == 0 &&
      (!u->part_started || u->part_bytes > 0 || !same_str(key, u->part_key) || !same_str(filename, u->part_name)))
    upload_part_start(u, key, filename);
  u->part_bytes += size;
  if (u->part_kept)
    upload_append(u, data, size);
  return MHD_YES;
}

static bool is_multipart(struct MHD_Connection *conn)
{
  const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  return ct != NULL && strncasecmp(ct, "multipart/form-data", 19) == 0;
}

/* The first call of an upload: headers only. Returns the new upload, or NULL
 * when the request has been answered already (*ret). */
static upload *upload_begin(fm_http_side *h, struct MHD_Connection *conn, const char *fid_text, enum MHD_Result *ret)
{
  upload *u = calloc(1, sizeof *u);
  if (u == NULL) {
    *ret = MHD_NO;
    return NULL;
  }
  u->limit = h->max_upload;
  snprintf(u->fid_text, sizeof u->fid_text, "%.*s", (int)(sizeof u->fid_text - 1), fid_text);
  if (fm_fid_parse(fid_text, strlen(fid_text), &u->fid) != 0)
    upload_fail(u, MHD_HTTP_BAD_REQUEST,
                "bad file id \"%.80s\": expected <volume id>,<key hex><8 hex digits of cookie>", fid_text);

  /* A declared length over the limit is answered at once: reading that
   * much only to drop it is not worth it (libmicrohttpd then closes). */
  const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  bool multipart = is_multipart(conn);
  if (cl != NULL && !multipart) {
    char *end = NULL;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end != cl && *end == '\0' && n > u->limit) {
      char msg[96];
      snprintf(msg, sizeof msg, "file over the limited %" PRIu64 " bytes", u->limit);
      upload_free(u);
      *ret = reply_json_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
      return NULL;
    }
  }
  if (multipart) {
    u->pp = MHD_create_post_processor(conn, POST_BUFFER_SIZE, on_part, u);
    if (u->pp == NULL)
      upload_fail(u, MHD_HTTP_BAD_REQUEST, "cannot parse the multipart/form-data header (is its boundary missing?)");
  }
  return u;
}

/* A piece of the body. */
static void upload_body(upload *u, const char *data, size_t size)
{
  if (u->pp != NULL) {
    if (u->status == 0 && MHD_post_process(u->pp, data, size) != MHD_YES)
      upload_fail(u, MHD_HTTP_BAD_REQUEST, "malformed multipart/form-data body");
  } else {
    upload_append(u, data, size);
  }
}

/* The body is complete: write the chunk and answer as a volume server does,
 * 201 with {"name", "size", "eTag"}. */
static enum MHD_Result upload_end(fm_http_side *h, struct MHD_Connection *conn, upload *u)
{
  if (u->pp != NULL) {
    enum MHD_Result done = MHD_destroy_post_processor(u->pp);
    u->pp = NULL;
    if (done != MHD_YES)
      upload_fail(u, MHD_HTTP_BAD_REQUEST, "multipart/form-data body ends early");
    else if (!u->have_kept)
      upload_fail(u, MHD_HTTP_BAD_REQUEST, "multipart/form-data body has no part");
  }
  if (u->status != 0)
    return reply_json_error(conn, u->status, u->error);

  char err[FM_ERR_LEN] = "";
  const uint8_t *data = u->data != NULL ? u->data : (const uint8_t *)"";
  int rc = fm_chunk_store_write(h->chunks, &u->fid, data, u->len, err, sizeof err);
  switch (rc) {
  case 0:
    break;
  case FM_EINVAL: /* a key assign never handed out */
    return reply_json_error(conn, MHD_HTTP_BAD_REQUEST, err);
  case FM_ENOTFOUND:
    return reply_json_error(conn, MHD_HTTP_NOT_FOUND, err);
  case FM_EEXIST:
    return reply_json_error(conn, MHD_HTTP_CONFLICT, err);
  case FM_ETOOBIG:
    return reply_json_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, err);
  default:
    fm_log_error("POST /%s: %s: %s", u->fid_text, fm_strerror(rc), err);
    return reply_json_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, err[0] != '\0' ? err : fm_strerror(rc));
  }
  /* the needle's CRC as the chunk store computes it (chunk_store.h), which
   * GET sends as the ETag; upstream's eTag is the same 8 hex digits */
  char etag[16];
  snprintf(etag, sizeof etag, "%08" PRIx32, (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), data, u->len));
  json_object *o = json_object_new_object();
  if (o == NULL)
    return MHD_NO;
  json_object_object_add(o, "name", json_object_new_string(u->name != NULL ? u->name : ""));
  json_object_object_add(o, "size", json_object_new_uint64(u->len));
  json_object_object_add(o, "eTag", json_object_new_string(etag));
  return reply_json(conn, MHD_HTTP_CREATED, o);
}

static enum MHD_Result on_upload(fm_http_side *h, struct MHD_Connection *conn, const char *fid_text,
                                 const char *upload_data, size_t *upload_data_size, void **con_cls)
{
  upload *u = *con_cls;
  if (u == NULL) {
    enum MHD_Result ret = MHD_YES;
    u = upload_begin(h, conn, fid_text, &ret);
    *con_cls = u;
    return ret;
  }
  if (*upload_data_size > 0) {
    upload_body(u, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  return upload_end(h, conn, u);
}

/* ================================================================ dispatch */

static bool method_is(const char *method, const char *want)
{
  return strcmp(method, want) == 0;
}

/* A path of one segment holding a ',' names a chunk; anything else is a page or 404. */
static bool is_fid_path(const char *url)
{
  return url[0] == '/' && strchr(url + 1, '/') == NULL && strchr(url + 1, ',') != NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
  fm_http_side *h = cls;
  (void)version;
  bool read = method_is(method, MHD_HTTP_METHOD_GET) || method_is(method, MHD_HTTP_METHOD_HEAD);
  bool write = method_is(method, MHD_HTTP_METHOD_POST) || method_is(method, MHD_HTTP_METHOD_PUT);

  bool fid_path = is_fid_path(url) && h->chunks != NULL;
  if (fid_path && write)
    return on_upload(h, conn, url + 1, upload_data, upload_data_size, con_cls);
  if (*con_cls == NULL) {
    *con_cls = HEADERS_SEEN;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    *upload_data_size = 0; /* a body sent with a read is dropped */
    return MHD_YES;
  }
  if (fid_path) {
    if (!read)
      return reply_not_allowed(conn, "GET, HEAD, POST, PUT");
    return on_read(h, conn, url + 1);
  }
  bool page = strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0 || strcmp(url, "/debug/logbuffer") == 0 ||
              strcmp(url, "/debug/subscribers") == 0;
  if (!page)
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
  if (!read)
    return reply_not_allowed(conn, "GET, HEAD");
  if (strcmp(url, "/healthz") == 0) {
    if (atomic_load(&h->stopping))
      return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down\n");
    return reply_text(conn, MHD_HTTP_OK, "ok\n");
  }
  if (strcmp(url, "/metrics") == 0)
    return on_metrics(h, conn);
  if (strcmp(url, "/debug/subscribers") == 0)
    return on_debug_subscribers(h, conn);
  return on_debug_logbuffer(h, conn);
}

/* Frees an upload however its request ended (answered, aborted, timed out). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)conn;
  (void)toe;
  if (*con_cls != HEADERS_SEEN)
    upload_free(*con_cls);
  *con_cls = NULL;
}

/* ================================================================ daemon */

int fm_http_side_start(const fm_http_side_config *cfg, fm_http_side **out, char *err, size_t errlen)
{
  fm_http_side *h = calloc(1, sizeof *h);
  if (h == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  atomic_init(&h->stopping, false);
  h->chunks = cfg->chunks;
  h->logbuf = cfg->logbuf;
  h->flusher = cfg->flusher;
  h->rpc = cfg->rpc;
  h->max_upload = cfg->max_upload_bytes;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", cfg->port);
  int g = getaddrinfo(cfg->ip, portstr, &hints, &res);
  if (g != 0) {
    snprintf(err, errlen, "cannot resolve HTTP address %s: %s", cfg->ip, gai_strerror(g));
    free(h);
    return FM_EADDR;
  }
  /* A thread per connection: a slow chunk read or upload never holds up
   * /healthz or another client. poll() rather than select(), which cannot
   * watch descriptors past FD_SETSIZE. */
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
  if (res->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  unsigned int max_conns = cfg->max_connections != 0 ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
  h->daemon =
      MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, res->ai_addr,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60, MHD_OPTION_CONNECTION_LIMIT, max_conns,
                       MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
  freeaddrinfo(res);
  if (h->daemon == NULL) {
    char addr[300], why[FM_ERR_LEN];
    fm_net_join(cfg->ip, cfg->port, addr, sizeof addr);
    fm_net_bind_reason(addr, why, sizeof why);
    snprintf(err, errlen, "cannot listen for HTTP on %s: %s", addr, why);
    free(h);
    return FM_EADDR;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info != NULL ? info->port : cfg->port;
  *out = h;
  return 0;
}

void fm_http_side_set_subscribers(fm_http_side *h, fm_subreg *r)
{
  atomic_store(&h->subscribers, r);
}

int fm_http_side_port(const fm_http_side *h)
{
  return h->port;
}

void fm_http_side_set_stopping(fm_http_side *h)
{
  atomic_store(&h->stopping, true);
}

void fm_http_side_free(fm_http_side *h)
{
  if (h == NULL)
    return;
  MHD_stop_daemon(h->daemon);
  free(h);
}
