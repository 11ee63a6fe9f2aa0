/* The subscription RPCs (sub_service.h). */
#include "sub_service.h"

#include <inttypes.h>
#include <stdio.h>

#include "error.h"
#include "filer.pb-c.h"
#include "rpc_codec.h"
#include "rpc_server.h"

static void subscribe(fm_rpc_call *call, const ProtobufCMessage *msg, bool local)
{
  const fm_sub_service *svc = fm_rpc_call_ctx(call);
  FilerPb__SubscribeMetadataRequest *req = (FilerPb__SubscribeMetadataRequest *)(uintptr_t)msg;
  /* ours (PROTOCOL.md 5.4): history that retention removed is an error, not a silent later start; since_ns 0 asks
   * for whatever is kept */
  if (svc->flusher != NULL && req->since_ns > 0) {
    fm_log_flusher_stats fs;
    fm_log_flusher_get_stats(svc->flusher, &fs);
    if (fs.retained_from_ns > 0 && req->since_ns < fs.retained_from_ns - 1) {
      fm_rpc_call_finishf(call, GRPC_STATUS_OUT_OF_RANGE,
                          "since_ns %" PRId64 ": history before %" PRId64
                          " was removed by retention; the oldest available ts_ns is %" PRId64,
                          req->since_ns, fs.retained_from_ns, fs.retained_from_ns - 1);
      return;
    }
  }
  fm_sub_stream_config cfg = svc->stream;
  cfg.local = local;
  char err[FM_ERR_LEN] = "";
  fm_rpc_call_keep_request(call);
  int rc = fm_sub_stream_start(call, req, &cfg, err, sizeof err);
  if (rc == 0)
    return;
  grpc_status_code code = rc == FM_EINVAL   ? GRPC_STATUS_INVALID_ARGUMENT
                          : rc == FM_EEXIST ? GRPC_STATUS_ALREADY_EXISTS
                          : rc == FM_ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                            : GRPC_STATUS_INTERNAL;
  fm_rpc_call_finish(call, code, err[0] ? err : fm_strerror(rc));
  fm_rpc_request_free(&req->base);
}

static void on_subscribe(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  subscribe(call, msg, false);
}

static void on_subscribe_local(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  subscribe(call, msg, true);
}

static void on_list(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const fm_sub_service *svc = fm_rpc_call_ctx(call);
  FilerPb__ListMetadataSubscribersResponse *resp = NULL;
  int rc = fm_subreg_list(svc->stream.registry, (const FilerPb__ListMetadataSubscribersRequest *)msg, &resp);
  if (rc != 0) {
    fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, fm_strerror(rc));
    return;
  }
  fm_rpc_call_reply(call, &resp->base);
  fm_subreg_list_free(resp);
}

#define STREAM(name, fn)                                                                                               \
  {                                                                                                                    \
    .path = "/filer_pb.SeaweedFiler/" name, .kind = FM_RPC_SERVER_STREAMING,                                           \
    .request = &filer_pb__subscribe_metadata_request__descriptor, .on_request = fn, .on_sent = fm_sub_stream_on_sent,  \
    .on_done = fm_sub_stream_on_done,                                                                                  \
  }

static fm_rpc_method methods[] = {
  STREAM("SubscribeMetadata", on_subscribe),
  STREAM("SubscribeLocalMetadata", on_subscribe_local),
  { .path = "/filer_pb.SeaweedFiler/ListMetadataSubscribers",
    .kind = FM_RPC_UNARY,
    .request = &filer_pb__list_metadata_subscribers_request__descriptor,
    .on_request = on_list },
};

int fm_sub_service_register(fm_rpc_methods *t, fm_sub_service *svc)
{
  return fm_rpc_methods_add_all(t, methods, sizeof methods / sizeof methods[0], svc);
}
