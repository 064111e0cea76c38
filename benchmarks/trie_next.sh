#!/usr/bin/env bash
# trie/next over HTTP at a depth-1 prefix, the step a constrained decoder takes, for one or more
# `semid` binaries side by side (e.g. this build and a build of an older commit as the anchor):
# 341,000 random 32-d items (numpy seed 3) under a 3 x 256 RQ-KMeans model (~250 children under
# each first code), each server pinned to core 1 with one worker, bench_load on core 0 with one
# keep-alive client, 10 s per round, rounds alternating between the binaries; prints medians, then
# next_tokens in-process on the same collection.
# Usage: benchmarks/trie_next.sh [ROUNDS] [SEMID...]   (default: 3 rounds of build/semid)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
shift || true
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=("$root/build/semid")
bench=$root/build/benchmarks/bench_load
python=${SEMID_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
"$python" - "$work" <<'PY'
import sys
import numpy as np
work = sys.argv[1]
x = np.random.default_rng(3).standard_normal((341000, 32)).astype(np.float32)
rows = np.hstack([np.full((len(x), 1), 32, np.int32).view(np.float32), x])
rows.tofile(f"{work}/items.fvecs")
rows[:20000].tofile(f"{work}/train.fvecs")
rows[:1000].tofile(f"{work}/queries.fvecs")
PY
"${binaries[0]}" train --kind rqkmeans --data "$work/train.fvecs" --levels 3 --codebook-size 256 \
  --out "$work/m.safetensors" --quiet 2>/dev/null
"${binaries[0]}" ingest --data-dir "$work/store" --collection r --model "$work/m.safetensors" \
  --data "$work/items.fvecs" >/dev/null 2>&1

measure() {  # $1 = binary; prints "p50_ms p99_ms qps"
  local port pid
  port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  taskset -c 1 "$1" serve --data-dir "$work/store" --port "$port" --threads 1 --no-access-log 2>/dev/null &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  taskset -c 0 "$bench" --port "$port" --collection r --queries "$work/queries.fvecs" --seconds 10 \
    --clients 1 --write-fraction 0 --trie-next-fraction 1 |
    awk -F'|' '/trie\/next d1/ {gsub(/ /, ""); print $5, $6, $4}'
  kill -TERM "$pid"
  wait "$pid" || true
}

declare -A results
for r in $(seq 1 "$rounds"); do
  for b in "${binaries[@]}"; do results[$b]+="$(measure "$b")"$'\n'; done
done
median() { sort -n | awk 'NF {a[++n]=$1} END {print a[int((n+1)/2)]}'; }
printf '| semid binary | p50 us | p99 us | QPS |\n|---|---|---|---|\n'
for b in "${binaries[@]}"; do
  col() { printf '%s' "${results[$b]}" | awk -v f="$1" 'NF {print $f}' | median; }
  awk -v b="$b" -v p50="$(col 1)" -v p99="$(col 2)" -v qps="$(col 3)" \
    'BEGIN {printf "| %s | %.0f | %.0f | %.0f |\n", b, p50 * 1000, p99 * 1000, qps}'
done
echo "($rounds alternating rounds of 10 s, medians)"
"$bench" --in-process --data-dir "$work/store" --collection r --queries "$work/queries.fvecs" \
  --seconds 4 --trie-next-fraction 1 2>/dev/null |
  awk -F'|' '/trie\/next/ {gsub(/ /, "", $4); printf "in-process next_tokens: %.2f us a call (%s calls/s)\n", 1e6 / $4, $4}'
