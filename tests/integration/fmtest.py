"""Harness for filermeta integration tests.

Starts the real filermetad on port 0 with a temporary data dir (it writes its
bound ports to --port-file), builds message classes at run time from the
descriptor set the build produced (no generated stubs), and reports results
as TAP so that meson counts each case. FM_TEST_SERVER=host:grpcport points
the tests that need only "a server" at one already running (e.g. under gdb).

Run with /usr/bin/python3: Debian's grpcio and protobuf live there.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FILERMETAD = os.environ.get("FILERMETAD", "")
TEST_SERVER = os.environ.get("FM_TEST_SERVER", "")  # "host:grpcport[,httpport]" of a server you started
FILERMETA = os.environ.get("FILERMETA", "")
DESCRIPTOR_SET = os.environ.get("FM_DESCRIPTOR_SET", "")
START_TIMEOUT = 15.0

# The first line of every report the sanitizer builds print (./dev test --sanitize, --tsan).
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


def sanitizer_report(text):
    """The sanitizer report in a program's output (from its first line on), or None."""
    starts = [text.find(m) for m in SANITIZER_MARKS if m in text]
    if not starts:
        return None
    start = text.rfind("\n", 0, min(starts)) + 1
    return text[start:start + 8000]

# ---------------------------------------------------------------- messages

_pool = descriptor_pool.DescriptorPool()
_factory = message_factory.MessageFactory(_pool)
_loaded = False


def _load():
    global _loaded
    if _loaded:
        return
    if not DESCRIPTOR_SET:
        raise RuntimeError("FM_DESCRIPTOR_SET is not set (run the tests through meson)")
    with open(DESCRIPTOR_SET, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    for fd in fds.file:
        _pool.Add(fd)
    _loaded = True


def msg(name):
    """The message class for a fully-qualified name, e.g. msg('filer_pb.PingRequest')."""
    _load()
    return _factory.GetPrototype(_pool.FindMessageTypeByName(name))


def file_proto(name):
    """The FileDescriptorProto our build compiled for `name` (e.g. 'filer.proto')."""
    _load()
    fdp = descriptor_pb2.FileDescriptorProto()
    _pool.FindFileByName(name).CopyToProto(fdp)
    return fdp


def unary(channel, path, request, response_type, timeout=10.0, **kw):
    """Calls a unary method; returns the decoded response or raises grpc.RpcError."""
    call = channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=msg(response_type).FromString,
    )
    return call(request, timeout=timeout, **kw)


def raw_unary(channel, path, payload, timeout=10.0):
    """Sends raw bytes as the request; returns raw bytes."""
    return channel.unary_unary(path)(payload, timeout=timeout)


def stream(channel, path, request, response_type, timeout=30.0):
    """Calls a server-streaming method; returns the list of decoded responses
    once the stream ended with OK, or raises grpc.RpcError."""
    call = channel.unary_stream(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=msg(response_type).FromString,
    )
    return list(call(request, timeout=timeout))


def raw_stream(channel, path, payload, timeout=30.0):
    """Sends raw bytes to a server-streaming method; returns the responses as raw bytes."""
    return list(channel.unary_stream(path)(payload, timeout=timeout))


# ---------------------------------------------------------------- server

class Server:
    """A filermetad process on free ports and a private data dir.

    Use as a context manager; the process is always gone afterwards (SIGKILL
    if it did not stop). `stop()` sends SIGTERM and returns the exit code.
    """

    def __init__(self, data_dir=None, args=(), keep_dir=False, env=None):
        # Tests that need no particular flags or data dir may use a server
        # started by hand (FM_TEST_SERVER), e.g. one running under gdb.
        self.attached = bool(TEST_SERVER) and data_dir is None and not args and not env
        if not FILERMETAD and not self.attached:
            raise RuntimeError("FILERMETAD is not set (run the tests through meson)")
        self.tmp = tempfile.mkdtemp(prefix="fmtest-")
        self.dir = data_dir or os.path.join(self.tmp, "data")
        self.port_file = os.path.join(self.tmp, "ports")
        self.log_path = os.path.join(self.tmp, "filermetad.log")
        self.args = list(args)
        self.keep_dir = keep_dir
        self.env = env  # variables added to (or replacing) ours for the server process
        self.proc = None
        self.grpc_port = self.http_port = None
        self._channels = []

    def start(self):
        self.log = open(self.log_path, "w+b")  # read back by output()
        if self.attached:
            hostport, _, http = TEST_SERVER.partition(",")
            self.grpc_port = int(hostport.rsplit(":", 1)[1])
            self.http_port = int(http) if http else self.grpc_port - 10000
            return self
        cmd = [FILERMETAD, "-dir", self.dir, "-port", "0", "-port.grpc", "0",
               "--port-file", self.port_file] + self.args
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if os.path.exists(self.port_file):
                ports = dict(line.split("=", 1) for line in open(self.port_file).read().split())
                self.grpc_port = int(ports["grpc"])
                self.http_port = int(ports["http"])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("filermetad exited with %d at start:\n%s" % (self.proc.returncode, self.output()))
            time.sleep(0.02)
        raise RuntimeError("filermetad did not write its port file in %.0f s" % START_TIMEOUT)

    @property
    def grpc_addr(self):
        if self.attached:
            return TEST_SERVER.partition(",")[0]
        return "127.0.0.1:%d" % self.grpc_port

    @property
    def filer_addr(self):
        """The address in SeaweedFS form for our CLI: host:httpPort.grpcPort."""
        host = self.grpc_addr.rsplit(":", 1)[0]
        return "%s:%d.%d" % (host, self.http_port, self.grpc_port)

    def channel(self):
        ch = grpc.insecure_channel(self.grpc_addr)
        self._channels.append(ch)
        return ch

    def close_channels(self):
        """Closes the channels made by channel(). A stop then need not wait
        (about 2 s) for the server to end idle client connections."""
        for ch in self._channels:
            ch.close()
        self._channels = []

    def output(self):
        """Everything the server printed so far. Read through the open log file, so it
        works also after a test with keep_dir=True removed the temp dir itself."""
        try:
            self.log.flush()
        except Exception:
            pass
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals the server and waits; returns (exit code, seconds taken).
        Client channels stay open until the server is gone, so that open
        streams see how the server ends them."""
        if self.attached:
            raise Skip("stops the server; not done to FM_TEST_SERVER")
        if self.proc is None or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None, 0.0)
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("filermetad did not exit within %.1f s of %s" % (timeout, sig.name))
        took = time.monotonic() - t0
        for ch in self._channels:
            ch.close()
        self._channels = []
        return self.proc.returncode, took

    def close(self, check=True):
        """Kills the server if it still runs and removes its temp dir. With check, a
        sanitizer report in its output (e.g. ThreadSanitizer halting it mid-test, or
        one printed while it ran on) fails the test even if every call got an answer."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        report = sanitizer_report(self.output()) if check and self.proc is not None else None
        if not self.keep_dir:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if report:
            raise AssertionError("filermetad (exit code %r) printed a sanitizer report:\n%s"
                                 % (self.proc.returncode, report))

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close(check=False)  # start() already raised with the server's output
            raise

    def __exit__(self, *exc):
        for ch in self._channels:
            ch.close()
        self.close()
        return False


def assert_clean_stop(server, within=5.0):
    """SIGTERM must end the server with exit 0 (under the sanitizers: and no report) in time."""
    code, took = server.stop(timeout=within + 5)
    out = server.output()
    assert code == 0, "exit code %r after SIGTERM; output:\n%s" % (code, out[-4000:])
    assert took <= within, "took %.2f s to stop (limit %.1f s)" % (took, within)
    report = sanitizer_report(out)
    assert report is None, report


def proc_status(pid):
    """/proc/<pid>/status as a dict of strings (VmRSS: '1234 kB', Threads: '17', ...)."""
    with open("/proc/%d/status" % pid) as f:
        return dict((k, v.strip()) for k, _, v in (line.partition(":") for line in f))


def is_sanitized(binary=None):
    """Whether a program (default: FILERMETAD) is built with AddressSanitizer or ThreadSanitizer: it needs their
    runtime library (whose allocators keep freed memory, and TSan's shadow memory grows with it)."""
    with open(binary or FILERMETAD, "rb") as f:
        data = f.read()
    return b"libasan.so" in data or b"libtsan.so" in data


def free_port_holder():
    """A listening socket on a free loopback port, so that the port is in use."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def run_cli(*args, timeout=20.0):
    """Runs a program; returns CompletedProcess with text output. A sanitizer report
    on its stderr fails the test, whatever exit code the test expects."""
    p = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    report = sanitizer_report(p.stderr)
    assert report is None, "%s printed a sanitizer report:\n%s" % (os.path.basename(args[0]), report)
    return p


def log_dump(data_dir, parse=True, timeout=120.0, full=False):
    """Every event persisted in `data_dir` (log files, then write-ahead records),
    from `filermeta log -dir D -json` (the server must be stopped: LevelDB admits
    one process). Returns [(ts_ns, SubscribeMetadataResponse)], or with
    parse=False [(ts_ns, dict of the event's canonical JSON)], which is faster;
    with full=True the whole JSON line (dict with tsNs, event, in, offset)."""
    import json
    from google.protobuf import json_format
    p = run_cli(FILERMETA, "log", "-dir", data_dir, "-json", timeout=timeout)
    assert p.returncode == 0, "filermeta log exited %d: %s" % (p.returncode, p.stderr[-2000:])
    cls = msg("filer_pb.SubscribeMetadataResponse")
    out = []
    for line in p.stdout.splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        if full:
            out.append(d)
            continue
        ev = json_format.ParseDict(d["event"], cls()) if parse else d["event"]
        out.append((int(d["tsNs"]), ev))
    return out


# ---------------------------------------------------------------- TAP runner

def main(tests):
    """Runs `tests` (functions), printing TAP. A test may raise Skip(reason)."""
    print("TAP version 13")
    print("1..%d" % len(tests))
    sys.stdout.flush()
    failed = 0
    for i, t in enumerate(tests, 1):
        name = t.__name__
        t0 = time.monotonic()
        try:
            t()
            print("ok %d - %s (%.2fs)" % (i, name, time.monotonic() - t0))
        except Skip as s:
            print("ok %d - %s # SKIP %s" % (i, name, s))
        except BaseException as e:  # noqa: B036 - report everything as a failure
            failed += 1
            print("not ok %d - %s" % (i, name))
            for line in traceback.format_exception(type(e), e, e.__traceback__):
                for sub in line.rstrip("\n").split("\n"):
                    print("# " + sub)
        sys.stdout.flush()
    sys.exit(1 if failed else 0)


class Skip(Exception):
    pass
