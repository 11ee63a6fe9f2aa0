"""Integration: the filer store on disk: entries, KV and the signature survive
a restart; every create acknowledged before a SIGKILL is found afterwards with
its event; event times keep rising across restarts; -store.sync; one process
per data dir ("store is locked"); a data dir of the previous version (only a
filer.signature file) keeps its signature."""

import os
import shutil
import signal
import tempfile
import threading
import time

import grpc

import fmtest
from fmtest import FILERMETAD, Server, run_cli
from test_store_client import Filer, clean_stop, file_entry, stop_and_dump, summaries


def _sig_bytes(sig):
    return sig.to_bytes(4, "big", signed=True)


def test_restart_keeps_entries_kv_signature_and_ts_order():
    tmp = tempfile.mkdtemp(prefix="fmtest-store-")
    data = os.path.join(tmp, "data")
    try:
        with Server(data_dir=data) as s:
            f = Filer(s.channel())
            sig = f.signature()
            a = file_entry("a", size=4, chunks=2, extended={"x": b"y"})
            f.create_ok("/keep/sub", a)
            f.kv_put(b"key", b"value")
            first_ts = f.lookup_response("/keep/sub", "a").log_ts_ns
            clean_stop(s)
        before = fmtest.log_dump(data)
        assert summaries(before) == [("create", "/keep", None), ("create", "/keep/sub", None),
                                     ("create", "/keep/sub/a", None)], summaries(before)
        with Server(data_dir=data) as s:
            f = Filer(s.channel())
            assert f.signature() == sig
            assert f.kv_get(b"filer.store.id").value == _sig_bytes(sig)
            assert f.lookup("/keep/sub", "a") == a
            assert f.names("/keep") == ["sub"]
            assert f.kv_get(b"key").value == b"value"
            r = f.lookup_response("/keep/sub", "a")
            assert r.log_ts_ns > 0 and first_ts > 0 and r.log_signature == sig, (r.log_ts_ns, first_ts)
            r = f.create_ok("/keep", file_entry("b"))
            assert r.metadata_event.ts_ns > before[-1][0], (r.metadata_event.ts_ns, before[-1][0])
            recs = stop_and_dump(s)
        assert recs[:3] == before and summaries(recs[3:]) == [("create", "/keep/b", None)], summaries(recs)
        assert all(a < b for a, b in zip([t for t, _ in recs], [t for t, _ in recs][1:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_sigkill_loses_no_acknowledged_create():
    sigkill_case([])


def test_sigkill_loses_no_acknowledged_create_with_store_sync():
    # the committer thread and its group fsync: acknowledged means fsynced
    sigkill_case(["-store.sync=true"])


def sigkill_case(args):
    writers = 8
    tmp = tempfile.mkdtemp(prefix="fmtest-store-")
    data = os.path.join(tmp, "data")
    try:
        with Server(data_dir=data, args=args) as s:
            acks = [[] for _ in range(writers)]
            errors = []
            stop = threading.Event()

            def writer(w):
                ch = grpc.insecure_channel(s.grpc_addr)
                f = Filer(ch, timeout=10)
                i = 0
                try:
                    while not stop.is_set():
                        r = f.create("/kill/w%d" % w, file_entry("f%06d" % i, size=i, chunks=1))
                        assert r.error == "" and r.error_code == 0, r
                        acks[w].append(("/kill/w%d" % w, "f%06d" % i, r.metadata_event.ts_ns))
                        i += 1
                except grpc.RpcError:
                    pass  # the server died under us: what was acknowledged counts
                except Exception as e:  # reported below
                    errors.append(repr(e))
                finally:
                    ch.close()

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            n_before_kill = sum(len(a) for a in acks)
            s.stop(sig=signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:3]
        acked = [x for a in acks for x in a]
        assert n_before_kill > 100 and len(acked) >= n_before_kill, (n_before_kill, len(acked))
        print("# %d creates acknowledged before SIGKILL" % len(acked))

        with Server(data_dir=data) as s:
            missing = []

            def checker(part):
                f = Filer(grpc.insecure_channel(s.grpc_addr))
                for d, n, _ in part:
                    if not f.exists(d + "/" + n):
                        missing.append(d + "/" + n)
                f.ch.close()

            threads = [threading.Thread(target=checker, args=(acked[i::4],)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not missing, "%d acknowledged creates lost, e.g. %r" % (len(missing), missing[:5])
            f = Filer(s.channel())
            # everything that exists (acknowledged or not), to hold against the events
            stored = {("/kill/w%d" % w, n) for w in range(writers) for n in f.names("/kill/w%d" % w)}
            after = f.create_ok("/kill", file_entry("after-restart")).metadata_event.ts_ns
            recs = stop_and_dump(s, parse=False)

        stamps = [ts for ts, _ in recs]
        assert all(a < b for a, b in zip(stamps, stamps[1:])), "ts not strictly increasing across the restart"
        assert stamps[-1] == after and after > max(stamps[:-1]), (after, max(stamps[:-1]))
        by_path = {}
        for ts, d in recs:
            e = d.get("eventNotification", {}).get("newEntry", {})
            by_path[(d.get("directory"), e.get("name"))] = ts
        lost = [(d, n) for d, n, ts in acked if by_path.get((d, n)) != ts]
        assert not lost, "%d acknowledged creates without their event, e.g. %r" % (len(lost), lost[:5])
        # entry and event are one batch: no entry without its event, no event without its entry
        evented = {k for k in by_path if k[0] is not None and k[0].startswith("/kill/w")}
        assert stored == evented, ("entries without events", sorted(stored - evented)[:5],
                                   "events without entries", sorted(evented - stored)[:5])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_store_sync_flag():
    tmp = tempfile.mkdtemp(prefix="fmtest-store-")
    data = os.path.join(tmp, "data")
    try:
        with Server(data_dir=data, args=["-store.sync=true"]) as s:
            f = Filer(s.channel())
            e = file_entry("f", size=1, chunks=1)
            r = f.create_ok("/sync/d", e)
            assert r.metadata_event.ts_ns > 0
            assert f.lookup("/sync/d", "f") == e
            e2 = file_entry("f", size=2)
            f.update("/sync/d", e2)
            f.mkfile("/sync/g")
            f.delete("/sync", "g")
            f.kv_put(b"k", b"v")
            assert f.lookup("/sync/d", "f") == e2
            s.stop(sig=signal.SIGKILL)
        with Server(data_dir=data) as s:
            f = Filer(s.channel())
            assert f.lookup("/sync/d", "f") == e2
            assert not f.exists("/sync/g")
            assert f.kv_get(b"k").value == b"v"
            recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/sync", None), ("create", "/sync/d", None),
                                   ("create", "/sync/d/f", None), ("update", "/sync/d/f", None),
                                   ("create", "/sync/g", None), ("delete", "/sync/g", None)], summaries(recs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_second_server_on_the_same_dir_is_refused():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/lock/a")
        port_file = os.path.join(s.tmp, "ports2")
        p = run_cli(FILERMETAD, "-dir", s.dir, "-port", "0", "-port.grpc", "0", "--port-file", port_file,
                    timeout=20)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert 0 < p.returncode < 128, (p.returncode, p.stderr)
        assert len(lines) == 1 and "store is locked" in lines[0], p.stderr
        assert not os.path.exists(port_file)
        # the first one is unharmed
        assert f.exists("/lock/a")
        f.mkfile("/lock/b")
        clean_stop(s)


def test_previous_version_signature_is_migrated():
    tmp = tempfile.mkdtemp(prefix="fmtest-store-")
    data = os.path.join(tmp, "data")
    try:
        os.makedirs(data)
        sig = -123456789
        with open(os.path.join(data, "filer.signature"), "wb") as fh:
            fh.write(_sig_bytes(sig))
        for _ in range(2):  # and it stays so across a restart
            with Server(data_dir=data) as s:
                f = Filer(s.channel())
                assert f.signature() == sig, (f.signature(), sig)
                assert f.kv_get(b"filer.store.id").value == _sig_bytes(sig)
                r = f.mkfile("/mig/a")
                assert list(r.metadata_event.event_notification.signatures) == [sig]
                assert r.log_signature == sig
                clean_stop(s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_new_store_signature_stable_and_distinct():
    with Server(keep_dir=True) as s:
        try:
            f = Filer(s.channel())
            sig = f.signature()
            assert sig != 0
            assert f.kv_get(b"filer.store.id").value == _sig_bytes(sig)
            clean_stop(s)
            with Server(data_dir=s.dir) as s2:
                assert Filer(s2.channel()).signature() == sig
            with Server() as s3:
                assert Filer(s3.channel()).signature() != sig
        finally:
            shutil.rmtree(s.tmp, ignore_errors=True)


if __name__ == "__main__":
    fmtest.main([
        test_restart_keeps_entries_kv_signature_and_ts_order,
        test_sigkill_loses_no_acknowledged_create,
        test_sigkill_loses_no_acknowledged_create_with_store_sync,
        test_store_sync_flag,
        test_second_server_on_the_same_dir_is_refused,
        test_previous_version_signature_is_migrated,
        test_new_store_signature_stable_and_distinct,
    ])
