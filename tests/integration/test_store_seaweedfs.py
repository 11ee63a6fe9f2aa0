"""Integration: a client built from SeaweedFS's own filer.proto (not ours) uses
the store's RPCs: it creates an Entry with every field upstream knows set
(including proto3 `optional` ones our .proto leaves out), reads it back from
lookups, listings, traversal and events unchanged, updates, renames and
deletes it, and uses the KV API; nothing in any answer is unknown to
upstream's schema. Runs when SEAWEEDFS_FILER_PROTO names a copy of
weed/pb/filer.proto, like test_seaweedfs_wire.py (skipped otherwise)."""

import grpc
from google.protobuf import descriptor

import fmtest
from fmtest import Server
from test_seaweedfs_wire import upstream_classes
from test_store_client import clean_stop

FD = descriptor.FieldDescriptor
SVC = "/filer_pb.SeaweedFiler/"


def fill(m, depth=0):
    """Sets every field of message m (recursively) to a non-default value."""
    for f in m.DESCRIPTOR.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vt = f.message_type.fields_by_name["value"]
            key = "k%d" % f.number
            if vt.message_type is not None:
                fill(getattr(m, f.name)[key], depth + 1)
            else:
                getattr(m, f.name)[key] = _scalar(vt)
        elif f.message_type is not None:
            if depth > 4:
                continue
            if f.label == FD.LABEL_REPEATED:
                for _ in range(2):
                    fill(getattr(m, f.name).add(), depth + 1)
            else:
                getattr(m, f.name).SetInParent()
                fill(getattr(m, f.name), depth + 1)
        elif f.label == FD.LABEL_REPEATED:
            getattr(m, f.name).extend([_scalar(f), _scalar(f)])
        else:
            setattr(m, f.name, _scalar(f))
    return m


def _scalar(f):
    t = f.type
    if t == FD.TYPE_STRING:
        return "s%d" % f.number
    if t == FD.TYPE_BYTES:
        return b"\x00b%d\xff" % f.number
    if t == FD.TYPE_BOOL:
        return True
    if t == FD.TYPE_ENUM:
        return f.enum_type.values[-1].number
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return 1.5
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32, FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return -(f.number + 100) if f.number % 2 else f.number + 100
    return f.number + 1000  # unsigned


def no_unknown(m, where="response"):
    """Asserts that nothing in m (recursively) is unknown to upstream's schema."""
    assert len(m.UnknownFields()) == 0, "%s carries fields upstream does not know: %r" % (where, m)
    for f, v in m.ListFields():
        if f.message_type is None:
            continue
        if f.message_type.GetOptions().map_entry:
            if f.message_type.fields_by_name["value"].message_type is not None:
                for k in v:
                    no_unknown(v[k], "%s.%s[%s]" % (where, f.name, k))
        elif f.label == FD.LABEL_REPEATED:
            for i, x in enumerate(v):
                no_unknown(x, "%s.%s[%d]" % (where, f.name, i))
        else:
            no_unknown(v, where + "." + f.name)


def test_upstream_client_store_rpcs():
    M = upstream_classes()

    def U(method, req, resp):
        out = ch.unary_unary(SVC + method, request_serializer=lambda x: x.SerializeToString(),
                             response_deserializer=M("filer_pb." + resp).FromString)(req, timeout=10)
        no_unknown(out, resp)
        return out

    def S(method, req, resp):
        out = list(ch.unary_stream(SVC + method, request_serializer=lambda x: x.SerializeToString(),
                                   response_deserializer=M("filer_pb." + resp).FromString)(req, timeout=10))
        for i, x in enumerate(out):
            no_unknown(x, "%s[%d]" % (resp, i))
        return out

    with Server() as s:
        ch = s.channel()
        sig = U("GetFilerConfiguration", M("filer_pb.GetFilerConfigurationRequest")(),
                "GetFilerConfigurationResponse").signature
        e = fill(M("filer_pb.Entry")())
        e.name = "every"
        e.is_directory = False
        assert e.remote_entry.HasField("remote_content_encoding")  # a proto3 optional field is set

        r = U("CreateEntry", M("filer_pb.CreateEntryRequest")(directory="/sw/d", entry=e, signatures=[42]),
              "CreateEntryResponse")
        assert r.error == "" and r.error_code == 0, r
        ev = r.metadata_event
        assert ev.directory == "/sw/d" and ev.ts_ns > 0 and r.log_ts_ns == ev.ts_ns and r.log_signature == sig, r
        n = ev.event_notification
        assert n.new_entry == e and not n.HasField("old_entry") and n.new_parent_path == "/sw/d", n
        assert list(n.signatures) == [42, sig] and n.delete_chunks, n

        lk = U("LookupDirectoryEntry", M("filer_pb.LookupDirectoryEntryRequest")(directory="/sw/d", name="every"),
               "LookupDirectoryEntryResponse")
        assert lk.entry == e and lk.log_signature == sig, lk
        ls = S("ListEntries", M("filer_pb.ListEntriesRequest")(directory="/sw/d"), "ListEntriesResponse")
        assert [x.entry for x in ls] == [e], ls
        ls = S("ListEntries", M("filer_pb.ListEntriesRequest")(directory="/sw/d", omit_chunks=True),
               "ListEntriesResponse")
        assert len(ls) == 1 and len(ls[0].entry.chunks) == 0 and ls[0].entry.remote_entry == e.remote_entry, ls

        e2 = M("filer_pb.Entry")()
        e2.CopyFrom(e)
        e2.attributes.file_size += 1
        e2.extended["more"] = b"x"
        r = U("UpdateEntry", M("filer_pb.UpdateEntryRequest")(directory="/sw/d", entry=e2), "UpdateEntryResponse")
        n = r.metadata_event.event_notification
        assert n.old_entry == e and n.new_entry == e2 and n.new_parent_path == "/sw/d", r

        other = M("filer_pb.Entry")(name="other", is_directory=True,
                                    attributes=M("filer_pb.FuseAttributes")(file_mode=0x800001ED, mtime=1700000000))
        U("CreateEntry", M("filer_pb.CreateEntryRequest")(directory="/sw", entry=other), "CreateEntryResponse")
        U("AtomicRenameEntry", M("filer_pb.AtomicRenameEntryRequest")(old_directory="/sw/d", old_name="every",
                                                                        new_directory="/sw/other", new_name="moved"),
          "AtomicRenameEntryResponse")
        moved = M("filer_pb.Entry")()
        moved.CopyFrom(e2)
        moved.name = "moved"
        lk = U("LookupDirectoryEntry", M("filer_pb.LookupDirectoryEntryRequest")(directory="/sw/other", name="moved"),
               "LookupDirectoryEntryResponse")
        assert lk.entry == moved, lk

        walked = S("TraverseBfsMetadata", M("filer_pb.TraverseBfsMetadataRequest")(directory="/sw"),
                   "TraverseBfsMetadataResponse")
        got = {(x.directory, x.entry.name): x.entry for x in walked}
        assert got[("/sw/other", "moved")] == moved and ("/sw", "d") in got and got[("/", "sw")].is_directory, got

        r = U("DeleteEntry", M("filer_pb.DeleteEntryRequest")(directory="/sw/other", name="moved",
                                                                is_delete_data=True, signatures=[42]),
              "DeleteEntryResponse")
        assert r.error == "", r
        n = r.metadata_event.event_notification
        assert n.old_entry == moved and not n.HasField("new_entry") and list(n.signatures) == [42, sig], r
        try:
            U("LookupDirectoryEntry", M("filer_pb.LookupDirectoryEntryRequest")(directory="/sw/other", name="moved"),
              "LookupDirectoryEntryResponse")
            raise AssertionError("deleted entry found")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND and err.details() == \
                "filer: no entry is found in filer store", err

        U("KvPut", M("filer_pb.KvPutRequest")(key=b"sw-key", value=b"sw-value"), "KvPutResponse")
        kv = U("KvGet", M("filer_pb.KvGetRequest")(key=b"sw-key"), "KvGetResponse")
        assert kv.value == b"sw-value" and kv.error == "", kv
        kv = U("KvGet", M("filer_pb.KvGetRequest")(key=b"filer.store.id"), "KvGetResponse")
        assert kv.value == sig.to_bytes(4, "big", signed=True), kv
        U("KvPut", M("filer_pb.KvPutRequest")(key=b"sw-key", value=b""), "KvPutResponse")
        kv = U("KvGet", M("filer_pb.KvGetRequest")(key=b"sw-key"), "KvGetResponse")
        assert kv.value == b"" and kv.error == "", kv
        clean_stop(s)


if __name__ == "__main__":
    fmtest.main([test_upstream_client_store_rpcs])
