"""Integration: SubscribeMetadata / SubscribeLocalMetadata / ListMetadataSubscribers
against the real server (PROTOCOL.md section 5): history and live events in ts
order exactly once, path filters, since/until, batching, catch-up through a
tiny buffer from the log files, client epochs, bad requests, retention's
OUT_OF_RANGE, heartbeats, shutdown with open streams."""

import os
import shutil
import struct
import tempfile
import threading
import time
import urllib.request

import grpc

import fmtest
from fmtest import Server, msg, unary
from test_store_client import Filer, file_entry

SVC = "/filer_pb.SeaweedFiler/"
Req = lambda **kw: msg("filer_pb.SubscribeMetadataRequest")(**kw)  # noqa: E731


def subscribe(ch, req, timeout=10.0, local=False):
    call = ch.unary_stream(SVC + ("SubscribeLocalMetadata" if local else "SubscribeMetadata"),
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=msg("filer_pb.SubscribeMetadataResponse").FromString)
    return call(req, timeout=timeout)


def events_of(resp):
    """The events a response carries: the top-level one (if any) and the batch's."""
    out = []
    if resp.HasField("event_notification"):
        top = msg("filer_pb.SubscribeMetadataResponse")()
        top.CopyFrom(resp)
        del top.events[:]
        out.append(top)
    out.extend(resp.events)
    return out


def collect(it, n, is_event=lambda e: e.HasField("event_notification")):
    """Reads responses until n events arrived; returns (events, messages)."""
    got, msgs = [], 0
    for r in it:
        msgs += 1
        got.extend(e for e in events_of(r) if is_event(e) and (e.event_notification.HasField("new_entry")
                                                                or e.event_notification.HasField("old_entry")))
        if len(got) >= n:
            break
    return got, msgs


def create_many(s, directory, n, threads=4):
    acks = []
    lock = threading.Lock()

    def run(k):
        ch = grpc.insecure_channel(s.grpc_addr)
        f = Filer(ch)
        for i in range(k, n, threads):
            r = f.create_ok(directory, file_entry("f%06d" % i))
            with lock:
                acks.append(r.metadata_event)
        ch.close()

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sorted(acks, key=lambda e: e.ts_ns)


def test_history_then_live_in_order_exactly_once():
    with Server() as s:
        f = Filer(s.channel())
        before = create_many(s, "/h", 300)
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/h/", since_ns=0), timeout=30)
        got, _ = collect(it, 300)
        assert [e.ts_ns for e in got] == [e.ts_ns for e in before]
        assert got == before, "the streamed events differ from the acknowledged ones"
        # live: created after the stream caught up
        later = [f.create_ok("/h", file_entry("live%d" % i)).metadata_event for i in range(20)]
        more, _ = collect(it, 20)
        assert more == later
        it.cancel()


def test_path_filters_and_renames():
    with Server() as s:
        f = Filer(s.channel())
        f.create_ok("/w/in", file_entry("a"))
        f.create_ok("/other", file_entry("b"))
        f.create_ok("/w/inside", file_entry("c"))        # raw byte prefix: /w/in matches /w/inside
        f.create_ok("/", msg("filer_pb.Entry")(name="away", is_directory=True))
        f.rename("/other", "b", "/w/in", "b")             # rename into the watched tree
        f.rename("/w/in", "a", "/away", "a")              # rename out of it
        f.delete("/other2", "x")                          # not there: no event
        last = f.create_ok("/zz", file_entry("end")).metadata_event.ts_ns

        def names(req):
            it = subscribe(s.channel(), req, timeout=10)
            out = []
            for r in it:
                for e in events_of(r):
                    en = e.event_notification
                    ent = en.new_entry if en.HasField("new_entry") else en.old_entry
                    out.append((e.directory, ent.name, en.new_parent_path))
                    if e.ts_ns >= last:
                        it.cancel()
                        return out
            return out

        got = names(Req(client_name="t", path_prefix="/w/in", since_ns=0, until_ns=last))
        assert ("/w/in", "a", "/w/in") in got and ("/w/inside", "c", "/w/inside") in got, got
        assert ("/other", "b", "/w/in") in got, got      # into
        assert ("/w/in", "a", "/away") in got, got       # out of
        assert all(d != "/zz" for d, _, _ in got), got
        got = names(Req(client_name="t", path_prefix="/nothing", path_prefixes=["/other"], since_ns=0, until_ns=last))
        assert {n for _, n, _ in got} == {"b", "other"}, got
        got = names(Req(client_name="t", path_prefix="/nothing", directories=["/w/in"], since_ns=0, until_ns=last))
        assert {(d, n) for d, n, _ in got} == {("/w/in", "a"), ("/other", "b")}, got


def test_since_is_exclusive_and_until_ends_the_stream():
    with Server() as s:
        evs = create_many(s, "/t", 50, threads=1)
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/t/", since_ns=evs[9].ts_ns,
                                        until_ns=evs[29].ts_ns), timeout=10)
        got = []
        for r in it:  # ends with OK by itself
            got.extend(events_of(r))
        assert [e.ts_ns for e in got] == [e.ts_ns for e in evs[10:30]]
        # a bound past the last event (but not in the future) ends the stream once all of it is delivered
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/t/", since_ns=evs[44].ts_ns,
                                        until_ns=time.time_ns()), timeout=10)
        got = []
        for r in it:
            got.extend(events_of(r))
        assert [e.ts_ns for e in got] == [e.ts_ns for e in evs[45:]]


def test_batching_packs_old_events():
    with Server(args=["-metaLog.batchBehind", "0s"]) as s:
        evs = create_many(s, "/b", 2100)
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/b/", client_supports_batching=True), timeout=30)
        got, msgs = collect(it, 2100)
        it.cancel()
        assert [e.ts_ns for e in got] == [e.ts_ns for e in evs]
        assert msgs <= 15, msgs
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/b/"), timeout=30)
        got, msgs = collect(it, 2100)
        it.cancel()
        assert msgs == 2100, msgs


def test_catch_up_through_a_tiny_buffer_from_log_files():
    with Server(args=["-metaLogBuffer.sizeMB", "1", "-metaLog.chunkKB", "64", "-metaLog.flushIntervalSec", "1"]) as s:
        evs = create_many(s, "/c", 20000, threads=8)
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/c/", client_supports_batching=True), timeout=60)
        got, _ = collect(it, 20000)
        it.cancel()
        assert len(got) == 20000
        assert [e.ts_ns for e in got] == [e.ts_ns for e in evs], "gap or duplicate"


def test_client_epochs_and_listing():
    with Server() as s:
        ch = s.channel()
        old = subscribe(ch, Req(client_name="filer:x", path_prefix="/e", client_id=7, client_epoch=2), timeout=20)
        Filer(ch).create_ok("/e", file_entry("one"))
        next(old)
        r = unary(ch, SVC + "ListMetadataSubscribers", msg("filer_pb.ListMetadataSubscribersRequest")(),
                  "filer_pb.ListMetadataSubscribersResponse")
        assert [(x.client_type, x.client_id, x.client_epoch, x.path_prefix) for x in r.subscribers] == \
            [("filer:x", 7, 2, "/e")], r
        # an older epoch is refused with upstream's text
        try:
            next(subscribe(ch, Req(client_name="filer:x", path_prefix="/e", client_id=7, client_epoch=1), timeout=5))
            raise AssertionError("older epoch accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.ALREADY_EXISTS, e
            # upstream's text, with the display name client_name@peer
            assert e.details().startswith("duplicated subscription detected for client filer:x@") and \
                e.details().endswith(" id 7"), e.details()
        # a newer one replaces the stream, which ends with OK
        new = subscribe(ch, Req(client_name="filer:x", path_prefix="/e", client_id=7, client_epoch=3), timeout=20)
        Filer(ch).create_ok("/e", file_entry("two"))
        first = [next(new).event_notification.new_entry.name for _ in range(2)]
        assert first == ["e", "one"], first
        for _ in old:  # the old stream ends by itself, OK
            pass
        new.cancel()


def test_debug_subscribers_and_metrics():
    import json
    with Server() as s:
        it = subscribe(s.channel(), Req(client_name="watcher", path_prefix="/m", client_id=5, client_epoch=1), timeout=20)
        f = Filer(s.channel())
        f.create_ok("/m", file_entry("x"))
        next(it)
        with urllib.request.urlopen("http://127.0.0.1:%d/debug/subscribers" % s.http_port, timeout=5) as r:
            subs = json.loads(r.read())
        assert len(subs) == 1 and subs[0]["id"] == 5 and subs[0]["path_prefix"] == "/m", subs
        assert subs[0]["events_sent"] >= 1 and subs[0]["position_ts_ns"] > 0, subs
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % s.http_port, timeout=5) as r:
            text = r.read().decode()
        assert "\nfilermeta_subscribers 1\n" in text, text
        assert "# TYPE filermeta_subscriber_lag_seconds histogram" in text
        assert 'filermeta_subscriber_lag_seconds_bucket{le="+Inf"} 1' in text, text
        it.cancel()
        deadline = time.monotonic() + 5
        while True:  # the cancelled stream leaves the registry
            with urllib.request.urlopen("http://127.0.0.1:%d/debug/subscribers" % s.http_port, timeout=5) as r:
                if json.loads(r.read()) == []:
                    break
            assert time.monotonic() < deadline, "cancelled stream still listed"
            time.sleep(0.05)


def test_bad_requests_are_invalid_argument():
    with Server() as s:
        for req, field in [(Req(path_prefix="rel"), "path_prefix"), (Req(path_prefixes=["x"]), "path_prefixes"),
                           (Req(directories=["d"]), "directories"), (Req(since_ns=10, until_ns=5), "until_ns"),
                           (Req(since_ns=-1), "since_ns")]:
            try:
                next(subscribe(s.channel(), req, timeout=5))
                raise AssertionError("accepted %r" % req)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (req, e)
                assert field in e.details(), (field, e.details())


def test_out_of_range_after_retention():
    tmp = tempfile.mkdtemp(prefix="fmtest-sub-")
    data = os.path.join(tmp, "data")
    try:
        with Server(data_dir=data) as s:
            Filer(s.channel()).create_ok("/topics/.system/log/2020-01-01", file_entry("00-00.0000abcd"))
            s.stop()
        with Server(data_dir=data, args=["-metaLog.retentionDays", "1"]) as s:
            f = Filer(s.channel())
            deadline = time.monotonic() + 10
            while "2020-01-01" in f.names("/topics/.system/log"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            try:
                next(subscribe(s.channel(), Req(path_prefix="/", since_ns=1), timeout=5))
                raise AssertionError("history before retention served")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.OUT_OF_RANGE, e
                assert "oldest available" in e.details(), e.details()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_heartbeat_only_with_the_flag():
    with Server() as s:
        results = {}

        def watch(flag):
            it = subscribe(s.channel(), Req(client_name="t", path_prefix="/hb", client_supports_idle_heartbeat=flag),
                           timeout=7)
            got = []
            try:
                for r in it:
                    got.append(r)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
            results[flag] = got

        ts = [threading.Thread(target=watch, args=(f,)) for f in (True, False)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert results[False] == [], results[False]
        hb = results[True]
        # the aggregated stream's heartbeat carries the time (PROTOCOL.md 5.5); an empty message prints as ""
        assert len(hb) >= 1 and all(not r.HasField("event_notification") and r.ts_ns > 0 for r in hb), \
            [str(r) for r in hb]


def test_local_heartbeat_is_a_fence():
    """The local stream's heartbeat: {ts_ns: delivered-through, flushed_ts_ns}: every event created after it has a
    greater ts, and nothing below it is still to come."""
    with Server() as s:
        f = Filer(s.channel())
        first = f.create_ok("/lh", file_entry("a")).metadata_event.ts_ns
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/lh", client_supports_idle_heartbeat=True),
                       timeout=15, local=True)
        got = []
        for r in it:
            if r.HasField("event_notification"):
                got.append(r.ts_ns)
                continue
            hb = r
            break
        assert first in got and hb.ts_ns >= max(got) and hb.flushed_ts_ns <= hb.ts_ns, (got, str(hb))
        later = f.create_ok("/lh", file_entry("b")).metadata_event.ts_ns
        assert later > hb.ts_ns, (later, hb.ts_ns)
        nxt = next(r for r in it if r.HasField("event_notification"))
        assert nxt.ts_ns == later
        it.cancel()


def test_shutdown_with_open_streams():
    with Server() as s:
        its = [subscribe(s.channel(), Req(client_name="t%d" % i, path_prefix="/"), timeout=30) for i in range(20)]
        Filer(s.channel()).create_ok("/s", file_entry("x"))
        for it in its:
            next(it)
        codes = []

        def drain(it):
            try:
                for _ in it:
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())

        ts = [threading.Thread(target=drain, args=(it,)) for it in its]
        for t in ts:
            t.start()
        fmtest.assert_clean_stop(s, within=5.0)
        for t in ts:
            t.join(10)
        assert codes == [grpc.StatusCode.UNAVAILABLE] * 20, codes


if __name__ == "__main__":
    fmtest.main([
        test_history_then_live_in_order_exactly_once,
        test_path_filters_and_renames,
        test_since_is_exclusive_and_until_ends_the_stream,
        test_batching_packs_old_events,
        test_catch_up_through_a_tiny_buffer_from_log_files,
        test_client_epochs_and_listing,
        test_debug_subscribers_and_metrics,
        test_bad_requests_are_invalid_argument,
        test_out_of_range_after_retention,
        test_heartbeat_only_with_the_flag,
        test_local_heartbeat_is_a_fence,
        test_shutdown_with_open_streams,
    ])
