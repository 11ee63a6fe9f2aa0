/* SeaweedFiler handlers: Ping and GetFilerConfiguration so far. */
#include "filer_service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "fm_config.h"
#include "log.h"
#include "net_addr.h"
#include "rpc_client.h"
#include "rpc_server.h"

/* The SeaweedFS release whose filer protocol we speak (SEAWEEDFS-REFERENCE.md).
 * GetFilerConfiguration reports it in major/minor_version so that Go clients
 * that gate features on the version see the protocol they are talking to. */
#define PROTOCOL_MAJOR 4
#define PROTOCOL_MINOR 44

const char *fm_filer_version(void)
{
  return "filermeta " FM_VERSION " (SeaweedFS filer protocol 4.44)";
}

/* How long a Ping of another filer may take before it is reported as failed. */
#define REMOTE_PING_TIMEOUT_MS 5000

/* ---------------------------------------------------------------- Ping */

typedef struct remote_ping {
  fm_rpc_call *call; /* referenced until the reply is sent */
  char target[256];
  char target_type[32];
  int64_t start_ns;
} remote_ping;

/* Pings another filer from a thread of its own, so that a slow or dead peer
 * never holds a completion-queue thread. It holds a call reference, which
 * shutdown waits for: hence the bounded timeout. */
static void *remote_ping_thread(void *arg)
{
  remote_ping *rp = arg;
  char grpc_target[300], err[FM_ERR_LEN];
  FilerPb__PingResponse resp = FILER_PB__PING_RESPONSE__INIT;
  resp.start_time_ns = rp->start_ns;
  if (fm_net_filer_grpc_target(rp->target, grpc_target, sizeof grpc_target) != 0) {
    fm_rpc_call_finishf(rp->call, GRPC_STATUS_INVALID_ARGUMENT, "ping %s %s: not a filer address (host:port)",
                        rp->target_type, rp->target);
    goto out;
  }
  fm_rpc_client *client = NULL;
  if (fm_rpc_client_new(grpc_target, &client) != 0) {
    fm_rpc_call_finish(rp->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  FilerPb__PingRequest req = FILER_PB__PING_REQUEST__INIT;
  ProtobufCMessage *reply = NULL;
  grpc_status_code st;
  int rc = fm_rpc_client_unary(client, "/filer_pb.SeaweedFiler/Ping", &req.base, &filer_pb__ping_response__descriptor,
                               REMOTE_PING_TIMEOUT_MS, &reply, &st, err, sizeof err);
  fm_rpc_client_free(client);
  if (rc != 0) {
    fm_rpc_call_finishf(rp->call, GRPC_STATUS_UNAVAILABLE, "ping %s %s: %s", rp->target_type, rp->target, err);
    goto out;
  }
  resp.remote_time_ns = ((FilerPb__PingResponse *)reply)->start_time_ns;
  protobuf_c_message_free_unpacked(reply, NULL);
  resp.stop_time_ns = fm_now_ns();
  fm_rpc_call_reply(rp->call, &resp.base);
out:
  fm_rpc_call_unref(rp->call);
  free(rp);
  return NULL;
}

/*
 * As upstream: an empty target (or an unknown target_type) pings this filer
 * and leaves remote_time_ns 0; target_type "filer" pings that filer and
 * reports its clock. filermeta has no master and no separate volume servers.
 */
static void on_ping(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const FilerPb__PingRequest *req = (const FilerPb__PingRequest *)msg;
  FilerPb__PingResponse resp = FILER_PB__PING_RESPONSE__INIT;
  resp.start_time_ns = fm_now_ns();
  const char *type = req->target_type;
  if (req->target[0] != '\0' && strcmp(type, "filer") == 0) {
    remote_ping *rp = calloc(1, sizeof *rp);
    if (rp == NULL || strlen(req->target) >= sizeof rp->target) {
      free(rp);
      fm_rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "ping target too long");
      return;
    }
    fm_rpc_call_ref(call);
    rp->call = call;
    strcpy(rp->target, req->target);
    strcpy(rp->target_type, type);
    rp->start_ns = resp.start_time_ns;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&th, &attr, remote_ping_thread, rp);
    pthread_attr_destroy(&attr);
    if (e != 0) {
      fm_rpc_call_unref(call);
      free(rp);
      fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start ping thread");
    }
    return;
  }
  if (req->target[0] != '\0' && (strcmp(type, "master") == 0 || strcmp(type, "volumeServer") == 0)) {
    fm_rpc_call_finishf(call, GRPC_STATUS_UNIMPLEMENTED, "ping %s %s: filermeta has no %s", type, req->target,
                        strcmp(type, "master") == 0 ? "master" : "separate volume servers");
    return;
  }
  resp.stop_time_ns = fm_now_ns();
  fm_rpc_call_reply(call, &resp.base);
}

/* ---------------------------------------------------------------- GetFilerConfiguration */

static void on_get_configuration(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  (void)msg;
  const fm_filer_service *svc = fm_rpc_call_ctx(call);
  FilerPb__GetFilerConfigurationResponse resp = FILER_PB__GET_FILER_CONFIGURATION_RESPONSE__INIT;
  resp.max_mb = svc->max_mb;
  resp.dir_buckets = (char *)(uintptr_t) "/buckets";
  resp.signature = svc->signature;
  resp.version = (char *)(uintptr_t)fm_filer_version();
  resp.major_version = PROTOCOL_MAJOR;
  resp.minor_version = PROTOCOL_MINOR;
  fm_rpc_call_reply(call, &resp.base);
}

/* ---------------------------------------------------------------- table */

#define UNARY(name, req, fn)                                                                                           \
  {                                                                                                                    \
    .path = "/filer_pb.SeaweedFiler/" name, .kind = FM_RPC_UNARY, .request = &req, .on_request = fn,                   \
  }

static fm_rpc_method methods[] = {
  UNARY("Ping", filer_pb__ping_request__descriptor, on_ping),
  UNARY("GetFilerConfiguration", filer_pb__get_filer_configuration_request__descriptor, on_get_configuration),
};

int fm_filer_service_register(fm_rpc_methods *t, fm_filer_service *svc)
{
  return fm_rpc_methods_add_all(t, methods, sizeof methods / sizeof methods[0], svc);
}
