"""Integration: the filermetad and filermeta command lines, as a user meets them:
help, version, bad flags, busy ports, unusable data dirs, and the client commands."""

import os
import stat
import tempfile
import urllib.request

import fmtest
from fmtest import FILERMETA, FILERMETAD, Server, run_cli


def one_clear_line(p):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode not in (0, None) and p.returncode > 0, (p.returncode, p.stderr)
    # no core dump, no signal death: an ordinary non-zero exit
    assert p.returncode < 128, p.returncode
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_help_and_version():
    p = run_cli(FILERMETAD, "-h")
    assert p.returncode == 0 and "-port.grpc" in p.stdout and "-dir" in p.stdout and "-port-file" in p.stdout, p
    p = run_cli(FILERMETAD, "--help")
    assert p.returncode == 0 and "Usage" in p.stdout
    p = run_cli(FILERMETAD, "-version")
    assert p.returncode == 0 and p.stdout.startswith("filermeta "), p
    p = run_cli(FILERMETA, "help")
    assert p.returncode == 0 and "ping" in p.stdout


def test_unknown_flag():
    line = one_clear_line(run_cli(FILERMETAD, "-nosuchflag"))
    assert "flag provided but not defined: -nosuchflag" in line, line
    line = one_clear_line(run_cli(FILERMETAD, "-port", "notanumber"))
    assert "-port" in line, line
    line = one_clear_line(run_cli(FILERMETAD, "-port", "70000"))
    assert "-port" in line, line
    line = one_clear_line(run_cli(FILERMETAD, "-dir"))
    assert "needs an argument" in line, line


def test_grpc_port_in_use():
    holder = fmtest.free_port_holder()
    try:
        port = holder.getsockname()[1]
        with tempfile.TemporaryDirectory() as d:
            p = run_cli(FILERMETAD, "-dir", d, "-port", "0", "-port.grpc", str(port))
            line = one_clear_line(p)
            assert "gRPC" in line and str(port) in line and "in use" in line, line
    finally:
        holder.close()


def test_http_port_in_use():
    holder = fmtest.free_port_holder()
    try:
        port = holder.getsockname()[1]
        with tempfile.TemporaryDirectory() as d:
            p = run_cli(FILERMETAD, "-dir", d, "-port", str(port), "-port.grpc", "0")
            line = one_clear_line(p)
            assert "HTTP" in line and str(port) in line and "in use" in line, line
    finally:
        holder.close()


def test_second_server_on_same_port_is_refused():
    with Server() as s:
        with tempfile.TemporaryDirectory() as d:
            p = run_cli(FILERMETAD, "-dir", d, "-port", "0", "-port.grpc", str(s.grpc_port))
            assert "in use" in one_clear_line(p)


def test_unusable_data_dir():
    with tempfile.TemporaryDirectory() as d:
        blocker = os.path.join(d, "file")
        open(blocker, "w").close()
        line = one_clear_line(run_cli(FILERMETAD, "-dir", os.path.join(blocker, "data"), "-port", "0",
                                      "-port.grpc", "0"))
        assert "data directory" in line and blocker in line, line
        if os.geteuid() != 0:  # root writes anywhere
            ro = os.path.join(d, "ro")
            os.mkdir(ro)
            os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR)
            line = one_clear_line(run_cli(FILERMETAD, "-dir", ro, "-port", "0", "-port.grpc", "0"))
            assert "not writable" in line or "cannot" in line, line


def test_corrupt_signature_file_is_not_replaced():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "filer.signature")
        with open(path, "wb") as f:
            f.write(b"\x01\x02")
        line = one_clear_line(run_cli(FILERMETAD, "-dir", d, "-port", "0", "-port.grpc", "0"))
        assert "filer.signature" in line and "corrupt" in line, line
        with open(path, "rb") as f:
            assert f.read() == b"\x01\x02"


def test_data_dir_created_and_port_file_written():
    with Server() as s:
        assert os.path.isdir(s.dir)
        assert open(s.port_file).read() == "grpc=%d\nhttp=%d\n" % (s.grpc_port, s.http_port)
        fmtest.assert_clean_stop(s)
        assert not os.path.exists(s.port_file), "port file left behind after a clean stop"


def test_healthz():
    with Server() as s:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % s.http_port, timeout=5) as r:
            assert r.status == 200 and r.read() == b"ok\n"
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/nope" % s.http_port, timeout=5)
            raise AssertionError("/nope answered 200")
        except urllib.error.HTTPError as e:
            assert e.code == 404


def test_filermeta_ping_and_config():
    with Server() as s:
        p = run_cli(FILERMETA, "ping", "-filer", s.filer_addr)
        assert p.returncode == 0, p
        vals = dict(l.split(": ", 1) for l in p.stdout.splitlines())
        assert int(vals["start_time_ns"]) > 0 and int(vals["remote_time_ns"]) == 0
        p = run_cli(FILERMETA, "config", "-filer", s.filer_addr)
        assert p.returncode == 0, p
        assert "dir_buckets: /buckets" in p.stdout and "signature: " in p.stdout, p.stdout
        p = run_cli(FILERMETA, "bench", "ping", "-filer", s.filer_addr, "-c", "4", "-n", "50", "-json")
        assert p.returncode == 0 and '"ops":200' in p.stdout and '"errors":0' in p.stdout, p



def test_filermeta_bench_live_fanout_raw():
    """The subscription benches run to completion and count what they claim (no speed is checked)."""
    import json
    with Server() as s:
        p = run_cli(FILERMETA, "bench", "live", "-filer", s.filer_addr, "-subs", "3", "-rate", "200",
                    "-duration", "500ms", "-json", timeout=60)
        assert p.returncode == 0, p
        r = json.loads(p.stdout)
        assert r["sent"] == 100 and r["expected"] == 300 and r["received"] == 300 and r["lost"] == 0, r
        assert r["received_per_subscriber"] == [100, 100, 100] and r["duplicates"] == 0, r
        assert r["latency"]["samples"] == 300 and r["latency"]["max_ms"] >= r["latency"]["p50_ms"] > 0, r
    with Server() as s:  # a fresh server: no reader thread of the streams above is still on its way out
        if s.proc is not None:
            # 12 idle streams over 4 connections, then 2 more receive events
            p = run_cli(FILERMETA, "bench", "fanout", "-filer", s.filer_addr, "-pid", str(s.proc.pid), "-subs", "14",
                        "-conns", "7", "-active", "2", "-idle", "200ms", "-rate", "100", "-duration", "300ms",
                        "-json", timeout=60)
            assert p.returncode == 0, p
            r = json.loads(p.stdout)
            assert r["subscribers"] == 14 and r["idle_subscribers"] == 12 and r["connections"] == 7, r
            # caught-up streams are served by the live set's one dispatcher: no thread per stream (a few of gRPC's
            # own may start for the new connections)
            assert r["server_before"]["threads"] <= r["server_idle"]["threads"] < r["server_before"]["threads"] + 14, r
            assert r["active"]["received"] == r["active"]["expected"] == 60 and r["active"]["lost"] == 0, r
        p = run_cli(FILERMETA, "bench", "fanout", "-filer", s.filer_addr, "-subs", "2")
        assert p.returncode == 2 and "-pid is required" in p.stderr, p
    p = run_cli(FILERMETA, "bench", "raw", "-n", "3000", "-size", "300", "-json", timeout=60)
    assert p.returncode == 0, p
    runs = {r["mode"]: r for r in map(json.loads, p.stdout.splitlines())}
    assert set(runs) == {"one", "hint", "batch"}, runs
    for r in runs.values():
        assert r["events"] == 3000 and r["complete"], r
    assert runs["one"]["messages"] == runs["hint"]["messages"] == 3000 and runs["batch"]["messages"] == 12, runs
    p = run_cli(FILERMETA, "bench", "raw", "-mode", "nope")
    assert p.returncode == 2 and "not one, hint, batch or all" in p.stderr, p

def test_filermeta_admin_commands():
    import json
    with Server() as s:
        fm = lambda *a: run_cli(FILERMETA, "-filer", s.filer_addr, *a)
        p = fm("put", "/docs/readme.txt", "--content", "hello")
        assert p.returncode == 0 and "created /docs/readme.txt" in p.stdout, p
        assert fm("put", "/docs/sub", "--dir").returncode == 0
        p = fm("ls", "/docs")
        assert p.returncode == 0 and p.stdout.split() == ["readme.txt", "sub/"], p
        p = fm("ls", "-l", "/docs")
        assert p.returncode == 0 and p.stdout.splitlines()[0].startswith("-0644"), p
        p = fm("stat", "/docs/readme.txt", "--json")
        assert p.returncode == 0, p
        got = json.loads(p.stdout)
        assert got["entry"]["name"] == "readme.txt" and got["entry"]["content"] == "aGVsbG8=", got
        p = fm("stat", "/docs/readme.txt")
        assert "size: 5" in p.stdout and "type: file" in p.stdout, p
        # errors: the server's words, non-zero exit
        p = fm("put", "/docs/readme.txt/x")
        assert p.returncode == 1 and "parent path is a file" in p.stderr, p
        p = fm("rm", "/docs")
        assert p.returncode == 1 and "fail to delete non-empty folder" in p.stderr, p
        p = fm("stat", "/nope")
        assert p.returncode == 1 and "filer: no entry is found in filer store" in p.stderr, p
        p = fm("put", "relative")
        assert p.returncode == 2, p
        assert fm("mv", "/docs", "/papers").returncode == 0
        assert fm("ls", "/papers").stdout.split() == ["readme.txt", "sub/"]
        assert fm("ls", "/docs").stdout == ""
        p = fm("rm", "-r", "/papers")
        assert p.returncode == 0 and "deleted /papers" in p.stdout, p
        assert fm("ls", "/").stdout == ""
        assert fm("kv", "put", "color", "blue").returncode == 0
        assert fm("kv", "get", "color").stdout == "blue\n"
        assert fm("kv", "put", "color", "").returncode == 0
        assert fm("kv", "get", "color").stdout == ""
        # the -filer flag also works after the command
        p = run_cli(FILERMETA, "ls", "-filer", s.filer_addr, "/")
        assert p.returncode == 0, p


def test_filermeta_errors():
    line = one_clear_line(run_cli(FILERMETA, "ping", "-filer", "nohostport"))
    assert "-filer" in line, line
    line = one_clear_line(run_cli(FILERMETA, "nosuchcommand"))
    assert "unknown command" in line, line
    holder = fmtest.free_port_holder()
    port = holder.getsockname()[1]
    holder.close()
    p = run_cli(FILERMETA, "ping", "-filer", "127.0.0.1:1.%d" % port)
    assert "UNAVAILABLE" in one_clear_line(p)


if __name__ == "__main__":
    fmtest.main([
        test_help_and_version,
        test_unknown_flag,
        test_grpc_port_in_use,
        test_http_port_in_use,
        test_second_server_on_same_port_is_refused,
        test_unusable_data_dir,
        test_corrupt_signature_file_is_not_replaced,
        test_data_dir_created_and_port_file_written,
        test_healthz,
        test_filermeta_ping_and_config,
        test_filermeta_bench_live_fanout_raw,
        test_filermeta_admin_commands,
        test_filermeta_errors,
    ])
