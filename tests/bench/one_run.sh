#!/usr/bin/env bash
# The one-run table of BENCHMARKS.md ("One run for issues 6 and 7"): the raw-stream ceiling, catch-up of 1M
# persisted events in events, batch and refs mode (3 rounds), live latency for 1 and 100 subscribers, 1,000 idle
# subscribers, and etcd side by side. One JSON object per line on stdout; progress on stderr.
#   tests/bench/one_run.sh [DATA_DIR]   (default /tmp/fm-1m: made with 1,000,000 events if it does not exist)
# Run from the repository root after ./dev build, on a machine with nothing else running.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=./build/tools/filermeta
D=./build/server/filermetad
data=${1:-/tmp/fm-1m}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # start [flags]: a filermetad on $data, sets pid and F
  rm -f "$tmp/ports"
  "$D" -dir "$data" -port 0 -port.grpc 0 --port-file "$tmp/ports" "$@" >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q http "$tmp/ports" 2>/dev/null && break; sleep 0.1; done
  # shellcheck disable=SC1091 # written by filermetad
  . "$tmp/ports"
  F=127.0.0.1:$http.$grpc
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

if [ ! -d "$data" ]; then
  echo "== writing 1,000,000 events into $data" >&2
  start
  "$B" bench create -filer "$F" -c 8 -n 125000 -size 200 >&2
  stop
fi
echo "== raw" >&2
"$B" bench raw -n 1000000 -mode all -json
echo "== catch-up (the whole history counts as behind: -metaLog.batchBehind 0s)" >&2
start -metaLog.batchBehind 0s
for round in 1 2 3; do
  for m in events batch refs; do
    c0=$(cpu)
    r=$("$B" bench catchup -filer "$F" -mode "$m" -json)
    c1=$(cpu)
    echo "$r" | sed "s/}\$/,\"round\":$round,\"server_cpu_s\":$((c1 - c0))e-2}/"
  done
done
# filtered: one of bench create's 8 client directories, 1/8 of the events
run=$("$B" -filer "$F" ls /bench | head -1)
for round in 1 2; do
  for m in events batch refs; do
    c0=$(cpu)
    r=$("$B" bench catchup -filer "$F" -mode "$m" -prefix "/bench/${run}c0/" -json)
    c1=$(cpu)
    echo "$r" | sed "s/}\$/,\"round\":$round,\"prefix\":\"c0\",\"server_cpu_s\":$((c1 - c0))e-2}/"
  done
done
stop
echo "== live, fan-out, etcd" >&2
./dev bench live -subs 1 -rate 1000 -duration 10s -json 2>/dev/null | grep '^{'
./dev bench live -subs 100 -rate 200 -duration 10s -json 2>/dev/null | grep '^{'
./dev bench fanout -subs 1000 -json 2>/dev/null | grep '^{'
./dev bench etcd -n 200000 -etcdN 20000 -subs 1,100 -rate 200 -duration 5s -json 2>/dev/null | grep '^{'
