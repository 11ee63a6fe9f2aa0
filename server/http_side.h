/* The HTTP side (libmicrohttpd on -port): volume-server-style chunk reads and
 * uploads (GET, HEAD, POST, PUT /<fid>), /healthz, /metrics (Prometheus text)
 * and /debug/logbuffer (JSON). Started and stopped by main.c; each connection
 * is served on a thread of its own, so a slow read holds up nobody else. */
#ifndef FM_HTTP_SIDE_H
#define FM_HTTP_SIDE_H

#include <stddef.h>
#include <stdint.h>

#include "chunk_store.h"
#include "log_buffer.h"
#include "log_flusher.h"
#include "rpc_server.h"
#include "sub_registry.h"

typedef struct fm_http_side fm_http_side;

/* Everything borrowed here must outlive the side (fm_http_side_free). */
typedef struct fm_http_side_config {
  const char *ip;            /* address to listen on */
  int port;                  /* 0 picks a free port */
  fm_chunk_store *chunks;    /* /<fid>; NULL: those paths answer 404 */
  fm_logbuf *logbuf;         /* /metrics and /debug/logbuffer; NULL: not shown (404 for the page) */
  fm_log_flusher *flusher;   /* flush counters in /metrics; NULL: not shown */
  const fm_rpc_server *rpc;  /* RPC call counts in /metrics; NULL: not shown */
  uint64_t max_upload_bytes; /* largest chunk a POST or PUT may carry (-maxMB); 413 past it */
  unsigned max_connections;  /* each takes a thread; 0 means 256 */
} fm_http_side_config;

/* Listens on cfg->ip:cfg->port and starts serving. Returns 0, or FM_EADDR with
 * a reason in `err`, or FM_ENOMEM. Caller stops and frees with fm_http_side_free. */
int fm_http_side_start(const fm_http_side_config *cfg, fm_http_side **out, char *err, size_t errlen);

/* Shows `r` in /debug/subscribers and /metrics from now on (the registry is made once the server's address is known,
 * after the side bound its port). Any thread; `r` must outlive the side. */
void fm_http_side_set_subscribers(fm_http_side *h, fm_subreg *r);

/* The bound port. */
int fm_http_side_port(const fm_http_side *h);

/* /healthz reports 503 from now on while the rest shuts down. Any thread. */
void fm_http_side_set_stopping(fm_http_side *h);

/* Stops the daemon (waiting for the connection threads) and frees. NULL is a no-op. */
void fm_http_side_free(fm_http_side *h);

#endif
