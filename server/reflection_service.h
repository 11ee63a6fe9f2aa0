/* gRPC server reflection (grpc.reflection.v1alpha and v1, identical messages),
 * answered from the descriptor set compiled into the binary, so that grpcurl
 * list/describe work with no .proto files. Registered by main.c. */
#ifndef FM_REFLECTION_SERVICE_H
#define FM_REFLECTION_SERVICE_H

#include "descriptor_index.h"
#include "rpc_methods.h"

typedef struct fm_reflection_service {
  const fm_descriptor_index *index; /* borrowed */
  const fm_rpc_methods *methods;    /* borrowed: ListServices reports what is registered */
} fm_reflection_service;

/* Adds both ServerReflectionInfo methods to `t`; `svc` must outlive the server. */
int fm_reflection_service_register(fm_rpc_methods *t, fm_reflection_service *svc);

#endif
