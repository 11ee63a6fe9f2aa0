"""Integration: the persisted metadata log. Creates end up in per-minute log
files (/topics/.system/log/YYYY-MM-DD/HH-MM.<filer id>) that a client knowing
only PROTOCOL.md reads itself, as a refs-mode subscriber does: ListEntries for
the files, LookupVolume for each chunk's volume, HTTP GET /<fid> for its bytes,
records of a 4-byte big-endian length and a LogEntry. A SIGKILL during writes
loses no acknowledged event and duplicates none; retention removes old days
and their chunks."""

import calendar
import heapq
import os
import shutil
import signal
import struct
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc

import fmtest
from fmtest import Server, msg, stream, unary
from test_store_client import Filer, file_entry

SVC = "/filer_pb.SeaweedFiler/"
LOG_DIR = "/topics/.system/log"
FLAGS = ["-metaLog.flushIntervalSec", "1", "-metaLog.chunkKB", "64"]


# ---------------------------------------------------------------- a refs-mode reader from PROTOCOL.md alone

class LogReader:
    """Reads every persisted log file of a running filer over gRPC + HTTP."""

    def __init__(self, channel):
        self.ch = channel
        self.urls = {}

    def list(self, directory):
        req = msg("filer_pb.ListEntriesRequest")(directory=directory, limit=100000)
        return [r.entry for r in stream(self.ch, SVC + "ListEntries", req, "filer_pb.ListEntriesResponse")]

    def url(self, vid):
        if vid not in self.urls:
            r = unary(self.ch, SVC + "LookupVolume", msg("filer_pb.LookupVolumeRequest")(volume_ids=[vid]), "filer_pb.LookupVolumeResponse")
            locs = r.locations_map[vid].locations
            assert locs, "LookupVolume knows no location for volume %s" % vid
            self.urls[vid] = locs[0].url
        return self.urls[vid]

    def chunk(self, file_id):
        vid = file_id.split(",", 1)[0]
        with urllib.request.urlopen("http://%s/%s" % (self.url(vid), file_id), timeout=10) as r:
            return r.read()

    def files(self):
        """[(day, name, entry)] of every log file, in name order."""
        out = []
        for day in self.list(LOG_DIR):
            assert day.is_directory, day.name
            for f in self.list(LOG_DIR + "/" + day.name):
                out.append((day.name, f.name, f))
        return out

    def records(self, entry):
        """The LogEntry records of one file: its chunks in offset order, concatenated."""
        chunks = sorted(entry.chunks, key=lambda c: c.offset)
        data = b""
        for c in chunks:
            assert c.offset == len(data), "chunk at %d after %d bytes" % (c.offset, len(data))
            b = self.chunk(c.file_id)
            assert len(b) == c.size, (len(b), c.size)
            data += b
        out, pos = [], 0
        while pos + 4 <= len(data):
            (n,) = struct.unpack(">I", data[pos:pos + 4])
            if pos + 4 + n > len(data):
                break  # a torn last record counts as the end
            le = msg("filer_pb.LogEntry")()
            le.ParseFromString(data[pos + 4:pos + 4 + n])
            out.append(le)
            pos += 4 + n
        assert pos == len(data), "trailing bytes in a log file"
        return out

    def events(self):
        """[(LogEntry, SubscribeMetadataResponse, file name)] of every file, merged by ts across filer ids."""
        per_filer = {}
        for day, name, entry in self.files():
            per_filer.setdefault(name.rsplit(".", 1)[1], []).append((day, name, entry))
        streams = []
        for fid, files in sorted(per_filer.items()):
            s = []
            for day, name, entry in files:
                for le in self.records(entry):
                    ev = msg("filer_pb.SubscribeMetadataResponse")()
                    ev.ParseFromString(le.data)
                    s.append((le.ts_ns, fid, le, ev, day + "/" + name))
            streams.append(s)
        return [(le, ev, f) for _, _, le, ev, f in heapq.merge(*streams, key=lambda x: (x[0], x[1]))]


def utc_names(ts_ns):
    t = time.gmtime(ts_ns // 1_000_000_000)
    return time.strftime("%Y-%m-%d", t), time.strftime("%H-%M", t)


def writers(server, n_threads, per_thread=None, stop=None, prefix="/load"):
    """Creates files from n_threads threads; returns (acks, errors), acks a list of
    (directory, name, metadata_event) per thread."""
    acks = [[] for _ in range(n_threads)]
    errors = []

    def run(w):
        ch = grpc.insecure_channel(server.grpc_addr)
        f = Filer(ch, timeout=10)
        i = 0
        try:
            while (per_thread is None or i < per_thread) and (stop is None or not stop.is_set()):
                d, n = "%s/t%d" % (prefix, w), "f%06d" % i
                r = f.create(d, file_entry(n, size=i, chunks=1))
                assert r.error == "" and r.error_code == 0, r
                acks[w].append((d, n, r.metadata_event))
                i += 1
        except grpc.RpcError:
            if stop is None:
                raise
        except Exception as e:
            errors.append(repr(e))
        finally:
            ch.close()

    threads = [threading.Thread(target=run, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    return threads, acks, errors


# ---------------------------------------------------------------- tests

def test_10000_creates_are_read_back_from_minute_files_over_http():
    with Server(args=FLAGS) as s:
        threads, acks, errors = writers(s, 4, per_thread=2500)
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        acked = [x for a in acks for x in a]
        assert len(acked) == 10000
        last = max(ev.ts_ns for _, _, ev in acked)

        reader = LogReader(s.channel())
        deadline = time.monotonic() + 30
        while True:
            got = reader.events()
            if got and got[-1][0].ts_ns >= last:
                break
            assert time.monotonic() < deadline, "the log files never reached the last create"
            time.sleep(0.3)

        # exactly the acknowledged creates (plus their parents' creates), in order, each once
        by_ts = {ev.ts_ns: (d, n, ev) for d, n, ev in acked}
        seen = set()
        parents = []
        for i, (le, ev, f) in enumerate(got):
            assert le.ts_ns == ev.ts_ns
            if i:
                assert le.ts_ns > got[i - 1][0].ts_ns, "ts not increasing at %d" % i
            assert le.key == ev.directory.encode()
            day, minute = utc_names(le.ts_ns)
            assert f.startswith(day + "/" + minute + "."), (f, le.ts_ns)
            fid = f.rsplit(".", 1)[1]
            assert len(fid) == 8 and int(fid, 16) > 0, f
            if le.ts_ns in by_ts:
                assert by_ts[le.ts_ns][2] == ev, "the logged event differs from the acknowledged one"
                seen.add(le.ts_ns)
            else:
                parents.append(ev.directory.rstrip("/") + "/" + ev.event_notification.new_entry.name)
        assert seen == set(by_ts), "%d acknowledged events missing" % (len(by_ts) - len(seen))
        assert sorted(parents) == ["/load"] + ["/load/t%d" % w for w in range(4)], parents
        assert [le.offset for le, _, _ in got] == list(range(len(got))), "offsets not contiguous"
        # the log file entries are real files: LookupDirectoryEntry finds them, chunks on record boundaries
        day, name, entry = reader.files()[0]
        r = unary(s.channel(), SVC + "LookupDirectoryEntry",
                  msg("filer_pb.LookupDirectoryEntryRequest")(directory=LOG_DIR + "/" + day, name=name), "filer_pb.LookupDirectoryEntryResponse")
        assert r.entry.attributes.file_size == sum(c.size for c in entry.chunks)
        assert max(c.size for c in entry.chunks) <= 64 * 1024


def test_sigkill_during_writes_keeps_exactly_the_acknowledged_events():
    tmp = tempfile.mkdtemp(prefix="fmtest-log-")
    data = os.path.join(tmp, "data")
    try:
        # flushes by the 1 s interval only (no chunk fills up and flushes early), so that the kill at
        # 2.5 s always leaves about half a second of events to recover, however slowly the writers go
        kill_flags = ["-metaLog.flushIntervalSec", "1"]  # 4 MiB chunks
        with Server(data_dir=data, args=kill_flags) as s:
            stop = threading.Event()
            threads, acks, errors = writers(s, 6, stop=stop, prefix="/kill")
            time.sleep(2.5)  # a few flushes happen before the kill
            s.stop(sig=signal.SIGKILL)
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:3]
        acked = {ev.ts_ns: ev for a in acks for _, _, ev in a}
        assert len(acked) > 200, len(acked)
        flushed = fmtest.log_dump(data, full=True)
        assert any(r["in"] == "write-ahead" for r in flushed), "nothing was left to recover"
        assert any(r["in"] != "write-ahead" for r in flushed), "nothing was flushed before the kill"

        with Server(data_dir=data, args=FLAGS) as s:
            s.stop()
            assert "metadata events not yet in log files" in s.output(), s.output()[-2000:]
        recs = fmtest.log_dump(data, full=True)
        assert all(r["in"] != "write-ahead" for r in recs), "write-ahead records left after a clean stop"
        ts = [int(r["tsNs"]) for r in recs]
        assert all(a < b for a, b in zip(ts, ts[1:])), "ts not strictly increasing"
        assert [r["offset"] for r in recs] == list(range(len(recs))), "offsets not contiguous: a gap or a duplicate"
        got = {t: r for t, r in zip(ts, recs)}
        missing = [t for t in acked if t not in got]
        assert not missing, "%d acknowledged events lost" % len(missing)
        from google.protobuf import json_format
        cls = msg("filer_pb.SubscribeMetadataResponse")
        for t, ev in acked.items():
            assert json_format.ParseDict(got[t]["event"], cls()) == ev, "event %d differs" % t
        # what is not acknowledged was in flight at the kill (one per writer at most) or a parent
        extra = [r for t, r in got.items() if t not in acked]
        assert len(extra) <= 6 + 7, len(extra)
        # the same records as the files held before the restart, plus the recovered ones
        before = [(int(r["tsNs"]), r["event"]) for r in flushed]
        assert [(int(r["tsNs"]), r["event"]) for r in recs] == before
        print("# %d acknowledged, %d records, %d recovered after the kill" %
              (len(acked), len(recs), sum(r["in"] == "write-ahead" for r in flushed)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_retention_removes_old_days_and_their_chunks():
    tmp = tempfile.mkdtemp(prefix="fmtest-log-")
    data = os.path.join(tmp, "data")
    try:
        with Server(data_dir=data, args=FLAGS) as s:
            ch = s.channel()
            a = unary(ch, SVC + "AssignVolume", msg("filer_pb.AssignVolumeRequest")(count=1), "filer_pb.AssignVolumeResponse")
            assert a.error == "" and a.file_id, a
            body = struct.pack(">I", 3) + b"old"
            req = urllib.request.Request("http://%s/%s" % (a.location.url, a.file_id), data=body, method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status in (200, 201), r.status
            old = file_entry("00-00.0000abcd")
            c = old.chunks.add()
            c.file_id, c.offset, c.size = a.file_id, 0, len(body)
            f = Filer(ch)
            f.create_ok(LOG_DIR + "/2020-01-01", old)
            today = utc_names(f.create_ok("/today", file_entry("x")).metadata_event.ts_ns)[0]
            url = "http://%s/%s" % (a.location.url, a.file_id)
            assert http_status(url) == 200
            s.stop()
        with Server(data_dir=data, args=FLAGS + ["-metaLog.retentionDays", "1"]) as s:
            f = Filer(s.channel())
            deadline = time.monotonic() + 10
            while "2020-01-01" in f.names(LOG_DIR):
                assert time.monotonic() < deadline, "retention did not remove 2020-01-01"
                time.sleep(0.1)
            assert f.names(LOG_DIR) == [today], f.names(LOG_DIR)
            url = "http://127.0.0.1:%d/%s" % (s.http_port, a.file_id)
            assert http_status(url) == 404
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    fmtest.main([
        test_10000_creates_are_read_back_from_minute_files_over_http,
        test_sigkill_during_writes_keeps_exactly_the_acknowledged_events,
        test_retention_removes_old_days_and_their_chunks,
    ])
