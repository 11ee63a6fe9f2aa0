"""Integration: `filermeta tail` against the real server: exactly the events created
(count and content) for prefix and pattern filters, -timeAgo replays history,
-untilTimeAgo and -count end it, SIGINT ends it with 0, refs and events modes print
identical lines over history in several log files, bad flags are refused."""

import json
import re
import signal
import subprocess
import time

from google.protobuf import json_format

import fmtest
from fmtest import FILERMETA, Server, msg
from test_store_client import Filer, file_entry
from test_subscribe import create_many
from test_subscribe_refs import FLAGS, data_dir

Resp = msg("filer_pb.SubscribeMetadataResponse")


def tail(s, *args, timeout=120):
    p = subprocess.run([FILERMETA, "tail", "-filer", s.filer_addr] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def parse(stdout):
    return [json_format.ParseDict(json.loads(line), Resp()) for line in stdout.splitlines() if line.strip()]


def files(events):
    return [e for e in events if not e.event_notification.new_entry.is_directory]


def test_prefix_prints_exactly_the_events_created():
    with Server() as s:
        a = create_many(s, "/t/a", 60)
        create_many(s, "/t/ab", 10)  # a raw byte prefix: /t/a matches /t/ab too
        create_many(s, "/u", 10)
        rc, out, err = tail(s, "-pathPrefix", "/t/a/", "-timeAgo", "1h", "-untilTimeAgo", "1ms")
        assert rc == 0, err
        got = parse(out)
        assert got == a, "tail printed %d events, %d were created" % (len(got), len(a))
        # each line is exactly protobuf's canonical JSON of the event, as protobuf's own implementation writes it
        golden = [json_format.MessageToDict(e) for e in a]
        assert [json.loads(line) for line in out.splitlines()] == golden
        rc, out, err = tail(s, "-pathPrefix", "/t/a", "-timeAgo", "1h", "-untilTimeAgo", "1ms")
        assert rc == 0, err
        assert len(files(parse(out))) == 70


def test_pattern_on_the_name_or_the_full_path():
    with Server() as s:
        f = Filer(s.channel())
        made = {}
        for d, n in [("/p", "a.pdf"), ("/p", "b.txt"), ("/p/q", "c.pdf"), ("/p/q", "gopher"), ("/p/q", "hopher")]:
            made[(d, n)] = f.create_ok(d, file_entry(n)).metadata_event
        rc, out, err = tail(s, "-pattern", "*.pdf", "-timeAgo", "1h", "-untilTimeAgo", "1ms")
        assert rc == 0, err
        assert parse(out) == [made[("/p", "a.pdf")], made[("/p/q", "c.pdf")]]
        rc, out, err = tail(s, "-pattern", "/p/q/?opher", "-timeAgo", "1h", "-untilTimeAgo", "1ms")
        assert rc == 0, err
        assert parse(out) == [made[("/p/q", "gopher")], made[("/p/q", "hopher")]]
        # a path pattern's * stays within one directory
        rc, out, err = tail(s, "-pattern", "/p/*.pdf", "-timeAgo", "1h", "-untilTimeAgo", "1ms")
        assert rc == 0, err
        assert parse(out) == [made[("/p", "a.pdf")]]
        # a rename is shown when either side matches: b.txt -> b.pdf matches *.pdf by its new name
        since = made[("/p/q", "hopher")].ts_ns
        f.rename("/p", "b.txt", "/p", "b.pdf")
        rc, out, err = tail(s, "-pattern", "*.pdf", "-since", str(since), "-untilTimeAgo", "1ms")
        assert rc == 0, err
        got = parse(out)
        assert len(got) == 1 and got[0].event_notification.old_entry.name == "b.txt", got


def test_without_time_ago_only_new_events_and_count_ends_it():
    with Server() as s:
        create_many(s, "/old", 5)
        p = subprocess.Popen([FILERMETA, "tail", "-filer", s.filer_addr, "-count", "3"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)  # subscribed
            new = [Filer(s.channel()).create_ok("/new", file_entry("n%d" % i)).metadata_event for i in range(3)]
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        got = parse(out)
        # the first of the three new events is /new itself (its parent directory is created on the way)
        assert [e.event_notification.new_entry.name for e in got] == ["new", "n0", "n1"], got
        assert got[1:] == new[:2]


def test_sigint_ends_with_zero():
    with Server() as s:
        p = subprocess.Popen([FILERMETA, "tail", "-filer", s.filer_addr], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)
            Filer(s.channel()).create_ok("/sig", file_entry("x"))
            time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, (p.returncode, err)
        assert [e.event_notification.new_entry.name for e in parse(out)] == ["sig", "x"]


def test_refs_and_events_modes_print_the_same_over_three_log_files():
    """50,000 events written in three server runs (three filer ids, so three log files at least)."""
    with data_dir() as d:
        for k in range(3):
            with Server(data_dir=d, args=FLAGS) as s:
                p = subprocess.run([FILERMETA, "bench", "create", "-filer", s.filer_addr, "-c", "4", "-n",
                                    "4167", "-size", "100"],  # 3 x 4 x 4,167 = 50,004
                                   capture_output=True, text=True, timeout=300)
                assert p.returncode == 0, p.stderr
        with Server(data_dir=d, args=FLAGS) as s:
            outs = {}
            for mode in ("-refs=true", "-refs=false"):
                rc, out, err = tail(s, "-pathPrefix", "/bench/", "-timeAgo", "24h", "-untilTimeAgo", "1ms", mode)
                assert rc == 0, err
                outs[mode] = out.splitlines()
            assert outs["-refs=true"] == outs["-refs=false"], "refs mode printed something else"
            evs = files(parse("\n".join(outs["-refs=true"])))
            assert len(evs) >= 50000, len(evs)
            rc, out, err = tail(s, "-pathPrefix", "/bench/", "-timeAgo", "24h", "-untilTimeAgo", "1ms", "-quiet")
            assert rc == 0, err
            nrefs = int(re.search(r"(\d+) refs", out).group(1))
            assert nrefs >= 3, "history in fewer than 3 log files: %s" % out


def test_bad_flags_are_refused():
    with Server() as s:
        for args, what in [(["-since", "yesterday"], "-since"), (["-timeAgo", "2 hours"], "timeAgo"),
                           (["-since", "2026-11-24T00:00:00Z", "-timeAgo", "1h"], "-since and -timeAgo"),
                           (["-pathPrefix", "relative"], "prefix"), (["-nosuchflag"], "nosuchflag")]:
            rc, out, err = tail(s, *args, timeout=30)
            assert rc != 0 and what.lower() in err.lower(), (args, rc, err)


if __name__ == "__main__":
    fmtest.main([
        test_prefix_prints_exactly_the_events_created,
        test_pattern_on_the_name_or_the_full_path,
        test_without_time_ago_only_new_events_and_count_ends_it,
        test_sigint_ends_with_zero,
        test_refs_and_events_modes_print_the_same_over_three_log_files,
        test_bad_flags_are_refused,
    ])
