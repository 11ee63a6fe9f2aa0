"""Integration: log-file refs mode (PROTOCOL.md 5.7) and the local stream's flush
report (5.5), against the real server. The refs are resolved here the way a
client does it: LookupVolume per volume id, an HTTP GET per chunk, records decoded
per ref, merged across filer ids by ts_ns; the result must equal what the same
subscription delivers as events."""

import concurrent.futures
import contextlib
import gzip
import heapq
import itertools
import json
import os
import shutil
import struct
import tempfile
import threading
import time
import urllib.request

import grpc

from fmtest import Server, msg, unary
from test_store_client import Filer, file_entry
from test_subscribe import Req, create_many, subscribe

SYSTEM_LOG = "/topics/.system/log"
FLAGS = ["-metaLog.chunkKB", "16", "-metaLog.flushIntervalSec", "3600"]


def join(d, name):
    return d.rstrip("/") + "/" + name if name else d


def paths(ev):
    """(source path, target path or None) of an event (PROTOCOL.md 5.3)."""
    n = ev.event_notification
    src = join(ev.directory, n.old_entry.name if n.HasField("old_entry") else n.new_entry.name)
    if not n.HasField("new_entry"):
        return src, None
    tdir = n.new_parent_path or ev.directory
    return src, join(tdir, n.new_entry.name)


def matches(ev, prefix):
    src, dst = paths(ev)
    if src.startswith(SYSTEM_LOG):
        return False
    return src.startswith(prefix) or (dst is not None and dst.startswith(prefix))


def records(data):
    """The (ts_ns, event bytes) of a log file's bytes; a torn last record ends it."""
    out, at = [], 0
    LogEntry = msg("filer_pb.LogEntry")
    while at + 4 <= len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        if at + 4 + n > len(data):
            break
        e = LogEntry.FromString(data[at + 4:at + 4 + n])
        out.append((e.ts_ns, e.data))
        at += 4 + n
    return out


def resolve(s, refs):
    """Reads every ref's chunks over LookupVolume + HTTP; returns every record (ts, bytes)
    in ts order, merged across filer ids (stable by filer id)."""
    vids = sorted({c.file_id.split(",")[0] for r in refs for c in r.chunks})
    locs = unary(s.channel(), "/filer_pb.SeaweedFiler/LookupVolume",
                 msg("filer_pb.LookupVolumeRequest")(volume_ids=vids), "filer_pb.LookupVolumeResponse").locations_map
    per_filer = {}
    for r in refs:
        assert len(r.filer_id) == 8 and int(r.filer_id, 16) >= 0, r.filer_id
        assert r.file_ts_ns % 60_000_000_000 == 0, r.file_ts_ns
        data = b""
        for c in sorted(r.chunks, key=lambda c: c.offset):
            assert c.offset == len(data), "chunks not contiguous from 0: %d at %d" % (c.offset, len(data))
            assert not c.cipher_key
            url = "http://%s/%s" % (locs[c.file_id.split(",")[0]].locations[0].url, c.file_id)
            with urllib.request.urlopen(url, timeout=20) as resp:
                body = resp.read()
            data += gzip.decompress(body) if c.is_compressed else body
            assert len(data) == c.offset + c.size
        recs = records(data)
        assert recs, "a ref without records"
        per_filer.setdefault(r.filer_id, []).extend(recs)
    for fid, recs in per_filer.items():
        ts = [t for t, _ in recs]
        assert ts == sorted(ts) and len(set(ts)) == len(ts), "filer %s: records out of order" % fid
    order = sorted(per_filer)
    return list(heapq.merge(*[[(t, i, b) for t, b in per_filer[f]] for i, f in enumerate(order)]))


def read_refs_stream(it):
    """Splits a refs-mode stream into (refs, marker ts or None, events after it)."""
    refs, marker, events = [], None, []
    Resp = msg("filer_pb.SubscribeMetadataResponse")
    for r in it:
        if marker is None and not events and len(r.log_file_refs) > 0:
            assert not r.HasField("event_notification") and r.ts_ns == 0 and not r.events, "refs with more"
            assert len(r.log_file_refs) <= 64, len(r.log_file_refs)
            refs.extend(r.log_file_refs)
            continue
        assert len(r.log_file_refs) == 0, "refs after the first other response"
        for e in [r] + list(r.events):
            if not e.HasField("event_notification"):
                continue
            n = e.event_notification
            if not n.HasField("old_entry") and not n.HasField("new_entry"):
                if refs and marker is None and not events:
                    marker = e.ts_ns
                continue
            top = Resp()
            top.CopyFrom(e)
            del top.events[:]
            events.append(top)
    return refs, marker, events


def comparable(ev):
    """An event without the signatures the server appends on delivery (records hold them as stored)."""
    c = msg("filer_pb.SubscribeMetadataResponse")()
    c.CopyFrom(ev)
    del c.events[:]
    del c.event_notification.signatures[:]
    return c.SerializeToString(deterministic=True)


@contextlib.contextmanager
def data_dir():
    tmp = tempfile.mkdtemp(prefix="fmtest-refs-")
    try:
        yield os.path.join(tmp, "data")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def history(data_dir, rounds, per_round):
    """Writes `rounds` rounds of events under /r and /o, each in its own server run (so in log files of
    different filer ids), then starts the server for good; returns (server, acknowledged /r events)."""
    acked = []
    for k in range(rounds):
        with Server(data_dir=data_dir, args=FLAGS) as s:
            acked += create_many(s, "/r/%d" % k, per_round)
            create_many(s, "/o/%d" % k, per_round // 5)
    return acked


def check_refs_equal_events(s, since=0, until=0, prefix="/r/"):
    plain = list(subscribe(s.channel(), Req(client_name="p", path_prefix=prefix, since_ns=since, until_ns=until,
                                            client_supports_batching=True), timeout=60))
    want = [e for r in plain for e in [r] + list(r.events)
            if e.HasField("event_notification") and (e.event_notification.HasField("new_entry")
                                                     or e.event_notification.HasField("old_entry"))]
    it = subscribe(s.channel(), Req(client_name="r", path_prefix=prefix, since_ns=since, until_ns=until,
                                    client_supports_batching=True, client_supports_metadata_chunks=True), timeout=60)
    refs, marker, after = read_refs_stream(it)
    assert refs, "no refs for a range that starts in persisted history"
    assert marker is not None, "no transition marker after the refs"
    recs = resolve(s, refs)
    # the marker is exactly the last record the refs hold (or until_ns, when the range ends inside them)
    assert marker == (min(recs[-1][0], until) if until else recs[-1][0]), (marker, recs[-1][0])
    Resp = msg("filer_pb.SubscribeMetadataResponse")
    from_refs = []
    for t, _, b in recs:
        if t <= since or (until and t > until):
            continue
        ev = Resp.FromString(b)
        assert ev.ts_ns == t
        if matches(ev, prefix):
            from_refs.append(ev)
    assert all(e.ts_ns > marker for e in after), "an event at or before the marker followed it"
    got = from_refs + after
    assert [e.ts_ns for e in got] == [e.ts_ns for e in want], "refs + events differ from events: %d vs %d" % (
        len(got), len(want))
    assert [comparable(e) for e in got] == [comparable(e) for e in want]
    return refs, recs, marker, want


def files_only(events):
    """The ts of the events on files (create_many's parent directories are created on the way)."""
    return [e.ts_ns for e in events if not e.event_notification.new_entry.is_directory]


def test_refs_then_events_with_an_exact_boundary():
    with data_dir() as d, contextlib.ExitStack() as stack:
        acked = history(d, 3, 600)
        s = stack.enter_context(Server(data_dir=d, args=FLAGS))
        live = create_many(s, "/r/live", 20)  # in memory only: under a chunk, and the interval is an hour
        until = live[-1].ts_ns
        refs, recs, marker, want = check_refs_equal_events(s, until=until)
        assert files_only(want) == [e.ts_ns for e in acked + live]
        assert len({r.filer_id for r in refs}) >= 3, "each run writes its own files"
        assert sum(len(r.chunks) for r in refs) > len(refs), "16 KiB chunks: files of several chunks"
        assert marker < live[0].ts_ns
        assert any(paths(Resp)[0].startswith("/o/") for Resp in
                   [msg("filer_pb.SubscribeMetadataResponse").FromString(b) for _, _, b in recs[:2000]]), \
            "refs carry unfiltered history"


def test_refs_from_the_middle_and_up_to_until():
    with data_dir() as d, contextlib.ExitStack() as stack:
        acked = history(d, 2, 500)
        s = stack.enter_context(Server(data_dir=d, args=FLAGS))
        since = acked[len(acked) // 3].ts_ns
        _, _, _, want = check_refs_equal_events(s, since=since, until=acked[-1].ts_ns)
        assert files_only(want) == [e.ts_ns for e in acked if e.ts_ns > since]
        # until inside the persisted history: the stream ends after the marker
        until = acked[2 * len(acked) // 3].ts_ns
        _, _, marker, want = check_refs_equal_events(s, since=since, until=until)
        assert marker == until and want[-1].ts_ns == until


def test_refs_while_the_flusher_writes():
    """Refs taken while writers keep the flusher busy (16 KiB chunks, flushed as they fill): every refs stream
    equals the events stream over the same range, whatever the flusher committed during its listing."""
    with Server(args=FLAGS) as s:
        stop = threading.Event()

        def write(k):
            f = Filer(s.channel())
            i = 0
            while not stop.is_set():
                f.create_ok("/w/%d" % k, file_entry("f%06d" % i))
                i += 1

        ws = [threading.Thread(target=write, args=(k,)) for k in range(3)]
        for w in ws:
            w.start()
        try:
            time.sleep(0.5)
            for _ in range(3):
                until = Filer(s.channel()).create_ok("/w", file_entry("u%d" % time.time_ns())).metadata_event.ts_ns
                check_refs_equal_events(s, until=until, prefix="/w/")
        finally:
            stop.set()
            for w in ws:
                w.join()


def test_a_big_file_goes_in_several_refs():
    """1 KiB chunks: one minute's file of more than 256 chunks is sent as several refs of whole chunks."""
    with Server(args=["-metaLog.chunkKB", "1", "-metaLog.flushIntervalSec", "3600"]) as s:
        evs = create_many(s, "/big", 4000)
        deadline = time.time() + 60
        pad = Filer(s.channel())
        for i in itertools.count():  # 1 KiB chunks flush slowly: wait until the files hold them all
            with urllib.request.urlopen("http://127.0.0.1:%d/debug/logbuffer" % s.http_port, timeout=10) as r:
                if json.load(r)["flushed_ts_ns"] >= evs[-1].ts_ns:
                    break
            assert time.time() < deadline, "the flusher did not catch up"
            # a pass starts when a chunk's worth is pending (or after the hour-long interval), so a tail of less than
            # 1 KiB written while the last pass ran would wait: events elsewhere make up the chunk
            pad.create_ok("/pad", file_entry("p%d" % i))
            time.sleep(0.1)
        refs, _, _, want = check_refs_equal_events(s, until=evs[-1].ts_ns, prefix="/big/")
        assert files_only(want) == [e.ts_ns for e in evs]
        names = [(r.file_ts_ns, r.filer_id) for r in refs]
        if len(set(names)) == len(names):
            raise AssertionError("no file was split: %d refs, chunks %s" % (len(refs), [len(r.chunks) for r in refs]))
        assert max(len(r.chunks) for r in refs) <= 256


def test_no_refs_when_the_start_is_in_memory():
    with Server(args=FLAGS) as s:
        evs = create_many(s, "/m", 50)
        it = subscribe(s.channel(), Req(client_name="r", path_prefix="/m/", until_ns=evs[-1].ts_ns,
                                        client_supports_metadata_chunks=True), timeout=30)
        refs, marker, after = read_refs_stream(it)
        assert refs == [] and marker is None
        assert [e.ts_ns for e in after] == [e.ts_ns for e in evs]


def test_refs_for_a_client_that_stops_reading_and_cancels():
    """A refs stream cancelled while refs are queued releases everything (the registry forgets it)."""
    with data_dir() as d, contextlib.ExitStack() as stack:
        history(d, 1, 300)
        s = stack.enter_context(Server(data_dir=d, args=FLAGS))
        it = subscribe(s.channel(), Req(client_name="gone", client_id=7, client_supports_metadata_chunks=True),
                       timeout=30)
        first_resp = next(it)
        assert len(first_resp.log_file_refs) > 0
        it.cancel()
        lst = "/filer_pb.SeaweedFiler/ListMetadataSubscribers"
        deadline = time.time() + 10
        while True:
            subs = unary(s.channel(), lst, msg("filer_pb.ListMetadataSubscribersRequest")(),
                         "filer_pb.ListMetadataSubscribersResponse").subscribers
            if not subs or time.time() > deadline:
                break
            time.sleep(0.05)
        assert not subs, subs


def test_flush_report_on_the_local_stream_only():
    with Server(args=["-metaLog.flushIntervalSec", "1"]) as s:
        Filer(s.channel()).create_ok("/fr", file_entry("a"))
        time.sleep(1.5)  # flushed

        def reports(local, flag):
            """Flush reports ({flushed_ts_ns}, ts_ns 0) within 7 s (a report is due every 5 s)."""
            it = subscribe(s.channel(), Req(client_name="t", path_prefix="/fr", client_supports_idle_heartbeat=flag,
                                            since_ns=int(time.time() * 1e9)), timeout=7, local=local)
            out = []
            try:
                for r in it:
                    assert flag, "a message to a client that did not ask for keep-alives: %s" % r
                    if r.flushed_ts_ns and r.ts_ns == 0 and not r.HasField("event_notification"):
                        out.append(r.flushed_ts_ns)
                        it.cancel()
            except grpc.RpcError as e:
                assert e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), e
            return out

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            local, aggregated, unasked = [pool.submit(reports, *a) for a in ((True, True), (False, True),
                                                                               (True, False))]
            local, aggregated, unasked = local.result(), aggregated.result(), unasked.result()
        assert len(local) == 1 and local[0] > 0, local
        assert aggregated == [], "the aggregated stream has no flush report"
        assert unasked == []


if __name__ == "__main__":
    import fmtest
    fmtest.main([
        test_refs_then_events_with_an_exact_boundary,
        test_refs_from_the_middle_and_up_to_until,
        test_refs_while_the_flusher_writes,
        test_a_big_file_goes_in_several_refs,
        test_no_refs_when_the_start_is_in_memory,
        test_refs_for_a_client_that_stops_reading_and_cancels,
        test_flush_report_on_the_local_stream_only,
    ])
