"""Integration: server reflection, the way grpcurl uses it (list, describe, then
call a method knowing nothing but what reflection returned), and the wire
contract: every message and field number of PROTOCOL.md section 2, and every
method path of section 1, as the running server describes them."""

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import fmtest
from fmtest import Server, msg

# PROTOCOL.md section 2, transcribed: message -> {field: number}.
WIRE = {
    "Entry": dict(name=1, is_directory=2, chunks=3, attributes=4, extended=5, hard_link_id=7,
                  hard_link_counter=8, content=9, remote_entry=10, quota=11, worm_enforced_at_ts_ns=12),
    "FuseAttributes": dict(file_size=1, mtime=2, file_mode=3, uid=4, gid=5, crtime=6, mime=7, ttl_sec=10,
                           user_name=11, group_name=12, symlink_target=13, md5=14, rdev=16, inode=17,
                           ctime=18, mtime_ns=19, ctime_ns=20, crtime_ns=21, atime=22, atime_ns=23),
    "FileChunk": dict(file_id=1, offset=2, size=3, modified_ts_ns=4, e_tag=5, source_file_id=6, fid=7,
                      source_fid=8, cipher_key=9, is_compressed=10, is_chunk_manifest=11, sse_type=12,
                      sse_metadata=13),
    "FileId": dict(volume_id=1, file_key=2, cookie=3),
    "RemoteEntry": dict(storage_name=1, last_local_sync_ts_ns=2, remote_e_tag=3, remote_mtime=4,
                        remote_size=5),
    "EventNotification": dict(old_entry=1, new_entry=2, delete_chunks=3, new_parent_path=4,
                              is_from_other_cluster=5, signatures=6),
    "SubscribeMetadataRequest": dict(client_name=1, path_prefix=2, since_ns=3, signature=4, path_prefixes=6,
                                     client_id=7, until_ns=8, client_epoch=9, directories=10,
                                     client_supports_batching=11, client_supports_metadata_chunks=12,
                                     client_supports_idle_heartbeat=13),
    "SubscribeMetadataResponse": dict(directory=1, event_notification=2, ts_ns=3, events=4, log_file_refs=5,
                                      flushed_ts_ns=6),
    "LogFileChunkRef": dict(chunks=1, file_ts_ns=2, filer_id=3),
    "LogEntry": dict(ts_ns=1, partition_key_hash=2, data=3, key=4, offset=5),
    "ListMetadataSubscribersRequest": dict(client_types=1),
    "ListMetadataSubscribersResponse": dict(subscribers=1),
    "MetadataSubscriber": dict(client_name=1, client_type=2, address=3, path_prefix=4, client_id=5,
                               client_epoch=6, connected_at_ns=7, filer_address=8),
    "LookupDirectoryEntryRequest": dict(directory=1, name=2),
    "LookupDirectoryEntryResponse": dict(entry=1, log_ts_ns=2, log_signature=3),
    "ListEntriesRequest": dict(directory=1, prefix=2, startFromFileName=3, inclusiveStartFrom=4, limit=5,
                               snapshot_ts_ns=6, omit_chunks=7),
    "ListEntriesResponse": dict(entry=1, snapshot_ts_ns=2),
    "CreateEntryRequest": dict(directory=1, entry=2, o_excl=3, is_from_other_cluster=4, signatures=5,
                               skip_check_parent_directory=6, condition=7),
    "CreateEntryResponse": dict(error=1, metadata_event=2, error_code=3, log_ts_ns=4, log_signature=5),
    "WriteCondition": dict(clauses=1),
    "WriteCondition.Clause": dict(kind=1, etags=2, unix_time=3, allow_weak=4, ext_key=5, ext_value=6,
                                  gate_key=7, gate_value=8, fids=9),
    "UpdateEntryRequest": dict(directory=1, entry=2, is_from_other_cluster=3, signatures=4,
                               expected_extended=5, condition=6),
    "UpdateEntryResponse": dict(metadata_event=1, log_ts_ns=2, log_signature=3),
    "DeleteEntryRequest": dict(directory=1, name=2, is_delete_data=4, is_recursive=5, ignore_recursive_error=6,
                               is_from_other_cluster=7, signatures=8, if_not_modified_after=9),
    "DeleteEntryResponse": dict(error=1, metadata_event=2),
    "AtomicRenameEntryRequest": dict(old_directory=1, old_name=2, new_directory=3, new_name=4, signatures=5),
    "AtomicRenameEntryResponse": dict(),
    "AssignVolumeRequest": dict(count=1, collection=2, replication=3, ttl_sec=4, data_center=5, path=6, rack=7,
                                disk_type=8, data_node=9, expected_data_size=10),
    "AssignVolumeResponse": dict(file_id=1, count=4, auth=5, collection=6, replication=7, error=8, location=9,
                                 replicas=10),
    "LookupVolumeRequest": dict(volume_ids=1),
    "LookupVolumeResponse": dict(locations_map=1),
    "Locations": dict(locations=1),
    "Location": dict(url=1, public_url=2, grpc_port=3, data_center=4),
    "PingRequest": dict(target=1, target_type=2),
    "PingResponse": dict(start_time_ns=1, remote_time_ns=2, stop_time_ns=3),
    "GetFilerConfigurationRequest": dict(),
    "GetFilerConfigurationResponse": dict(masters=1, replication=2, collection=3, max_mb=4, dir_buckets=5,
                                          cipher=7, signature=8, metrics_address=9, metrics_interval_sec=10,
                                          version=11, cluster_id=12, filer_group=13, major_version=14,
                                          minor_version=15),
    "KvGetRequest": dict(key=1),
    "KvGetResponse": dict(value=1, error=2),
    "KvPutRequest": dict(key=1, value=2),
    "KvPutResponse": dict(error=1),
    "TraverseBfsMetadataRequest": dict(directory=1, excluded_prefixes=2),
    "TraverseBfsMetadataResponse": dict(directory=1, entry=2),
}

# PROTOCOL.md section 2: the field types the wire depends on beyond the number.
TYPES = {
    ("FileId", "cookie"): descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32,
    ("SubscribeMetadataResponse", "events"): descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
    ("EventNotification", "signatures"): descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    ("LogEntry", "data"): descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    ("FuseAttributes", "mtime"): descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    ("FileChunk", "size"): descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
}

# PROTOCOL.md section 1: method -> (request, response, server streaming).
METHODS = {
    "LookupDirectoryEntry": ("LookupDirectoryEntryRequest", "LookupDirectoryEntryResponse", False),
    "ListEntries": ("ListEntriesRequest", "ListEntriesResponse", True),
    "CreateEntry": ("CreateEntryRequest", "CreateEntryResponse", False),
    "UpdateEntry": ("UpdateEntryRequest", "UpdateEntryResponse", False),
    "DeleteEntry": ("DeleteEntryRequest", "DeleteEntryResponse", False),
    "AtomicRenameEntry": ("AtomicRenameEntryRequest", "AtomicRenameEntryResponse", False),
    "AssignVolume": ("AssignVolumeRequest", "AssignVolumeResponse", False),
    "LookupVolume": ("LookupVolumeRequest", "LookupVolumeResponse", False),
    "Ping": ("PingRequest", "PingResponse", False),
    "GetFilerConfiguration": ("GetFilerConfigurationRequest", "GetFilerConfigurationResponse", False),
    "TraverseBfsMetadata": ("TraverseBfsMetadataRequest", "TraverseBfsMetadataResponse", True),
    "SubscribeMetadata": ("SubscribeMetadataRequest", "SubscribeMetadataResponse", True),
    "SubscribeLocalMetadata": ("SubscribeMetadataRequest", "SubscribeMetadataResponse", True),
    "ListMetadataSubscribers": ("ListMetadataSubscribersRequest", "ListMetadataSubscribersResponse", False),
    "KvGet": ("KvGetRequest", "KvGetResponse", False),
    "KvPut": ("KvPutRequest", "KvPutResponse", False),
}


def reflect(ch, requests, version="v1alpha"):
    """Sends reflection requests on one stream; returns the responses in order."""
    Req = msg("grpc.reflection.v1alpha.ServerReflectionRequest")
    Resp = msg("grpc.reflection.v1alpha.ServerReflectionResponse")
    call = ch.stream_stream("/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
                            request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=Resp.FromString)
    return list(call(iter([Req(**r) for r in requests]), timeout=10))


def files_of(resp):
    assert resp.HasField("file_descriptor_response"), resp
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in resp.file_descriptor_response.file_descriptor_proto]


def find_message(fdp, dotted):
    parts = dotted.split(".")
    scope = fdp.message_type
    m = None
    for p in parts:
        m = next((x for x in scope if x.name == p), None)
        assert m is not None, "message %s missing from %s" % (dotted, fdp.name)
        scope = m.nested_type
    return m


def test_list_services_both_versions():
    want = {"filer_pb.SeaweedFiler", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection"}
    with Server() as s:
        for version in ("v1alpha", "v1"):
            (r,) = reflect(s.channel(), [dict(list_services="")], version)
            names = {x.name for x in r.list_services_response.service}
            assert names == want, (version, names)
            assert r.original_request.list_services == "" and r.original_request.HasField("list_services")


def test_wire_contract_fields():
    with Server() as s:
        (r,) = reflect(s.channel(), [dict(file_containing_symbol="filer_pb.SubscribeMetadataRequest")])
        (fdp,) = files_of(r)
        assert fdp.package == "filer_pb" and fdp.syntax == "proto3", (fdp.name, fdp.package, fdp.syntax)
        for name, fields in WIRE.items():
            m = find_message(fdp, name)
            got = {f.name: f.number for f in m.field}
            assert got == fields, "%s: served %s, PROTOCOL.md says %s" % (name, got, fields)
            for (tname, fname), ftype in TYPES.items():
                if tname == name:
                    f = next(f for f in m.field if f.name == fname)
                    assert f.type == ftype, (name, fname, f.type)
        enums = {e.name: {v.name: v.number for v in e.value} for e in fdp.enum_type}
        assert enums["FilerError"] == dict(OK=0, ENTRY_NAME_TOO_LONG=1, PARENT_IS_FILE=2, EXISTING_IS_DIRECTORY=3,
                                           EXISTING_IS_FILE=4, ENTRY_ALREADY_EXISTS=5, PRECONDITION_FAILED=6)
        assert enums["SSEType"] == dict(NONE=0, SSE_C=1, SSE_KMS=2, SSE_S3=3)
        kind = {v.name: v.number for v in find_message(fdp, "WriteCondition").enum_type[0].value}
        assert kind["IF_NOT_EXISTS"] == 1 and kind["IF_EXISTS"] == 2 and kind["IF_CHUNKS_EQUAL"] == 9, kind


def test_describe_service_methods():
    with Server() as s:
        (r,) = reflect(s.channel(), [dict(file_containing_symbol="filer_pb.SeaweedFiler")])
        (fdp,) = files_of(r)
        (svc,) = [x for x in fdp.service if x.name == "SeaweedFiler"]
        got = {m.name: (m.input_type, m.output_type, m.server_streaming, m.client_streaming) for m in svc.method}
        for name, (req, resp, streaming) in METHODS.items():
            assert got.get(name) == (".filer_pb." + req, ".filer_pb." + resp, streaming, False), (name, got.get(name))


def test_symbols_and_files():
    with Server() as s:
        rs = reflect(s.channel(), [
            dict(file_containing_symbol="filer_pb.SeaweedFiler.Ping"),
            dict(file_containing_symbol="grpc.health.v1.Health"),
            dict(file_by_filename="filer.proto"),
            dict(file_containing_symbol="no.such.Symbol"),
            dict(file_by_filename="nope.proto"),
            dict(all_extension_numbers_of_type="filer_pb.Entry"),
            dict(all_extension_numbers_of_type="no.Such"),
        ])
        assert len(rs) == 7, len(rs)
        assert files_of(rs[0])[0].name == "filer.proto"
        assert files_of(rs[1])[0].package == "grpc.health.v1"
        assert files_of(rs[2])[0].name == "filer.proto"
        for bad in (rs[3], rs[4], rs[6]):
            assert bad.error_response.error_code == 5, bad  # NOT_FOUND
        assert rs[5].all_extension_numbers_response.base_type_name == "filer_pb.Entry", rs[5]


def test_call_using_only_reflection():
    """What grpcurl does: descriptors from the server, nothing from our build."""
    with Server() as s:
        ch = s.channel()
        (r,) = reflect(ch, [dict(file_containing_symbol="filer_pb.SeaweedFiler")])
        pool = descriptor_pool.DescriptorPool()
        for fdp in files_of(r):
            pool.Add(fdp)
        factory = message_factory.MessageFactory(pool)
        method = pool.FindServiceByName("filer_pb.SeaweedFiler").FindMethodByName("GetFilerConfiguration")
        Req = factory.GetPrototype(method.input_type)
        Resp = factory.GetPrototype(method.output_type)
        call = ch.unary_unary("/filer_pb.SeaweedFiler/GetFilerConfiguration",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=Resp.FromString)
        conf = call(Req(), timeout=10)
        assert conf.dir_buckets == "/buckets" and conf.signature != 0, conf


def test_many_questions_on_one_stream():
    with Server() as s:
        rs = reflect(s.channel(), [dict(list_services="")] * 200)
        assert len(rs) == 200
        assert all(len(r.list_services_response.service) == 4 for r in rs)
        fmtest.assert_clean_stop(s)


def test_empty_question_is_an_error_response():
    with Server() as s:
        (r,) = reflect(s.channel(), [dict(host="h")])
        assert r.error_response.error_code == 3, r  # INVALID_ARGUMENT
        assert r.valid_host == "h"


if __name__ == "__main__":
    fmtest.main([
        test_list_services_both_versions,
        test_wire_contract_fields,
        test_describe_service_methods,
        test_symbols_and_files,
        test_call_using_only_reflection,
        test_many_questions_on_one_stream,
        test_empty_question_is_an_error_response,
    ])
