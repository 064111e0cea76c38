#!/usr/bin/python3
"""collision_floor: why a model's semantic IDs collide, and how far better codes could go.

Encodes a catalogue with a saved model (RQ-VAE or RQ-KMeans) and prints, as a table:
  - observed: the share of items whose full SID another item shares (what `semid stats` reports);
  - cells as they are, last code at random: the same share if every item of each prefix of L - 1
    codes took its last code uniformly at random (the birthday bound of the model's own prefix
    populations): what a perfectly spread last level would still give;
  - cells uniform: the same if the items were also spread evenly over all K^(L-1) prefixes.
The gap between the first two is the last level's doing (items of one prefix crowding onto the
same last codes); the gap between the last two is the upper levels' (uneven prefix populations).
Then how alike colliding items are: the cosine of each colliding item to the first of its group
(median, 10th percentile) next to every item's nearest-neighbour cosine (median, 90th
percentile, over a seeded sample of 2,000 items against all): colliding pairs far above the
nearest-neighbour cosines are near-duplicates that no nearest-code rule can separate.

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/collision_floor.py MODEL VECTORS.fvecs
"""

import argparse
import sys
from collections import Counter

import numpy as np

import semid


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        sys.exit(f"{path}: empty file")
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1) != 0:
        sys.exit(f"{path}: not an .fvecs file (first dimension {d}, {raw.size} words)")
    return raw.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def collision_share(counts, n):
    return sum(c for c in counts.values() if c > 1) / n


def random_last_code_share(populations, k, n):
    # An item of a prefix holding m items collides unless the m - 1 others all avoid its code.
    return sum(m * (1 - (1 - 1 / k) ** (m - 1)) for m in populations) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("vectors")
    args = parser.parse_args()
    q = semid.load_quantizer(args.model)
    x = read_fvecs(args.vectors)
    codes = q.encode(x)
    n, levels = codes.shape
    k = q.codebook_size
    cells = Counter(map(tuple, codes[:, :-1]))
    per_cell = n / k ** (levels - 1)
    rows = [
        ("observed", collision_share(Counter(map(tuple, codes)), n)),
        ("cells as they are, last code at random", random_last_code_share(cells.values(), k, n)),
        (f"cells uniform ({per_cell:.1f} items each)", 1 - (1 - 1 / k) ** max(0.0, per_cell - 1)),
    ]
    print(f"{args.model} on {args.vectors}: {n} items, {levels} x {k}, "
          f"{len(cells)} prefixes of {levels - 1} codes (largest {max(cells.values())} items)\n")
    print("| SIDs | collision rate |\n|---|---|")
    for name, share in rows:
        print(f"| {name} | {100 * share:.1f}% |")

    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    groups = {}
    for i, sid in enumerate(map(tuple, codes)):
        groups.setdefault(sid, []).append(i)
    pairs = [float(unit[m[0]] @ unit[i]) for m in groups.values() if len(m) > 1 for i in m[1:]]
    sample = np.random.default_rng(0).choice(n, size=min(n, 2000), replace=False)
    nearest = []
    for begin in range(0, len(sample), 256):
        rows_of = sample[begin:begin + 256]
        sims = unit[rows_of] @ unit.T
        sims[np.arange(len(rows_of)), rows_of] = -np.inf
        nearest.extend(sims.max(axis=1))
    print("\n| cosine | median | tail |\n|---|---|---|")
    if pairs:
        print(f"| colliding items to their group's first | {np.median(pairs):.3f} | "
              f"p10 {np.percentile(pairs, 10):.3f} |")
    print(f"| every item to its nearest neighbour (sample of {len(sample)}) | "
          f"{np.median(nearest):.3f} | p90 {np.percentile(nearest, 90):.3f} |")


if __name__ == "__main__":
    main()
