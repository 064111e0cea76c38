#!/usr/bin/env bash
# Semantic-ID quality on ../shared/datasets/movielens-use512 (ml-latest-small, 9,742 x 512,
# 1,000 item queries; L=3, K=256), with the default settings of `semid train`:
#  - per-level used_fraction, collision_rate, recall@10 of exhaustive reconstructed-cosine ranking,
#    train time, for the RQ-VAE and the RQ-KMeans quantizer;
#  - save -> load -> encode gives identical SIDs (encode with the saved file twice, compare);
#  - two trainings with one seed give identical model files (sha256).
# Usage: benchmarks/movielens_sids.sh [OUT_DIR]   (SEMID_BUILD_DIR, SEMID_SHARED_DIR honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
semid=${SEMID_BUILD_DIR:-build}/semid
data=${SEMID_SHARED_DIR:-../shared}/datasets/movielens-use512
out=${1:-$(mktemp -d)}
mkdir -p "$out"
base=$data/mllatestsmall_use512_base.fvecs
query=$data/mllatestsmall_use512_query_items.fvecs
gt=$data/mllatestsmall_use512_groundtruth_items_angular.ivecs
export OMP_WAIT_POLICY=PASSIVE

row() {  # kind model eval.json train_seconds
  python3 - "$@" <<'PY'
import json, sys
kind, model, path, seconds = sys.argv[1:]
r = json.load(open(path))
used = " ".join(f"{l['used_fraction']:.3f}" for l in r["codes"]["levels"])
print(f"| {kind:8} | {used:17} | {r['codes']['collision_rate']:.4f} | {r['recall_at_k']:.4f} | "
      f"{r['reconstruction']['mean_cosine']:.4f} | {float(seconds):6.1f} |")
PY
}

train() {  # kind file
  local start end
  start=$(date +%s.%N)
  "$semid" train --kind "$1" --data "$base" --out "$2" --report "${2%.safetensors}.report.json" \
    --codes "${2%.safetensors}.codes.ivecs" --quiet
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}

declare -A seconds
for kind in rqvae rqkmeans; do
  seconds[$kind]=$(train "$kind" "$out/$kind.safetensors")
  "$semid" eval --model "$out/$kind.safetensors" --base "$base" --query "$query" --gt "$gt" --k 10 \
    --json > "$out/$kind.eval.json"
done

echo
echo "| model    | used_fraction L1-3 | collisions | recall@10 | mean cos | train s |"
echo "|----------|-------------------|------------|-----------|----------|---------|"
for kind in rqvae rqkmeans; do
  row "$kind" "$out/$kind.safetensors" "$out/$kind.eval.json" "${seconds[$kind]}"
done

# save -> load -> encode: the SIDs the trained model gave in memory against those from the file.
for kind in rqvae rqkmeans; do
  "$semid" encode --model "$out/$kind.safetensors" --data "$base" --out "$out/$kind.loaded.ivecs"
  if cmp -s "$out/$kind.codes.ivecs" "$out/$kind.loaded.ivecs"; then
    echo "$kind: save -> load -> encode gives identical SIDs"
  else
    echo "$kind: SIDS DIFFER after save -> load"; exit 1
  fi
done
# Determinism: a second training with the same seed.
train rqvae "$out/rqvae_again.safetensors" > /dev/null
a=$(sha256sum < "$out/rqvae.safetensors" | cut -d' ' -f1)
b=$(sha256sum < "$out/rqvae_again.safetensors" | cut -d' ' -f1)
if [ "$a" = "$b" ]; then echo "same seed, same data: identical model files ($a)"; else echo "MODEL FILES DIFFER: $a vs $b"; exit 1; fi
