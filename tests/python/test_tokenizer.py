import numpy as np
import pytest

import semid

torch = pytest.importorskip("torch")
from semid.torch import load_tokenizer  # noqa: E402


def agree(q, x, tmp_path, name):
    path = str(tmp_path / f"{name}.safetensors")
    q.save(path)
    tok = load_tokenizer(path)
    codes = q.encode(x)
    got = tok.encode(torch.from_numpy(x)).numpy()
    same = (got == codes).all(axis=1).mean()
    assert same >= 0.999, f"{name}: {same:.4f} of the SIDs agree"
    decoded = tok.decode(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(decoded, q.decode(codes), atol=2e-5, rtol=1e-4)
    return tok


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_residual_kmeans_in_torch_gives_semid_s_sids(data, tmp_path, metric):
    x, _ = data
    q = semid.train(x * 3.0, kind="rqkmeans", levels=3, codebook_size=16, metric=metric)
    agree(q, x * 3.0, tmp_path, "rqkmeans_" + metric)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_the_default_rqvae_in_torch_gives_semid_s_sids(data, tmp_path, metric):
    x, _ = data
    q = semid.train(x * 5.0, levels=3, codebook_size=16, metric=metric, epochs=3)
    tok = agree(q, x * 5.0, tmp_path, "rqvae_" + metric)
    assert tok.architecture == "residual" and tok.beam_size == 5


def test_the_mlp_rqvae_and_greedy_encoding_in_torch(data, tmp_path):
    x, _ = data
    q = semid.train(x, levels=2, codebook_size=16, latent_dim=8, hidden=[32], epochs=3,
                    warmup_epochs=1, decoder_refine_epochs=0)
    tok = agree(q, x, tmp_path, "mlp")
    assert tok.architecture == "mlp"


def test_bad_files_and_inputs_are_clear_errors(kmeans, tmp_path):
    path = tmp_path / "m.safetensors"
    kmeans.save(str(path))
    blob = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[:100])
    with pytest.raises(ValueError, match="cut.safetensors"):
        load_tokenizer(str(tmp_path / "cut.safetensors"))
    tok = load_tokenizer(str(path))
    with pytest.raises(ValueError, match=r"x must be \[n, 32\]"):
        tok.encode(torch.zeros(2, 31))
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(torch.full((1, 32), float("nan")))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        tok.decode(torch.full((1, 3), 16))
