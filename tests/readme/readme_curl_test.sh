#!/usr/bin/env bash
# Runs the README's curl block (between the curl-examples markers) against a real `semid serve`
# with a 4-d demo model; fails if any command fails (curl -f: any 4xx/5xx).
# Usage: readme_curl_test.sh SEMID_BINARY README_PATH
set -euo pipefail
semid=$1
readme=$2
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 - "$work/demo4.fvecs" <<'PY'
import random, struct, sys
random.seed(7)
with open(sys.argv[1], "wb") as f:
    for _ in range(200):
        f.write(struct.pack("<i4f", 4, *[random.random() for _ in range(4)]))
PY
"$semid" train --kind rqkmeans --data "$work/demo4.fvecs" --levels 2 --codebook-size 4 \
  --out "$work/demo4.safetensors" --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$semid" serve --data-dir "$work/store" --port "$port" --no-access-log &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
export MODEL="$work/demo4.safetensors"
block=$(awk '/<!-- curl-examples:begin -->/{f=1; next} /<!-- curl-examples:end -->/{f=0} f' "$readme" |
        grep -v '^```' | sed "s#http://127.0.0.1:8080#http://127.0.0.1:$port#")
bash -euxo pipefail -c "$block" > "$work/out.txt" 2> "$work/trace.txt" || { tail -5 "$work/trace.txt"; cat "$work/out.txt" | tail -3; exit 1; }
echo "README curl examples: all $(grep -c '^curl\|\$(curl' <<<"$block") commands succeeded"
