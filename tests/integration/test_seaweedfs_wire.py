"""Integration: a client built from SeaweedFS's own filer.proto (not ours) calls
filermetad and decodes the answers. Upstream's file cannot be committed here,
so this runs when SEAWEEDFS_FILER_PROTO names a copy of weed/pb/filer.proto
(and is reported as skipped otherwise). The schema is compiled at run time with
protoc into a descriptor set; nothing of ours is used on the client side."""

import os
import struct
import subprocess
import tempfile
import time
import urllib.request

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import fmtest
from fmtest import Server

UPSTREAM = os.environ.get("SEAWEEDFS_FILER_PROTO", "")


def upstream_classes():
    if not UPSTREAM:
        raise fmtest.Skip("SEAWEEDFS_FILER_PROTO not set")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "upstream.desc")
        subprocess.run(["protoc", "--include_imports", "--descriptor_set_out=" + out,
                        "-I" + os.path.dirname(UPSTREAM), os.path.basename(UPSTREAM)], check=True)
        fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    factory = message_factory.MessageFactory(pool)
    return lambda name: factory.GetPrototype(pool.FindMessageTypeByName(name))


def call(ch, method, req, resp_cls):
    return ch.unary_unary("/filer_pb.SeaweedFiler/" + method, request_serializer=lambda m: m.SerializeToString(),
                          response_deserializer=resp_cls.FromString)(req, timeout=10)


def test_upstream_client_ping():
    M = upstream_classes()
    with Server() as s:
        r = call(s.channel(), "Ping", M("filer_pb.PingRequest")(), M("filer_pb.PingResponse"))
        assert 0 < r.start_time_ns <= r.stop_time_ns, r


def test_upstream_client_configuration():
    M = upstream_classes()
    with Server() as s:
        r = call(s.channel(), "GetFilerConfiguration", M("filer_pb.GetFilerConfigurationRequest")(),
                 M("filer_pb.GetFilerConfigurationResponse"))
        assert r.signature != 0 and r.dir_buckets == "/buckets" and r.max_mb == 4, r
        assert r.major_version == 4 and r.minor_version == 44 and r.version, r
        # nothing we sent is unknown to upstream's schema
        assert not r.UnknownFields() if hasattr(r, "UnknownFields") else True


def test_upstream_client_subscribes():
    """A subscriber built from upstream's schema: history and live events, a batch of old events, the
    heartbeat, ListMetadataSubscribers; every field we send is known to upstream."""
    M = upstream_classes()
    with Server(args=["-metaLog.batchBehind", "0s"]) as s:
        ch = s.channel()
        Entry = M("filer_pb.Entry")
        for i in range(300):
            r = call(ch, "CreateEntry", M("filer_pb.CreateEntryRequest")(directory="/up", entry=Entry(name="f%d" % i)),
                     M("filer_pb.CreateEntryResponse"))
            assert r.error == "", r
        Resp = M("filer_pb.SubscribeMetadataResponse")
        sub = ch.unary_stream("/filer_pb.SeaweedFiler/SubscribeMetadata",
                              request_serializer=lambda m: m.SerializeToString(), response_deserializer=Resp.FromString)
        it = sub(M("filer_pb.SubscribeMetadataRequest")(client_name="upstream", path_prefix="/up", client_id=3,
                                                         client_epoch=1, client_supports_batching=True), timeout=20)
        names, last_ts = [], 0
        for r in it:
            assert not (hasattr(r, "UnknownFields") and r.UnknownFields()), r
            for e in [r] + list(r.events):
                if e.HasField("event_notification") and e.event_notification.HasField("new_entry"):
                    assert e.ts_ns > last_ts, (e.ts_ns, last_ts)
                    last_ts = e.ts_ns
                    names.append(e.event_notification.new_entry.name)
            if len(names) >= 301:
                break
        assert names == ["up"] + ["f%d" % i for i in range(300)], names[:5]
        lst = call(ch, "ListMetadataSubscribers", M("filer_pb.ListMetadataSubscribersRequest")(),
                   M("filer_pb.ListMetadataSubscribersResponse"))
        assert [(x.client_type, x.client_id) for x in lst.subscribers] == [("upstream", 3)], lst
        it.cancel()


def test_upstream_client_reads_log_file_refs():
    """A refs-mode subscriber built from upstream's schema: refs (LogFileChunkRef), resolved with upstream's
    LookupVolume and LogEntry, then the transition marker, then events; together the 300 events, once each."""
    M = upstream_classes()
    with Server(args=["-metaLog.chunkKB", "16", "-metaLog.flushIntervalSec", "1"]) as s:
        ch = s.channel()
        Entry = M("filer_pb.Entry")
        for i in range(300):
            call(ch, "CreateEntry", M("filer_pb.CreateEntryRequest")(directory="/rf", entry=Entry(name="f%d" % i)),
                 M("filer_pb.CreateEntryResponse"))
        time.sleep(2.5)  # flushed (the interval is 1 s)
        last = call(ch, "CreateEntry", M("filer_pb.CreateEntryRequest")(directory="/rf", entry=Entry(name="last")),
                    M("filer_pb.CreateEntryResponse")).metadata_event.ts_ns
        Resp = M("filer_pb.SubscribeMetadataResponse")
        sub = ch.unary_stream("/filer_pb.SeaweedFiler/SubscribeMetadata",
                              request_serializer=lambda m: m.SerializeToString(), response_deserializer=Resp.FromString)
        it = sub(M("filer_pb.SubscribeMetadataRequest")(client_name="upstream", path_prefix="/rf/", until_ns=last,
                                                         client_supports_metadata_chunks=True), timeout=20)
        refs, marker, names = [], None, []
        for r in it:
            assert not (hasattr(r, "UnknownFields") and r.UnknownFields()), r
            if marker is None and len(r.log_file_refs) > 0:
                refs.extend(r.log_file_refs)
                continue
            if marker is None:
                assert r.HasField("event_notification") and not r.event_notification.HasField("new_entry"), r
                marker = r.ts_ns
                continue
            names.append(r.event_notification.new_entry.name)
        assert refs and marker, (len(refs), marker)
        vids = sorted({c.file_id.split(",")[0] for r in refs for c in r.chunks})
        locs = call(ch, "LookupVolume", M("filer_pb.LookupVolumeRequest")(volume_ids=vids),
                    M("filer_pb.LookupVolumeResponse")).locations_map
        LogEntry, from_refs = M("filer_pb.LogEntry"), []
        for r in refs:
            data = b"".join(urllib.request.urlopen("http://%s/%s" % (locs[c.file_id.split(",")[0]].locations[0].url,
                                                                     c.file_id), timeout=10).read()
                            for c in sorted(r.chunks, key=lambda c: c.offset))
            at = 0
            while at + 4 <= len(data):
                (n,) = struct.unpack(">I", data[at:at + 4])
                e = LogEntry.FromString(data[at + 4:at + 4 + n])
                ev = Resp.FromString(e.data)
                assert e.ts_ns == ev.ts_ns <= marker
                if ev.directory == "/rf" and ev.event_notification.HasField("new_entry"):
                    from_refs.append(ev.event_notification.new_entry.name)
                at += 4 + n
        assert from_refs + names == ["f%d" % i for i in range(300)] + ["last"], (from_refs[:3], names[:3])


if __name__ == "__main__":
    fmtest.main([test_upstream_client_ping, test_upstream_client_configuration, test_upstream_client_subscribes,
                 test_upstream_client_reads_log_file_refs])
