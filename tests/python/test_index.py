import numpy as np
import pytest

import semid


def brute_force(index_model, x, queries, ids, k):
    """Cosine between each query and every item's decoded SID: what the exhaustive mode ranks."""
    decoded = index_model.decode(index_model.encode(x))
    decoded /= np.linalg.norm(decoded, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = q @ decoded.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


def test_exhaustive_mode_equals_brute_force_and_the_fast_mode_is_close(kmeans, data):
    x, queries = data
    ids = np.arange(2000, dtype=np.int64) * 7 + 3
    index = semid.IndexRQVAE(kmeans)
    index.add_with_ids(x, ids)
    assert (index.d, index.ntotal, index.is_trained) == (32, 2000, True)
    assert index.metric_type == semid.METRIC_INNER_PRODUCT
    D, I = index.search(queries, 10, semid.SearchParametersRQVAE(mode="exhaustive"))
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == (50, 10)
    ref_D, _ = brute_force(kmeans, x, queries, ids, 10)
    np.testing.assert_allclose(D, ref_D, rtol=1e-5, atol=1e-5)
    Dc, Ic = index.search(queries, 10)
    np.testing.assert_allclose(Dc[:, 0], D[:, 0], atol=1e-5)  # the best SID is always found


def test_filters_removal_reconstruct_and_codes(kmeans, data):
    x, queries = data
    ids = np.arange(2000, dtype=np.int64)
    index = semid.IndexRQVAE(kmeans)
    index.add_with_ids(x, ids)
    allowed = np.arange(0, 2000, 5)
    for mode in ("cosine", "prefix", "exhaustive"):
        _, I = index.search(queries, 10, semid.SearchParametersRQVAE(mode=mode, sel=allowed))
        assert np.isin(I[I >= 0], allowed).all(), mode
    first = int(index.sids[0, 0])
    _, I = index.search(queries, 10, semid.SearchParametersRQVAE(prefix=[first]))
    assert (index.sids[np.searchsorted(ids, I[I >= 0]), 0] == first).all()
    np.testing.assert_allclose(index.reconstruct(17), kmeans.decode(kmeans.encode(x[17:18]))[0],
                               rtol=1e-5)
    codes = index.sa_encode(x[:4])
    assert codes.dtype == np.uint8 and codes.shape == (4, 3)
    np.testing.assert_allclose(index.sa_decode(codes), kmeans.decode(kmeans.encode(x[:4])),
                               rtol=1e-5)
    assert index.remove_ids(np.array([1, 2, 3, 99999])) == 3
    assert index.ntotal == 1997
    _, I = index.search(queries, 50)
    assert not np.isin(I, [1, 2, 3]).any()
    with pytest.raises(RuntimeError, match="not found"):
        index.reconstruct(2)
    with pytest.raises(ValueError, match="x has 8 columns; expected 32"):
        index.search(queries[:, :8], 5)
    with pytest.raises(ValueError, match="k = 0"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="mode = 'fast'"):
        semid.SearchParametersRQVAE(mode="fast")


def test_write_read_and_factory(kmeans, data, tmp_path):
    x, queries = data
    index = semid.IndexRQVAE(kmeans)
    index.add(x)
    D, I = index.search(queries, 5)
    path = str(tmp_path / "i.index")
    semid.write_index(index, path)
    back = semid.read_index(path)
    assert isinstance(back, semid.IndexRQVAE) and back.ntotal == 2000
    D2, I2 = back.search(queries, 5)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_array_equal(D, D2)
    flat = semid.index_factory(32, "Flat", "ip")
    assert isinstance(flat, semid.Index) and not isinstance(flat, semid.IndexRQVAE)
    flat.add(x)
    assert flat.search(queries, 3)[1].shape == (50, 3)
    untrained = semid.index_factory(32, "RQVAE2x4,epochs=2,warmup=1", "ip")
    assert isinstance(untrained, semid.IndexRQVAE) and not untrained.is_trained


def test_exact_mode_equals_faiss_flat_over_the_decoded_vectors(kmeans, data):
    """python3-faiss, where installed, as the reference: semid's exact mode gives the distances
    FAISS's flat inner-product index gives over the same decoded vectors."""
    faiss = pytest.importorskip("faiss")
    x, queries = data
    decoded = kmeans.decode(kmeans.encode(x))
    decoded /= np.linalg.norm(decoded, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(32)
    flat.add(decoded)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    D_ref, _ = flat.search(q.astype(np.float32), 10)
    index = semid.IndexRQVAE(kmeans)
    index.add(x)
    D, _ = index.search(queries, 10, semid.SearchParametersRQVAE(mode="exhaustive"))
    np.testing.assert_allclose(D, D_ref, rtol=1e-4, atol=1e-4)


def test_untrained_index_and_bad_prefix_filters_are_errors(kmeans, data):
    x, queries = data
    untrained = semid.index_factory(32, "RQVAE2x4", "ip")
    with pytest.raises(RuntimeError, match="not trained"):
        untrained.search(queries, 5)
    with pytest.raises(RuntimeError, match="not trained"):
        untrained.add(x)
    index = semid.IndexRQVAE(kmeans)
    index.add(x)
    with pytest.raises(RuntimeError, match="prefix"):
        index.search(queries, 5, semid.SearchParametersRQVAE(prefix=[1, 2, 3, 4]))  # > levels
    with pytest.raises(RuntimeError, match="prefix"):
        index.search(queries, 5, semid.SearchParametersRQVAE(prefix=[16]))  # code >= K
    with pytest.raises(RuntimeError, match="beam"):
        index.search(queries, 5, semid.SearchParametersRQVAE(mode="prefix", beam=2))


def test_range_search_reset_and_sids(kmeans, data):
    x, queries = data
    index = semid.IndexRQVAE(kmeans)
    index.add_with_ids(x, np.arange(2000) + 100)
    D, I = index.search(queries[:5], 20, semid.SearchParametersRQVAE(mode="exhaustive"))
    radius = float(D[:, 9].min())
    lims, RD, RI = index.range_search(queries[:5], radius)
    assert lims.dtype == np.int64 and lims.shape == (6,) and lims[-1] == len(RD) == len(RI)
    for q in range(5):
        got = RI[lims[q]:lims[q + 1]]
        assert (RD[lims[q]:lims[q + 1]] > radius).all()
        assert set(I[q][D[q] > radius]) <= set(got)
    with pytest.raises(RuntimeError, match="prefix mode"):
        index.range_search(queries[:1], radius, semid.SearchParametersRQVAE(mode="prefix"))
    sids = index.sids
    assert sids.shape == (2000, 3) and index.has_ids
    np.testing.assert_array_equal(sids, kmeans.encode(x))
    fresh = semid.IndexRQVAE(kmeans)
    fresh.add_sids(sids, np.arange(2000) + 100)
    np.testing.assert_array_equal(fresh.search(queries, 5)[1], index.search(queries, 5)[1])
    with pytest.raises(ValueError):
        fresh.add_sids(np.full((1, 3), 16, np.int32))
    index.reset()
    assert index.ntotal == 0 and not index.has_ids
    index.add(x[:10])
    assert index.search(queries[:1], 3)[1].tolist() != [[-1, -1, -1]]


def test_an_untrained_index_trains_and_every_search_parameter_is_honoured(data):
    x, queries = data
    index = semid.index_factory(32, "IDMap,RQVAE2x4,epochs=2,warmup=1", "ip")
    assert not index.is_trained
    index.train(x)
    assert index.is_trained
    index.add_with_ids(x[:500], np.arange(500) * 2)
    D, I = index.search(queries, 5)
    assert (I[I >= 0] % 2 == 0).all()
    rq = semid.IndexRQVAE(semid.train(x, kind="rqkmeans", levels=3, codebook_size=16))
    rq.add(x)
    exact = rq.search(queries, 10, semid.SearchParametersRQVAE(mode="exhaustive"))[0]
    full = rq.search(queries, 10, semid.SearchParametersRQVAE(shortlist=2000))[0]
    np.testing.assert_allclose(full, exact, atol=1e-5)  # a full shortlist is exhaustive
    beam = rq.search(queries, 10, semid.SearchParametersRQVAE(beam=2))[1]
    sids = rq.sids
    for q, row in enumerate(beam):  # the beam keeps at most 2 full SIDs per query
        assert len({tuple(sids[i]) for i in row if i >= 0}) <= 2
    query_sids = rq.quantizer.encode(queries)
    _, I = rq.search(queries, 10, semid.SearchParametersRQVAE(mode="prefix", min_prefix=2))
    for q, row in enumerate(I):
        for i in row[row >= 0]:
            assert (sids[i][:2] == query_sids[q][:2]).all()
    p = semid.SearchParametersRQVAE()
    p.mode, p.shortlist, p.prefix = "prefix", 20, [1]
    assert (p.mode, p.shortlist, p.prefix, p.sel) == ("prefix", 20, [1], None)
