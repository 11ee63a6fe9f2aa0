/* HTTP side over libmicrohttpd's internal polling thread. */
#include "http_side.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "error.h"
#include "net_addr.h"

struct fm_http_side {
  struct MHD_Daemon *daemon;
  int port;
  atomic_bool stopping;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int code, const char *body)
{
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  enum MHD_Result ret = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
  fm_http_side *h = cls;
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (strcmp(url, "/healthz") == 0) {
    if (!get)
      return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (atomic_load(&h->stopping))
      return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down\n");
    return reply(conn, MHD_HTTP_OK, "ok\n");
  }
  return reply(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

int fm_http_side_start(const char *ip, int port, fm_http_side **out, char *err, size_t errlen)
{
  fm_http_side *h = calloc(1, sizeof *h);
  if (h == NULL)
    return FM_ENOMEM;
  atomic_init(&h->stopping, false);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  int g = getaddrinfo(ip, portstr, &hints, &res);
  if (g != 0) {
    snprintf(err, errlen, "cannot resolve HTTP address %s: %s", ip, gai_strerror(g));
    free(h);
    return FM_EADDR;
  }
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (res->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  h->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, res->ai_addr,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60, MHD_OPTION_END);
  freeaddrinfo(res);
  if (h->daemon == NULL) {
    char addr[300], why[FM_ERR_LEN];
    fm_net_join(ip, port, addr, sizeof addr);
    fm_net_bind_reason(addr, why, sizeof why);
    snprintf(err, errlen, "cannot listen for HTTP on %s: %s", addr, why);
    free(h);
    return FM_EADDR;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info != NULL ? info->port : port;
  *out = h;
  return 0;
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
