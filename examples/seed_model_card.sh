#!/usr/bin/env bash
# The seed model card's flow end to end: a PyTorch `from_pretrained` folder -> `semid import` ->
# `semid ingest` -> `semid serve` -> similar items and next tokens over HTTP, checking on the way
# that the served SIDs are the ones the PyTorch code gives.
#
# The card's own weights are not on this machine (it reaches Debian and npm only), so step 1 makes
# a folder of the same layout: the card's ResidualQuantizer (quantizers.{l}.embedding, the nearest
# codeword per level by squared L2) fitted by residual k-means in torch on MovieLens' 9,742 movie
# embeddings (512-d), 4 levels x 256 codes, written as PyTorchModelHubMixin.save_pretrained writes
# it (model.safetensors + config.json). With the real card, point step 2 at its downloaded folder.
#
# Usage: examples/seed_model_card.sh [SEMID_BINARY] [DATASETS_DIR]   (exit 77: data or torch missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
semid=${1:-$root/build/semid}
data=${2:-$root/../shared/datasets}/movielens-use512
python=${SEMID_PYTHON:-/usr/bin/python3}
base=$data/mllatestsmall_use512_base.fvecs
[ -f "$base" ] || { echo "seed_model_card: $base is missing" >&2; exit 77; }
"$python" -c 'import torch' 2>/dev/null || { echo "seed_model_card: python3-torch is missing" >&2; exit 77; }
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null && wait "$server" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. A from_pretrained folder of the card's layout, and the SIDs its PyTorch code gives.
"$python" - "$base" "$work/seed-card" "$work/torch_sids.json" <<'PY'
import json, os, struct, sys
import numpy as np
import torch

base, folder, sids_out = sys.argv[1:]
raw = np.fromfile(base, dtype=np.int32)
d = int(raw[0])
x = torch.from_numpy(raw.reshape(-1, d + 1)[:, 1:].copy().view(np.float32))

class ResidualQuantizer(torch.nn.Module):
    def __init__(self, num_layers, num_embeddings, embedding_dim, commitment_cost=0.25):
        super().__init__()
        self.quantizers = torch.nn.ModuleList()
        for _ in range(num_layers):
            q = torch.nn.Module()
            q.embedding = torch.nn.Embedding(num_embeddings, embedding_dim)
            self.quantizers.append(q)

    @torch.no_grad()
    def encode(self, r):
        codes = []
        for q in self.quantizers:
            w = q.embedding.weight
            idx = ((r * r).sum(1, keepdim=True) - 2 * r @ w.T + (w * w).sum(1)).argmin(1)
            codes.append(idx)
            r = r - w[idx]
        return torch.stack(codes, 1)

config = {"commitment_cost": 0.25, "embedding_dim": d, "num_embeddings": 256, "num_layers": 4}
model = ResidualQuantizer(**config)
torch.manual_seed(0)
with torch.no_grad():  # residual k-means, 20 Lloyd steps a level
    r = x.clone()
    for q in model.quantizers:
        w = r[torch.randperm(len(r))[:256]].clone()
        for _ in range(20):
            idx = ((r * r).sum(1, keepdim=True) - 2 * r @ w.T + (w * w).sum(1)).argmin(1)
            sums = torch.zeros_like(w).index_add_(0, idx, r)
            counts = torch.bincount(idx, minlength=256).float()[:, None]
            w = torch.where(counts > 0, sums / counts.clamp_min(1), w)
        q.embedding.weight.copy_(w)
        r = r - w[idx]

os.makedirs(folder)
header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
for name, t in model.state_dict().items():
    b = t.contiguous().numpy().tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
    blobs.append(b)
    offset += len(b)
text = json.dumps(header).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open(os.path.join(folder, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(config, f)
json.dump(model.encode(x).tolist(), open(sids_out, "w"))
PY
echo "== 1. from_pretrained folder: $(ls "$work/seed-card" | tr '\n' ' ')"

# 2. Import: exactly the card's SIDs, as a semid model.
echo "== 2. semid import"
"$semid" import "$work/seed-card" --out "$work/seed.safetensors" |
  jq -c '{kind, levels: .config.levels, codebook_size: .config.codebook_size, dim: .config.dim, source: .config.source.format}'

# 3. Ingest the movies with their titles as payloads.
cut -f2 "$data/mllatestsmall_use512.items.tsv" > "$work/titles.txt"
echo "== 3. semid ingest"
"$semid" ingest --data-dir "$work/store" --collection movies --model "$work/seed.safetensors" \
  --data "$base" --payloads "$work/titles.txt" 2>/dev/null | jq -c '{items, items_per_second}'

# 4. Serve, and ask over HTTP.
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$semid" serve --data-dir "$work/store" --port "$port" --no-access-log 2>"$work/server.log" &
server=$!
S=http://127.0.0.1:$port/v1/collections/movies
J='Content-Type: application/json'
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

# The served SIDs are the PyTorch code's (item 0 = Toy Story, ...).
"$python" - "$work/torch_sids.json" "$S" <<'PY'
import json, sys, urllib.request
sids, url = json.load(open(sys.argv[1])), sys.argv[2]
rows = range(0, len(sids), 97)
for i in rows:
    got = json.load(urllib.request.urlopen(f"{url}/items/{i}/sid"))["result"]["sid"]
    assert got == sids[i], f"item {i}: served {got}, torch gives {sids[i]}"
print(f"== 4. served SIDs equal torch's for all {len(rows)} items checked")
PY

echo "== similar to item 0 (Toy Story), by squared L2 between decoded SIDs (an L2 model):"
curl -sf -X POST "$S/items/0/similar" -H "$J" -d '{"k": 5, "with_payload": true}' |
  jq -r '.result[] | "  \(.score | tostring | .[0:5])  \(.payload.text)"'
first=$(curl -sf "$S/items/0/sid" | jq -c '.result.sid[:2]')
echo "== next tokens after $first (Toy Story's first two codes):"
curl -sf -X POST "$S/trie/next" -H "$J" -d "{\"prefixes\": [$first]}" | jq -c '.result[0]'
echo "== the items under that prefix:"
curl -sf -X POST "$S/trie/items" -H "$J" -d "{\"prefix\": $first, \"limit\": 5, \"with_payload\": true}" |
  jq -r '.result.items[] | "  \(.sid)  \(.payload.text)"'
