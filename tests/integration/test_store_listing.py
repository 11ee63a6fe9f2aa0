"""Integration: reading the filer store: ListEntries (order, pagination over
10,000 entries, prefix, limit, omit_chunks), TraverseBfsMetadata, and the KV
API (KvPut/KvGet, the store signature key)."""

import threading

import grpc

import fmtest
from fmtest import Server
from test_store_client import Filer, dir_entry, expect_status, file_entry, stop_and_dump

S = grpc.StatusCode


def create_many(server, directory, names, threads=4):
    """Creates files `names` in `directory` from several channels at once."""
    Filer(server.channel()).mkdir(directory)
    errors = []

    def worker(part):
        f = Filer(server.channel())
        try:
            for n in part:
                f.create_ok(directory, file_entry(n))
        except Exception as e:  # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(names[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]


def test_list_pagination_10000():
    n = 10000
    names = ["%05d" % i for i in range(n)]
    with Server() as s:
        create_many(s, "/many", names[::-1])
        f = Filer(s.channel())
        # everything at once (limit 0 = no limit), in name order
        assert f.names("/many") == names
        # pages of 1,000, each starting after the last name of the previous page
        got, start, pages = [], "", 0
        while True:
            page = f.names("/many", startFromFileName=start, inclusiveStartFrom=False, limit=1000)
            if not page:
                break
            assert len(page) == 1000, (pages, len(page))
            got += page
            start = page[-1]
            pages += 1
        assert pages == 10 and got == names, (pages, len(got))
        # inclusive start: the page begins with the start name itself
        assert f.names("/many", startFromFileName="04321", inclusiveStartFrom=True, limit=3) == \
            ["04321", "04322", "04323"]
        assert f.names("/many", startFromFileName="04321", inclusiveStartFrom=False, limit=3) == \
            ["04322", "04323", "04324"]
        # a start name that does not exist: the next name after it, either way
        assert f.names("/many", startFromFileName="04321x", inclusiveStartFrom=True, limit=2) == ["04322", "04323"]
        assert f.names("/many", startFromFileName="04321x", limit=2) == ["04322", "04323"]
        assert f.names("/many", startFromFileName="09999") == []
        assert f.names("/many", startFromFileName="09999", inclusiveStartFrom=True) == ["09999"]
        assert f.names("/many", startFromFileName="A") == []
        # prefix, alone and with start and limit
        assert f.names("/many", prefix="012") == ["%05d" % i for i in range(1200, 1300)]
        assert f.names("/many", prefix="09") == names[9000:]
        assert f.names("/many", prefix="09", limit=5) == names[9000:9005]
        assert f.names("/many", prefix="095", startFromFileName="09550", inclusiveStartFrom=True, limit=10) == \
            names[9550:9560]
        assert f.names("/many", prefix="095", startFromFileName="09550", limit=1000) == names[9551:9600]
        assert f.names("/many", prefix="x") == []
        assert f.names("/many", limit=1) == ["00000"]
        assert f.names("/many", limit=20000) == names


def test_list_order_and_options():
    with Server() as s:
        f = Filer(s.channel())
        names = ["b", "B", "a", "\u00e9", "_", "Z", "~", "aa", "a b", "a-b", "a.b", "0", "\u4e2d", "\U0001f600"]
        for nm in names:
            f.create_ok("/o", file_entry(nm, chunks=2))
        f.create_ok("/o", dir_entry("dirx"))
        want = sorted(names + ["dirx"], key=lambda x: x.encode("utf-8"))
        assert f.names("/o") == want, f.names("/o")
        full = f.list("/o")
        assert all(len(e.chunks) == 2 for e in full if not e.is_directory)
        omitted = f.list("/o", omit_chunks=True)
        assert [e.name for e in omitted] == want
        assert all(len(e.chunks) == 0 for e in omitted), [e for e in omitted if e.chunks][:1]
        # apart from the chunks, the same entries
        for a, b in zip(full, omitted):
            del a.chunks[:]
            assert a == b, (a, b)
        assert f.names("/o", prefix="a") == ["a", "a b", "a-b", "a.b", "aa"]
        # a missing directory lists nothing, with OK
        assert f.list("/none") == [] and f.list("/o/none/deeper") == []
        # the root lists its children; the listing of a file's children is empty
        root = f.names("/")
        assert "o" in root and root == sorted(root, key=lambda x: x.encode()), root
        assert f.list("/o/a") == []
        # trailing slash
        assert f.names("/o/", prefix="a") == ["a", "a b", "a-b", "a.b", "aa"]


def _bfs_paths(results):
    return [(d.rstrip("/") + "/" + e.name) for d, e in results]


def test_traverse_bfs():
    with Server() as s:
        f = Filer(s.channel())
        for p in ("/bfs/a/a1/f", "/bfs/a/a2/g", "/bfs/b/b1", "/bfs/bc/x", "/bfs/c.txt", "/other/z"):
            f.mkfile(p)
        f.mkdir("/bfs/a/empty")
        res = f.bfs("/bfs")
        d0, e0 = res[0]
        assert d0 == "/" and e0.name == "bfs" and e0.is_directory, res[0]
        paths = _bfs_paths(res)
        want = ["/bfs", "/bfs/a", "/bfs/a/a1", "/bfs/a/a1/f", "/bfs/a/a2", "/bfs/a/a2/g", "/bfs/a/empty", "/bfs/b",
                "/bfs/b/b1", "/bfs/bc", "/bfs/bc/x", "/bfs/c.txt"]
        assert sorted(paths) == sorted(want) and len(paths) == len(want), paths
        # breadth first: depth never decreases, and children of an earlier
        # directory come before children of a later one
        depths = [p.count("/") for p in paths]
        assert depths == sorted(depths), paths
        parent_pos = [paths.index(p.rpartition("/")[0]) for p in paths[1:]]
        assert parent_pos == sorted(parent_pos), paths
        for d, e in res:
            assert e == f.lookup(d, e.name), (d, e)

        # excluded prefixes prune on a "/" boundary
        paths = _bfs_paths(f.bfs("/bfs", excluded=["/bfs/b", "/bfs/a/a1"]))
        assert sorted(paths) == sorted(["/bfs", "/bfs/a", "/bfs/a/a2", "/bfs/a/a2/g", "/bfs/a/empty", "/bfs/bc",
                                        "/bfs/bc/x", "/bfs/c.txt"]), paths
        paths = _bfs_paths(f.bfs("/bfs/a"))
        assert paths[0] == "/bfs/a" and sorted(paths[1:]) == sorted(["/bfs/a/a1", "/bfs/a/a1/f", "/bfs/a/a2",
                                                                     "/bfs/a/a2/g", "/bfs/a/empty"]), paths
        # from the root: everything
        paths = _bfs_paths(f.bfs("/"))
        for p in want + ["/other", "/other/z"]:
            assert p in paths, (p, paths)
        expect_status(S.NOT_FOUND, f.bfs, "/nothing")
        expect_status(S.NOT_FOUND, f.bfs, "/bfs/nothing")


def test_kv():
    with Server() as s:
        f = Filer(s.channel())
        r = f.kv_get(b"missing")
        assert r.value == b"" and r.error == "", r
        f.kv_put(b"k1", b"v1")
        f.kv_put(b"\x00\xffbin\x00", b"\x00" * 10 + b"\xff")
        big = bytes(range(256)) * 4096  # 1 MiB
        f.kv_put(b"big", big)
        assert f.kv_get(b"k1").value == b"v1"
        assert f.kv_get(b"\x00\xffbin\x00").value == b"\x00" * 10 + b"\xff"
        assert f.kv_get(b"\x00\xffbin").value == b""
        assert f.kv_get(b"big").value == big
        f.kv_put(b"k1", b"v2")
        assert f.kv_get(b"k1").value == b"v2"
        # an empty value deletes
        f.kv_put(b"k1", b"")
        r = f.kv_get(b"k1")
        assert r.value == b"" and r.error == "", r
        f.kv_put(b"never-there", b"")
        # the store signature lives under filer.store.id, 4 bytes big-endian
        sig = f.signature()
        v = f.kv_get(b"filer.store.id").value
        assert len(v) == 4 and int.from_bytes(v, "big", signed=True) == sig, (v, sig)
        # KV writes are no events
        assert stop_and_dump(s) == []


if __name__ == "__main__":
    fmtest.main([
        test_list_pagination_10000,
        test_list_order_and_options,
        test_traverse_bfs,
        test_kv,
    ])
