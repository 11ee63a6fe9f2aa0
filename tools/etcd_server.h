/* An etcd server run by `filermeta bench etcd` as its child: one member on a
 * temporary data dir, client and peer URLs on free loopback ports, stopped
 * (SIGTERM, then SIGKILL) and its dir removed by fm_etcd_stop. Main thread. */
#ifndef FM_ETCD_SERVER_H
#define FM_ETCD_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct fm_etcd fm_etcd;

/*
 * Finds the etcd binary: `bin` itself when it contains a '/', else `bin` on
 * PATH. Returns 0 with the path in `path`, or FM_ENOTFOUND with `err` saying
 * how to install it.
 */
int fm_etcd_find(const char *bin, char *path, size_t pathlen, char *err, size_t errlen);

/*
 * Starts etcd (`path` from fm_etcd_find) and waits until it answers
 * Maintenance.Status; when it exits first (e.g. a port taken meanwhile) it is
 * retried on other ports, 3 tries in all. Returns 0 and *out (caller stops it
 * with fm_etcd_stop), or an FM_E* code with `err` filled (the tail of etcd's
 * log included); nothing is left running or on disk then.
 */
int fm_etcd_start(const char *path, fm_etcd **out, char *err, size_t errlen);

/* The gRPC target ("127.0.0.1:port"), the version etcd reported, and its pid;
 * borrowed, valid until fm_etcd_stop. */
const char *fm_etcd_target(const fm_etcd *e);
const char *fm_etcd_version(const fm_etcd *e);
pid_t fm_etcd_pid(const fm_etcd *e);

/* SIGTERM, waits up to 10 s, then SIGKILL; removes the data dir and frees e.
 * NULL is a no-op. */
void fm_etcd_stop(fm_etcd *e);

#endif
