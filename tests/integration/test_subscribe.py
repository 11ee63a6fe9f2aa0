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
from test_store_client import Filer, file_entry, join, stop_and_dump, summary

SVC = "/filer_pb.SeaweedFiler/"
LOG_DIR = "/topics/.system/log"
Req = lambda **kw: msg("filer_pb.SubscribeMetadataRequest")(**kw)  # noqa: E731


def subscribe(ch, req, timeout=10.0, local=False):
    call = ch.unary_stream(SVC + ("SubscribeLocalMetadata" if local else "SubscribeMetadata"),
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=msg("filer_pb.SubscribeMetadataResponse").FromString)
    return call(req, timeout=timeout)


def summaries_of(events):
    return [summary(e) for e in events]


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


def is_change(e):
    """A real event (not a progress or refs marker, whose event_notification is empty)."""
    en = e.event_notification
    return en.HasField("new_entry") or en.HasField("old_entry")


def bounded(s, until, **kw):
    """The events (markers left out) of a stream from since_ns=0 (unless given) to until_ns, which must end by itself
    with OK."""
    kw.setdefault("since_ns", 0)
    it = subscribe(s.channel(), Req(client_name="t", until_ns=until, **kw), timeout=10)
    out = []
    for r in it:
        out.extend(e for e in events_of(r) if is_change(e))
    assert it.code() == grpc.StatusCode.OK, it.code()
    ts = [e.ts_ns for e in out]
    assert all(a < b for a, b in zip(ts, ts[1:])), "ts not strictly increasing: %s" % ts
    return out


def test_prefix_filter_single():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/w/in/a")                  # creates /w (not matched), /w/in, /w/in/a
        f.mkfile("/w/inside/c")              # raw byte prefix: /w/in matches /w/inside
        f.mkfile("/w/other/d")
        f.mkfile("/x/w/in/e")                # the prefix is matched at the start only
        f.update("/w/in", file_entry("a", size=5))
        f.delete("/w/in", "a")
        f.delete("/w/in", "missing")         # not there: no event
        last = f.mkfile("/zz").metadata_event.ts_ns
        got = summaries_of(bounded(s, last, path_prefix="/w/in"))
        assert got == [("create", "/w/in", None), ("create", "/w/in/a", None), ("create", "/w/inside", None),
                       ("create", "/w/inside/c", None), ("update", "/w/in/a", None), ("delete", "/w/in/a", None)], got
        # with the separator the sibling is out
        got = summaries_of(bounded(s, last, path_prefix="/w/in/"))
        assert got == [("create", "/w/in/a", None), ("update", "/w/in/a", None), ("delete", "/w/in/a", None)], got


def test_multiple_prefixes():
    with Server() as s:
        f = Filer(s.channel())
        for p in ("/p1/a", "/p2/sub/b", "/p2/other/c", "/p3/d"):
            f.mkfile(p)
        last = f.mkfile("/zz").metadata_event.ts_ns
        got = summaries_of(bounded(s, last, path_prefix="/nothing", path_prefixes=["/p1", "/p2/sub"]))
        assert got == [("create", "/p1", None), ("create", "/p1/a", None), ("create", "/p2/sub", None),
                       ("create", "/p2/sub/b", None)], got
        # path_prefix and path_prefixes add up
        got = summaries_of(bounded(s, last, path_prefix="/p3", path_prefixes=["/p1"]))
        assert got == [("create", "/p1", None), ("create", "/p1/a", None), ("create", "/p3", None),
                       ("create", "/p3/d", None)], got
        # the kept quirk: an empty path_prefix matches everything, path_prefixes or not
        everything = summaries_of(bounded(s, last, path_prefix="/"))
        got = summaries_of(bounded(s, last, path_prefixes=["/p1"]))
        assert got == everything and len(everything) == 10, (got, everything)


def test_directories_exact():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/d/a")                     # creates /d (in /), /d/a (in /d)
        f.mkfile("/d/sub/b")                 # /d/sub is in /d; b is in /d/sub
        f.mkfile("/d/sub/deeper/e")
        f.mkfile("/dd/c")                    # a sibling with the same leading bytes
        f.delete("/d/sub", "b")
        f.delete("/d", "a")
        last = f.mkfile("/zz").metadata_event.ts_ns
        got = summaries_of(bounded(s, last, path_prefix="/nothing", directories=["/d"]))
        assert got == [("create", "/d/a", None), ("create", "/d/sub", None), ("delete", "/d/a", None)], got
        got = summaries_of(bounded(s, last, path_prefix="/nothing", directories=["/d/sub", "/dd"]))
        assert got == [("create", "/d/sub/b", None), ("create", "/d/sub/deeper", None), ("create", "/dd/c", None),
                       ("delete", "/d/sub/b", None)], got


def test_rename_into_the_watched_tree():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/watched/keep")
        f.mkfile("/outside/f")
        f.rename("/outside", "f", "/watched", "f")
        last = f.mkfile("/zz").metadata_event.ts_ns
        want = [("create", "/watched/keep", None), ("rename", "/outside/f", "/watched/f")]
        for kw in ({"path_prefix": "/watched/"}, {"path_prefix": "/nothing", "directories": ["/watched"]}):
            evs = bounded(s, last, **kw)
            assert summaries_of(evs) == want, (kw, summaries_of(evs))
            en = evs[1].event_notification
            assert evs[1].directory == "/outside" and en.new_parent_path == "/watched", str(evs[1])
            assert en.old_entry.name == "f" and en.new_entry.name == "f", str(evs[1])


def test_rename_out_of_the_watched_tree():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/watched/g")
        f.mkdir("/outside")
        f.rename("/watched", "g", "/outside", "g")
        f.delete("/outside", "g")            # the source side of a delete only: not watched
        last = f.mkfile("/zz").metadata_event.ts_ns
        want = [("create", "/watched/g", None), ("rename", "/watched/g", "/outside/g")]
        for kw in ({"path_prefix": "/watched/"}, {"path_prefix": "/nothing", "directories": ["/watched"]}):
            got = summaries_of(bounded(s, last, **kw))
            assert got == want, (kw, got)


def test_rename_within_the_watched_tree():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/watched/a")
        f.mkdir("/watched/x")
        f.rename("/watched", "a", "/watched", "b")
        f.rename("/watched", "b", "/watched/x", "b")
        last = f.mkfile("/zz").metadata_event.ts_ns
        # each rename once, although both of its sides match
        got = summaries_of(bounded(s, last, path_prefix="/watched/"))
        assert got == [("create", "/watched/a", None), ("create", "/watched/x", None),
                       ("rename", "/watched/a", "/watched/b"), ("rename", "/watched/b", "/watched/x/b")], got


def source_path(ev):
    en = ev.event_notification
    return join(ev.directory, (en.old_entry if en.HasField("old_entry") else en.new_entry).name)


def test_system_log_events_are_never_delivered():
    """A subscriber on / gets every event except those whose path starts with the bytes /topics/.system/log, also
    after a flush wrote real log files there and a client wrote there itself."""
    with Server(args=["-metaLog.flushIntervalSec", "1"]) as s:
        f = Filer(s.channel())
        it = subscribe(s.channel(), Req(client_name="t", path_prefix="/", since_ns=0), timeout=30)
        f.mkfile("/a/x")
        wait_for_a_log_file(f)
        # what a client may write there: a log file (empty), changed, a sibling with the same leading bytes
        f.mkfile(LOG_DIR + "/2020-01-01/00-00.0000abcd")
        f.update(LOG_DIR + "/2020-01-01", file_entry("00-00.0000abcd", mtime=1700000001))
        f.mkfile("/topics/.system/logx/y")   # raw byte prefix: excluded too
        f.mkfile("/topics/.system/other/z")  # not under it: delivered
        end = f.mkfile("/a/end").metadata_event.ts_ns
        got = []
        for r in it:
            got.extend(e for e in events_of(r) if is_change(e))
            if got and got[-1].ts_ns >= end:
                break
        it.cancel()
        logged = [ev for ts, ev in stop_and_dump(s) if ts <= end]
    excluded = [ev for ev in logged if source_path(ev).startswith(LOG_DIR)]
    # the filer records nothing under the log directory itself (as upstream); what has the leading bytes only is
    # recorded, and the stream leaves it out
    assert summaries_of(excluded) == [("create", "/topics/.system/logx", None),
                                      ("create", "/topics/.system/logx/y", None)], summaries_of(excluded)
    want = [ev for ev in logged if ev not in excluded]
    assert ("create", "/topics/.system/other/z", None) in summaries_of(want), summaries_of(want)
    assert [e.ts_ns for e in got] == [e.ts_ns for e in want], (summaries_of(got), summaries_of(want))
    assert got == want


def wait_for_a_log_file(f):
    deadline = time.monotonic() + 10
    while not any(f.names(LOG_DIR + "/" + day) for day in f.names(LOG_DIR)):
        assert time.monotonic() < deadline, "no log file was flushed"
        time.sleep(0.1)


def test_system_log_exclusion_comes_before_the_path_match():
    """A watcher of the log directory, or of a directory whose events are under the prefix, still gets none of them."""
    with Server(args=["-metaLog.flushIntervalSec", "1"]) as s:
        f = Filer(s.channel())
        first = f.mkfile("/a/x").metadata_event.ts_ns
        wait_for_a_log_file(f)
        f.mkfile("/topics/.system/logx/y")
        last = f.mkfile("/a/end").metadata_event.ts_ns
        for kw in ({"path_prefix": "/topics/"}, {"path_prefix": LOG_DIR}, {"path_prefix": "/topics/.system/logx"},
                   {"path_prefix": "/nothing", "directories": ["/topics/.system", "/topics/.system/logx", LOG_DIR]},
                   {"path_prefix": "/nothing", "path_prefixes": ["/topics/.system/"]}):
            got = bounded(s, last, **kw)
            assert got == [], (kw, summaries_of(got))
        assert [e.ts_ns for e in bounded(s, last, path_prefix="/a/")] == [first, last]


def test_signature_skip():
    with Server() as s:
        f = Filer(s.channel())
        own = f.signature()
        mine, other = 0x1234567, 777
        assert own not in (mine, other, 0), own
        f.mkdir("/sg")
        skipped = f.create_ok("/sg", file_entry("skip"), signatures=[mine]).metadata_event
        foreign = f.create_ok("/sg", file_entry("other"), signatures=[other]).metadata_event
        plain = f.create_ok("/sg", file_entry("plain")).metadata_event
        last = plain.ts_ns
        got = bounded(s, last, path_prefix="/sg/", signature=mine)
        assert [e.event_notification.new_entry.name for e in got] == ["other", "plain"], summaries_of(got)
        # delivered events carry the serving filer's signature after the writer's
        assert [list(e.event_notification.signatures) for e in got] == [[other, own], [own]], got
        assert got == [foreign, plain]
        got = bounded(s, last, path_prefix="/sg/", signature=other)
        assert [e.event_notification.new_entry.name for e in got] == ["skip", "plain"], summaries_of(got)
        assert list(got[0].event_notification.signatures) == [mine, own], str(got[0])
        # no signature in the request: nothing is skipped
        got = bounded(s, last, path_prefix="/sg/")
        assert got == [skipped, foreign, plain], summaries_of(got)


def test_since_is_exclusive():
    """since_ns exactly at an event: the stream starts after it, from memory and (after a restart) from the log
    files alike."""
    tmp = tempfile.mkdtemp(prefix="fmtest-sub-")
    data = os.path.join(tmp, "data")
    try:
        with Server(data_dir=data) as s:
            evs = create_many(s, "/t", 50, threads=1)
            for since in (evs[9], evs[0], evs[48]):
                it = subscribe(s.channel(), Req(client_name="t", path_prefix="/t/", since_ns=since.ts_ns), timeout=10)
                i = evs.index(since) + 1
                got, _ = collect(it, len(evs) - i)
                it.cancel()
                assert [e.ts_ns for e in got] == [e.ts_ns for e in evs[i:]], (since.ts_ns, [e.ts_ns for e in got])
            s.close_channels()
            fmtest.assert_clean_stop(s)
        with Server(data_dir=data) as s:  # memory is empty now: everything comes from the files
            it = subscribe(s.channel(), Req(client_name="t", path_prefix="/t/", since_ns=evs[9].ts_ns), timeout=10)
            got, _ = collect(it, 40)
            it.cancel()
            assert [e.ts_ns for e in got] == [e.ts_ns for e in evs[10:]]
            assert got == evs[10:]
            # the last event as since: nothing until something new comes
            it = subscribe(s.channel(), Req(client_name="t", path_prefix="/t/", since_ns=evs[-1].ts_ns), timeout=10)
            new = Filer(s.channel()).create_ok("/t", file_entry("new")).metadata_event
            got, _ = collect(it, 1)
            it.cancel()
            assert got == [new], summaries_of(got)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_until_ends_the_stream_with_ok():
    with Server() as s:
        evs = create_many(s, "/t", 50, threads=1)
        # inclusive: the event at until_ns is the last one; then the stream ends with OK by itself
        got = bounded(s, evs[29].ts_ns, path_prefix="/t/", since_ns=evs[9].ts_ns)
        assert [e.ts_ns for e in got] == [e.ts_ns for e in evs[10:30]]
        # until_ns between two events
        assert evs[30].ts_ns > evs[29].ts_ns + 1
        got = bounded(s, evs[29].ts_ns + 1, path_prefix="/t/")
        assert [e.ts_ns for e in got] == [e.ts_ns for e in evs[:30]]
        # a bound past the last event (but not in the future) ends the stream once all of it is delivered
        got = bounded(s, time.time_ns(), path_prefix="/t/", since_ns=evs[44].ts_ns)
        assert [e.ts_ns for e in got] == [e.ts_ns for e in evs[45:]]
        # a bound that no event matches (nothing in the range): ends with OK at once, empty
        assert bounded(s, evs[20].ts_ns, path_prefix="/t/", since_ns=evs[20].ts_ns) == []


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
        test_prefix_filter_single,
        test_multiple_prefixes,
        test_directories_exact,
        test_rename_into_the_watched_tree,
        test_rename_out_of_the_watched_tree,
        test_rename_within_the_watched_tree,
        test_system_log_events_are_never_delivered,
        test_system_log_exclusion_comes_before_the_path_match,
        test_signature_skip,
        test_since_is_exclusive,
        test_until_ends_the_stream_with_ok,
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
