"""Integration: the events the filer store writes with each mutation, read back
from the persisted log (`filermeta log`) after a clean stop: a recursive
delete of 1,000 entries in post-order, unknown Entry fields carried byte for
byte, and strictly increasing ts_ns under 16 concurrent writers."""

import threading
import time

import grpc

import fmtest
from fmtest import Server, raw_stream, raw_unary
from test_store_client import (ENTRY_ALREADY_EXISTS, IF_NOT_EXISTS, PRECONDITION_FAILED, SVC, M, Filer, check_event,
                               clean_stop, condition, dir_entry, expect_status, field_bytes, field_varint, file_entry,
                               join, stop_and_dump, summaries, wire_field)

S = grpc.StatusCode


def test_recursive_delete_of_1000_entries_is_post_order():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        tree = []  # every descendant of /big, parents before children
        f.mkdir("/big")
        for i in range(10):
            tree.append("/big/d%d" % i)
        tree.append("/big/d9/n")
        for i in range(9):
            tree += ["/big/d%d/f%02d" % (i, j) for j in range(99)]
        tree += ["/big/d9/f%02d" % j for j in range(49)]
        tree += ["/big/d9/n/g%02d" % j for j in range(49)]
        assert len(tree) == 1000
        dirs = {"/big"} | {"/big/d%d" % i for i in range(10)} | {"/big/d9/n"}
        for p in tree:
            if p in dirs:
                f.mkdir(p)
            else:
                f.mkfile(p, chunks=1)
        top = f.lookup("/", "big")
        r = f.delete("/", "big", is_recursive=True, is_delete_data=True, signatures=[31, 32])
        assert r.error == "", r
        check_event(r.metadata_event, "/", old=top, delete_chunks=True, signatures=[31, 32, sig])
        assert not f.exists("/big") and f.list("/big") == [] and f.list("/big/d9/n") == []
        expect_status(S.NOT_FOUND, f.bfs, "/big")

        recs = stop_and_dump(s)
        assert len(recs) == 1 + 1000 + 1001, len(recs)
        dels = recs[1001:]
        got = summaries(dels)
        assert all(k == "delete" for k, _, _ in got), [x for x in got if x[0] != "delete"][:3]
        paths = [p for _, p, _ in got]
        assert len(paths) == len(set(paths)) == 1001 and set(paths) == set(tree) | {"/big"}
        assert paths[-1] == "/big", paths[-3:]
        pos = {p: i for i, p in enumerate(paths)}
        for p in tree:  # a directory's event after all of its contents'
            assert pos[p] < pos[p.rpartition("/")[0]], (p, pos[p], pos[p.rpartition("/")[0]])
        for _, ev in dels[:-1]:
            n = ev.event_notification
            assert list(n.signatures) == [sig] and not n.HasField("new_entry") and n.new_parent_path == "", ev
            assert n.old_entry.is_directory == (join(ev.directory, n.old_entry.name) in dirs), ev
        assert dels[-1][1] == r.metadata_event
        fmtest_ts = [ts for ts, _ in recs]
        assert all(a < b for a, b in zip(fmtest_ts, fmtest_ts[1:]))


# ---------------------------------------------------------------- unknown fields

def _entry_bytes(name):
    """An encoded Entry carrying fields our schema does not know, in canonical
    order: unknown fields last in each message (as any protobuf library writes
    them back). Returns (bytes with the name field, bytes after the name)."""
    attrs = M("FuseAttributes")(file_size=3, mtime=1700000000, file_mode=0o644, uid=7).SerializeToString()
    attrs += field_varint(50, 4242) + field_bytes(51, b"future attr")
    remote = M("RemoteEntry")(storage_name="s3", remote_size=3).SerializeToString()
    remote += field_bytes(6, b"gzip")  # remote_content_encoding: proto3 optional, unknown to our .proto
    rest = (field_bytes(3, M("FileChunk")(file_id="3,01637037d6", size=3).SerializeToString() +
                        field_varint(40, 1)) +
            field_bytes(4, attrs) + field_bytes(9, b"abc") + field_bytes(10, remote) +
            field_varint(99, 123456789) + field_bytes(100, b"\x00\x01unknown"))
    return field_bytes(1, name.encode()), rest


def _create_raw(ch, directory, entry_bytes, **kw):
    req = M("CreateEntryRequest")(directory=directory, **kw).SerializeToString() + field_bytes(2, entry_bytes)
    return raw_unary(ch, SVC + "CreateEntry", req)


def test_unknown_fields_survive_byte_for_byte():
    with Server(keep_dir=True) as s:
        try:
            ch = s.channel()
            f = Filer(ch)
            name, rest = _entry_bytes("u.bin")
            e = name + rest
            # sanity: python's protobuf keeps them too, so the test itself is sound
            assert M("Entry").FromString(e).SerializeToString() == e

            resp = _create_raw(ch, "/u", e)
            r = M("CreateEntryResponse").FromString(resp)
            assert r.error == "" and r.error_code == 0, r
            assert wire_field(resp, 2, 2, 2) == e, "create event's new_entry differs"

            resp = raw_unary(ch, SVC + "LookupDirectoryEntry",
                             M("LookupDirectoryEntryRequest")(directory="/u", name="u.bin").SerializeToString())
            assert wire_field(resp, 1) == e, "lookup differs"
            listed = raw_stream(ch, SVC + "ListEntries", M("ListEntriesRequest")(directory="/u").SerializeToString())
            assert [wire_field(x, 1) for x in listed] == [e], "listing differs"
            walked = raw_stream(ch, SVC + "TraverseBfsMetadata",
                                M("TraverseBfsMetadataRequest")(directory="/u").SerializeToString())
            assert [wire_field(x, 2) for x in walked][1:] == [e], "bfs differs"

            # an identical update changes nothing; a changed one carries both sides intact
            upd = M("UpdateEntryRequest")(directory="/u").SerializeToString()
            resp = raw_unary(ch, SVC + "UpdateEntry", upd + field_bytes(2, e))
            assert wire_field(resp, 1) is None, "identical update made an event"
            e2 = e + field_varint(101, 1)
            resp = raw_unary(ch, SVC + "UpdateEntry", upd + field_bytes(2, e2))
            assert wire_field(resp, 1, 2, 1) == e and wire_field(resp, 1, 2, 2) == e2, "update event differs"

            # rename: the same bytes under the new name
            f.rename("/u", "u.bin", "/u", "v.bin")
            resp = raw_unary(ch, SVC + "LookupDirectoryEntry",
                             M("LookupDirectoryEntryRequest")(directory="/u", name="v.bin").SerializeToString())
            e3 = field_bytes(1, b"v.bin") + rest + field_varint(101, 1)
            assert wire_field(resp, 1) == e3, "renamed entry differs"
            clean_stop(s)
            # after a restart, still the same bytes; and a delete's event carries them
            with Server(data_dir=s.dir) as s2:
                ch2 = s2.channel()
                resp = raw_unary(ch2, SVC + "LookupDirectoryEntry",
                                 M("LookupDirectoryEntryRequest")(directory="/u", name="v.bin").SerializeToString())
                assert wire_field(resp, 1) == e3, "entry differs after restart"
                resp = raw_unary(ch2, SVC + "DeleteEntry",
                                 M("DeleteEntryRequest")(directory="/u", name="v.bin").SerializeToString())
                assert wire_field(resp, 2, 2, 1) == e3, "delete event's old_entry differs"
                clean_stop(s2)
        finally:
            import shutil
            shutil.rmtree(s.tmp, ignore_errors=True)


# ---------------------------------------------------------------- ordering

def _path_of(d):
    """The affected path of an event in canonical JSON (dict)."""
    n = d.get("eventNotification", {})
    e = n.get("newEntry") or n.get("oldEntry") or {}
    return join(d.get("directory", ""), e.get("name", ""))


def test_16_writers_x_2000_creates_strictly_ordered():
    writers, per = 16, 2000
    with Server() as s:
        acks = [[] for _ in range(writers)]
        errors = []
        go = threading.Barrier(writers)

        def writer(w):
            ch = grpc.insecure_channel(s.grpc_addr)
            try:
                f = Filer(ch)
                go.wait()
                for i in range(per):
                    r = f.create("/conc/w%02d" % w, file_entry("f%04d" % i, size=i))
                    assert r.error == "" and r.error_code == 0, r
                    acks[w].append(("/conc/w%02d/f%04d" % (w, i), r.metadata_event.ts_ns))
            except Exception as e:  # reported below
                errors.append(repr(e))
            finally:
                ch.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        print("# %d creates in %.2f s: %.0f/s (python clients)" % (writers * per, took, writers * per / took))
        assert not errors, errors[:3]
        for w in range(writers):
            stamps = [ts for _, ts in acks[w]]
            assert all(a < b for a, b in zip(stamps, stamps[1:])), "writer %d got ts out of order" % w

        recs = stop_and_dump(s, parse=False)
        prev = 0
        for i, (ts, d) in enumerate(recs):
            assert int(d.get("tsNs", 0)) == ts, (i, ts, d.get("tsNs"))
            assert ts > prev, ("record %d: ts %d not above %d" % (i, ts, prev))
            prev = ts
        paths = [_path_of(d) for _, d in recs]
        count = {}
        for p in paths:
            count[p] = count.get(p, 0) + 1
        dup = [p for p, c in count.items() if c > 1]
        assert not dup, "paths with more than one event: %r" % dup[:5]
        want = {"/conc"} | {"/conc/w%02d" % w for w in range(writers)}
        want |= {p for a in acks for p, _ in a}
        assert set(paths) == want, (sorted(set(paths) - want)[:5], sorted(want - set(paths))[:5])
        assert len(recs) == writers * per + writers + 1, len(recs)
        ts_of = dict(zip(paths, (ts for ts, _ in recs)))
        for a in acks:
            for p, ts in a:
                assert ts_of[p] == ts, (p, ts_of[p], ts)
        # every parent directory's event comes before the first file in it
        for w in range(writers):
            d = "/conc/w%02d" % w
            assert ts_of["/conc"] < ts_of[d] < ts_of[d + "/f0000"], (d, ts_of["/conc"], ts_of[d])


def test_conflicting_writers_have_one_winner():
    """Checks and writes are one step: of racing o_excl creates, IF_NOT_EXISTS
    creates, and renames of one source, exactly one succeeds, with one event."""
    racers = 12
    with Server() as s:
        Filer(s.channel()).mkfile("/race/src")
        results = {"excl": [], "cond": [], "mv": []}
        lock = threading.Lock()
        go = threading.Barrier(racers)

        def racer(i):
            ch = grpc.insecure_channel(s.grpc_addr)
            f = Filer(ch)
            try:
                go.wait()
                r = f.create("/race", file_entry("excl", size=i), o_excl=True)
                r2 = f.create("/race", file_entry("cond", size=i), condition=condition(IF_NOT_EXISTS))
                try:
                    f.rename("/race", "src", "/race", "dst%d" % i)
                    mv = "OK"
                except grpc.RpcError as e:
                    mv = e.code()
                with lock:
                    results["excl"].append((i, r.error_code, r.error))
                    results["cond"].append((i, r2.error_code, r2.error))
                    results["mv"].append((i, mv))
            finally:
                ch.close()

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        f = Filer(s.channel())
        assert len(results["excl"]) == racers, results
        won = [i for i, code, _ in results["excl"] if code == 0]
        assert len(won) == 1, results["excl"]
        assert all(c == ENTRY_ALREADY_EXISTS and e == "/race/excl: entry already exists"
                   for i, c, e in results["excl"] if i not in won), results["excl"]
        assert f.lookup("/race", "excl").attributes.file_size == won[0]
        won = [i for i, code, _ in results["cond"] if code == 0]
        assert len(won) == 1, results["cond"]
        assert all(c == PRECONDITION_FAILED for i, c, _ in results["cond"] if i not in won), results["cond"]
        assert f.lookup("/race", "cond").attributes.file_size == won[0]
        won = [i for i, mv in results["mv"] if mv == "OK"]
        assert len(won) == 1, results["mv"]
        assert all(mv == S.NOT_FOUND for i, mv in results["mv"] if i not in won), results["mv"]
        assert f.names("/race") == sorted(["cond", "dst%d" % won[0], "excl"]), f.names("/race")
        recs = stop_and_dump(s)
        assert sorted(summaries(recs)) == sorted([
            ("create", "/race", None), ("create", "/race/src", None), ("create", "/race/excl", None),
            ("create", "/race/cond", None), ("rename", "/race/src", "/race/dst%d" % won[0])]), summaries(recs)


def test_ts_increases_across_kinds_and_matches_responses():
    with Server() as s:
        f = Filer(s.channel())
        got = []
        got.append(f.mkfile("/k/a").metadata_event)
        got.append(f.update("/k", file_entry("a", size=5)).metadata_event)
        f.mkdir("/k2")
        f.rename("/k", "a", "/k2", "b")
        got.append(f.delete("/k2", "b").metadata_event)
        got.append(f.create_ok("/k", dir_entry("sub")).metadata_event)
        got.append(f.delete("/", "k", is_recursive=True).metadata_event)
        recs = stop_and_dump(s)
        assert summaries(recs) == [
            ("create", "/k", None), ("create", "/k/a", None), ("update", "/k/a", None), ("create", "/k2", None),
            ("rename", "/k/a", "/k2/b"), ("delete", "/k2/b", None), ("create", "/k/sub", None),
            ("delete", "/k/sub", None), ("delete", "/k", None)], summaries(recs)
        stamps = [ts for ts, _ in recs]
        assert all(a < b for a, b in zip(stamps, stamps[1:])), stamps
        assert [ev.ts_ns for _, ev in recs] == stamps
        by_ts = {ts: ev for ts, ev in recs}
        for ev in got:
            assert by_ts[ev.ts_ns] == ev, (ev, by_ts.get(ev.ts_ns))


if __name__ == "__main__":
    fmtest.main([
        test_recursive_delete_of_1000_entries_is_post_order,
        test_unknown_fields_survive_byte_for_byte,
        test_16_writers_x_2000_creates_strictly_ordered,
        test_conflicting_writers_have_one_winner,
        test_ts_increases_across_kinds_and_matches_responses,
    ])
