/* Process-wide gRPC core set-up shared by the server and client layers:
 * grpc_init/grpc_shutdown pairing and routing gRPC's own log lines into
 * fm_log. Called by rpc_server.c and rpc_client.c; any thread. */
#ifndef FM_RPC_CORE_H
#define FM_RPC_CORE_H

/* grpc_init(), with gRPC core's logs sent to fm_log at debug level (-v 3):
 * the conditions they describe reach users through our own messages. */
void fm_rpc_core_init(void);

/* grpc_shutdown(); pairs with fm_rpc_core_init. */
void fm_rpc_core_shutdown(void);

#endif
