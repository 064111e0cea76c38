import numpy as np
import pytest

import semid

torch = pytest.importorskip("torch")
from semid.torch import TrieConstraint, TrieLogitsMask  # noqa: E402


def test_trie_constraint_equals_allowed_mask_on_and_off_the_trie():
    rng = np.random.default_rng(5)
    codes = (rng.integers(0, 16, (3000, 3)) // np.array([1, 3, 5])).astype(np.int32)
    trie = semid.SidTrie.from_codes(codes, codebook_size=16)
    dense, sparse = TrieConstraint(trie), TrieConstraint(trie, dense_bytes=0)
    # Dense tables for the first levels only: the general walk over both kinds.
    mixed = TrieConstraint(trie, dense_bytes=(1 + 1) * (17 * 8 + 16 * 5) + (16 + 1) * (17 * 8 + 16 * 5))
    assert mixed._dense_mask[1] is not None and mixed._dense_mask[2] is None
    for depth in range(3):
        stored = codes[rng.integers(0, 3000, 100), :depth]
        anywhere = rng.integers(0, 16, (100, depth)).astype(np.int32)  # many leave the trie
        for prefixes in (stored, anywhere):
            expected = trie.allowed_mask(prefixes)
            for constraint in (dense, sparse, mixed):
                got = constraint.allowed_mask(torch.from_numpy(prefixes.astype(np.int64)))
                assert got.dtype == torch.bool and tuple(got.shape) == (100, 16)
                np.testing.assert_array_equal(got.numpy(), expected)
    off = torch.tensor([[3, -1], [99, 0]])  # codes outside [0, K) leave the trie
    for constraint in (dense, sparse, mixed):
        assert not constraint.allowed_mask(off).any()


def test_mask_logits_and_a_constrained_greedy_decode_only_produces_stored_sids():
    rng = np.random.default_rng(6)
    codes = rng.integers(0, 32, (200, 3)).astype(np.int32)
    trie = semid.SidTrie.from_codes(codes, codebook_size=32)
    mask = TrieLogitsMask(trie)
    constraint = mask.constraint
    stored = {tuple(c) for c in codes.tolist()}
    batch = 64
    prefixes = torch.zeros(batch, 0, dtype=torch.int64)
    for step in range(3):
        logits = torch.randn(batch, 32)
        masked = mask(prefixes, logits)
        if step > 0:  # 200 SIDs use every first code, but few second and third codes per prefix
            assert torch.isinf(masked).any()
        prefixes = torch.cat([prefixes, masked.argmax(dim=1, keepdim=True)], dim=1)
    assert all(tuple(p) in stored for p in prefixes.tolist())
    with pytest.raises(ValueError, match="prefixes hold 3 codes"):
        constraint.allowed_mask(prefixes)
    # Dense (an add) and sparse (masked_fill) paths mask alike, in float16 too.
    sparse = TrieConstraint(trie, dense_bytes=0)
    logits = torch.randn(64, 32)
    for j in range(3):
        p = prefixes[:, :j]
        np.testing.assert_array_equal(constraint.mask_logits(logits, p).numpy(),
                                      sparse.mask_logits(logits, p).numpy())
        half = constraint.mask_logits(logits.half(), p)
        assert half.dtype == torch.float16
        assert torch.equal(torch.isinf(half), torch.isinf(sparse.mask_logits(logits, p)))
    with pytest.raises(ValueError, match="logits has shape"):
        constraint.mask_logits(torch.zeros(2, 5), prefixes[:2, :1])
