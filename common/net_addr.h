/* Socket addresses as text: joining host and port, and finding out why an
 * address cannot be bound. Leaf module; any thread. */
#ifndef FM_NET_ADDR_H
#define FM_NET_ADDR_H

#include <stddef.h>

/* Writes "host:port", bracketing IPv6 literals ("[::1]:80"). Returns 0 or FM_ETOOBIG. */
int fm_net_join(const char *host, int port, char *buf, size_t len);

/* Splits "host:port" or "[v6]:port" (an IPv6 host must be bracketed; the port
 * is decimal digits only). Returns 0 or FM_EINVAL. */
int fm_net_split(const char *addr, char *host, size_t hostlen, int *port);

/* Tries to bind a TCP socket to `addr` and describes the failure in `why`
 * (e.g. "Address already in use"). Returns 0 if the bind worked. */
int fm_net_bind_reason(const char *addr, char *why, size_t whylen);

/*
 * Turns a filer address in SeaweedFS form into the gRPC target: "host:port"
 * means the HTTP port with gRPC at port+10000; "host:port.grpcPort" names both.
 * Returns 0, FM_EINVAL, or FM_ETOOBIG when `buf` is too small.
 */
int fm_net_filer_grpc_target(const char *filer, char *buf, size_t len);

#endif
