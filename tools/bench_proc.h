/* Resident memory, threads and CPU time of a process, read from /proc/<pid>/status and /proc/<pid>/stat: how the
 * bench workloads watch the server they measure (and themselves). Any thread; no state. */
#ifndef FM_BENCH_PROC_H
#define FM_BENCH_PROC_H

#include <stddef.h>
#include <stdint.h>

typedef struct fm_bench_proc {
  int64_t rss_kib;  /* VmRSS: resident now (anonymous + file-backed) */
  int64_t hwm_kib;  /* VmHWM: the kernel's peak of VmRSS */
  int64_t anon_kib; /* RssAnon */
  int64_t threads;  /* Threads */
  int64_t cpu_ms;   /* utime + stime */
} fm_bench_proc;

/* Samples process `pid` (0: this process). Returns 0, or FM_ENOTFOUND / FM_EIO with `err` filled. */
int fm_bench_proc_read(int pid, fm_bench_proc *out, char *err, size_t errlen);

#endif
