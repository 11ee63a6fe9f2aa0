/* Process samples from /proc (bench_proc.h). */
#include "bench_proc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/* /proc/<pid>/<what>, or /proc/self/<what> for pid 0. */
static FILE *open_proc(int pid, const char *what, char *err, size_t errlen)
{
  char path[64];
  if (pid == 0)
    snprintf(path, sizeof path, "/proc/self/%s", what);
  else
    snprintf(path, sizeof path, "/proc/%d/%s", pid, what);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
  return f;
}

int fm_bench_proc_read(int pid, fm_bench_proc *out, char *err, size_t errlen)
{
  *out = (fm_bench_proc){ 0 };
  FILE *f = open_proc(pid, "status", err, errlen);
  if (f == NULL)
    return FM_ENOTFOUND;
  char line[256];
  int found = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    long long v;
    if (sscanf(line, "VmRSS: %lld", &v) == 1)
      out->rss_kib = v, found++;
    else if (sscanf(line, "VmHWM: %lld", &v) == 1)
      out->hwm_kib = v, found++;
    else if (sscanf(line, "RssAnon: %lld", &v) == 1)
      out->anon_kib = v, found++;
    else if (sscanf(line, "Threads: %lld", &v) == 1)
      out->threads = v, found++;
  }
  fclose(f);
  if (found != 4) {
    snprintf(err, errlen, "/proc/%d/status: VmRSS, VmHWM, RssAnon or Threads missing", pid);
    return FM_EIO;
  }
  f = open_proc(pid, "stat", err, errlen);
  if (f == NULL)
    return FM_ENOTFOUND;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* the command name (field 2) may hold spaces and parentheses: the fields that follow start after the last ')' */
  const char *p = strrchr(buf, ')');
  unsigned long long utime, stime;
  if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
    snprintf(err, errlen, "/proc/%d/stat: cannot read utime and stime", pid);
    return FM_EIO;
  }
  long hz = sysconf(_SC_CLK_TCK);
  out->cpu_ms = (int64_t)((utime + stime) * 1000 / (unsigned long long)(hz > 0 ? hz : 100));
  return 0;
}
