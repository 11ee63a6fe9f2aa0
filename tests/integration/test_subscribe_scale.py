"""Integration, at scale: SubscribeMetadata with many events and many streams
(PROTOCOL.md section 5). A catch-up of 100,000 events across five log files
of five server runs and the memory of the sixth, exactly once; 200 live
subscribers each getting all of 10,000 events in order; 1,000 streams
cancelled, after which the registry, the threads and the memory are back
where they were; SIGTERM with 100 open streams.

Python's gRPC costs tens of microseconds per message, so the clients are
shaped for it: creates are pipelined (futures, a window per channel); the
many streams are read by asyncio loops (grpc.aio) in worker processes (this
file run with "worker"), which spreads the Python work over the cores and
keeps grpc.aio out of the test process: grpcio 1.51's aio shares one poller
with the sync stack, and a loop that blocks, or ends, while events are still
coming can hang both. Each test prints what it measured."""

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc

import fmtest
from fmtest import Server, msg, unary
from test_store_client import Filer, file_entry

SVC = "/filer_pb.SeaweedFiler/"
LOG_DIR = "/topics/.system/log"
Req = lambda **kw: msg("filer_pb.SubscribeMetadataRequest")(**kw)  # noqa: E731


def create_fast(server, directory, n, channels=2, window=64):
    """Creates files directory/f000000.. from `channels` threads, each with `window` calls in flight on its own
    channel. The directory must exist (its parents' events would not be acknowledged). Returns the acknowledged
    ts_ns, sorted."""
    Create = msg("filer_pb.CreateEntryRequest")
    acks, errors = [], []
    lock = threading.Lock()

    def run(k):
        ch = grpc.insecure_channel(server.grpc_addr)
        call = ch.unary_unary(SVC + "CreateEntry", request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=msg("filer_pb.CreateEntryResponse").FromString)
        mine, pending = [], []

        def done(fut):
            r = fut.result()
            assert r.error == "" and r.error_code == 0, (r.error, r.error_code)
            mine.append(r.metadata_event.ts_ns)

        try:
            for i in range(k, n, channels):
                pending.append(call.future(Create(directory=directory, entry=file_entry("f%06d" % i)), timeout=60))
                if len(pending) >= window:
                    done(pending.pop(0))
            for fut in pending:
                done(fut)
        except Exception as e:  # reported by the caller
            errors.append(repr(e))
        finally:
            ch.close()
            with lock:
                acks.extend(mine)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(channels)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(acks) == n, (len(acks), n)
    return sorted(acks)


def subscribers(ch):
    r = unary(ch, SVC + "ListMetadataSubscribers", msg("filer_pb.ListMetadataSubscribersRequest")(),
              "filer_pb.ListMetadataSubscribersResponse")
    return list(r.subscribers)


def debug_subscribers(server):
    with urllib.request.urlopen("http://127.0.0.1:%d/debug/subscribers" % server.http_port, timeout=10) as r:
        return json.loads(r.read())


def thread_names(server):
    """{name: count} of the server's threads (/proc/<pid>/task/*/comm)."""
    out = {}
    for t in os.listdir("/proc/%d/task" % server.proc.pid):
        try:
            with open("/proc/%d/task/%s/comm" % (server.proc.pid, t)) as f:
                name = f.read().strip()
        except FileNotFoundError:  # ended meanwhile
            continue
        out[name] = out.get(name, 0) + 1
    return out


def rss_threads(server):
    st = fmtest.proc_status(server.proc.pid)
    return int(st["VmRSS"].split()[0]) * 1024, int(st["Threads"])


def event_ts(resp):
    """The ts_ns of the events a response carries (top level, then a batch's), markers left out."""
    out = []
    for e in [resp] + list(resp.events):
        en = e.event_notification
        if e.HasField("event_notification") and (en.HasField("new_entry") or en.HasField("old_entry")):
            out.append(e.ts_ns)
    return out


# ---------------------------------------------------------------- subscriber worker processes

def worker_main(spec):
    """A worker process: `count` SubscribeMetadata streams over `channels` aio channels, numbered from `first`
    (client_id = number + 1, client_name = prefix-free tag + number). Talks JSON lines on stdin/stdout.

    mode "collect": each stream reads until it has `events` events; prints {"lists": [...], "members": [...],
    "messages": n}: the distinct lists of received ts_ns and which streams got each.
    mode "hold": each stream reads its first response (an event); prints {"open": count}; on the line "cancel"
    cancels every stream and prints {"cancelled": count}; on "exit" (or EOF) ends, channels still open until then."""
    import traceback

    async def run():
        loop = asyncio.get_running_loop()
        channels = [grpc.aio.insecure_channel(spec["addr"]) for _ in range(spec["channels"])]
        numbers = range(spec["first"], spec["first"] + spec["count"])
        calls = {}
        for i in numbers:
            call = channels[i % len(channels)].unary_stream(
                SVC + "SubscribeMetadata", request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=msg("filer_pb.SubscribeMetadataResponse").FromString)
            calls[i] = call(Req(client_name="%s%d" % (spec["tag"], i), path_prefix=spec["prefix"],
                                since_ns=spec["since"], client_id=i + 1, client_epoch=1,
                                client_supports_batching=spec.get("batching_odd", False) and bool(i % 2)),
                            timeout=spec["timeout"])

        def say(obj):
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

        if spec["mode"] == "collect":
            async def collect(i):
                got, messages = [], 0
                async for r in calls[i]:
                    messages += 1
                    got += event_ts(r)
                    if len(got) >= spec["events"]:
                        break
                calls[i].cancel()
                return got, messages

            results = await asyncio.gather(*[collect(i) for i in numbers])
            lists, members = [], []
            for i, (got, _) in zip(numbers, results):
                if got not in lists:
                    lists.append(got)
                    members.append([])
                members[lists.index(got)].append(i)
            say({"lists": lists, "members": members, "messages": sum(m for _, m in results)})
            os._exit(0)  # see below
        for i in numbers:
            r = await calls[i].read()
            assert r is not grpc.aio.EOF and event_ts(r), "stream %d: %s" % (i, r)
        say({"open": len(calls)})
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line == "cancel":
                for c in calls.values():
                    c.cancel()
                say({"cancelled": len(calls)})
            elif line in ("exit", ""):
                os._exit(0)  # see below

    # The worker ends with os._exit where it is done, without an orderly grpc.aio shutdown: grpcio 1.51 can hang in
    # that (its poller thread blocked writing to the socket of a loop that no longer reads it).
    try:
        asyncio.run(run())
    except BaseException:
        sys.stdout.write(json.dumps({"error": traceback.format_exc()}) + "\n")
        sys.stdout.flush()
    os._exit(1)


class Worker:
    """A worker process (worker_main) and the JSON lines it prints."""

    def __init__(self, spec):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def get(self, timeout):
        try:
            m = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("worker %d said nothing in %.0f s" % (self.proc.pid, timeout))
        assert m is not None, "worker %d exited with %s" % (self.proc.pid, self.proc.wait())
        assert "error" not in m, m["error"]
        return m

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


def workers(server, n_workers, total, channels_each, **spec):
    per = total // n_workers
    assert per * n_workers == total
    return [Worker(dict(spec, addr=server.grpc_addr, first=w * per, count=per, channels=channels_each))
            for w in range(n_workers)]


MiB = 1 << 20


# ---------------------------------------------------------------- catch-up

def test_catch_up_of_100000_events_across_five_log_files_and_memory():
    rounds, per_round, in_memory = 5, 19000, 5000
    # no flush during a run (a clean stop flushes), small chunks, batches for every event that is not brand new
    flags = ["-metaLog.flushIntervalSec", "3600", "-metaLog.chunkKB", "64", "-metaLog.batchBehind", "0s"]
    tmp = tempfile.mkdtemp(prefix="fmtest-scale-")
    data = os.path.join(tmp, "data")
    try:
        acked = []
        t0 = time.monotonic()
        for rnd in range(rounds):
            with Server(data_dir=data, args=flags) as s:
                f = Filer(s.channel())
                if rnd == 0:
                    acked.append(f.mkdir("/cu").metadata_event.ts_ns)
                acked.append(f.mkdir("/cu/r%d" % rnd).metadata_event.ts_ns)
                acked += create_fast(s, "/cu/r%d" % rnd, per_round)
                s.close_channels()
                fmtest.assert_clean_stop(s)  # flushes what memory held into this run's log file(s)
        t_write = time.monotonic() - t0

        recs = fmtest.log_dump(data, full=True)
        files = sorted({r["in"] for r in recs})
        assert "write-ahead" not in files, "a clean stop left write-ahead records"
        filer_ids = {f.rsplit(".", 1)[1] for f in files}
        assert len(files) >= rounds and len(filer_ids) == rounds, files
        assert [int(r["tsNs"]) for r in recs] == sorted(acked), "the log files do not hold exactly what was acknowledged"

        # default chunks (4 MiB): the flusher is not kicked by a chunk's worth, so the last events stay in memory
        with Server(data_dir=data, args=flags[:2] + flags[4:]) as s:
            f = Filer(s.channel())
            acked.append(f.mkdir("/cu/mem").metadata_event.ts_ns)
            acked += create_fast(s, "/cu/mem", in_memory)
            acked.sort()
            assert len(acked) == rounds * per_round + in_memory + rounds + 2
            # the newest events are in memory only: the log files are still the five runs' ones
            listed = sorted("%s/%s/%s" % (LOG_DIR, day, name) for day in f.names(LOG_DIR)
                            for name in f.names(LOG_DIR + "/" + day))
            assert listed == files, (listed, files)

            t0 = time.monotonic()
            it = s.channel().unary_stream(
                SVC + "SubscribeMetadata", request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=msg("filer_pb.SubscribeMetadataResponse").FromString)(
                Req(client_name="catchup", path_prefix="/", since_ns=0, until_ns=acked[-1],
                    client_supports_batching=True), timeout=120)
            got, messages = [], 0
            for r in it:  # ends with OK at until_ns
                messages += 1
                got += event_ts(r)
            t_read = time.monotonic() - t0
            assert it.code() == grpc.StatusCode.OK, it.code()
            if got != acked:
                seen = set(got)
                dup = len(got) - len(seen)
                missing = [t for t in acked if t not in seen]
                raise AssertionError("%d received, %d acknowledged: %d duplicates, %d missing (first %s)" %
                                     (len(got), len(acked), dup, len(missing), missing[:3]))
            s.close_channels()
            fmtest.assert_clean_stop(s)
        print("# %d events (%d log files of %d runs + %d in memory): written in %.1f s; caught up in %.2f s "
              "(%d messages, %.0f events/s)" % (len(acked), len(files), rounds, in_memory + 1, t_write, t_read,
                                                messages, len(got) / t_read))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- many live subscribers

def test_200_live_subscribers_get_all_10000_events_in_order():
    n_subs, n_events, n_workers = 200, 10000, 2
    with Server() as s:
        f = Filer(s.channel())
        since = f.mkdir("/live").metadata_event.ts_ns
        ch = s.channel()
        # half of them could take batches: live events still come one per message
        ws = workers(s, n_workers, n_subs, 4, mode="collect", tag="live", prefix="/live/", since=since,
                     events=n_events, batching_odd=True, timeout=600)
        try:
            deadline = time.monotonic() + 60
            while len(subscribers(ch)) < n_subs:  # every stream registered: all of what follows is live
                assert time.monotonic() < deadline, "only %d of %d streams registered" % (len(subscribers(ch)), n_subs)
                time.sleep(0.05)
            t0 = time.monotonic()
            acks = create_fast(s, "/live", n_events)
            results = [w.get(timeout=600) for w in ws]
            took = time.monotonic() - t0
        finally:
            for w in ws:
                w.close()
        assert len(set(acks)) == n_events
        received = 0
        for res in results:
            for got, members in zip(res["lists"], res["members"]):
                received += len(members)
                if got != acks:
                    bad = next((k for k, (a, b) in enumerate(zip(got, acks)) if a != b), min(len(got), len(acks)))
                    raise AssertionError("subscribers %s: %d events, first difference at %d: %s vs acknowledged %s" %
                                         (members[:5], len(got), bad, got[bad:bad + 3], acks[bad:bad + 3]))
        assert received == n_subs, received
        messages = sum(r["messages"] for r in results)
        print("# %d subscribers x %d events: %.1f s from the first create to the last delivery "
              "(%d messages, %.0f messages/s)" % (n_subs, n_events, took, messages, messages / took))
        s.close_channels()
        fmtest.assert_clean_stop(s)


# ---------------------------------------------------------------- cancel 1,000 streams

def test_1000_cancelled_streams_leave_nothing_behind():
    n_streams, n_workers = 1000, 2
    sanitized = fmtest.is_sanitized()
    # ASan keeps freed memory in its quarantine (256 MiB by default) and its own free lists: with that, the resident
    # size after the streams says nothing about the server, so the quarantine is off and free pages go back soon
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
           ":allocator_release_to_os_interval_ms=100",
           "TSAN_OPTIONS": os.environ.get("TSAN_OPTIONS", "") + ":allocator_release_to_os_interval_ms=100"} \
        if sanitized else None
    with Server(env=env) as s:
        f = Filer(s.channel())
        f.mkfile("/c/x")
        ch = s.channel()

        def cycle():
            """Opens the streams, checks the listings, cancels them and waits for the registry to be empty; returns
            the server's (RSS, threads) while they were open."""
            ws = workers(s, n_workers, n_streams, 10, mode="hold", tag="c", prefix="/c/", since=0, timeout=120)
            try:
                for w in ws:  # each stream is open and has delivered its history
                    assert w.get(timeout=60) == {"open": n_streams // n_workers}
                listed = subscribers(ch)
                assert sorted(x.client_id for x in listed) == list(range(1, n_streams + 1)), len(listed)
                debug = debug_subscribers(s)
                assert sorted(x["id"] for x in debug) == list(range(1, n_streams + 1)), len(debug)
                peak = rss_threads(s)
                for w in ws:
                    w.send("cancel")
                for w in ws:
                    assert w.get(timeout=60) == {"cancelled": n_streams // n_workers}
                deadline = time.monotonic() + 30
                while True:
                    left = subscribers(ch)
                    if not left:
                        break
                    assert time.monotonic() < deadline, "%d cancelled streams still registered, e.g. %s" % (
                        len(left), [(x.client_type, x.client_id) for x in left[:5]])
                    time.sleep(0.05)
                assert debug_subscribers(s) == []
                return peak
            finally:  # the connections stay until the registry is empty: a cancel alone must release a stream
                for w in ws:
                    w.close()

        def settle(rss_limit):
            """Waits (bounded) for the server's RSS to come down to rss_limit, its own threads to the baseline and
            gRPC's pools (threads it names) to at most 4 more than then; returns (RSS, threads)."""
            deadline = time.monotonic() + 30
            while True:
                rss, threads = rss_threads(s)
                names = thread_names(s)
                own = names.get(own_name, 0)
                grpc_pools = threads - own
                if rss <= rss_limit and own <= base_own and grpc_pools <= base_threads - base_own + 4:
                    return rss, threads
                assert time.monotonic() < deadline, \
                    "after the cancel: RSS %.1f MiB (limit %.1f), threads %s (before: %s)" % (
                        rss / MiB, rss_limit / MiB, names, base_names)
                time.sleep(0.1)

        # warm up what any stream sets up once (a connection, the RPC threads), then measure
        it = ch.unary_stream(SVC + "SubscribeMetadata", request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=msg("filer_pb.SubscribeMetadataResponse").FromString)(
            Req(client_name="warm", path_prefix="/c/"), timeout=30)
        next(it)
        it.cancel()
        while subscribers(ch):
            time.sleep(0.05)
        base_rss, base_threads = rss_threads(s)
        base_names = thread_names(s)
        # the server names none of its threads: they carry the program's name, gRPC's have their own
        own_name = os.path.basename(s.proc.args[0])[:15]
        base_own = base_names[own_name]

        t0 = time.monotonic()
        peak_rss, peak_threads = cycle()
        took = time.monotonic() - t0
        # caught-up streams are served by the live set's one dispatcher, not by a thread each
        assert peak_threads < base_threads + 64, (base_threads, peak_threads)
        limit = base_rss + 64 * MiB
        after = settle(limit if not sanitized else float("inf"))
        if sanitized:
            # ASan's allocator keeps what the first 1,000 streams used: the baseline is after them (once it returned
            # what it returns), and a second round must not add to it
            time.sleep(1)
            limit = rss_threads(s)[0] + 64 * MiB
            cycle()
            after = settle(limit)
        print("# %d streams opened, listed and cancelled in %.2f s; RSS %.1f MiB before, %.1f MiB with them, "
              "down to %.1f MiB after (limit %.1f%s); threads %d / %d / %d" % (
                  n_streams, took, base_rss / MiB, peak_rss / MiB, after[0] / MiB, limit / MiB,
                  ", sanitizer: after a second round" if sanitized else "", base_threads, peak_threads, after[1]))
        # the server still serves, and (under ASan) its exit reports no leak
        assert f.mkfile("/c/y").metadata_event.ts_ns > 0
        s.close_channels()
        fmtest.assert_clean_stop(s)


# ---------------------------------------------------------------- shutdown

def test_sigterm_with_100_open_streams():
    n_streams, n_channels = 100, 5
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/s/x")
        channels = [s.channel() for _ in range(n_channels)]
        codes = {}
        opened = threading.Barrier(n_streams + 1)

        def watch(i):
            call = channels[i % n_channels].unary_stream(
                SVC + "SubscribeMetadata", request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=msg("filer_pb.SubscribeMetadataResponse").FromString)
            it = call(Req(client_name="s%d" % i, path_prefix="/s/", client_id=i + 1, client_epoch=1), timeout=60)
            try:
                next(it)
                opened.wait(30)
                for _ in it:
                    pass
                codes[i] = (grpc.StatusCode.OK, "")
            except grpc.RpcError as e:
                codes[i] = (e.code(), e.details())
            except threading.BrokenBarrierError:
                codes[i] = ("not opened", "")

        threads = [threading.Thread(target=watch, args=(i,)) for i in range(n_streams)]
        for t in threads:
            t.start()
        opened.wait(30)
        assert len(subscribers(s.channel())) == n_streams
        fmtest.assert_clean_stop(s, within=5.0)
        for t in threads:
            t.join(10)
        assert len(codes) == n_streams, "%d streams still open after the server exited" % (n_streams - len(codes))
        wrong = {i: c for i, c in codes.items() if c[0] != grpc.StatusCode.UNAVAILABLE}
        assert not wrong, wrong


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker_main(json.loads(sys.argv[2]))
elif __name__ == "__main__":
    fmtest.main([
        test_catch_up_of_100000_events_across_five_log_files_and_memory,
        test_200_live_subscribers_get_all_10000_events_in_order,
        test_1000_cancelled_streams_leave_nothing_behind,
        test_sigterm_with_100_open_streams,
    ])
