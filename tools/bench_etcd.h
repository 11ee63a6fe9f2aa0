/* `filermeta bench etcd`: the catch-up and live workloads against a filermetad
 * and an etcd 3.4 the bench starts itself, in one run. Called from tools/bench.c's
 * dispatch on the main thread; argv[0] is "etcd"; returns the exit code. */
#ifndef FM_BENCH_ETCD_H
#define FM_BENCH_ETCD_H

int fm_bench_cmd_etcd(int argc, char **argv);

#endif
