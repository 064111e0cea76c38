import numpy as np
import pytest

import semid


def test_encode_decode_shapes_dtypes_and_round_trip_through_a_file(kmeans, data, tmp_path):
    x, _ = data
    codes = kmeans.encode(x)
    assert codes.dtype == np.int32 and codes.shape == (2000, 3)
    assert codes.min() >= 0 and codes.max() < 16
    decoded = kmeans.decode(codes)
    assert decoded.dtype == np.float32 and decoded.shape == (2000, 32)
    assert (kmeans.kind, kmeans.levels, kmeans.codebook_size, kmeans.dim) == ("rqkmeans", 3, 16, 32)
    assert kmeans.metric == "cosine" and len(kmeans.content_hash) == 64
    assert 0 <= kmeans.report["codes"]["collision_rate"] <= 1
    path = str(tmp_path / "m.safetensors")
    kmeans.save(path)
    again = semid.load_quantizer(path)
    assert again.content_hash == kmeans.content_hash
    np.testing.assert_array_equal(again.encode(x), codes)
    np.testing.assert_array_equal(again.decode(codes), decoded)


def test_inputs_are_converted_or_refused_naming_the_argument(kmeans, data):
    x, _ = data
    np.testing.assert_array_equal(kmeans.encode(x[:5].astype(np.float64)), kmeans.encode(x[:5]))
    np.testing.assert_array_equal(kmeans.encode(np.asfortranarray(x[:5])), kmeans.encode(x[:5]))
    np.testing.assert_array_equal(kmeans.encode(x[:5].tolist()), kmeans.encode(x[:5]))
    with pytest.raises(ValueError, match="x has 31 columns; expected 32"):
        kmeans.encode(x[:5, :31])
    with pytest.raises(ValueError, match="x must have 2 dimension"):
        kmeans.encode(x[0])
    with pytest.raises(TypeError, match="x has dtype <U1"):
        kmeans.encode(np.array([["a"] * 32]))
    with pytest.raises(TypeError, match="codes has dtype float32; expected integers"):
        kmeans.decode(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="codes has 2 columns; expected 3"):
        kmeans.decode(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError):
        kmeans.decode(np.full((1, 3), 16, np.int32))  # a code >= K
    bad = x[:3].copy()
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN|non-finite"):
        kmeans.encode(bad)


def test_train_options_and_errors(data):
    x, _ = data
    with pytest.raises(TypeError, match="unexpected option 'epoch'"):
        semid.train(x, kind="rqvae", epoch=3)
    with pytest.raises(ValueError, match="expected 'rqvae' or 'rqkmeans'"):
        semid.train(x, kind="pq")
    with pytest.raises(KeyError):
        semid.load_quantizer("/nonexistent/m.safetensors")


def test_rqvae_trains_with_progress_and_can_be_stopped(data):
    x, _ = data
    seen = []

    def progress(p):
        seen.append(p["epoch"])
        return len(seen) < 3  # stop after the third report

    q = semid.train(x, levels=2, codebook_size=16, epochs=20, warmup_epochs=1, progress=progress)
    assert q.kind == "rqvae" and q.levels == 2
    assert 1 <= len(seen) <= 4
    assert q.report["stop_reason"] == "callback"
    assert q.encode(x[:4]).shape == (4, 2)
