/* The filer_pb.SeaweedFiler service: its handlers and their shared context.
 * Registered by main.c; handlers run on the RPC layer's completion-queue threads.
 * Methods not registered here answer UNIMPLEMENTED (the RPC layer's default). */
#ifndef FM_FILER_SERVICE_H
#define FM_FILER_SERVICE_H

#include <stdint.h>

#include "filer.h"
#include "rpc_methods.h"

typedef struct fm_filer_service {
  fm_filer *filer;         /* the store's mutation engine */
  int32_t signature;       /* the store signature, stamped into every event */
  uint32_t max_mb;         /* chunk size limit reported to clients */
  char filer_address[300]; /* this filer as clients name it: "ip:port[.grpcPort]" */
} fm_filer_service;

/* Version string reported by GetFilerConfiguration and -version. */
const char *fm_filer_version(void);

/* Adds the service's methods to `t`; `svc` is borrowed and must outlive the server. */
int fm_filer_service_register(fm_rpc_methods *t, fm_filer_service *svc);

#endif
