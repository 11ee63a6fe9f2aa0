"""Not a test: the filer client and checks shared by the test_store_* files
(the store's RPCs: entries, listings, KV; event summaries; raw wire fields).
Built on fmtest; message classes come from the build's descriptor set."""

import grpc

import fmtest
from fmtest import msg

SVC = "/filer_pb.SeaweedFiler/"
NOT_FOUND_TEXT = "filer: no entry is found in filer store"

# FilerError
OK, ENTRY_NAME_TOO_LONG, PARENT_IS_FILE, EXISTING_IS_DIRECTORY, EXISTING_IS_FILE, ENTRY_ALREADY_EXISTS, \
    PRECONDITION_FAILED = range(7)
# WriteCondition.Kind
NONE, IF_NOT_EXISTS, IF_EXISTS, IF_ETAG_MATCH = 0, 1, 2, 3

MODE_DIR = 0x80000000  # Go's os.ModeDir, as SeaweedFS puts it in file_mode


def M(name):
    return msg("filer_pb." + name)


# ---------------------------------------------------------------- entries

def file_entry(name, size=0, mtime=1700000000, chunks=0, content=b"", extended=None, mode=0o644):
    """A file Entry; `chunks` = how many FileChunks of 1 MiB to describe."""
    e = M("Entry")(name=name, is_directory=False, content=content,
                   attributes=M("FuseAttributes")(file_size=size, mtime=mtime, crtime=mtime, file_mode=mode,
                                                  uid=1000, gid=1000, mime="application/octet-stream"))
    for i in range(chunks):
        e.chunks.add(file_id="3,%x637037d6" % (i + 1), offset=i << 20, size=1 << 20, modified_ts_ns=mtime * 10**9,
                     e_tag="etag%d" % i, fid=M("FileId")(volume_id=3, file_key=i + 1, cookie=0x637037d6))
    for k, v in (extended or {}).items():
        e.extended[k] = v
    return e


def dir_entry(name, mtime=1700000000, mode=0o755):
    return M("Entry")(name=name, is_directory=True,
                      attributes=M("FuseAttributes")(mtime=mtime, crtime=mtime, file_mode=MODE_DIR | mode,
                                                     uid=1000, gid=1000))


def condition(*kinds):
    return M("WriteCondition")(clauses=[M("WriteCondition.Clause")(kind=k) for k in kinds])


def split(path):
    """'/a/b/c' -> ('/a/b', 'c'); '/a' -> ('/', 'a')."""
    d, _, n = path.rpartition("/")
    return (d or "/", n)


def join(directory, name):
    return directory.rstrip("/") + "/" + name


class Filer:
    """The store's RPCs over one channel; unary calls return the decoded
    response or raise grpc.RpcError; streams return lists."""

    def __init__(self, channel, timeout=30.0):
        self.ch = channel
        self.timeout = timeout
        self._sig = None

    def _u(self, method, req, resp):
        # deterministic: map entries (Entry.extended) in key order, so that the
        # same entry sent twice is the same bytes (the store compares bytes)
        call = self.ch.unary_unary(SVC + method, request_serializer=lambda m: m.SerializeToString(deterministic=True),
                                   response_deserializer=msg("filer_pb." + resp).FromString)
        return call(req, timeout=self.timeout)

    def signature(self):
        if self._sig is None:
            self._sig = self._u("GetFilerConfiguration", M("GetFilerConfigurationRequest")(),
                                "GetFilerConfigurationResponse").signature
        return self._sig

    def create(self, directory, entry, **kw):
        return self._u("CreateEntry", M("CreateEntryRequest")(directory=directory, entry=entry, **kw),
                       "CreateEntryResponse")

    def create_ok(self, directory, entry, **kw):
        r = self.create(directory, entry, **kw)
        assert r.error == "" and r.error_code == OK, (directory, entry.name, r.error, r.error_code)
        return r

    def mkfile(self, path, **kw):
        d, n = split(path)
        return self.create_ok(d, file_entry(n, **kw))

    def mkdir(self, path, **kw):
        d, n = split(path)
        return self.create_ok(d, dir_entry(n, **kw))

    def update(self, directory, entry, **kw):
        return self._u("UpdateEntry", M("UpdateEntryRequest")(directory=directory, entry=entry, **kw),
                       "UpdateEntryResponse")

    def delete(self, directory, name, **kw):
        return self._u("DeleteEntry", M("DeleteEntryRequest")(directory=directory, name=name, **kw),
                       "DeleteEntryResponse")

    def rename(self, old_directory, old_name, new_directory, new_name, **kw):
        return self._u("AtomicRenameEntry",
                       M("AtomicRenameEntryRequest")(old_directory=old_directory, old_name=old_name,
                                                     new_directory=new_directory, new_name=new_name, **kw),
                       "AtomicRenameEntryResponse")

    def lookup_response(self, directory, name):
        return self._u("LookupDirectoryEntry", M("LookupDirectoryEntryRequest")(directory=directory, name=name),
                       "LookupDirectoryEntryResponse")

    def lookup(self, directory, name):
        return self.lookup_response(directory, name).entry

    def exists(self, path):
        try:
            self.lookup(*split(path))
            return True
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, (path, e.code(), e.details())
            return False

    def list(self, directory, **kw):
        """The listed entries (ListEntriesResponse.entry of each response)."""
        return [r.entry for r in self.list_responses(directory, **kw)]

    def list_responses(self, directory, **kw):
        return fmtest.stream(self.ch, SVC + "ListEntries", M("ListEntriesRequest")(directory=directory, **kw),
                             "filer_pb.ListEntriesResponse", timeout=self.timeout)

    def names(self, directory, **kw):
        return [e.name for e in self.list(directory, **kw)]

    def bfs(self, directory, excluded=()):
        """[(directory, entry)] of TraverseBfsMetadata."""
        rs = fmtest.stream(self.ch, SVC + "TraverseBfsMetadata",
                           M("TraverseBfsMetadataRequest")(directory=directory, excluded_prefixes=list(excluded)),
                           "filer_pb.TraverseBfsMetadataResponse", timeout=self.timeout)
        return [(r.directory, r.entry) for r in rs]

    def kv_put(self, key, value):
        r = self._u("KvPut", M("KvPutRequest")(key=key, value=value), "KvPutResponse")
        assert r.error == "", r.error
        return r

    def kv_get(self, key):
        return self._u("KvGet", M("KvGetRequest")(key=key), "KvGetResponse")


def expect_status(code, fn, *args, **kw):
    """Calls fn, which must fail with gRPC status `code`; returns the error."""
    try:
        r = fn(*args, **kw)
    except grpc.RpcError as e:
        assert e.code() == code, "expected %s, got %s: %s" % (code, e.code(), e.details())
        return e
    raise AssertionError("expected status %s, got a response: %r" % (code, r))


# ---------------------------------------------------------------- events

def kind(ev):
    """The client's classification of an event (filer_pb_helper.go)."""
    n = ev.event_notification
    old, new = n.HasField("old_entry"), n.HasField("new_entry")
    if old and new:
        same = n.old_entry.name == n.new_entry.name and ev.directory == n.new_parent_path
        return "update" if same else "rename"
    return "create" if new else "delete" if old else "empty"


def summary(ev):
    """(kind, source path, target path or None) of an event, for comparing sequences."""
    n = ev.event_notification
    k = kind(ev)
    if k == "create":
        return (k, join(ev.directory, n.new_entry.name), None)
    if k == "delete":
        return (k, join(ev.directory, n.old_entry.name), None)
    if k == "update":
        return (k, join(ev.directory, n.new_entry.name), None)
    if k == "rename":
        return (k, join(ev.directory, n.old_entry.name), join(n.new_parent_path, n.new_entry.name))
    return (k, None, None)


def summaries(records):
    return [summary(ev) for _, ev in records]


def check_event(ev, directory, old=None, new=None, delete_chunks=False, new_parent_path="", signatures=(),
                from_other=False):
    """Asserts every field of an event; old/new are Entry messages or None."""
    n = ev.event_notification
    where = "event %s" % (summary(ev),) if ev.HasField("event_notification") else "event %r" % (ev,)
    assert ev.directory == directory, (where, "directory", ev.directory, directory)
    if old is None:
        assert not n.HasField("old_entry"), (where, "old_entry set", n.old_entry)
    else:
        assert n.HasField("old_entry") and n.old_entry == old, (where, "old_entry", n.old_entry, old)
    if new is None:
        assert not n.HasField("new_entry"), (where, "new_entry set", n.new_entry)
    else:
        assert n.HasField("new_entry") and n.new_entry == new, (where, "new_entry", n.new_entry, new)
    assert n.delete_chunks == delete_chunks, (where, "delete_chunks", n.delete_chunks)
    assert n.new_parent_path == new_parent_path, (where, "new_parent_path", n.new_parent_path, new_parent_path)
    assert n.is_from_other_cluster == from_other, (where, "is_from_other_cluster", n.is_from_other_cluster)
    assert list(n.signatures) == list(signatures), (where, "signatures", list(n.signatures), list(signatures))
    assert ev.ts_ns > 0, (where, "ts_ns", ev.ts_ns)


def check_ts_strictly_increasing(records):
    prev = 0
    for i, (ts, ev) in enumerate(records):
        ts_ev = ev.ts_ns if not isinstance(ev, dict) else int(ev.get("tsNs", "0"))
        assert ts == ts_ev, ("record %d: key ts %d != event ts_ns %d" % (i, ts, ts_ev))
        assert ts > prev, ("record %d: ts %d not above the previous %d" % (i, ts, prev))
        prev = ts


def clean_stop(server):
    """Closes our channels (no wait for idle connections), then stops the
    server, which must exit 0 in time."""
    server.close_channels()
    fmtest.assert_clean_stop(server)


def stop_and_dump(server, parse=True):
    """Stops the server cleanly, then returns its write-ahead records."""
    clean_stop(server)
    return fmtest.log_dump(server.dir, parse=parse)


# ---------------------------------------------------------------- wire

def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def _read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def wire_fields(buf):
    """[(number, wire type, value)] of one message's top level; value is an
    int for varints and the raw bytes otherwise."""
    out, i = [], 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d at %d" % (wt, i))
        out.append((num, wt, v))
    return out


def wire_field(buf, *numbers):
    """The raw bytes of the (first) length-delimited field at the path of
    field numbers, e.g. wire_field(resp, 2, 2, 2); None if absent."""
    for num in numbers:
        hit = [v for (n, wt, v) in wire_fields(buf) if n == num and wt == 2]
        if not hit:
            return None
        buf = hit[0]
    return bytes(buf)
