import numpy as np
import pytest

import semid


def test_a_collection_in_process(kmeans, data, tmp_path):
    x, queries = data
    manager = semid.CollectionManager(str(tmp_path / "d"))
    c = manager.create("docs", kmeans, collision_policy="relocate")
    assert manager.list() == ["docs"] and c.collision_policy == "relocate"
    ids = np.arange(1000, 1500)
    payloads = [{"title": f"t{i}"} if i % 2 else None for i in range(500)]
    c.upsert(ids, x[:500], payloads)
    assert len(c) == 500
    got = c.get([1001, 1002, 7], with_vector=True)
    assert got[0]["payload"] == {"title": "t1"} and got[1]["payload"] is None and got[2] is None
    np.testing.assert_array_equal(got[0]["vector"], x[1])
    assert len(got[0]["sid"]) == 3
    hits = c.search(queries[:3], k=5)
    assert len(hits) == 3 and len(hits[0]) == 5
    assert set(hits[0][0]) == {"id", "score", "sid", "collision_suffix", "payload"}
    assert all(1000 <= h["id"] < 1500 for row in hits for h in row)
    only = c.search(queries[:3], k=5, filter=[1001, 1003], mode="exhaustive")
    assert {h["id"] for row in only for h in row} <= {1001, 1003}
    tokens = c.next_tokens([[], got[0]["sid"][:1]])
    assert tokens[0]["count"] == 500
    assert any(t["code"] == got[0]["sid"][1] for t in tokens[1]["next"])
    page = c.prefix_scan(got[0]["sid"][:2], limit=1000)
    assert 1001 in [e["id"] for e in page["items"]]
    resolved = c.resolve(got[0]["sid"], got[0]["collision_suffix"])
    assert resolved["id"] == 1001
    stats = c.stats()
    assert stats["items"] == 500 and stats["collision_policy"] == "relocate"
    c.remove([1001])
    assert c.get([1001])[0] is None and len(c) == 499
    snapshot = c.snapshot()
    assert snapshot in manager.list_snapshots("docs")
    with pytest.raises(KeyError):
        c.remove([1001])
    with pytest.raises(ValueError, match="x has 31 columns"):
        c.upsert([1], x[:1, :31])
    with pytest.raises(ValueError, match="expected 'suffix' or 'relocate'"):
        manager.create("other", kmeans, collision_policy="move")
    manager.close()
    reopened = semid.CollectionManager(str(tmp_path / "d")).open("docs")
    assert len(reopened) == 499


def test_a_second_opener_of_a_collection_gets_a_clear_error(kmeans, data, tmp_path):
    x, _ = data
    first = semid.CollectionManager(str(tmp_path / "d"))
    c = first.create("docs", kmeans)
    c.upsert([1, 2], x[:2])
    second = semid.CollectionManager(str(tmp_path / "d"))
    with pytest.raises(RuntimeError, match="[Bb]usy|lock"):
        second.open("docs")
    with pytest.raises(KeyError):
        first.open("absent")
    first.close()
    assert len(second.open("docs")) == 2


def test_a_collection_s_trie_with_its_collision_suffix_as_one_more_level(kmeans, data, tmp_path):
    torch = pytest.importorskip("torch")
    from semid.torch import TrieLogitsMask

    x, _ = data
    manager = semid.CollectionManager(str(tmp_path / "d"))
    c = manager.create("docs", kmeans)  # suffix policy: 3x16 SIDs collide a lot on 2,000 items
    c.upsert(np.arange(2000), x)
    items = c.get(np.arange(2000))
    stored = {tuple(i["sid"]) + (i["collision_suffix"],) for i in items}
    assert len(stored) == 2000  # SID + suffix is unique
    plain = c.sid_trie()
    assert plain.levels == 3 and len(plain) == 2000
    trie = c.sid_trie(with_suffix=True)
    assert trie.levels == 4 and len(trie) == 2000
    assert trie.codebook_size >= max(i["collision_suffix"] for i in items) + 1
    mask = TrieLogitsMask(trie)
    prefixes = torch.zeros(16, 0, dtype=torch.int64)
    for _ in range(4):
        logits = mask(prefixes, torch.randn(16, trie.codebook_size))
        prefixes = torch.cat([prefixes, logits.argmax(1, keepdim=True)], dim=1)
    assert all(tuple(p) in stored for p in prefixes.tolist())  # real items, suffix included
