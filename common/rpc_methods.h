/* The method table: full gRPC method paths ("/pkg.Service/Method") mapped to
 * handler descriptions. Filled once at start-up on the main thread, then read
 * without locks by the completion-queue threads. */
#ifndef FM_RPC_METHODS_H
#define FM_RPC_METHODS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fm_rpc_method fm_rpc_method; /* defined in rpc_server.h */
typedef struct fm_rpc_methods fm_rpc_methods;

/* Returns 0 and a table in *out (caller frees with fm_rpc_methods_free), or FM_ENOMEM. */
int fm_rpc_methods_new(fm_rpc_methods **out);
void fm_rpc_methods_free(fm_rpc_methods *t);

/*
 * Adds `m` (borrowed: it must outlive the table; handler tables are static).
 * Returns FM_EINVAL if m->path is not "/service/method", FM_EEXIST if the
 * path is already there.
 */
int fm_rpc_methods_add(fm_rpc_methods *t, const fm_rpc_method *m);

/* Adds each of methods[0..n-1] after setting its ctx (the handler tables are
 * static arrays in each service). Returns 0 or the first fm_rpc_methods_add error. */
int fm_rpc_methods_add_all(fm_rpc_methods *t, fm_rpc_method *methods, size_t n, void *ctx);

/* Finds the method for a path given as bytes (not NUL-terminated), or NULL. */
const fm_rpc_method *fm_rpc_methods_find(const fm_rpc_methods *t, const char *path, size_t len);

/* As fm_rpc_methods_find, but the method's index in path order (0 ..
 * fm_rpc_methods_count - 1), or -1. Indexes are stable once the table is full. */
long fm_rpc_methods_find_index(const fm_rpc_methods *t, const char *path, size_t len);

/* Number of methods, and the i-th in path order (NULL past the end). */
size_t fm_rpc_methods_count(const fm_rpc_methods *t);
const fm_rpc_method *fm_rpc_methods_at(const fm_rpc_methods *t, size_t i);

/* Number of distinct service names, and the i-th in byte order (borrowed,
 * valid until the table is freed). */
size_t fm_rpc_methods_service_count(const fm_rpc_methods *t);
const char *fm_rpc_methods_service(const fm_rpc_methods *t, size_t i);

/* True if `path` has the form "/service/method" with both parts non-empty. */
bool fm_rpc_methods_valid_path(const char *path);

#endif
