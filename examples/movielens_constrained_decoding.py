#!/usr/bin/python3
"""semid from Python, end to end, on the MovieLens movie embeddings in ../shared/datasets:

1. train semid's RQ-VAE (about 3 minutes here; --kind rqkmeans: residual k-means, about 1) on the
   9,742 movies,
2. build semid's FAISS index over them and search it with user-profile queries,
3. run a tiny trie-constrained beam decode with semid.torch.TrieLogitsMask and a stand-in "model"
   (random logits biased toward the query's own SID) and assert that every decoded SID belongs to
   a real movie, and check that semid.torch.load_tokenizer reproduces the C++ model's SIDs.

    PYTHONPATH=build/python /usr/bin/python3 examples/movielens_constrained_decoding.py
"""

import argparse
import os
import sys
import tempfile

import numpy as np
import torch

import semid
from semid.torch import TrieLogitsMask, load_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "datasets", "movielens-use512")


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def read_ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].copy()


def beam_decode(mask, scores_of, levels, batch, beam):
    """Beam search over `levels` steps: scores_of(step, prefixes) -> log-probabilities [B*beam, K];
    the mask keeps every step inside the trie. Returns the best SID per query, int64 [batch, L]."""
    prefixes = torch.zeros(batch, 0, dtype=torch.int64)
    total = torch.zeros(batch)
    width = 1
    for step in range(levels):
        logp = mask(prefixes, scores_of(step, prefixes))  # [batch * width, K]
        K = logp.shape[1]
        cand = (total.view(-1, 1) + logp).view(batch, width * K)
        top = cand.topk(beam, dim=1)
        parent = top.indices // K
        code = top.indices % K
        rows = (torch.arange(batch).view(-1, 1) * width + parent).view(-1)
        prefixes = torch.cat([prefixes[rows], code.view(-1, 1)], dim=1)
        total = top.values.view(-1)
        width = beam
    best = total.view(batch, beam).argmax(dim=1)
    return prefixes.view(batch, beam, levels)[torch.arange(batch), best]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="rqvae", choices=["rqvae", "rqkmeans"])
    parser.add_argument("--data", default=DATA)
    args = parser.parse_args()
    base = read_fvecs(os.path.join(args.data, "mllatestsmall_use512_base.fvecs"))
    users = read_fvecs(os.path.join(args.data, "mllatestsmall_use512_query_userprofile.fvecs"))
    truth = read_ivecs(
        os.path.join(args.data, "mllatestsmall_use512_groundtruth_userprofile_angular.ivecs"))
    print(f"{len(base)} movies x {base.shape[1]}, {len(users)} user profiles", file=sys.stderr)

    # 1. train
    budget = {"time_budget_seconds": 240} if args.kind == "rqvae" else {}  # the main job's budget
    q = semid.train(base, kind=args.kind, levels=3, codebook_size=256, **budget)
    codes = q.encode(base)
    print(f"trained {q}: collision rate {q.report['codes']['collision_rate']:.3f}", file=sys.stderr)

    # The same model in torch: load_tokenizer must give the C++ model's SIDs and reconstructions.
    path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    q.save(path)
    tokenizer = load_tokenizer(path)
    same = (tokenizer.encode(torch.from_numpy(base)).numpy() == codes).all(axis=1).mean()
    gap = np.abs(tokenizer.decode(torch.from_numpy(codes)).numpy() - q.decode(codes)).max()
    print(f"semid.torch tokenizer: {same:.2%} of the {len(base)} SIDs equal the C++ model's, "
          f"largest decode difference {gap:.1e}")
    assert same >= 0.999, "the torch tokenizer disagrees with the C++ model"

    # 2. index and search (recall@10 of the user profiles against the exact neighbours)
    index = semid.IndexRQVAE(q)
    index.add_with_ids(base, np.arange(len(base)))
    _, found = index.search(users, 10)
    recall = np.mean([len(set(f) & set(t[:10])) / 10 for f, t in zip(found, truth)])
    print(f"IndexRQVAE cosine mode recall@10 (user profiles): {recall:.3f}")

    # 3. constrained decoding: a stand-in model that prefers each user's nearest movie's SID
    trie = semid.SidTrie.from_codes(codes, np.arange(len(base)), codebook_size=q.codebook_size)
    mask = TrieLogitsMask(trie)
    batch, beam = 32, 4
    target = torch.as_tensor(codes[found[:batch, 0]], dtype=torch.int64)
    generator = torch.Generator().manual_seed(0)

    def scores_of(step, prefixes):
        rows = prefixes.shape[0]
        logits = torch.randn(rows, q.codebook_size, generator=generator)
        wanted = target.repeat_interleave(rows // batch, dim=0)[:, step]
        logits[torch.arange(rows), wanted] += 3.0
        return torch.log_softmax(logits, dim=1)

    decoded = beam_decode(mask, scores_of, q.levels, batch, beam)
    stored = {tuple(c) for c in codes.tolist()}
    assert all(tuple(s) in stored for s in decoded.tolist()), "a decoded SID is no real movie"
    hits = (decoded == target).all(dim=1).float().mean().item()
    print(f"constrained beam decode: {batch} SIDs, all real movies; {hits:.0%} equal the target")


if __name__ == "__main__":
    main()
