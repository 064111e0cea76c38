#!/usr/bin/env bash
# HTTP search next to in-process search on the GloVe collection that `scripts/run` builds: the
# server on core 1 with one worker, measured once its reconstruction cache is filled (both
# sides), bench_load on core 0 (CLIENTS keep-alive clients), searches
# with payloads (the API's default) and without, then `bench_load --in-process` on core 1; ROUNDS
# alternating rounds of SECONDS_PER_ROUND each; prints the medians.
# Usage: [ROUNDS=3] [SECONDS_PER_ROUND=8] [CLIENTS=1] benchmarks/http_search.sh [DATA_DIR]   (default: data)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$root/data}
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_ROUND:-8}
clients=${CLIENTS:-1}
semid=$root/build/semid
bench=$root/build/benchmarks/bench_load
queries=$data/glove100/query.fvecs
python=${SEMID_PYTHON:-/usr/bin/python3}
[ -d "$data/store/collections/glove" ] || { echo "http_search: run scripts/run first" >&2; exit 1; }
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT

row() {  # $1 = name; stdin = a bench_load table; appends "QPS p50 p99" to $work/$1
  awk -F'|' '/search \(/ {gsub(/ /, ""); print $4, $5, $6}' >>"$work/$1"
}
for r in $(seq 1 "$rounds"); do
  port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  taskset -c 1 "$semid" serve --data-dir "$data/store" --port "$port" --threads 1 --no-access-log \
    2>"$work/serve.log" &
  pid=$!
  # Ready, and the reconstruction cache filled (the prefetch after start-up), as in-process below.
  for _ in $(seq 1 600); do grep -q "reconstructions of" "$work/serve.log" && break; sleep 0.1; done
  for payload in true false; do
    taskset -c 0 "$bench" --port "$port" --collection glove --queries "$queries" --seconds "$secs" \
      --clients "$clients" --write-fraction 0 --with-payload "$payload" | row "http_$payload"
  done
  kill -TERM "$pid"
  wait "$pid" || true
  taskset -c 1 "$bench" --in-process --data-dir "$data/store" --collection glove \
    --queries "$queries" --seconds "$secs" | row in_process
done

median() { sort -n | awk 'NF {a[++n]=$1} END {print a[int((n+1)/2)]}'; }
printf '| search, k=10, %s client(s) | QPS | p50 ms | p99 ms |\n|---|---|---|---|\n' "$clients"
for name in http_true http_false in_process; do
  col() { awk -v f="$1" '{print $f}' "$work/$name" | median; }
  case $name in
    http_true) label="HTTP, with payloads (the default)" ;;
    http_false) label='HTTP, "with_payload": false' ;;
    in_process) label="in-process Collection::search (one at a time)" ;;
  esac
  printf '| %s | %s | %s | %s |\n' "$label" "$(col 1)" "$(col 2)" "$(col 3)"
done
echo "($rounds alternating rounds of $secs s, medians)"
