"""Integration: the follow library (common/follow.h) against the real server, driven by the
follow_probe test program. Events, batch and refs mode deliver exactly what a plain
subscription delivers (history from log files of several filer ids, then live); the filter
hook; a server killed and restarted mid-follow costs no event and repeats none; server
errors are surfaced (ALREADY_EXISTS at once, an unreachable filer after the retries);
SIGTERM and the callback stop a follow; a newer epoch ends it. `filermeta bench catchup`, which
follows with the library, counts every event once and in order."""

import contextlib
import json
import os
import signal
import subprocess
import threading
import time

import grpc

from fmtest import FILERMETA, Server, msg, run_cli
from test_store_client import Filer, file_entry
from test_subscribe import Req, create_many, subscribe
from test_subscribe_refs import FLAGS, data_dir, history

PROBE = os.environ.get("FOLLOW_PROBE", "")
Resp = lambda: msg("filer_pb.SubscribeMetadataResponse")  # noqa: E731


def parse(lines):
    """(events [(ts, SubscribeMetadataResponse)], reconnect lines, END fields as a dict or None)."""
    events, reconnects, end = [], [], None
    for line in lines:
        if line.startswith("E "):
            _, ts, hexed = line.split(" ", 2)
            events.append((int(ts), Resp().FromString(bytes.fromhex(hexed.strip()))))
        elif line.startswith("R "):
            reconnects.append(line)
        elif line.startswith("END "):
            head, _, errmsg = line.rstrip("\n").partition(" err=")
            end = dict(kv.split("=", 1) for kv in head.split()[1:])
            end["err"] = errmsg
    return events, reconnects, end


def run_probe(*args, timeout=90):
    p = subprocess.run([PROBE] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    events, reconnects, end = parse(p.stdout.splitlines())
    assert end is not None, "no END line; exit %d, stderr: %s" % (p.returncode, p.stderr[-2000:])
    return p.returncode, events, reconnects, end


def truth(s, prefix, since=0, until=0):
    """The events a plain python subscription gets for the same range."""
    out = []
    for r in subscribe(s.channel(), Req(client_name="truth", path_prefix=prefix, since_ns=since, until_ns=until,
                                        client_supports_batching=True), timeout=60):
        for e in [r] + list(r.events):
            n = e.event_notification
            if e.HasField("event_notification") and (n.HasField("new_entry") or n.HasField("old_entry")):
                top = Resp()()
                top.CopyFrom(e)
                del top.events[:]
                out.append(top)
    return out


def same(got, want, what):
    assert [t for t, _ in got] == [e.ts_ns for e in want], "%s: %d events vs %d; first ts differ at %s" % (
        what, len(got), len(want),
        next((i for i, (a, b) in enumerate(zip([t for t, _ in got], [e.ts_ns for e in want])) if a != b), None))
    for (_, a), b in zip(got, want):
        assert a == b, "%s: event differs:\n%s\nvs\n%s" % (what, a, b)


def test_modes_agree_with_a_plain_subscription():
    with data_dir() as d, contextlib.ExitStack() as stack:
        history(d, 2, 400)  # two runs: log files of two filer ids
        s = stack.enter_context(Server(data_dir=d, args=FLAGS))
        f = Filer(s.channel())
        live = [f.create_ok("/r/live", file_entry("l%d" % i)).metadata_event for i in range(30)]
        f.mkdir("/elsewhere")
        f.rename("/r/live", "l0", "/elsewhere", "l0")  # seen from the source side only
        until = f.create_ok("/o", file_entry("last")).metadata_event.ts_ns
        for prefix in ("/", "/r/"):
            want = truth(s, prefix, until=until)
            assert len(want) > 800
            for mode in ("events", "batch", "refs"):
                rc, got, _, end = run_probe("-filer", s.filer_addr, "-mode", mode, "-prefix", prefix, "-until", until)
                assert rc == 0 and end["rc"] == "0" and end["stopped"] == "0", end
                same(got, want, "%s %s" % (mode, prefix))
                if mode == "refs":
                    assert int(end["refs"]) >= 2, "refs mode read no log files: %s" % end
                else:
                    assert end["refs"] == "0"
        assert any(e.event_notification.new_entry.name == "l29" for _, e in got)
        # from the middle of the persisted history, in refs mode: the same as a plain subscription
        since = want[len(want) // 3].ts_ns
        rc, got, _, end = run_probe("-filer", s.filer_addr, "-mode", "refs", "-prefix", "/r/", "-since", since,
                                    "-until", live[10].ts_ns)
        assert rc == 0, end
        same(got, truth(s, "/r/", since=since, until=live[10].ts_ns), "refs from the middle")


def test_filter_hook_and_directories():
    with Server() as s:
        f = Filer(s.channel())
        f.create_ok("/h", file_entry("keep1"))
        f.create_ok("/h", file_entry("drop"))
        f.create_ok("/h/sub", file_entry("keep2"))
        until = f.create_ok("/h", file_entry("keep3")).metadata_event.ts_ns
        rc, got, _, end = run_probe("-filer", s.filer_addr, "-prefix", "/h/", "-reject", "drop", "-until", until)
        assert rc == 0, end
        names = [e.event_notification.new_entry.name for _, e in got]
        assert names == ["keep1", "sub", "keep2", "keep3"], names
        # the resume point passes the refused event too
        assert int(end["resume"]) == until
        rc, got, _, end = run_probe("-filer", s.filer_addr, "-prefix", "/nothing", "-dir", "/h/sub", "-mode", "batch",
                                    "-until", until)
        assert [e.event_notification.new_entry.name for _, e in got] == ["keep2"], end


def follow_through_a_restart(d, mode, count):
    """Starts the server on `d`, follows /r/ with the probe, kills the server (SIGKILL) while the probe is
    mid-follow, restarts it on the same ports, writes more, and returns (probe events, reconnect lines, END,
    the server) once `count` events arrived."""
    s = Server(data_dir=d, args=FLAGS).start()
    http, grpc_port = s.http_port, s.grpc_port
    p = subprocess.Popen([PROBE, "-filer", s.filer_addr, "-mode", mode, "-prefix", "/r/", "-count", str(count)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        # the probe blocks on its full pipe while we do not read: it stays mid-follow during the kill
        for _ in range(200):
            lines.append(p.stdout.readline())
        s.proc.kill()
        s.proc.wait()
        s.close()
        s = Server(data_dir=d, args=FLAGS + ["-port", str(http), "-port.grpc", str(grpc_port)]).start()
        assert s.grpc_port == grpc_port
        create_many(s, "/r/after-" + mode, 100)

        def drain():
            for line in p.stdout:
                lines.append(line)

        t = threading.Thread(target=drain)
        t.start()
        p.wait(timeout=120)
        t.join()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    events, reconnects, end = parse(lines)
    assert end is not None and p.returncode == 0, (p.returncode, end, p.stderr.read()[-2000:])
    return events, reconnects, end, s


def test_kill_and_restart_mid_follow_no_gap_no_duplicate():
    with data_dir() as d:
        history(d, 2, 500)
        total = None
        for mode in ("refs", "events"):
            with Server(data_dir=d, args=FLAGS) as s:
                before = len(truth(s, "/r/", until=time.time_ns()))
            count = before + 100 + 1  # the 100 written after the restart, and their new directory
            events, reconnects, end, s = follow_through_a_restart(d, mode, count)
            try:
                assert reconnects, "the probe never reconnected: %s" % end
                assert end["stopped"] == "1"
                want = truth(s, "/r/", until=events[-1][0])
                same(events, want, "%s through a restart" % mode)
                total = len(want)
            finally:
                s.close()
        assert total and total > 1000


def test_errors_are_surfaced():
    with Server() as s:
        # a live follower with client id 5, epoch 2
        live = subprocess.Popen([PROBE, "-filer", s.filer_addr, "-clientId", "5", "-epoch", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 10
            while True:  # until it is registered
                lst = s.channel().unary_unary(
                    "/filer_pb.SeaweedFiler/ListMetadataSubscribers",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=msg("filer_pb.ListMetadataSubscribersResponse").FromString)(
                        msg("filer_pb.ListMetadataSubscribersRequest")(), timeout=5)
                if any(x.client_id == 5 for x in lst.subscribers):
                    break
                assert time.time() < deadline, "the live probe did not register"
                time.sleep(0.05)
            # an older epoch is refused: ALREADY_EXISTS (6), with upstream's text, and not retried
            rc, _, reconnects, end = run_probe("-filer", s.filer_addr, "-clientId", "5", "-epoch", "1")
            assert rc == 1 and end["status"] == "6" and not reconnects, end
            assert "duplicated subscription detected for client follow_probe@" in end["err"], end
            assert end["err"].endswith(" id 5"), end
            # a newer epoch replaces the live one, which ends with OK (not stopped, not an error)
            newer = subprocess.Popen([PROBE, "-filer", s.filer_addr, "-clientId", "5", "-epoch", "3"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, _ = live.communicate(timeout=20)
                _, _, end = parse(out.splitlines())
                assert live.returncode == 0 and end["rc"] == "0" and end["stopped"] == "0", end
            finally:
                newer.send_signal(signal.SIGTERM)
                out, _ = newer.communicate(timeout=20)
                _, _, end = parse(out.splitlines())
                assert newer.returncode == 0 and end["stopped"] == "1", end
        finally:
            if live.poll() is None:
                live.kill()
                live.wait()
        http, grpc_port = s.http_port, s.grpc_port
        s.stop()
    # nobody listens any more: UNAVAILABLE is retried, then given up
    rc, _, reconnects, end = run_probe("-filer", "127.0.0.1:%d.%d" % (http, grpc_port), "-retries", "2")
    assert rc == 1 and end["rc"] == "-14" and len(reconnects) == 2, end
    assert "gave up after 3 attempts" in end["err"] and "UNAVAILABLE" in end["err"], end
    # a bad request never reaches the server
    rc, _, _, end = run_probe("-filer", "127.0.0.1:1.2", "-prefix", "relative")
    assert rc == 2 and "path_prefix" in end["err"], end
    rc, _, _, end = run_probe("-filer", "nocolon")
    assert rc == 2 and "filer address" in end["err"], end


def test_stop_by_signal_and_by_callback():
    with Server() as s:
        f = Filer(s.channel())
        for i in range(5):
            f.create_ok("/s", file_entry("f%d" % i))
        rc, got, _, end = run_probe("-filer", s.filer_addr, "-prefix", "/s/", "-count", "3")
        assert rc == 0 and end["stopped"] == "1" and len(got) == 3, end
        assert int(end["resume"]) == got[-1][0]
        p = subprocess.Popen([PROBE, "-filer", s.filer_addr, "-prefix", "/s/", "-mode", "refs"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = p.stdout.readline()
        assert first.startswith("E "), first
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=20)
        _, _, end = parse([first] + out.splitlines())
        assert p.returncode == 0 and end["stopped"] == "1" and end["rc"] == "0", end


def test_bench_catchup_counts_every_event():
    """`filermeta bench catchup` in refs and batch mode: every event up to its start once, in order, with the log-file
    bytes it read and its CPU time."""
    with data_dir() as d, contextlib.ExitStack() as stack:
        history(d, 1, 300)
        s = stack.enter_context(Server(data_dir=d, args=FLAGS))
        until = Filer(s.channel()).create_ok("/o", file_entry("last")).metadata_event.ts_ns
        want = len(truth(s, "/", until=until))
        assert want > 300
        for mode in ("refs", "batch"):
            p = run_cli(FILERMETA, "bench", "catchup", "-filer", s.filer_addr, "-mode", mode, "-json", timeout=60)
            assert p.returncode == 0, p.stderr
            r = json.loads(p.stdout)
            assert r["mode"] == mode and r["events"] == want and r["in_order"] is True, r
            assert r["cpu_seconds"] > 0 and r["events_per_sec"] > 0, r
            if mode == "refs":
                assert r["refs"] >= 1 and r["ref_bytes"] > 0, r
            else:
                assert r["refs"] == 0, r


if __name__ == "__main__":
    import fmtest
    fmtest.main([
        test_modes_agree_with_a_plain_subscription,
        test_filter_hook_and_directories,
        test_kill_and_restart_mid_follow_no_gap_no_duplicate,
        test_errors_are_surfaced,
        test_stop_by_signal_and_by_callback,
        test_bench_catchup_counts_every_event,
    ])
