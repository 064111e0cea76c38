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


if __name__ == "__main__":
    main()
