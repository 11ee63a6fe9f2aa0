/* grpc.health.v1.Health: Check and Watch over the services in the method table.
 * Registered by main.c; handlers run on completion-queue threads. */
#ifndef FM_HEALTH_SERVICE_H
#define FM_HEALTH_SERVICE_H

#include "rpc_methods.h"

/* Adds Check and Watch to `t`; they answer for the services registered in `t`
 * (borrowed, must outlive the server) and for "" (the whole server). */
int fm_health_service_register(fm_rpc_methods *t);

#endif
