/* filermeta ping and filermeta config: one unary call each, printed as
 * "name: value" lines. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "net_addr.h"
#include "rpc_client.h"
#include "tools.h"

#define CALL_TIMEOUT_MS 10000

/* Parses -filer (and the extra flags), resolves the gRPC target. Returns 0,
 * or the exit code to return. */
static int parse(const char *cmd, fm_flag *flags, size_t n, int argc, char **argv, const char *const *filer,
                 char *target, size_t len)
{
  char err[FM_ERR_LEN];
  int first = 0;
  int rc = fm_flags_parse(flags, n, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta %s [flags]\n\nFlags:\n", cmd);
    fm_flags_usage(stdout, flags, n);
    return -1;
  }
  if (rc != 0) {
    fprintf(stderr, "filermeta %s: %s\n", cmd, err);
    return 2;
  }
  if (first < argc) {
    fprintf(stderr, "filermeta %s: unexpected argument \"%s\"\n", cmd, argv[first]);
    return 2;
  }
  if (fm_net_filer_grpc_target(*filer, target, len) != 0) {
    fprintf(stderr, "filermeta %s: -filer \"%s\" is not host:port or host:port.grpcPort\n", cmd, *filer);
    return 2;
  }
  return 0;
}

int fm_cmd_ping(int argc, char **argv)
{
  const char *filer = fm_tools_filer, *target = "", *target_type = "";
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer,
      "filer address (host:port = HTTP port, gRPC at port+10000; or host:port.grpcPort)", 0, 0, false },
    { "target", FM_FLAG_STRING, &target, "ask the filer to ping this address instead of answering itself", 0, 0,
      false },
    { "targetType", FM_FLAG_STRING, &target_type, "kind of -target: filer", 0, 0, false },
  };
  char grpc_target[300], err[FM_ERR_LEN];
  int rc = parse("ping", flags, 3, argc, argv, &filer, grpc_target, sizeof grpc_target);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  fm_rpc_client *client = NULL;
  if (fm_rpc_client_new(grpc_target, &client) != 0)
    return 1;
  FilerPb__PingRequest req = FILER_PB__PING_REQUEST__INIT;
  req.target = (char *)(uintptr_t)target;
  req.target_type = (char *)(uintptr_t)target_type;
  ProtobufCMessage *reply = NULL;
  rc = fm_rpc_client_unary(client, "/filer_pb.SeaweedFiler/Ping", &req.base, &filer_pb__ping_response__descriptor,
                           CALL_TIMEOUT_MS, &reply, NULL, err, sizeof err);
  fm_rpc_client_free(client);
  if (rc != 0) {
    fprintf(stderr, "filermeta ping: %s\n", err);
    return 1;
  }
  const FilerPb__PingResponse *r = (const FilerPb__PingResponse *)reply;
  printf("start_time_ns: %" PRId64 "\nremote_time_ns: %" PRId64 "\nstop_time_ns: %" PRId64 "\n", r->start_time_ns,
         r->remote_time_ns, r->stop_time_ns);
  protobuf_c_message_free_unpacked(reply, NULL);
  return 0;
}

int fm_cmd_config(int argc, char **argv)
{
  const char *filer = fm_tools_filer;
  fm_flag flags[] = {
    { "filer", FM_FLAG_STRING, &filer,
      "filer address (host:port = HTTP port, gRPC at port+10000; or host:port.grpcPort)", 0, 0, false },
  };
  char grpc_target[300], err[FM_ERR_LEN];
  int rc = parse("config", flags, 1, argc, argv, &filer, grpc_target, sizeof grpc_target);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  fm_rpc_client *client = NULL;
  if (fm_rpc_client_new(grpc_target, &client) != 0)
    return 1;
  FilerPb__GetFilerConfigurationRequest req = FILER_PB__GET_FILER_CONFIGURATION_REQUEST__INIT;
  ProtobufCMessage *reply = NULL;
  rc = fm_rpc_client_unary(client, "/filer_pb.SeaweedFiler/GetFilerConfiguration", &req.base,
                           &filer_pb__get_filer_configuration_response__descriptor, CALL_TIMEOUT_MS, &reply, NULL, err,
                           sizeof err);
  fm_rpc_client_free(client);
  if (rc != 0) {
    fprintf(stderr, "filermeta config: %s\n", err);
    return 1;
  }
  const FilerPb__GetFilerConfigurationResponse *r = (const FilerPb__GetFilerConfigurationResponse *)reply;
  printf("signature: %d\nversion: %s\nmajor_version: %d\nminor_version: %d\nmax_mb: %u\ndir_buckets: %s\n",
         r->signature, r->version, r->major_version, r->minor_version, r->max_mb, r->dir_buckets);
  printf("masters:");
  for (size_t i = 0; i < r->n_masters; i++)
    printf(" %s", r->masters[i]);
  printf("\nreplication: %s\ncollection: %s\ncipher: %s\ncluster_id: %s\nfiler_group: %s\n", r->replication,
         r->collection, r->cipher ? "true" : "false", r->cluster_id, r->filer_group);
  protobuf_c_message_free_unpacked(reply, NULL);
  return 0;
}
