#!/usr/bin/python3
"""bench_python: the Python package's constrained-decoding step and its thread scaling.

Per decoding step (prefix depth j = 1 and 2) and beam batch B = 1, 64, 256, on the SIDs of every
GloVe word (341k; `scripts/fetch-data glove`): semid's SidTrie.allowed_mask (C++), semid.torch's
TrieLogitsMask (torch, CPU, from the trie's CSR arrays), and the brute-force check the PyTorch
peers use -- `(corpus[:, :j] == prefix).all(1)` then the unique next codes -- on the same prefixes,
in the same run, alternating rounds (each round: 50 consecutive calls of semid's two, one of the
brute force), medians over rounds. Then IndexRQVAE.search from one Python thread and
from two at once (the GIL is released), OMP_NUM_THREADS=1 so that only the Python threads run.

    OMP_NUM_THREADS=1 PYTHONPATH=build/python taskset -c 0,1 /usr/bin/python3 benchmarks/bench_python.py

The single-thread rows are measured on one thread; pin with taskset -c 1 for them alone.
"""

import argparse
import os
import statistics
import sys
import threading
import time

import numpy as np
import torch

import semid
from semid.torch import TrieLogitsMask

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].view(np.float32).copy()


def per_call_ms(fn, calls):
    """Milliseconds per call over `calls` consecutive calls (warm caches, as in a decode loop)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) * 1e3 / calls


def median_ms(fn, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description="semid's Python constrained-decoding step")
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "glove100", "vectors.fvecs"))
    parser.add_argument("--model", default="",
                        help="a model file; default: residual k-means trained here (3x256)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = read_fvecs(args.data)
    if args.model:
        q = semid.load_quantizer(args.model)
    else:
        start = time.perf_counter()
        q = semid.train(x, kind="rqkmeans", levels=3, codebook_size=256)
        print(f"trained {q} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    codes = q.encode(x)
    n, L = codes.shape
    K = q.codebook_size
    trie = semid.SidTrie.from_codes(codes, codebook_size=K)
    mask = TrieLogitsMask(trie)
    corpus = torch.from_numpy(codes.astype(np.int64))
    print(f"bench_python: {n} items, {q}; medians of {args.rounds} alternating rounds\n")
    print("| depth j | batch B | allowed_mask (C++) ms | TrieLogitsMask (torch) ms | "
          "brute force ms | brute / allowed_mask | brute / TrieLogitsMask |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(1)

    def brute(prefixes):
        out = torch.zeros(prefixes.shape[0], K, dtype=torch.bool)
        j = prefixes.shape[1]
        for b in range(prefixes.shape[0]):
            under = (corpus[:, :j] == prefixes[b]).all(1)
            out[b, torch.unique(corpus[under, j])] = True
        return out

    for j in (1, 2):
        for B in (1, 64, 256):
            rows = codes[rng.integers(0, n, B), :j]
            prefixes = torch.from_numpy(rows.astype(np.int64))
            logits = torch.randn(B, K)
            assert (torch.from_numpy(trie.allowed_mask(rows)) == brute(prefixes)).all()
            assert (torch.isfinite(mask(prefixes, logits)) == brute(prefixes)).all()
            a, t, f = [], [], []
            for _ in range(args.rounds):  # alternating rounds
                a.append(per_call_ms(lambda: trie.allowed_mask(rows), 50))
                t.append(per_call_ms(lambda: mask(prefixes, logits), 50))
                f.append(per_call_ms(lambda: brute(prefixes), 1))
            a, t, f = statistics.median(a), statistics.median(t), statistics.median(f)
            print(f"| {j} | {B} | {a:.4f} | {t:.4f} | {f:.1f} | {f / a:.0f}x | {f / t:.0f}x |")

    index = semid.IndexRQVAE(q)
    index.add(x)
    queries = x[rng.integers(0, n, 2000)]
    one = median_ms(lambda: index.search(queries, 10), 3)
    halves = np.array_split(queries, 2)

    def two_threads():
        threads = [threading.Thread(target=index.search, args=(h, 10)) for h in halves]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    two = median_ms(two_threads, 3)
    print(f"\nIndexRQVAE.search, 2,000 queries, k = 10: one Python thread {2000 / one * 1e3:.0f} "
          f"queries/s, two threads at once {2000 / two * 1e3:.0f} queries/s ({one / two:.2f}x)")


if __name__ == "__main__":
    main()
