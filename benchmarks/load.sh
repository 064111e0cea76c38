#!/usr/bin/env bash
# 60 s of searches and upserts together against `semid serve` on loopback, then the same searches
# in-process. Needs the GloVe collection that scripts/run builds (DATA_DIR/store/glove).
# Usage: benchmarks/load.sh [DATA_DIR]   (SEMID_BUILD_DIR, SEMID_LOAD_SECONDS honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${1:-data}
build_dir=${SEMID_BUILD_DIR:-build}
seconds=${SEMID_LOAD_SECONDS:-60}
store="$data_dir/store"
[ -d "$store/collections/glove" ] || { echo "load: run scripts/run first (no $store/collections/glove)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export OMP_WAIT_POLICY=PASSIVE
"$build_dir/semid" serve --data-dir "$store" --port "$port" --no-access-log &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
status=0
"$build_dir/benchmarks/bench_load" --port "$port" --collection glove \
  --queries "$data_dir/glove100/query.fvecs" --seconds "$seconds" --clients 4 --write-fraction 0.1 || status=$?
kill -TERM $server
wait $server || true
trap - EXIT
"$build_dir/benchmarks/bench_load" --in-process --data-dir "$store" --collection glove \
  --queries "$data_dir/glove100/query.fvecs" --seconds 10
exit $status
