/* gRPC core initialisation and log routing. */
#include "rpc_core.h"

#include <grpc/grpc.h>
#include <grpc/support/log.h>

#include "log.h"

static void route_log(gpr_log_func_args *args)
{
  fm_log(FM_LOG_DEBUG, "grpc %s %s:%d: %s", gpr_log_severity_string(args->severity), args->file, args->line,
         args->message);
}

void fm_rpc_core_init(void)
{
  gpr_set_log_function(route_log);
  grpc_init();
}

void fm_rpc_core_shutdown(void)
{
  grpc_shutdown();
}
