"""Integration: the filer store's entry RPCs against the real filermetad:
CreateEntry, UpdateEntry, DeleteEntry, AtomicRenameEntry, LookupDirectoryEntry,
their in-band errors and statuses, path validation, and the events each
mutation returns (checked again in the write-ahead log after a clean stop)."""

import grpc

import fmtest
from fmtest import Server
from test_store_client import (ENTRY_ALREADY_EXISTS, ENTRY_NAME_TOO_LONG, EXISTING_IS_DIRECTORY, EXISTING_IS_FILE,
                               IF_ETAG_MATCH, IF_EXISTS, IF_NOT_EXISTS, NONE, NOT_FOUND_TEXT, OK, PARENT_IS_FILE,
                               PRECONDITION_FAILED, M, Filer, check_event, condition, dir_entry, expect_status,
                               file_entry, stop_and_dump, summaries)

S = grpc.StatusCode


# ---------------------------------------------------------------- CreateEntry

def test_create_file_event_and_response():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        f.mkdir("/t")
        e = file_entry("a.txt", size=3, chunks=2, content=b"abc", extended={"k": b"v"})
        r = f.create("/t", e)
        assert r.error == "" and r.error_code == OK, r
        ev = r.metadata_event
        check_event(ev, "/t", new=e, delete_chunks=True, new_parent_path="/t", signatures=[sig])
        assert r.log_ts_ns == ev.ts_ns > 0, (r.log_ts_ns, ev.ts_ns)
        assert r.log_signature == sig, (r.log_signature, sig)
        assert f.lookup("/t", "a.txt") == e

        # request signatures come first, then the filer's; is_from_other_cluster is copied
        e2 = file_entry("b.txt", size=1)
        r2 = f.create("/t", e2, signatures=[111, -222], is_from_other_cluster=True)
        check_event(r2.metadata_event, "/t", new=e2, delete_chunks=True, new_parent_path="/t",
                    signatures=[111, -222, sig], from_other=True)
        assert r2.metadata_event.ts_ns > ev.ts_ns

        # the filer's own signature is never added twice
        e3 = file_entry("c.txt")
        r3 = f.create("/t", e3, signatures=[sig, 5])
        assert list(r3.metadata_event.event_notification.signatures) == [sig, 5], r3.metadata_event

        # an entry in the root: directory and new_parent_path are "/"
        e4 = file_entry("top")
        r4 = f.create("/", e4)
        check_event(r4.metadata_event, "/", new=e4, delete_chunks=True, new_parent_path="/", signatures=[sig])

        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/t", None), ("create", "/t/a.txt", None), ("create", "/t/b.txt", None),
                                   ("create", "/t/c.txt", None), ("create", "/top", None)], summaries(recs)
        assert recs[1][1] == ev and recs[2][1] == r2.metadata_event and recs[4][1] == r4.metadata_event


def test_create_makes_missing_parents_top_down():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        e = file_entry("e.txt", size=5)
        r = f.create("/a/b/c/d", e, signatures=[77], is_from_other_cluster=True)
        assert r.error == "" and r.error_code == OK, r
        check_event(r.metadata_event, "/a/b/c/d", new=e, delete_chunks=True, new_parent_path="/a/b/c/d",
                    signatures=[77, sig], from_other=True)
        for d, n in (("/", "a"), ("/a", "b"), ("/a/b", "c"), ("/a/b/c", "d")):
            got = f.lookup(d, n)
            assert got.is_directory and got.name == n, (d, n, got)
        assert f.lookup("/a/b/c/d", "e.txt") == e
        # some parents exist already: only the missing one is made
        f.create_ok("/a/b/x", file_entry("y.txt"))
        recs = stop_and_dump(s)
        assert len(recs) == 7, summaries(recs)
        for i, (d, n) in enumerate((("/", "a"), ("/a", "b"), ("/a/b", "c"), ("/a/b/c", "d"))):
            ev = recs[i][1]
            nn = ev.event_notification
            assert nn.new_entry.name == n and nn.new_entry.is_directory, (i, ev)
            # parents carry only the filer's signature, but the request's is_from_other_cluster
            check_event(ev, d, new=nn.new_entry, delete_chunks=False, new_parent_path=d, signatures=[sig],
                        from_other=True)
        assert recs[4][1] == r.metadata_event, (recs[4][1], r.metadata_event)
        assert summaries(recs)[5:] == [("create", "/a/b/x", None), ("create", "/a/b/x/y.txt", None)], summaries(recs)
        stamps = [ts for ts, _ in recs]
        assert stamps == sorted(set(stamps)), stamps


def test_create_skip_check_parent_directory():
    with Server() as s:
        f = Filer(s.channel())
        e = file_entry("f")
        r = f.create("/nope/deeper", e, skip_check_parent_directory=True)
        assert r.error == "" and r.error_code == OK, r
        assert f.lookup("/nope/deeper", "f") == e
        assert not f.exists("/nope") and not f.exists("/nope/deeper")
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/nope/deeper/f", None)], summaries(recs)


def test_create_trailing_slash_is_stripped():
    with Server() as s:
        f = Filer(s.channel())
        e = file_entry("f")
        r = f.create("/ts/", e)
        assert r.error == "" and r.error_code == OK, r
        assert r.metadata_event.directory == "/ts" and r.metadata_event.event_notification.new_parent_path == "/ts", r
        assert f.lookup("/ts", "f") == e and f.lookup("/ts/", "f") == e
        assert [x.name for x in f.list("/ts/")] == ["f"]
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/ts", None), ("create", "/ts/f", None)], summaries(recs)


def test_create_existing_entry_errors():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        d = dir_entry("d")
        f.create_ok("/t", d)
        old = file_entry("f", size=1)
        f.create_ok("/t", old)

        r = f.create("/t", file_entry("f", size=2), o_excl=True)
        assert r.error_code == ENTRY_ALREADY_EXISTS and r.error == "/t/f: entry already exists", r
        assert not r.HasField("metadata_event"), r
        r = f.create("/t", dir_entry("d"), o_excl=True)
        assert r.error_code == ENTRY_ALREADY_EXISTS and r.error == "/t/d: entry already exists", r
        r = f.create("/t", file_entry("d"))
        assert r.error_code == EXISTING_IS_DIRECTORY and r.error == "/t/d: existing entry is a directory", r
        r = f.create("/t", dir_entry("f"))
        assert r.error_code == EXISTING_IS_FILE and r.error == "/t/f: existing entry is a file", r
        assert f.lookup("/t", "f") == old and f.lookup("/t", "d") == d

        # overwrite without o_excl: one event with the previous entry
        new = file_entry("f", size=9, chunks=1)
        r = f.create("/t", new, signatures=[3])
        assert r.error == "" and r.error_code == OK, r
        check_event(r.metadata_event, "/t", old=old, new=new, delete_chunks=True, new_parent_path="/t",
                    signatures=[3, sig])
        assert f.lookup("/t", "f") == new
        # a directory over a directory is an overwrite too
        d2 = dir_entry("d", mtime=1800000000)
        r = f.create("/t", d2)
        assert r.error == "" and r.error_code == OK, r
        check_event(r.metadata_event, "/t", old=d, new=d2, delete_chunks=True, new_parent_path="/t",
                    signatures=[sig])
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/t", None), ("create", "/t/d", None), ("create", "/t/f", None),
                                   ("update", "/t/f", None), ("update", "/t/d", None)], summaries(recs)


def test_create_under_a_file_is_parent_is_file():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/p/file")
        r = f.create("/p/file", file_entry("x.txt"))
        assert r.error_code == PARENT_IS_FILE and r.error == "/p/file: parent path is a file", r
        assert not r.HasField("metadata_event"), r
        r = f.create("/p/file/sub/deeper", file_entry("x.txt"))
        assert r.error_code == PARENT_IS_FILE and r.error == "/p/file: parent path is a file", r
        assert not f.exists("/p/file/sub")
        # a file whose own parents are missing (made with skip_check_parent_directory):
        # no directory above it is created by the failed create either
        f.create_ok("/m/n", file_entry("file"), skip_check_parent_directory=True)
        r = f.create("/m/n/file/z", file_entry("x.txt"))
        assert r.error_code == PARENT_IS_FILE and r.error == "/m/n/file: parent path is a file", r
        assert not f.exists("/m") and not f.exists("/m/n")
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/p", None), ("create", "/p/file", None),
                                   ("create", "/m/n/file", None)], summaries(recs)


def test_create_name_length():
    with Server() as s:
        f = Filer(s.channel())
        r = f.create("/n", file_entry("x" * 256))
        assert r.error_code == ENTRY_NAME_TOO_LONG and r.error == "entry name too long", r
        assert not r.HasField("metadata_event")
        # 255 bytes is fine, counted in bytes: 127 two-byte characters + 1 = 255
        f.create_ok("/n", file_entry("y" * 255))
        f.create_ok("/n", file_entry("\u00e9" * 127 + "z"))
        r = f.create("/n", file_entry("\u00e9" * 128))
        assert r.error_code == ENTRY_NAME_TOO_LONG and r.error == "entry name too long", r
        assert sorted(f.names("/n")) == sorted(["y" * 255, "\u00e9" * 127 + "z"])
        recs = stop_and_dump(s)
        assert [x[1] for x in summaries(recs)] == ["/n", "/n/" + "y" * 255, "/n/" + "\u00e9" * 127 + "z"], \
            summaries(recs)


def test_create_conditions():
    with Server() as s:
        f = Filer(s.channel())
        f.mkdir("/c")
        # IF_EXISTS on a missing entry fails; IF_NOT_EXISTS on it passes
        r = f.create("/c", file_entry("f"), condition=condition(IF_EXISTS))
        assert r.error_code == PRECONDITION_FAILED and r.error == "precondition failed", r
        assert not r.HasField("metadata_event") and not f.exists("/c/f")
        f.create_ok("/c", file_entry("f", size=1), condition=condition(IF_NOT_EXISTS))
        # now it exists: IF_NOT_EXISTS fails, IF_EXISTS passes (an overwrite)
        r = f.create("/c", file_entry("f", size=2), condition=condition(IF_NOT_EXISTS))
        assert r.error_code == PRECONDITION_FAILED and r.error == "precondition failed", r
        assert f.lookup("/c", "f").attributes.file_size == 1
        f.create_ok("/c", file_entry("f", size=3), condition=condition(IF_EXISTS))
        assert f.lookup("/c", "f").attributes.file_size == 3
        # NONE is always true; clauses are ANDed
        f.create_ok("/c", file_entry("g"), condition=condition(NONE))
        f.create_ok("/c", file_entry("g", size=4), condition=condition(NONE, IF_EXISTS))
        r = f.create("/c", file_entry("g", size=5), condition=condition(IF_EXISTS, IF_NOT_EXISTS))
        assert r.error_code == PRECONDITION_FAILED and r.error == "precondition failed", r
        r = f.create("/c", file_entry("h"), condition=condition(IF_NOT_EXISTS, IF_EXISTS))
        assert r.error_code == PRECONDITION_FAILED, r
        # a condition on a parent dir that does not exist yet: the entry does not exist
        f.create_ok("/c/new/dir", file_entry("i"), condition=condition(IF_NOT_EXISTS))
        # kinds beyond the first three: UNIMPLEMENTED, nothing written
        for k in range(IF_ETAG_MATCH, 10):
            expect_status(S.UNIMPLEMENTED, f.create, "/c", file_entry("j"), condition=condition(k))
        assert not f.exists("/c/j")
        recs = stop_and_dump(s)
        assert summaries(recs) == [
            ("create", "/c", None), ("create", "/c/f", None), ("update", "/c/f", None), ("create", "/c/g", None),
            ("update", "/c/g", None), ("create", "/c/new", None), ("create", "/c/new/dir", None),
            ("create", "/c/new/dir/i", None)], summaries(recs)


# ---------------------------------------------------------------- UpdateEntry

def test_update_entry():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        old = file_entry("f", size=1, extended={"owner": b"ann", "tag": b"x"})
        f.create_ok("/u", old)
        f.mkdir("/u/d")

        expect_status(S.NOT_FOUND, f.update, "/u", file_entry("missing"))
        expect_status(S.NOT_FOUND, f.update, "/nodir", file_entry("f"))
        # file <-> directory
        expect_status(S.FAILED_PRECONDITION, f.update, "/u", dir_entry("f"))
        expect_status(S.FAILED_PRECONDITION, f.update, "/u", file_entry("d"))
        # expected_extended: every key must match the stored value
        new = file_entry("f", size=2, extended={"owner": b"bob"})
        expect_status(S.FAILED_PRECONDITION, f.update, "/u", new, expected_extended={"owner": b"bob"})
        expect_status(S.FAILED_PRECONDITION, f.update, "/u", new, expected_extended={"owner": b"ann", "tag": b"y"})
        expect_status(S.FAILED_PRECONDITION, f.update, "/u", new, expected_extended={"absent": b"z"})
        assert f.lookup("/u", "f") == old

        # identical: no event, no metadata_event
        r = f.update("/u", old)
        assert not r.HasField("metadata_event"), r

        r = f.update("/u", new, expected_extended={"owner": b"ann", "tag": b"x"}, signatures=[9],
                     is_from_other_cluster=True)
        first = r.metadata_event
        check_event(r.metadata_event, "/u", old=old, new=new, delete_chunks=True, new_parent_path="/u",
                    signatures=[9, sig], from_other=True)
        assert r.log_ts_ns == r.metadata_event.ts_ns > 0 and r.log_signature == sig, r
        assert f.lookup("/u", "f") == new

        d2 = dir_entry("d", mtime=1800000000)
        r = f.update("/u/", d2)
        check_event(r.metadata_event, "/u", old=dir_entry("d"), new=d2, delete_chunks=True, new_parent_path="/u",
                    signatures=[sig])
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/u", None), ("create", "/u/f", None), ("create", "/u/d", None),
                                   ("update", "/u/f", None), ("update", "/u/d", None)], summaries(recs)
        assert recs[3][1] == first and recs[4][1] == r.metadata_event


# ---------------------------------------------------------------- DeleteEntry

def test_delete_file_and_missing():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        a = file_entry("a", chunks=1)
        b = file_entry("b", chunks=1)
        f.create_ok("/del", a)
        f.create_ok("/del", b)
        r = f.delete("/del", "missing")
        assert r.error == "" and not r.HasField("metadata_event"), r
        r = f.delete("/nodir", "x")
        assert r.error == "" and not r.HasField("metadata_event"), r

        r = f.delete("/del", "a", is_delete_data=True, signatures=[4], is_from_other_cluster=True)
        assert r.error == "", r
        check_event(r.metadata_event, "/del", old=a, delete_chunks=True, new_parent_path="", signatures=[4, sig],
                    from_other=True)
        r = f.delete("/del/", "b")  # a trailing "/" is stripped
        check_event(r.metadata_event, "/del", old=b, delete_chunks=False, signatures=[sig])
        assert not f.exists("/del/a") and not f.exists("/del/b")
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/del", None), ("create", "/del/a", None), ("create", "/del/b", None),
                                   ("delete", "/del/a", None), ("delete", "/del/b", None)], summaries(recs)


def test_delete_directory_needs_recursive():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        f.mkfile("/top/d/x")
        try:
            r = f.delete("/top", "d")
            assert r.error, "non-empty directory deleted without is_recursive: %r" % r
            assert "/top/d" in r.error, r.error
            assert not r.HasField("metadata_event"), r
        except grpc.RpcError as e:
            assert e.code() == S.FAILED_PRECONDITION, (e.code(), e.details())
        assert f.exists("/top/d") and f.exists("/top/d/x")
        # an empty directory goes without is_recursive
        f.mkdir("/top/empty")
        r = f.delete("/top", "empty")
        assert r.error == "", r
        check_event(r.metadata_event, "/top", old=dir_entry("empty"), signatures=[sig])
        assert not f.exists("/top/empty")
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/top", None), ("create", "/top/d", None), ("create", "/top/d/x", None),
                                   ("create", "/top/empty", None), ("delete", "/top/empty", None)], summaries(recs)


def test_delete_recursive_small_tree():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        for p in ("/r/t/a", "/r/t/b/c", "/r/t/b/d/e", "/r/keep"):
            f.mkfile(p)
        top = f.lookup("/r", "t")
        r = f.delete("/r", "t", is_recursive=True, is_delete_data=True, signatures=[12])
        assert r.error == "", r
        check_event(r.metadata_event, "/r", old=top, delete_chunks=True, signatures=[12, sig])
        assert f.names("/r") == ["keep"]
        for p in ("/r/t", "/r/t/a", "/r/t/b", "/r/t/b/c", "/r/t/b/d", "/r/t/b/d/e"):
            assert not f.exists(p), p
        assert f.list("/r/t") == [] and f.list("/r/t/b") == []
        recs = stop_and_dump(s)
        dels = [(x, ev) for x, ev in zip(summaries(recs), [e for _, e in recs]) if x[0] == "delete"]
        paths = [x[1] for x, _ in dels]
        assert sorted(paths) == sorted(["/r/t", "/r/t/a", "/r/t/b", "/r/t/b/c", "/r/t/b/d", "/r/t/b/d/e"]), paths
        assert paths[-1] == "/r/t", paths
        for i, p in enumerate(paths):  # post-order: nothing under p comes after p
            assert not any(q.startswith(p + "/") for q in paths[i + 1:]), paths
        for x, ev in dels[:-1]:
            assert list(ev.event_notification.signatures) == [sig], (x, ev)
            assert not ev.event_notification.HasField("new_entry") and ev.event_notification.new_parent_path == ""
        assert dels[-1][1] == r.metadata_event


def test_delete_if_not_modified_after():
    with Server() as s:
        f = Filer(s.channel())
        e = file_entry("f", mtime=2000)
        f.create_ok("/m", e)
        r = f.delete("/m", "f", if_not_modified_after=1000)
        assert r.error == "" and not r.HasField("metadata_event"), r
        assert f.lookup("/m", "f") == e
        r = f.delete("/m", "f", if_not_modified_after=3000)
        assert r.error == "" and r.HasField("metadata_event"), r
        assert not f.exists("/m/f")
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/m", None), ("create", "/m/f", None), ("delete", "/m/f", None)], \
            summaries(recs)


# ---------------------------------------------------------------- AtomicRenameEntry

def test_rename_file():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        a = file_entry("a.txt", size=7, chunks=1)
        f.create_ok("/r1", a)
        f.mkdir("/r2")
        f.rename("/r1", "a.txt", "/r2", "b.txt", signatures=[21])
        moved = M("Entry")()
        moved.CopyFrom(a)
        moved.name = "b.txt"
        assert f.lookup("/r2", "b.txt") == moved
        assert not f.exists("/r1/a.txt")
        # same directory, new name
        f.rename("/r2", "b.txt", "/r2/", "c.txt")
        assert f.names("/r2") == ["c.txt"]
        recs = stop_and_dump(s)
        assert summaries(recs)[-2:] == [("rename", "/r1/a.txt", "/r2/b.txt"), ("rename", "/r2/b.txt", "/r2/c.txt")], \
            summaries(recs)
        check_event(recs[-2][1], "/r1", old=a, new=moved, delete_chunks=False, new_parent_path="/r2",
                    signatures=[21, sig])
        moved2 = M("Entry")()
        moved2.CopyFrom(moved)
        moved2.name = "c.txt"
        check_event(recs[-1][1], "/r2", old=moved, new=moved2, new_parent_path="/r2", signatures=[sig])


def test_rename_directory_tree():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        tree = ["/src/top/a", "/src/top/x/y.txt", "/src/top/x/z/w.txt", "/src/top/x/z/v.txt", "/src/top/b"]
        for p in tree:
            f.mkfile(p, size=len(p))
        before = {}
        for d, names in (("/src/top", ["a", "b", "x"]), ("/src/top/x", ["y.txt", "z"]),
                         ("/src/top/x/z", ["v.txt", "w.txt"])):
            assert f.names(d) == names, (d, f.names(d))
            for e in f.list(d):
                before[d + "/" + e.name] = e
        before["/src/top"] = f.lookup("/src", "top")
        f.mkdir("/dst")
        f.rename("/src", "top", "/dst", "moved", signatures=[5])
        assert f.names("/src") == [] and not f.exists("/src/top")
        assert f.list("/src/top") == [] and f.list("/src/top/x/z") == []
        assert f.names("/dst/moved") == ["a", "b", "x"]
        assert f.names("/dst/moved/x") == ["y.txt", "z"]
        assert f.names("/dst/moved/x/z") == ["v.txt", "w.txt"]
        assert f.lookup("/dst/moved/x/z", "w.txt") == before["/src/top/x/z/w.txt"]
        recs = stop_and_dump(s)
        moves = [(x, ev) for x, (_, ev) in zip(summaries(recs), recs) if x[0] == "rename"]
        assert len(moves) == len(before) == 8, [x for x, _ in moves]
        src = [x[1] for x, _ in moves]
        assert src[0] == "/src/top", src
        assert sorted(src) == sorted(before), src
        for i, p in enumerate(src):  # pre-order: an entry's parent moved before it
            parent = p.rpartition("/")[0]
            if p != "/src/top":
                assert parent in src[:i], (p, src)
        for x, ev in moves:
            old_path = x[1]
            new_path = "/dst/moved" + old_path[len("/src/top"):]
            assert x[2] == new_path, x
            old_parent, new_parent = old_path.rpartition("/")[0], new_path.rpartition("/")[0]
            exp_new = M("Entry")()
            exp_new.CopyFrom(before[old_path])
            exp_new.name = new_path.rpartition("/")[2]
            check_event(ev, old_parent, old=before[old_path], new=exp_new, delete_chunks=False,
                        new_parent_path=new_parent, signatures=[5, sig])


def test_rename_errors():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/e/a")
        f.mkfile("/e/b")
        f.mkfile("/e/dir/sub/c")
        expect_status(S.NOT_FOUND, f.rename, "/e", "missing", "/e", "z")
        expect_status(S.NOT_FOUND, f.rename, "/nodir", "a", "/e", "z")
        expect_status(S.ALREADY_EXISTS, f.rename, "/e", "a", "/e", "b")
        expect_status(S.ALREADY_EXISTS, f.rename, "/e", "a", "/e", "dir")
        expect_status(S.NOT_FOUND, f.rename, "/e", "a", "/e/nodir", "a")
        expect_status(S.INVALID_ARGUMENT, f.rename, "/e", "dir", "/e/dir", "x")
        expect_status(S.INVALID_ARGUMENT, f.rename, "/e", "dir", "/e/dir/sub", "x")
        # a sibling whose name merely starts with the same bytes is not a subtree
        f.mkdir("/e/dir2")
        f.rename("/e", "dir", "/e/dir2", "dir")
        f.rename("/e/dir2", "dir", "/e", "dir")
        # onto itself: OK, nothing happens
        f.rename("/e", "a", "/e", "a")
        f.rename("/e", "dir", "/e/", "dir")
        assert f.names("/e") == ["a", "b", "dir", "dir2"]
        assert f.names("/e/dir/sub") == ["c"]
        recs = stop_and_dump(s)
        got = [x for x in summaries(recs) if x[0] == "rename"]
        assert got == [("rename", "/e/dir", "/e/dir2/dir"), ("rename", "/e/dir/sub", "/e/dir2/dir/sub"),
                       ("rename", "/e/dir/sub/c", "/e/dir2/dir/sub/c"), ("rename", "/e/dir2/dir", "/e/dir"),
                       ("rename", "/e/dir2/dir/sub", "/e/dir/sub"), ("rename", "/e/dir2/dir/sub/c", "/e/dir/sub/c")], got


def test_siblings_sharing_a_name_prefix_stay_apart():
    """Names that sort between "a" and "a/..." in a naive key encoding
    ("a b", "a!", "a-", "a.x", "a\x01"): listing, traversal, rename and
    recursive delete of "a" touch only "a" and what is under it."""
    with Server() as s:
        f = Filer(s.channel())
        others = ["a\x01", "a b", "a!", "a-", "a.x", "a0", "ab"]
        for n in others:
            f.mkfile("/q/%s/%s" % (n, "child"))
        f.mkfile("/q/a/b/c")
        f.mkfile("/q/a/\x01")
        assert f.names("/q") == sorted(["a"] + others, key=lambda x: x.encode()), f.names("/q")
        assert f.names("/q/a") == ["\x01", "b"] and f.names("/q/a/b") == ["c"]
        got = sorted(d.rstrip("/") + "/" + e.name for d, e in f.bfs("/q/a"))
        assert got == ["/q/a", "/q/a/\x01", "/q/a/b", "/q/a/b/c"], got
        got = sorted(d.rstrip("/") + "/" + e.name for d, e in f.bfs("/q", excluded=["/q/a"]))
        assert got == sorted(["/q"] + ["/q/" + n for n in others] + ["/q/%s/child" % n for n in others]), got
        f.rename("/q", "a", "/q", "renamed")
        assert f.names("/q") == sorted(["renamed"] + others, key=lambda x: x.encode())
        assert f.names("/q/renamed") == ["\x01", "b"] and f.names("/q/renamed/b") == ["c"]
        r = f.delete("/q", "renamed", is_recursive=True)
        assert r.error == "", r
        assert f.names("/q") == sorted(others, key=lambda x: x.encode())
        for n in others:
            assert f.names("/q/" + n) == ["child"], n
        recs = stop_and_dump(s)
        moved = [x[1] for x in summaries(recs) if x[0] == "rename"]
        assert moved[0] == "/q/a" and sorted(moved) == ["/q/a", "/q/a/\x01", "/q/a/b", "/q/a/b/c"], moved
        assert moved.index("/q/a/b") < moved.index("/q/a/b/c"), moved
        deleted = sorted(x[1] for x in summaries(recs) if x[0] == "delete")
        assert deleted == ["/q/renamed", "/q/renamed/\x01", "/q/renamed/b", "/q/renamed/b/c"], deleted


# ---------------------------------------------------------------- LookupDirectoryEntry

def test_lookup():
    with Server() as s:
        f = Filer(s.channel())
        sig = f.signature()
        root = f.lookup("/", "")
        assert root.is_directory, root
        e = expect_status(S.NOT_FOUND, f.lookup, "/", "nothing")
        assert e.details() == NOT_FOUND_TEXT, e.details()
        e = expect_status(S.NOT_FOUND, f.lookup, "/no/such/dir", "x")
        assert e.details() == NOT_FOUND_TEXT, e.details()
        x = file_entry("x", size=10, chunks=3, extended={"a": b"\x00\xff"})
        f.create_ok("/l", x)
        r = f.lookup_response("/l", "x")
        assert r.entry == x and r.log_ts_ns > 0 and r.log_signature == sig, r
        assert f.lookup("/", "l").is_directory
        r = f.lookup_response("/", "")
        assert r.entry.is_directory and r.log_ts_ns > 0 and r.log_signature == sig, r


# ---------------------------------------------------------------- validation

BAD_DIRS = ["", "relative", "a/b", "/a/../b", "/a/./b", "/..", "/.", "/a//b", "//a", "/a\x00b", "/a/.."]
BAD_NAMES = ["a/b", "a\x00b", "", ".", "..", "/"]


def test_invalid_paths_and_names():
    with Server() as s:
        f = Filer(s.channel())
        f.mkfile("/ok/f")
        problems = []  # every case is tried; all disagreements are reported together

        def invalid(what, fn, *args, field, **kw):
            try:
                fn(*args, **kw)
                problems.append("%s: answered OK" % what)
            except grpc.RpcError as e:
                if e.code() != S.INVALID_ARGUMENT:
                    problems.append("%s: %s %r" % (what, e.code(), e.details()))
                elif field not in e.details():
                    problems.append("%s: message %r does not name %r" % (what, e.details(), field))

        for d in BAD_DIRS:
            invalid("CreateEntry(directory=%r)" % d, f.create, d, file_entry("x"), field="directory")
            invalid("UpdateEntry(directory=%r)" % d, f.update, d, file_entry("f"), field="directory")
            invalid("DeleteEntry(directory=%r)" % d, f.delete, d, "f", field="directory")
            invalid("LookupDirectoryEntry(directory=%r)" % d, f.lookup, d, "f", field="directory")
            invalid("ListEntries(directory=%r)" % d, f.list, d, field="directory")
            invalid("TraverseBfsMetadata(directory=%r)" % d, f.bfs, d, field="directory")
            invalid("AtomicRenameEntry(old_directory=%r)" % d, f.rename, d, "f", "/ok", "g", field="old_directory")
            invalid("AtomicRenameEntry(new_directory=%r)" % d, f.rename, "/ok", "f", d, "g", field="new_directory")
        for n in BAD_NAMES:
            invalid("CreateEntry(entry.name=%r)" % n, f.create, "/ok", file_entry(n), field="name")
            invalid("UpdateEntry(entry.name=%r)" % n, f.update, "/ok", file_entry(n), field="name")
            invalid("DeleteEntry(name=%r)" % n, f.delete, "/ok", n, field="name")
            if n:  # ("/", "") is the root
                invalid("LookupDirectoryEntry(name=%r)" % n, f.lookup, "/ok", n, field="name")
            invalid("AtomicRenameEntry(old_name=%r)" % n, f.rename, "/ok", n, "/ok", "g", field="old_name")
            invalid("AtomicRenameEntry(new_name=%r)" % n, f.rename, "/ok", "f", "/ok", n, field="new_name")
        assert not problems, "%d cases disagree:\n  %s" % (len(problems), "\n  ".join(problems))
        assert f.names("/ok") == ["f"]
        recs = stop_and_dump(s)
        assert summaries(recs) == [("create", "/ok", None), ("create", "/ok/f", None)], summaries(recs)


if __name__ == "__main__":
    fmtest.main([
        test_create_file_event_and_response,
        test_create_makes_missing_parents_top_down,
        test_create_skip_check_parent_directory,
        test_create_trailing_slash_is_stripped,
        test_create_existing_entry_errors,
        test_create_under_a_file_is_parent_is_file,
        test_create_name_length,
        test_create_conditions,
        test_update_entry,
        test_delete_file_and_missing,
        test_delete_directory_needs_recursive,
        test_delete_recursive_small_tree,
        test_delete_if_not_modified_after,
        test_rename_file,
        test_rename_directory_tree,
        test_rename_errors,
        test_siblings_sharing_a_name_prefix_stay_apart,
        test_lookup,
        test_invalid_paths_and_names,
    ])
