"""Integration: load, open streams, client cancel, and the ordered shutdown."""

import threading
import time

import grpc

import fmtest
from fmtest import Server, msg, unary

PING = "/filer_pb.SeaweedFiler/Ping"
WATCH = "/grpc.health.v1.Health/Watch"
REFLECT = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def watch_call(ch):
    return ch.unary_stream(WATCH, request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=msg("grpc.health.v1.HealthCheckResponse").FromString)


def test_64_clients_1000_pings_each():
    clients, calls = 64, 1000
    with Server() as s:
        errors, done = [], []
        lock = threading.Lock()

        def client():
            ch = grpc.insecure_channel(s.grpc_addr)
            ping = ch.unary_unary(PING, request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=msg("filer_pb.PingResponse").FromString)
            req = msg("filer_pb.PingRequest")()
            n = 0
            try:
                for _ in range(calls):
                    r = ping(req, timeout=30)
                    assert r.start_time_ns > 0
                    n += 1
            except Exception as e:  # collected and reported below
                with lock:
                    errors.append(repr(e))
            finally:
                ch.close()
                with lock:
                    done.append(n)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        assert not errors, errors[:3]
        assert sum(done) == clients * calls, sum(done)
        print("# %d calls in %.2f s: %.0f calls/s (python clients)" % (clients * calls, took, clients * calls / took))
        fmtest.assert_clean_stop(s)


def test_sigterm_with_20_open_streams_and_calls():
    with Server() as s:
        ch = s.channel()
        results = []
        lock = threading.Lock()
        started = threading.Barrier(21)

        def watcher():
            got = []
            try:
                it = watch_call(ch)(msg("grpc.health.v1.HealthCheckRequest")(), timeout=60)
                got.append(next(it).status)
                started.wait()
                for r in it:
                    got.append(r.status)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            with lock:
                results.append((code, got))

        def reflector():
            # a bidi stream that is open and idle: one answer read, more to come
            Req = msg("grpc.reflection.v1alpha.ServerReflectionRequest")
            gate = threading.Event()

            def requests():
                yield Req(list_services="")
                gate.wait(30)

            call = ch.stream_stream(REFLECT, request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=msg("grpc.reflection.v1alpha.ServerReflectionResponse").FromString)
            try:
                it = call(requests(), timeout=60)
                next(it)
                started.wait()
                for _ in it:
                    pass
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            gate.set()
            with lock:
                results.append((code, None))

        threads = [threading.Thread(target=watcher) for _ in range(14)]
        threads += [threading.Thread(target=reflector) for _ in range(6)]
        for t in threads:
            t.start()
        started.wait(30)
        fmtest.assert_clean_stop(s, within=5.0)
        for t in threads:
            t.join(10)
        assert len(results) == 20, results
        for code, got in results:
            # ours: streams end with UNAVAILABLE "server shutting down", not OK
            assert code == grpc.StatusCode.UNAVAILABLE, results
            assert got is None or got[0] == 1, results


def test_sigint_stops_cleanly():
    import signal
    with Server() as s:
        unary(s.channel(), PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        code, took = s.stop(sig=signal.SIGINT)
        assert code == 0 and took < 5, (code, took, s.output())


def test_idle_connection_does_not_delay_stop():
    # the shutdown grace is for calls in progress, not for idle connections
    with Server(args=["-shutdown.graceMs", "3000"]) as s:
        unary(s.channel(), PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        code, took = s.stop()
        assert code == 0 and took < 1.0, (code, took)


def test_client_cancel_releases_stream():
    with Server() as s:
        ch = s.channel()
        for _ in range(50):
            it = watch_call(ch)(msg("grpc.health.v1.HealthCheckRequest")(), timeout=30)
            assert next(it).status == 1
            it.cancel()
        # everything the cancelled calls held is released: the server still
        # answers, and under ASan the exit below reports no leak
        unary(ch, PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        fmtest.assert_clean_stop(s)


def test_dropped_connection_releases_stream():
    with Server() as s:
        for _ in range(10):
            ch = grpc.insecure_channel(s.grpc_addr)
            it = watch_call(ch)(msg("grpc.health.v1.HealthCheckRequest")(), timeout=30)
            assert next(it).status == 1
            ch.close()  # the connection goes away under the open stream
        unary(s.channel(), PING, msg("filer_pb.PingRequest")(), "filer_pb.PingResponse")
        fmtest.assert_clean_stop(s)


if __name__ == "__main__":
    fmtest.main([
        test_64_clients_1000_pings_each,
        test_sigterm_with_20_open_streams_and_calls,
        test_sigint_stops_cleanly,
        test_idle_connection_does_not_delay_stop,
        test_client_cancel_releases_stream,
        test_dropped_connection_releases_stream,
    ])
