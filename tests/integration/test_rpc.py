"""Integration: unary RPCs of the foundation against the real filermetad
(Ping, GetFilerConfiguration, health) and the RPC layer's error statuses."""

import os
import shutil
import time

import grpc

import fmtest
from fmtest import Server, msg, raw_unary, unary

PING = "/filer_pb.SeaweedFiler/Ping"
CONFIG = "/filer_pb.SeaweedFiler/GetFilerConfiguration"
CHECK = "/grpc.health.v1.Health/Check"


def config(ch):
    return unary(ch, CONFIG, msg("filer_pb.GetFilerConfigurationRequest")(),
                 "filer_pb.GetFilerConfigurationResponse")


def test_ping_self():
    with Server() as s:
        before = time.time_ns()
        r = unary(s.channel(), PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        after = time.time_ns()
        assert before <= r.start_time_ns <= r.stop_time_ns <= after, r
        # as upstream: pinging the filer itself has no remote side
        assert r.remote_time_ns == 0, r
        fmtest.assert_clean_stop(s)


def test_ping_other_filer():
    with Server() as a, Server() as b:
        req = msg("filer_pb.PingRequest")(target=b.filer_addr, target_type="filer")
        before = time.time_ns()
        r = unary(a.channel(), PING, req, "filer_pb.PingResponse")
        assert before <= r.start_time_ns <= r.remote_time_ns <= r.stop_time_ns, r


def test_ping_unreachable_filer_fails_clearly():
    holder = fmtest.free_port_holder()
    port = holder.getsockname()[1]
    holder.close()  # now (almost surely) nothing listens there
    with Server() as s:
        req = msg("filer_pb.PingRequest")(target="127.0.0.1:1.%d" % port, target_type="filer")
        try:
            unary(s.channel(), PING, req, "filer_pb.PingResponse", timeout=20)
            raise AssertionError("ping of a dead filer succeeded")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            assert "ping filer 127.0.0.1:1.%d" % port in e.details(), e.details()


def test_configuration_fields():
    with Server() as s:
        r = config(s.channel())
        assert r.signature != 0
        assert r.dir_buckets == "/buckets"
        assert r.max_mb == 4
        assert list(r.masters) == []
        assert r.version.startswith("filermeta "), r.version
        assert (r.major_version, r.minor_version) == (4, 44), r


def test_max_mb_flag():
    with Server(args=["-maxMB", "16"]) as s:
        assert config(s.channel()).max_mb == 16


def test_signature_survives_restart_and_differs_per_dir():
    with Server(keep_dir=True) as s1:
        sig1 = config(s1.channel()).signature
        data_dir = s1.dir
        fmtest.assert_clean_stop(s1)
    try:
        with Server(data_dir=data_dir) as s2:
            assert config(s2.channel()).signature == sig1
            # the signature lives in the store, under upstream's KV key
            kv = unary(s2.channel(), "/filer_pb.SeaweedFiler/KvGet", msg("filer_pb.KvGetRequest")(key=b"filer.store.id"),
                       "filer_pb.KvGetResponse")
            assert int.from_bytes(kv.value, "big", signed=True) == sig1, kv
        with Server() as s3:
            assert config(s3.channel()).signature != sig1
    finally:
        shutil.rmtree(s1.tmp, ignore_errors=True)


def test_signature_migrates_from_first_version_file():
    with Server(keep_dir=True) as s1:
        data_dir = s1.dir
        fmtest.assert_clean_stop(s1)
    try:
        # a data dir as the first version left it: no store, a signature file
        shutil.rmtree(os.path.join(data_dir, "filer.db"))
        with open(os.path.join(data_dir, "filer.signature"), "wb") as f:
            f.write((0x1234abcd).to_bytes(4, "big"))
        with Server(data_dir=data_dir) as s2:
            assert config(s2.channel()).signature == 0x1234abcd
            fmtest.assert_clean_stop(s2)
        assert not os.path.exists(os.path.join(data_dir, "filer.signature")), "legacy file kept after migration"
        with Server(data_dir=data_dir) as s3:
            assert config(s3.channel()).signature == 0x1234abcd
    finally:
        shutil.rmtree(s1.tmp, ignore_errors=True)


def test_health_check():
    with Server() as s:
        ch = s.channel()
        Req = msg("grpc.health.v1.HealthCheckRequest")
        for service in ("", "filer_pb.SeaweedFiler", "grpc.health.v1.Health"):
            r = unary(ch, CHECK, Req(service=service), "grpc.health.v1.HealthCheckResponse")
            assert r.status == 1, (service, r)  # SERVING
        try:
            unary(ch, CHECK, Req(service="no.Such"), "grpc.health.v1.HealthCheckResponse")
            raise AssertionError("unknown service answered")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e


def test_unimplemented_methods():
    with Server() as s:
        ch = s.channel()
        for path in ("/filer_pb.SeaweedFiler/CollectionList", "/filer_pb.SeaweedFiler/StreamRenameEntry",
                     "/no.Such/Method"):
            try:
                raw_unary(ch, path, b"")
                raise AssertionError(path + " answered")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNIMPLEMENTED, (path, e)
                assert path in e.details(), e.details()


def test_garbage_request_is_invalid_argument():
    with Server() as s:
        ch = s.channel()
        # the last two carry field number 0 in an over-long tag: protobuf-c would
        # keep it as an unknown field and write back bytes nobody can decode
        for payload in (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08", b"\x80\x00\x2d", b"\x85\x00\xb3\x00\x00\x0a"):
            try:
                raw_unary(ch, PING, payload)
                raise AssertionError("garbage %r answered" % payload)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (payload, e)
                assert "filer_pb.PingRequest" in e.details(), e.details()
        # the server is still fine
        unary(ch, PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")


def test_unknown_fields_are_ignored():
    with Server() as s:
        # field 99 (varint) is unknown to PingRequest: accepted, not rejected
        r = raw_unary(s.channel(), PING, b"\x98\x06\x01" + msg("filer_pb.PingRequest")(target="").SerializeToString())
        assert msg("filer_pb.PingResponse").FromString(r).start_time_ns > 0


def test_oversized_request_is_resource_exhausted():
    with Server() as s:
        big = msg("filer_pb.PingRequest")(target="x" * (5 << 20))
        try:
            unary(s.channel(), PING, big, "filer_pb.PingResponse")
            raise AssertionError("5 MiB request accepted with the 4 MiB default")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        fmtest.assert_clean_stop(s)


def test_max_receive_size_is_configurable():
    with Server(args=["-grpc.maxRecvMB", "8"]) as s:
        big = msg("filer_pb.PingRequest")(target="x" * (5 << 20))
        r = unary(s.channel(), PING, big, "filer_pb.PingResponse")
        assert r.start_time_ns > 0


def test_deadline_is_respected():
    with Server() as s:
        ch = s.channel()
        watch = ch.unary_stream("/grpc.health.v1.Health/Watch",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=msg("grpc.health.v1.HealthCheckResponse").FromString)
        got = []
        try:
            for r in watch(msg("grpc.health.v1.HealthCheckRequest")(), timeout=0.5):
                got.append(r.status)
            raise AssertionError("watch ended without error")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
        assert got == [1], got
        unary(ch, PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        fmtest.assert_clean_stop(s)


if __name__ == "__main__":
    fmtest.main([
        test_ping_self,
        test_ping_other_filer,
        test_ping_unreachable_filer_fails_clearly,
        test_configuration_fields,
        test_max_mb_flag,
        test_signature_survives_restart_and_differs_per_dir,
        test_signature_migrates_from_first_version_file,
        test_health_check,
        test_unimplemented_methods,
        test_garbage_request_is_invalid_argument,
        test_unknown_fields_are_ignored,
        test_oversized_request_is_resource_exhausted,
        test_max_receive_size_is_configurable,
        test_deadline_is_respected,
    ])
