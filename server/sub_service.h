/* SubscribeMetadata, SubscribeLocalMetadata and ListMetadataSubscribers: request checks, the OUT_OF_RANGE answer for
 * history that retention removed, and the start of a stream (sub_stream.c). Registered by main.c; handlers run on
 * the RPC layer's completion-queue threads. */
#ifndef FM_SUB_SERVICE_H
#define FM_SUB_SERVICE_H

#include <stdint.h>

#include "log_flusher.h"
#include "rpc_methods.h"
#include "sub_registry.h"
#include "sub_stream.h"

typedef struct fm_sub_service {
  fm_sub_stream_config stream; /* local is set per RPC; registry must be set */
  fm_log_flusher *flusher;     /* for the oldest retained ts; may be NULL */
} fm_sub_service;

/* Default -metaLog.batchBehind: batch while the stream is more than 2 minutes behind. */
#define FM_SUB_BATCH_BEHIND_DEFAULT (INT64_C(120) * 1000000000)
/* Idle heartbeat interval (PROTOCOL.md section 5.5). */
#define FM_SUB_HEARTBEAT_DEFAULT (INT64_C(5) * 1000000000)
/* How often a local stream reports the flushed watermark to such clients (PROTOCOL.md 5.5). */
#define FM_SUB_FLUSH_REPORT_DEFAULT (INT64_C(5) * 1000000000)

/* Adds the methods to `t`; `svc` is borrowed and must outlive the server. */
int fm_sub_service_register(fm_rpc_methods *t, fm_sub_service *svc);

#endif
