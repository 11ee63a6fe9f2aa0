"""Integration: the chunk store over gRPC (AssignVolume, LookupVolume) and the
HTTP side (GET/HEAD/POST/PUT /<fid>, ranges, ETags, /metrics, /debug/logbuffer)
against the real filermetad."""

import http.client
import json
import os
import re
import uuid
import zlib

import grpc

import fmtest
from fmtest import Server, msg, unary

ASSIGN = "/filer_pb.SeaweedFiler/AssignVolume"
LOOKUP = "/filer_pb.SeaweedFiler/LookupVolume"
PING = "/filer_pb.SeaweedFiler/Ping"


# ---------------------------------------------------------------- helpers

def assign(s, **kw):
    r = unary(s.channel(), ASSIGN, msg("filer_pb.AssignVolumeRequest")(**kw), "filer_pb.AssignVolumeResponse")
    assert r.error == "", r
    return r


def lookup(s, ids):
    return unary(s.channel(), LOOKUP, msg("filer_pb.LookupVolumeRequest")(volume_ids=ids),
                 "filer_pb.LookupVolumeResponse")


def request(s, method, path, body=None, headers=None):
    """One HTTP request on a fresh connection; returns (status, headers dict with
    lower-case names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=20)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def post(s, fid, data, method="POST", headers=None):
    st, h, body = request(s, method, "/" + fid, body=data, headers=headers)
    return st, (json.loads(body) if h.get("content-type") == "application/json" else body)


def multipart(parts):
    """A multipart/form-data body: parts are (name, filename or None, bytes)."""
    boundary = "fmtest" + uuid.uuid4().hex
    out = b""
    for name, filename, data in parts:
        disp = 'form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        out += b"--" + boundary.encode() + b"\r\n"
        out += b"Content-Disposition: " + disp.encode() + b"\r\n"
        out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return out, {"Content-Type": "multipart/form-data; boundary=" + boundary}


def etag_of(data):
    return '"%08x"' % zlib.crc32(data)


def blob(n, seed=1):
    return bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(n))


def put_new(s, data):
    fid = assign(s).file_id
    st, j = post(s, fid, data)
    assert st == 201, (st, j)
    return fid


# ---------------------------------------------------------------- gRPC

def test_assign_volume():
    with Server() as s:
        r = assign(s, count=0, collection="c1", replication="001")
        assert re.fullmatch(r"1,[0-9a-f]{9,24}", r.file_id), r.file_id
        assert r.count == 1
        assert (r.collection, r.replication) == ("c1", "001"), r
        assert r.location.url == "127.0.0.1:%d" % s.http_port, r.location
        assert r.location.public_url == r.location.url
        assert r.location.grpc_port == s.grpc_port
        # one fid per call, whatever count asks for; each one new
        r2 = assign(s, count=5)
        assert r2.count == 1 and r2.file_id != r.file_id, r2
        try:
            unary(s.channel(), ASSIGN, msg("filer_pb.AssignVolumeRequest")(count=-1), "filer_pb.AssignVolumeResponse")
            raise AssertionError("negative count accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "count" in e.details(), e
        fmtest.assert_clean_stop(s)


def test_lookup_volume():
    with Server() as s:
        vid = assign(s).file_id.split(",")[0]
        r = lookup(s, [vid, vid, "0" + vid])
        assert sorted(r.locations_map.keys()) == sorted([vid, "0" + vid]), r
        locs = r.locations_map[vid].locations
        assert len(locs) == 1, r
        assert locs[0].url == "127.0.0.1:%d" % s.http_port and locs[0].grpc_port == s.grpc_port, locs
        assert len(lookup(s, []).locations_map) == 0
        # unknown: an entry without locations, status OK (what SeaweedFS's Go FilerClient reads as
        # "volume not found"; a failed call would count against the filer itself)
        r = lookup(s, [vid, "77"])
        assert sorted(r.locations_map.keys()) == sorted([vid, "77"]), r
        assert len(r.locations_map["77"].locations) == 0 and len(r.locations_map[vid].locations) == 1, r
        for bad in ["", "x", "-1", "+1", "1.5", "4294967296", " 1"]:
            try:
                lookup(s, [vid, bad])
                raise AssertionError("malformed id %r accepted" % bad)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, e)
                assert '"%s"' % bad in e.details(), (bad, e.details())


# ---------------------------------------------------------------- GET, HEAD

def test_post_raw_then_get():
    with Server() as s:
        data = blob(100000)
        fid = assign(s).file_id
        st, j = post(s, fid, data, headers={"Content-Type": "image/png"})
        assert st == 201, (st, j)
        assert j == {"name": "", "size": len(data), "eTag": "%08x" % zlib.crc32(data)}, j
        st, h, body = request(s, "GET", "/" + fid)
        assert st == 200 and body == data, st
        assert h["etag"] == etag_of(data), h
        assert h["content-type"] == "application/octet-stream", h
        assert h["accept-ranges"] == "bytes", h
        assert int(h["content-length"]) == len(data), h
        # stable ETag, and HEAD gives the same headers without a body
        st2, h2, _ = request(s, "GET", "/" + fid)
        assert h2["etag"] == h["etag"]
        c = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=20)
        c.request("HEAD", "/" + fid)
        r = c.getresponse()
        assert r.status == 200 and r.read() == b""
        assert r.getheader("ETag") == h["etag"] and int(r.getheader("Content-Length")) == len(data)
        c.close()
        # the empty chunk
        fid0 = put_new(s, b"")
        st, h, body = request(s, "GET", "/" + fid0)
        assert (st, body, h["etag"]) == (200, b"", etag_of(b"")), (st, h)


def test_post_multipart_and_put():
    with Server() as s:
        data = blob(5000, seed=3)
        fid = assign(s).file_id
        body, headers = multipart([("field", None, b"not me"), ("file", "chunk.bin", data),
                                   ("other", "later.bin", b"nor me")])
        st, j = post(s, fid, body, headers=headers)
        assert st == 201, (st, j)
        assert j == {"name": "chunk.bin", "size": len(data), "eTag": "%08x" % zlib.crc32(data)}, j
        st, h, got = request(s, "GET", "/" + fid)
        assert st == 200 and got == data
        # a form without any file name: its first part
        fid2 = assign(s).file_id
        body, headers = multipart([("a", None, b"first"), ("b", None, b"second")])
        st, j = post(s, fid2, body, headers=headers)
        assert st == 201 and j["size"] == 5 and j["name"] == "", (st, j)
        assert request(s, "GET", "/" + fid2)[2] == b"first"
        # PUT works as POST
        fid3 = assign(s).file_id
        st, j = post(s, fid3, b"put body", method="PUT")
        assert st == 201, (st, j)
        assert request(s, "GET", "/" + fid3)[2] == b"put body"
        # a multipart body that does not parse
        fid4 = assign(s).file_id
        st, j = post(s, fid4, b"garbage", headers={"Content-Type": "multipart/form-data"})
        assert st == 400, (st, j)


def test_ranges():
    with Server() as s:
        data = blob(1000, seed=5)
        fid = put_new(s, data)
        etag = etag_of(data)
        cases = [
            ("bytes=0-9", 0, 9),
            ("bytes=10-19", 10, 19),
            ("bytes=990-5000", 990, 999),
            ("bytes=500-", 500, 999),
            ("bytes=-100", 900, 999),
            ("bytes=-5000", 0, 999),
            ("bytes=999-999", 999, 999),
        ]
        for rng, a, b in cases:
            st, h, body = request(s, "GET", "/" + fid, headers={"Range": rng})
            assert st == 206, (rng, st)
            assert body == data[a:b + 1], rng
            assert h["content-range"] == "bytes %d-%d/1000" % (a, b), (rng, h)
            assert h["etag"] == etag, (rng, h)
        for rng in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"]:
            st, h, body = request(s, "GET", "/" + fid, headers={"Range": rng})
            assert st == 416, (rng, st)
            assert h["content-range"] == "bytes */1000", (rng, h)
        # several ranges, another unit, nonsense: the whole body
        for rng in ["bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=abc"]:
            st, h, body = request(s, "GET", "/" + fid, headers={"Range": rng})
            assert st == 200 and body == data, (rng, st)
        # the empty chunk has no satisfiable range
        fid0 = put_new(s, b"")
        st, h, _ = request(s, "GET", "/" + fid0, headers={"Range": "bytes=0-"})
        assert st == 416 and h["content-range"] == "bytes */0", (st, h)


def test_if_none_match():
    with Server() as s:
        data = blob(300)
        fid = put_new(s, data)
        etag = etag_of(data)
        for inm in [etag, "W/" + etag, '"nope", ' + etag, "*"]:
            st, h, body = request(s, "GET", "/" + fid, headers={"If-None-Match": inm})
            assert st == 304 and body == b"", (inm, st)
            assert h["etag"] == etag, h
        st, h, body = request(s, "GET", "/" + fid, headers={"If-None-Match": '"00000000"'})
        assert st == 200 and body == data


def test_read_errors():
    with Server() as s:
        fid = put_new(s, b"hello")
        vid, rest = fid.split(",")
        for bad in ["/1,xyz", "/0,0100000000", "/1,01", "/x,0100000000"]:
            st, h, body = request(s, "GET", bad)
            assert st == 400, (bad, st)
            assert b"bad file id" in body, body
        wrong_cookie = "%s,%s%08x" % (vid, rest[:-8], int(rest[-8:], 16) ^ 1)
        unknown_key = "%s,ff%s" % (vid, rest[-8:])
        for path in ["/" + wrong_cookie, "/" + unknown_key, "/99," + rest, "/nothing", "/", "/debug/x"]:
            st, _, _ = request(s, "GET", path)
            assert st == 404, (path, st)
        st, h, _ = request(s, "DELETE", "/" + fid)
        assert st == 405 and h["allow"] == "GET, HEAD, POST, PUT", (st, h)
        for page in ["/healthz", "/metrics", "/debug/logbuffer"]:
            st, h, _ = request(s, "POST", page, body=b"x")
            assert st == 405 and h["allow"] == "GET, HEAD", (page, st, h)


# ---------------------------------------------------------------- POST errors

def test_upload_errors():
    with Server(args=["-maxMB", "1"]) as s:
        fid = assign(s).file_id
        vid, rest = fid.split(",")
        st, j = post(s, fid, b"one")
        assert st == 201
        # the key was written: a second POST, even with other bytes, is refused
        st, j = post(s, fid, b"two")
        assert st == 409 and "already written" in j["error"], (st, j)
        assert request(s, "GET", "/" + fid)[2] == b"one"
        # a key assign never handed out
        never = "%s,%x%s" % (vid, int(rest[:-8], 16) + 1000, rest[-8:])
        st, j = post(s, never, b"x")
        assert st == 400 and "never assigned" in j["error"], (st, j)
        st, j = post(s, "99," + rest, b"x")
        assert st == 404 and "volume 99" in j["error"], (st, j)
        st, j = post(s, "1,zz", b"x")
        assert st == 400 and "bad file id" in j["error"], (st, j)
        # over -maxMB: 1 MiB fits, one byte more does not
        limit = 1 << 20
        fid2 = assign(s).file_id
        body, headers = multipart([("file", "big", b"\1" * (limit + 1))])
        st, j = post(s, fid2, body, headers=headers)
        assert st == 413, (st, j)
        # a declared length over the limit is refused before any body is sent (the server closes the
        # connection then, so a client that writes the body first may see a broken pipe: asked without one)
        c = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=20)
        c.putrequest("POST", "/" + fid2)
        c.putheader("Content-Length", str(100 * limit))
        c.endheaders()
        r = c.getresponse()
        assert r.status == 413, r.status
        assert json.loads(r.read())["error"] == "file over the limited %d bytes" % limit
        c.close()
        st, j = post(s, fid2, b"\2" * limit)
        assert st == 201 and j["size"] == limit, (st, j)
        fmtest.assert_clean_stop(s)


def test_corrupt_needle_is_500():
    with Server(keep_dir=True) as s:
        data = blob(4000, seed=9)
        fid = put_new(s, data)
        data_dir = s.dir
        fmtest.assert_clean_stop(s)
    try:
        path = os.path.join(data_dir, "volumes", fid.split(",")[0] + ".dat")
        raw = bytearray(open(path, "rb").read())
        at = raw.find(data[:64])
        assert at > 0, "needle bytes not found in %s" % path
        raw[at + 1000] ^= 0x5A
        open(path, "wb").write(bytes(raw))
        with Server(data_dir=data_dir) as s2:
            st, _, _ = request(s2, "GET", "/" + fid)
            assert st == 500, st
            st, _, _ = request(s2, "GET", "/" + fid, headers={"Range": "bytes=0-9"})
            assert st == 500, st
            fmtest.assert_clean_stop(s2)
            out = s2.output()
            assert "GET /%s: corrupt needle: crc mismatch in %s" % (fid, path) in out, out[-2000:]
    finally:
        import shutil
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)


# ---------------------------------------------------------------- pages

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"'
                         r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? (-?[0-9]+(\.[0-9]+)?)$')


def parse_metrics(text):
    """A strict reader of the text format: returns {(name, labels): value}.
    Every sample line must parse and belong to a family with # TYPE (declared
    before its samples, once); # HELP and # TYPE lines must be well formed."""
    types, samples = {}, {}
    assert text.endswith("\n"), "exposition must end with a newline"
    for line in text.split("\n")[:-1]:
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$", line)
            assert m, "bad comment line %r" % line
            if m.group(1) == "TYPE":
                assert m.group(3) in ("counter", "gauge", "histogram"), line
                assert m.group(2) not in types, "family declared twice: %r" % line
                types[m.group(2)] = m.group(3)
            continue
        m = METRIC_LINE.match(line)
        assert m, "bad sample line %r" % line
        name, labels = m.group(1), m.group(3) or ""
        family = name
        for suffix in ("_bucket", "_sum", "_count"):  # a histogram's samples
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
                assert suffix != "_bucket" or labels.startswith('le="'), line
        assert family in types, "sample of a family without TYPE: %r" % line
        assert name.startswith("filermeta_"), line
        if types[family] == "counter":
            assert name.endswith("_total"), line
        assert (name, labels) not in samples, "duplicate sample %r" % line
        samples[(name, labels)] = float(m.group(7))
    return samples


def metrics(s):
    st, h, body = request(s, "GET", "/metrics")
    assert st == 200, st
    assert h["content-type"].startswith("text/plain; version=0.0.4"), h
    return parse_metrics(body.decode())


def test_metrics():
    with Server() as s:
        ping_ok = ("filermeta_grpc_calls_total", 'method="/filer_pb.SeaweedFiler/Ping",code="OK"')
        before = metrics(s).get(ping_ok, 0)
        unary(s.channel(), PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        unary(s.channel(), PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        m = metrics(s)
        assert m[ping_ok] == before + 2, m
        # unknown methods share one label; errors are counted by code
        try:
            s.channel().unary_unary("/no.Such/Method")(b"", timeout=10)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED
        try:
            lookup(s, ["x"])
        except grpc.RpcError:
            pass
        m = metrics(s)
        assert m[("filermeta_grpc_calls_total", 'method="unknown",code="UNIMPLEMENTED"')] >= 1, m
        assert m[("filermeta_grpc_calls_total",
                  'method="/filer_pb.SeaweedFiler/LookupVolume",code="INVALID_ARGUMENT"')] == 1, m
        # chunk store
        put_new(s, b"12345")
        m = metrics(s)
        assert m[("filermeta_chunk_volumes", "")] == 1, m
        assert m[("filermeta_chunk_needles", "")] == 1, m
        assert m[("filermeta_chunk_live_bytes", "")] == 5, m
        assert m[("filermeta_chunk_disk_bytes", "")] > 5, m
        # HEAD of a page: headers only
        st, h, body = request(s, "HEAD", "/metrics")
        assert st == 200 and body == b"" and int(h["content-length"]) > 0


def test_metrics_parser_is_strict():
    """The parser above must reject what the format forbids."""
    good = "# HELP filermeta_x_total a\n# TYPE filermeta_x_total counter\nfilermeta_x_total{a=\"b\\\"c\"} 1\n"
    parse_metrics(good)
    for bad in [good.replace("# TYPE filermeta_x_total counter\n", ""),  # no TYPE
                good.replace(" 1\n", " one\n"),
                good.replace("{a=", "{1a="),
                good + "filermeta_x_total{a=\"b\\\"c\"} 2\n",  # duplicate
                good[:-1]]:  # no final newline
        try:
            parse_metrics(bad)
        except AssertionError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_debug_logbuffer():
    with Server() as s:
        st, h, body = request(s, "GET", "/debug/logbuffer")
        if st == 404 and b"no MetaLogBuffer" in body:
            raise fmtest.Skip("this build does not wire a MetaLogBuffer into the server yet")
        assert st == 200 and h["content-type"] == "application/json", (st, h)
        j = json.loads(body)
        for key in ["events_appended", "bytes_appended", "append_failures", "evictions", "events", "bytes",
                    "alloc_bytes", "size_bytes", "overshoot_bytes", "segments", "oldest_ts_ns", "newest_ts_ns",
                    "flushed_ts_ns"]:
            assert isinstance(j[key], int), (key, j)
        assert ("filermeta_logbuf_events_appended_total", "") in metrics(s)


def test_healthz_unchanged():
    with Server() as s:
        st, h, body = request(s, "GET", "/healthz")
        assert (st, body) == (200, b"ok\n"), (st, body)


if __name__ == "__main__":
    fmtest.main([
        test_assign_volume,
        test_lookup_volume,
        test_post_raw_then_get,
        test_post_multipart_and_put,
        test_ranges,
        test_if_none_match,
        test_read_errors,
        test_upload_errors,
        test_corrupt_needle_is_500,
        test_metrics,
        test_metrics_parser_is_strict,
        test_debug_logbuffer,
        test_healthz_unchanged,
    ])
