/* filer_pb.SeaweedFiler AssignVolume and LookupVolume over the chunk store:
 * the filer is its own and only volume server, reached at its HTTP side.
 * Registered by main.c; handlers run on the RPC layer's completion-queue threads. */
#ifndef FM_VOLUME_SERVICE_H
#define FM_VOLUME_SERVICE_H

#include <stdint.h>

#include "chunk_store.h"
#include "rpc_methods.h"

typedef struct fm_volume_service {
  fm_chunk_store *chunks; /* borrowed; outlives the server */
  char url[300];          /* this filer's HTTP side as "ip:port": Location.url and public_url */
  uint32_t grpc_port;     /* this filer's gRPC port: Location.grpc_port */
} fm_volume_service;

/* Adds AssignVolume and LookupVolume to `t`; `svc` is borrowed and must
 * outlive the server. Fill in url and grpc_port before the server starts. */
int fm_volume_service_register(fm_rpc_methods *t, fm_volume_service *svc);

#endif
