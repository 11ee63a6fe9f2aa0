/* Address text helpers over getaddrinfo. */
#include "net_addr.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"

int fm_net_join(const char *host, int port, char *buf, size_t len)
{
  int n =
      strchr(host, ':') != NULL ? snprintf(buf, len, "[%s]:%d", host, port) : snprintf(buf, len, "%s:%d", host, port);
  return n < 0 || (size_t)n >= len ? FM_ETOOBIG : 0;
}

int fm_net_split(const char *addr, char *host, size_t hostlen, int *port)
{
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon[1] == '\0')
    return FM_EINVAL;
  const char *h = addr;
  size_t hlen = (size_t)(colon - addr);
  if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  } else if (memchr(h, ':', hlen) != NULL) {
    return FM_EINVAL; /* "::1:80" is ambiguous; IPv6 needs brackets */
  }
  if (hlen >= hostlen || colon[1] < '0' || colon[1] > '9')
    return FM_EINVAL;
  char *end = NULL;
  long p = strtol(colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535)
    return FM_EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (int)p;
  return 0;
}

int fm_net_bind_reason(const char *addr, char *why, size_t whylen)
{
  char host[256], port[16];
  int p;
  if (fm_net_split(addr, host, sizeof host, &p) != 0) {
    snprintf(why, whylen, "not a host:port address");
    return FM_EINVAL;
  }
  snprintf(port, sizeof port, "%d", p);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (g != 0) {
    snprintf(why, whylen, "cannot resolve \"%s\": %s", host, gai_strerror(g));
    return FM_EADDR;
  }
  int rc = FM_EADDR;
  int saved = 0;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      rc = 0;
    } else {
      saved = errno;
    }
    close(fd);
    if (rc == 0)
      break;
  }
  freeaddrinfo(res);
  if (rc == 0)
    snprintf(why, whylen, "the address binds now; it was busy or refused a moment ago");
  else
    snprintf(why, whylen, "%s", strerror(saved));
  return rc;
}

int fm_net_filer_grpc_target(const char *filer, char *buf, size_t len)
{
  char tmp[300];
  if (strlen(filer) >= sizeof tmp)
    return FM_EINVAL;
  strcpy(tmp, filer);
  /* "host:port.grpcPort": the part after the last dot of the port names gRPC */
  char *colon = strrchr(tmp, ':');
  if (colon == NULL)
    return FM_EINVAL;
  char *dot = strchr(colon, '.');
  char host[256];
  int port;
  if (dot != NULL) {
    char *end = NULL;
    long gp = strtol(dot + 1, &end, 10);
    if (*end != '\0' || gp <= 0 || gp > 65535)
      return FM_EINVAL;
    *dot = '\0';
    if (fm_net_split(tmp, host, sizeof host, &port) != 0 || port <= 0)
      return FM_EINVAL;
    return fm_net_join(host, (int)gp, buf, len);
  }
  if (fm_net_split(tmp, host, sizeof host, &port) != 0 || port <= 0 || port + 10000 > 65535)
    return FM_EINVAL;
  return fm_net_join(host, port + 10000, buf, len);
}
