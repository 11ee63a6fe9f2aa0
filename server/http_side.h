/* The HTTP side (libmicrohttpd on -port): for now GET /healthz; chunk reads,
 * /metrics and /debug pages join it in later issues. Started and stopped by
 * main.c; requests run on libmicrohttpd's own thread. */
#ifndef FM_HTTP_SIDE_H
#define FM_HTTP_SIDE_H

#include <stddef.h>

typedef struct fm_http_side fm_http_side;

/* Listens on ip:port (port 0 picks one). Returns 0, or FM_EADDR with a reason
 * in `err`. Caller stops and frees with fm_http_side_free. */
int fm_http_side_start(const char *ip, int port, fm_http_side **out, char *err, size_t errlen);

/* The bound port. */
int fm_http_side_port(const fm_http_side *h);

/* Stops answering; /healthz reports 503 from now on while the rest shuts down. */
void fm_http_side_set_stopping(fm_http_side *h);

/* Stops the daemon and frees. NULL is a no-op. */
void fm_http_side_free(fm_http_side *h);

#endif
