/* etcd as a child process of `filermeta bench etcd`: free loopback ports found
 * by binding port 0 and releasing it (etcd cannot be told to pick one), a
 * readiness probe through Maintenance.Status, retries when etcd exits during
 * start-up, and a stop that never leaves it running. */
#include "etcd_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "etcd_rpc.pb-c.h"
#include "rpc_client.h"

#define START_TRIES 3
#define START_TIMEOUT_NS (30 * 1000000000LL)
#define STOP_TIMEOUT_NS (10 * 1000000000LL)

struct fm_etcd {
  pid_t pid;
  char dir[256];    /* the temporary directory: data dirs and etcd.log */
  char target[64];  /* "127.0.0.1:<client port>" */
  char version[32]; /* as Status reported it */
};

int fm_etcd_find(const char *bin, char *path, size_t pathlen, char *err, size_t errlen)
{
  if (strchr(bin, '/') != NULL) {
    if (access(bin, X_OK) == 0) {
      snprintf(path, pathlen, "%s", bin);
      return 0;
    }
  } else {
    const char *p = getenv("PATH");
    if (p == NULL || *p == '\0')
      p = "/usr/local/bin:/usr/bin:/bin";
    while (*p != '\0') {
      size_t len = strcspn(p, ":");
      char cand[1024];
      if (len > 0 && snprintf(cand, sizeof cand, "%.*s/%s", (int)len, p, bin) < (int)sizeof cand &&
          access(cand, X_OK) == 0) {
        snprintf(path, pathlen, "%s", cand);
        return 0;
      }
      p += len;
      if (*p == ':')
        p++;
    }
  }
  snprintf(err, errlen,
           "no etcd binary \"%s\"%s: install Debian's etcd-server (sudo apt-get install etcd-server; ./dev bench etcd "
           "installs it) or pass -etcd /path/to/etcd",
           bin, strchr(bin, '/') != NULL ? "" : " on PATH");
  return FM_ENOTFOUND;
}

/* Two distinct free loopback ports: both sockets are bound at once, then closed. Another process may take one
 * before etcd binds it; the start is then retried. */
static int free_ports(int *a, int *b)
{
  int fds[2] = { -1, -1 }, ports[2] = { 0, 0 }, rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0)
      rc = FM_EADDR;
    else
      ports[i] = ntohs(sa.sin_port);
  }
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  *a = ports[0];
  *b = ports[1];
  return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void remove_tree(const char *dir)
{
  if (dir[0] != '\0')
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The last `lines` lines of etcd's log, newlines turned into " | ", into out. */
static void log_tail(const char *dir, int lines, char *out, size_t outlen)
{
  char path[300], buf[2048];
  out[0] = '\0';
  snprintf(path, sizeof path, "%s/etcd.log", dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
  long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
  size_t n = fseek(f, from, SEEK_SET) == 0 ? fread(buf, 1, sizeof buf - 1, f) : 0;
  fclose(f);
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  size_t start = n;
  for (int seen = 0; start > 0; start--)
    if (buf[start - 1] == '\n' && ++seen == lines)
      break;
  size_t o = 0;
  for (size_t i = start; i < n && o + 4 < outlen; i++) {
    if (buf[i] == '\n') {
      memcpy(out + o, " | ", 3);
      o += 3;
    } else {
      out[o++] = buf[i];
    }
  }
  out[o] = '\0';
}

/* SIGTERM, then SIGKILL after `timeout_ns`; reaps the child. */
static void stop_child(pid_t pid, int64_t timeout_ns)
{
  if (pid <= 0)
    return;
  kill(pid, SIGTERM);
  int64_t end = fm_mono_ns() + timeout_ns;
  while (fm_mono_ns() < end) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR))
      return;
    nanosleep(&(struct timespec){ 0, 20 * 1000000 }, NULL);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

/* Forks etcd with its log in <dir>/etcd.log. Everything the child needs is prepared before fork; the child only
 * makes async-signal-safe calls. */
static pid_t spawn(const char *path, const char *dir, int try, int client_port, int peer_port)
{
  char data[300], name[32], curl[64], purl[64], cluster[96], logpath[300];
  snprintf(data, sizeof data, "%s/data-%d", dir, try);
  snprintf(name, sizeof name, "bench%d", try);
  snprintf(curl, sizeof curl, "http://127.0.0.1:%d", client_port);
  snprintf(purl, sizeof purl, "http://127.0.0.1:%d", peer_port);
  snprintf(cluster, sizeof cluster, "%s=%s", name, purl);
  snprintf(logpath, sizeof logpath, "%s/etcd.log", dir);
  const char *argv[] = {
    path,
    "--name",
    name,
    "--data-dir",
    data,
    "--listen-client-urls",
    curl,
    "--advertise-client-urls",
    curl,
    "--listen-peer-urls",
    purl,
    "--initial-advertise-peer-urls",
    purl,
    "--initial-cluster",
    cluster,
    "--quota-backend-bytes",
    "8589934592", /* 8 GiB, etcd's maximum: 1M values must not raise NOSPACE */
    "--logger",
    "zap",
    "--log-outputs",
    "stderr",
    "--log-level",
    "warn",
    NULL,
  };
  sigset_t none; /* the bench may block signals for its own handling; etcd must get them */
  sigemptyset(&none);
  int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = logfd >= 0 && nullfd >= 0 ? fork() : -1;
  if (pid == 0) {
    /* etcd dies with the bench, even when the bench is killed */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    sigprocmask(SIG_SETMASK, &none, NULL);
    dup2(nullfd, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    execv(path, (char *const *)(uintptr_t)argv); /* execv does not change them */
    _exit(127);
  }
  if (logfd >= 0)
    close(logfd);
  if (nullfd >= 0)
    close(nullfd);
  return pid;
}

/* Asks Status until it answers (0), etcd exits (FM_EIO), or the start timeout passes (FM_ETIMEDOUT). Each try has
 * a channel of its own: a channel whose first connect failed waits out gRPC's reconnect backoff (seconds). */
static int wait_ready(fm_etcd *e)
{
  int64_t end = fm_mono_ns() + START_TIMEOUT_NS;
  while (fm_mono_ns() < end) {
    if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
      e->pid = 0;
      return FM_EIO;
    }
    fm_rpc_client *c = NULL;
    if (fm_rpc_client_new(e->target, &c) != 0)
      return FM_ENOMEM;
    Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
    ProtobufCMessage *reply = NULL;
    char err[FM_ERR_LEN];
    int rc = fm_rpc_client_unary(c, "/etcdserverpb.Maintenance/Status", &req.base,
                                 &etcdserverpb__status_response__descriptor, 1000, &reply, NULL, err, sizeof err);
    fm_rpc_client_free(c);
    if (rc == 0) {
      snprintf(e->version, sizeof e->version, "%s", ((Etcdserverpb__StatusResponse *)reply)->version);
      protobuf_c_message_free_unpacked(reply, NULL);
      return 0;
    }
    nanosleep(&(struct timespec){ 0, 50 * 1000000 }, NULL);
  }
  return FM_ETIMEDOUT;
}

int fm_etcd_start(const char *path, fm_etcd **out, char *err, size_t errlen)
{
  fm_etcd *e = calloc(1, sizeof *e);
  if (e == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(e->dir, sizeof e->dir, "%s/filermeta-etcd-XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
  if (mkdtemp(e->dir) == NULL) {
    snprintf(err, errlen, "cannot create a temporary directory %s: %s", e->dir, strerror(errno));
    free(e);
    return FM_EIO;
  }
  int rc = FM_EIO;
  char tail[FM_ERR_LEN * 2];
  for (int try = 0; try < START_TRIES; try++) {
    int client_port, peer_port;
    if (free_ports(&client_port, &peer_port) != 0) {
      snprintf(err, errlen, "cannot find free loopback ports: %s", strerror(errno));
      rc = FM_EADDR;
      break;
    }
    snprintf(e->target, sizeof e->target, "127.0.0.1:%d", client_port);
    e->pid = spawn(path, e->dir, try, client_port, peer_port);
    if (e->pid < 0) {
      snprintf(err, errlen, "cannot start %s: %s", path, strerror(errno));
      e->pid = 0;
      rc = FM_EIO;
      break;
    }
    rc = wait_ready(e);
    if (rc == 0) {
      *out = e;
      return 0;
    }
    log_tail(e->dir, 2, tail, sizeof tail);
    if (rc == FM_EIO) { /* exited: perhaps a port was taken meanwhile; try others */
      snprintf(err, errlen, "etcd exited during start-up (%d tries); its log ends: %s", try + 1,
               tail[0] != '\0' ? tail : "(empty)");
      continue;
    }
    snprintf(err, errlen, "etcd did not answer Status within %d s; its log ends: %s",
             (int)(START_TIMEOUT_NS / 1000000000), tail);
    break;
  }
  stop_child(e->pid, STOP_TIMEOUT_NS);
  remove_tree(e->dir);
  free(e);
  return rc;
}

const char *fm_etcd_target(const fm_etcd *e)
{
  return e->target;
}

const char *fm_etcd_version(const fm_etcd *e)
{
  return e->version;
}

pid_t fm_etcd_pid(const fm_etcd *e)
{
  return e->pid;
}

void fm_etcd_stop(fm_etcd *e)
{
  if (e == NULL)
    return;
  stop_child(e->pid, STOP_TIMEOUT_NS);
  remove_tree(e->dir);
  free(e);
}
