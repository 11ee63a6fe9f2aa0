"""Integration: `filermeta bench etcd` with a small workload against a real filermetad and the etcd it starts
(skipped when no etcd is installed: Debian's etcd-server; tests never need it), checking the counts it reports
(every event caught up, none lost live), that it talks to etcd through our etcdserverpb subset, and that it leaves
no etcd process and no temporary directory behind, also when interrupted."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import fmtest
from fmtest import FILERMETA, Server, run_cli


def etcd_or_skip():
    if shutil.which("etcd") is None:
        raise fmtest.Skip("no etcd on PATH (Debian's etcd-server)")


def processes_mentioning(text):
    """Pids whose command line contains `text`."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def test_no_etcd_binary():
    p = run_cli(FILERMETA, "bench", "etcd", "-etcd", "/nonexistent/etcd")
    assert p.returncode == 1, p
    assert "etcd-server" in p.stderr and "/nonexistent/etcd" in p.stderr, p.stderr
    env = dict(os.environ, PATH="/nonexistent")
    p = subprocess.run([FILERMETA, "bench", "etcd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env, timeout=20)
    assert p.returncode == 1 and "on PATH" in p.stderr and "etcd-server" in p.stderr, p
    p = run_cli(FILERMETA, "bench", "etcd", "-subs", "1,x")
    assert p.returncode == 2 and "-subs" in p.stderr, p


def test_small_run():
    etcd_or_skip()
    with Server(args=["-metaLog.batchBehind", "1s"]) as srv, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        n, etcd_n, clients = 300, 200, 3
        p = subprocess.run([FILERMETA, "bench", "etcd", "-filer", srv.filer_addr, "-n", str(n), "-etcdN",
                            str(etcd_n), "-c", str(clients), "-subs", "1,3", "-rate", "100", "-duration", "500ms",
                            "-writers", "2", "-json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=240)
        assert p.returncode == 0, (p.returncode, p.stderr)
        r = json.loads(p.stdout)
        assert r["etcd_version"].startswith("3."), r
        assert r["n"] == n and r["etcd_n"] == etcd_n
        rows = {(c["system"], c["mode"]): c for c in r["catchup"]}
        # filermeta: every file, plus the c<i> directories the server created for them
        assert rows[("filermeta", "events")]["events"] == n + clients, rows
        assert rows[("filermeta", "batch")]["events"] == n + clients, rows
        assert rows[("filermeta", "events")]["messages"] == n + clients, rows
        assert rows[("etcd", "watch")]["events"] == etcd_n, rows
        for c in r["catchup"]:
            assert c["events_per_sec"] > 0, c
        assert r["catchup_ratio"]["events"] > 0
        lives = [(l["system"], l["subs"]) for l in r["live"]]
        assert lives == [("filermeta", 1), ("etcd", 1), ("filermeta", 3), ("etcd", 3)], lives
        for l in r["live"]:
            assert l["sent"] == 50 and l["expected"] == 50 * l["subs"], l
            assert l["received"] == l["expected"] and l["lost"] == 0 and l["duplicates"] == 0, l
            assert 0 < l["p50_ms"] <= l["p99_ms"] <= l["max_ms"], l
        # etcd was stopped and its directory removed
        assert os.listdir(tmp) == [], os.listdir(tmp)
        assert processes_mentioning(tmp) == []
        # the table form names both systems and the ratio
        p = subprocess.run([FILERMETA, "bench", "etcd", "-filer", srv.filer_addr, "-n", "50", "-etcdN", "50",
                            "-live=false"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "filermeta/etcd events/s" in p.stdout and "etcd N = 50" in p.stdout, p.stdout
        assert os.listdir(tmp) == []


def test_interrupted():
    etcd_or_skip()
    with Server() as srv, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        # more entries than it can write before the signal comes
        b = subprocess.Popen([FILERMETA, "bench", "etcd", "-filer", srv.filer_addr, "-n", "10000000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 60
            while not processes_mentioning(tmp + "/filermeta-etcd-") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert processes_mentioning(tmp + "/filermeta-etcd-"), "etcd never started"
            b.send_signal(signal.SIGINT)
            out, err = b.communicate(timeout=60)
        finally:
            if b.poll() is None:
                b.kill()
                b.wait()
        assert b.returncode == 128 + signal.SIGINT, (b.returncode, err)
        assert "interrupted" in err and "etcd stopped" in err, err
        assert processes_mentioning(tmp) == []
        assert os.listdir(tmp) == [], os.listdir(tmp)


if __name__ == "__main__":
    fmtest.main([test_no_etcd_binary, test_small_run, test_interrupted])
