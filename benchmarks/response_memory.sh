#!/usr/bin/env bash
# Resident memory of `semid serve` after large answers, with and without malloc_trim
# (--trim-after-bytes): MovieLens' 9,742 movies (512-d) in a collection, 8 clients each asking 6
# times for 2,000 items with their vectors (~11 MB answers), then the server's VmRSS at its peak
# and 2 s after the last answer. Rounds alternate trim on / off; prints medians.
# Usage: benchmarks/response_memory.sh [SEMID_BINARY] [DATASETS_DIR] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
semid=${1:-$root/build/semid}
data=${2:-$root/../shared/datasets}/movielens-use512
rounds=${3:-3}
python=${SEMID_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null && wait "$server" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
base=$data/mllatestsmall_use512_base.fvecs
"$semid" train --kind rqkmeans --data "$base" --levels 3 --codebook-size 64 --out "$work/m.safetensors" --quiet
cut -f2 "$data/mllatestsmall_use512.items.tsv" > "$work/titles.txt"
"$semid" ingest --data-dir "$work/store" --collection movies --model "$work/m.safetensors" \
  --data "$base" --payloads "$work/titles.txt" >/dev/null 2>&1

measure() {  # $1 = --trim-after-bytes value; prints "before_mib peak_mib after_mib"
  local port
  port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$semid" serve --data-dir "$work/store" --port "$port" --threads 2 --no-access-log \
    --trim-after-bytes "$1" 2>/dev/null &
  server=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  "$python" - "$port" "$server" <<'PY'
import json, sys, threading, time, urllib.request
port, pid = sys.argv[1], sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = rss()
peak, done = [0.0], [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss()); time.sleep(0.01)
def client(c):
    for r in range(6):
        first = (c * 6 + r) * 997 % 7742
        body = json.dumps({"ids": list(range(first, first + 2000)), "with_vector": True}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/collections/movies/items/retrieve",
                                     body, {"Content-Type": "application/json"})
        assert len(urllib.request.urlopen(req).read()) > 5_000_000
t = threading.Thread(target=sample); t.start()
clients = [threading.Thread(target=client, args=(c,)) for c in range(8)]
for c in clients: c.start()
for c in clients: c.join()
time.sleep(2)
done[0] = True; t.join()
print(f"{before:.0f} {peak[0]:.0f} {rss():.0f}")
PY
  kill -TERM "$server"; wait "$server" || true; server=""
}

on=() off=()
for r in $(seq 1 "$rounds"); do
  on+=("$(measure 4194304)")
  off+=("$(measure 0)")
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { printf '%s\n' "$@" | cut -d' ' -f"$field" | median; }
printf '| malloc_trim | RSS before MiB | peak RSS MiB | RSS 2 s after MiB |\n|---|---|---|---|\n'
row() {
  local label=$1; shift
  printf '| %s |' "$label"
  for field in 1 2 3; do printf ' %s |' "$(col "$@")"; done
  printf '\n'
}
row "after answers >= 4 MiB" "${on[@]}"
row "never" "${off[@]}"
echo "($rounds alternating rounds, medians; 8 clients x 6 retrieves of 2,000 items with vectors)"
