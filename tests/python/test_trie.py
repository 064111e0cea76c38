import numpy as np
import pytest

import semid


def random_sids(n=500, levels=3, K=8, seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, K, (n, levels)).astype(np.int32) // np.array([1, 2, 4], np.int32)


def test_allowed_mask_count_and_items_match_brute_force():
    codes = random_sids()
    ids = np.arange(500, dtype=np.int64) * 10
    trie = semid.SidTrie.from_codes(codes, ids, codebook_size=8)
    assert len(trie) == 500 and trie.levels == 3 and trie.codebook_size == 8
    rng = np.random.default_rng(1)
    for depth in range(3):
        prefixes = rng.integers(0, 8, (64, depth)).astype(np.int32)
        mask = trie.allowed_mask(prefixes)
        assert mask.dtype == np.bool_ and mask.shape == (64, 8)
        for row, prefix in zip(mask, prefixes):
            under = (codes[:, :depth] == prefix).all(axis=1)
            expected = np.zeros(8, bool)
            expected[np.unique(codes[under, depth])] = True
            np.testing.assert_array_equal(row, expected)
            assert trie.count(prefix) == under.sum()
    page = trie.items([1], limit=1000)
    under = codes[:, 0] == 1
    assert sorted(page["ids"].tolist()) == sorted(ids[under].tolist())
    assert page["next_cursor"] == b""
    listed, cursor = [], ""
    while True:
        p = trie.items([], limit=37, cursor=cursor)
        listed += p["ids"].tolist()
        cursor = p["next_cursor"]
        if not cursor:
            break
    assert sorted(listed) == sorted(ids.tolist())
    tokens = trie.next_tokens([[], [1]])
    assert tokens[0]["count"] == 500
    assert sum(t["count"] for t in tokens[1]["next"]) == under.sum()


def test_to_csr_describes_the_same_trie():
    codes = random_sids()
    trie = semid.SidTrie.from_codes(codes, codebook_size=8)
    levels = trie.to_csr()
    assert len(levels) == 3
    assert levels[0]["indptr"].tolist() == [0, len(levels[0]["codes"])]
    # Walk every stored SID through the CSR arrays.
    for sid in np.unique(codes, axis=0):
        node = 0
        for level, code in zip(levels, sid):
            lo, hi = level["indptr"][node], level["indptr"][node + 1]
            at = lo + np.searchsorted(level["codes"][lo:hi], code)
            assert at < hi and level["codes"][at] == code
            node = level["child"][at]
    assert levels[2]["counts"].sum() == 500
    assert len(levels[2]["codes"]) == len(np.unique(codes, axis=0))


def test_bad_input_is_a_clear_error():
    codes = random_sids()
    with pytest.raises(ValueError, match="row 0"):
        semid.SidTrie.from_codes(codes, codebook_size=2)  # codes >= K
    trie = semid.SidTrie.from_codes(codes, codebook_size=8)
    with pytest.raises(ValueError, match="prefixes hold 3 codes"):
        trie.allowed_mask(np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError):
        trie.allowed_mask(np.full((1, 1), 9, np.int32))
    with pytest.raises(TypeError, match="prefixes has dtype float64"):
        trie.allowed_mask(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="ids has 3 entries for 500"):
        semid.SidTrie.from_codes(codes, np.arange(3), codebook_size=8)


def test_an_index_trie_is_the_index_s_sids(kmeans, data):
    x, _ = data
    index = semid.IndexRQVAE(kmeans)
    index.add(x)
    trie = index.trie
    assert len(trie) == 2000
    sids = index.sids
    mask = trie.allowed_mask(sids[:10, :1])
    for row, sid in zip(mask, sids[:10]):
        assert row[sid[1]]
    del index  # the trie keeps its index alive
    assert len(trie) == 2000
