/* Health: SERVING for the server ("") and every registered service while the
 * server runs; NOT_SERVING once shutdown has begun. Watch sends the status and
 * keeps the stream open until the client leaves or the server stops. */
#include "health_service.h"

#include <string.h>

#include "health.pb-c.h"
#include "rpc_server.h"

static bool known_service(const fm_rpc_methods *t, const char *name)
{
  if (name[0] == '\0')
    return true;
  for (size_t i = 0; i < fm_rpc_methods_service_count(t); i++)
    if (strcmp(fm_rpc_methods_service(t, i), name) == 0)
      return true;
  return false;
}

static Grpc__Health__V1__HealthCheckResponse__ServingStatus status_of(fm_rpc_call *call, const char *service)
{
  const fm_rpc_methods *t = fm_rpc_call_ctx(call);
  if (!known_service(t, service))
    return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  if (fm_rpc_server_shutting_down(fm_rpc_call_server(call)))
    return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

static void on_check(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)msg;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = status_of(call, req->service);
  if (resp.status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
    fm_rpc_call_finishf(call, GRPC_STATUS_NOT_FOUND, "unknown service %s", req->service);
    return;
  }
  fm_rpc_call_reply(call, &resp.base);
}

/* Watch: the status never changes while we run, so one message is the whole
 * stream until the client cancels or shutdown ends it (UNAVAILABLE). */
static void on_watch(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)msg;
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = status_of(call, req->service);
  fm_rpc_call_send(call, &resp.base, 0);
}

static fm_rpc_method methods[] = {
  { .path = "/grpc.health.v1.Health/Check",
    .kind = FM_RPC_UNARY,
    .request = &grpc__health__v1__health_check_request__descriptor,
    .on_request = on_check },
  { .path = "/grpc.health.v1.Health/Watch",
    .kind = FM_RPC_SERVER_STREAMING,
    .request = &grpc__health__v1__health_check_request__descriptor,
    .on_request = on_watch },
};

int fm_health_service_register(fm_rpc_methods *t)
{
  return fm_rpc_methods_add_all(t, methods, sizeof methods / sizeof methods[0], t);
}
