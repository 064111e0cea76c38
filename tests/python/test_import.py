"""Importing PyTorch tokenizer checkpoints (issue 12): the layouts are built with torch here, the
SIDs torch's own code would give are computed here, and semid must give the same."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

import semid

torch = pytest.importorskip("torch")


def write_safetensors(path, tensors, metadata=None):
    """A minimal safetensors writer (the Python package is not a dependency)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().tobytes()
        dtype = {torch.float32: "F32", torch.float16: "F16", torch.float64: "F64"}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def nearest(r, w):
    """The nearest codeword of each row of r by squared L2, as the source projects compute it."""
    return ((r * r).sum(1, keepdim=True) - 2 * r @ w.T + (w * w).sum(1)).argmin(1)


def residual_codes(r, books):
    codes = []
    for w in books:
        idx = nearest(r, w)
        codes.append(idx)
        r = r - w[idx]
    return torch.stack(codes, 1)


class ResidualQuantizer(torch.nn.Module):
    """The seed model card's layout: quantizers.{l}.embedding (nn.Embedding [K, d]); each level
    takes the nearest codeword (squared L2) of the residual."""

    def __init__(self, num_layers, num_embeddings, embedding_dim):
        super().__init__()
        self.quantizers = torch.nn.ModuleList()
        for _ in range(num_layers):
            q = torch.nn.Module()
            q.embedding = torch.nn.Embedding(num_embeddings, embedding_dim)
            self.quantizers.append(q)

    @torch.no_grad()
    def encode(self, x):
        return residual_codes(x, [q.embedding.weight for q in self.quantizers])

    @torch.no_grad()
    def decode(self, codes):
        return sum(q.embedding.weight[codes[:, l]] for l, q in enumerate(self.quantizers))


def hub_folder(tmp_path, levels, K, d, seed=0, config=True):
    torch.manual_seed(seed)
    model = ResidualQuantizer(levels, K, d)
    with torch.no_grad():
        for l, q in enumerate(model.quantizers):
            q.embedding.weight.mul_(0.5 ** l)  # residual scales shrink level by level
    folder = tmp_path / "hub"
    folder.mkdir()
    write_safetensors(folder / "model.safetensors", dict(model.state_dict()))
    if config:
        (folder / "config.json").write_text(json.dumps(
            {"commitment_cost": 0.25, "embedding_dim": d, "num_embeddings": K, "num_layers": levels}))
    return model, folder


def check_same(model, q, x):
    codes = model.encode(x).numpy()
    got = q.encode(x.numpy())
    same = (got == codes).all(1).mean()
    assert same >= 0.999, f"{same:.4f} of the SIDs agree"
    np.testing.assert_allclose(q.decode(codes), model.decode(torch.from_numpy(codes)).numpy(),
                               atol=1e-5)


def test_the_seed_model_card_layout_4x1024x768(tmp_path):
    model, folder = hub_folder(tmp_path, 4, 1024, 768)
    x = torch.randn(2000, 768)
    q = semid.import_checkpoint(str(folder))
    assert (q.kind, q.levels, q.codebook_size, q.dim, q.metric) == ("rqkmeans", 4, 1024, 768, "l2")
    source = q.config["source"]
    assert source["format"] == "residual-quantizer" and source["config"]["num_layers"] == 4
    assert len(source["sha256"]) == 64
    check_same(model, q, x)
    # A FAISS-face index and a trie over it: 2 bytes a level.
    index = semid.IndexRQVAE(q)
    index.add(x[:100].numpy())
    assert index.sa_code_size() == 8


def test_res_kmeans_layout_and_the_cli(tmp_path):
    torch.manual_seed(1)
    centroids = {f"centroids.{l}": torch.randn(64, 32) * 0.5 ** l for l in range(3)}
    path = tmp_path / "rk.safetensors"
    write_safetensors(path, centroids)
    q = semid.import_checkpoint(str(path), "res-kmeans")
    model = ResidualQuantizer(3, 64, 32)
    with torch.no_grad():
        for l, qz in enumerate(model.quantizers):
            qz.embedding.weight.copy_(centroids[f"centroids.{l}"])
    check_same(model, q, torch.randn(3000, 32))
    cli = os.environ.get("SEMID_CLI")
    if cli:
        out = tmp_path / "m.safetensors"
        run = subprocess.run([cli, "import", str(path), "--out", str(out)], capture_output=True,
                             text=True, check=True)
        assert json.loads(run.stdout)["content_hash"] == q.content_hash
        assert semid.load_quantizer(str(out)).content_hash == q.content_hash


def test_malformed_checkpoints_are_clear_errors(tmp_path):
    w = lambda *shape: torch.randn(*shape)  # noqa: E731
    cases = {
        "gap": ({"quantizers.0.embedding.weight": w(16, 8), "quantizers.2.embedding.weight": w(16, 8)},
                "without gaps"),
        "shapes": ({"quantizers.0.embedding.weight": w(16, 8), "quantizers.1.embedding.weight": w(16, 4)},
                   "level 0 is"),
        "mixed": ({"quantizers.0.embedding.weight": w(16, 8), "centroids.0": w(16, 8)},
                  "a mix of layouts"),
        "unknown": ({"encoder.weight": w(4, 4)}, "no known layout"),
        "stranger": ({"quantizers.0.embedding.weight": w(16, 8), "extra": w(2)}, "not part of"),
        "nan": ({"quantizers.0.embedding.weight": torch.full((16, 8), float("nan"))}, "nan"),
        "power": ({"centroids.0": w(12, 8)}, "power of two"),
        "dtype": ({"centroids.0": w(16, 8).half()}, "F32"),
    }
    for name, (tensors, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        write_safetensors(path, tensors)
        with pytest.raises(ValueError, match=message):
            semid.import_checkpoint(str(path))
    good = tmp_path / "good.safetensors"
    write_safetensors(good, {"centroids.0": w(16, 8)})
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:-10])
    with pytest.raises(RuntimeError, match="cut.safetensors"):
        semid.import_checkpoint(str(tmp_path / "cut.safetensors"))
    (tmp_path / "m.pt").write_bytes(b"\x80\x02")
    with pytest.raises(ValueError, match="torch pickle"):
        semid.import_checkpoint(str(tmp_path / "m.pt"))
    _, folder = hub_folder(tmp_path, 2, 16, 8)
    (folder / "config.json").write_text(json.dumps({"num_layers": 3}))
    with pytest.raises(ValueError, match="num_layers = 3"):
        semid.import_checkpoint(str(folder))
    with pytest.raises(ValueError, match="known: auto, residual-quantizer"):
        semid.import_checkpoint(str(folder), "lucidrains")


def load_residual_quantizer(folder):
    """What the seed project's from_pretrained does with a folder: config.json, then the state
    dict into ResidualQuantizer."""
    config = json.loads((folder / "config.json").read_text())
    model = ResidualQuantizer(config["num_layers"], config["num_embeddings"], config["embedding_dim"])
    from semid.torch import read_safetensors
    tensors, _ = read_safetensors(str(folder / "model.safetensors"))
    model.load_state_dict(tensors)
    return model


def test_export_then_reload_in_torch_gives_the_same_sids(data, tmp_path):
    x, _ = data
    source, folder = hub_folder(tmp_path, 3, 64, 32)
    q = semid.import_checkpoint(str(folder))
    out = tmp_path / "exported"
    q.export(str(out), "residual-quantizer")
    back = load_residual_quantizer(out)
    probe = torch.from_numpy(x)
    np.testing.assert_array_equal(back.encode(probe).numpy(), q.encode(x))
    np.testing.assert_array_equal(back.encode(probe).numpy(), source.encode(probe).numpy())
    again = semid.import_checkpoint(str(out))
    np.testing.assert_array_equal(again.encode(x), q.encode(x))
    q.export(str(tmp_path / "rk"), "res-kmeans")
    assert semid.import_checkpoint(str(tmp_path / "rk" / "model.safetensors")).encode(x).tolist() == (
        q.encode(x).tolist())
    # Models the layouts cannot express are refused, saying why.
    l2 = semid.train(x, kind="rqkmeans", levels=2, codebook_size=16, metric="l2")
    with pytest.raises(RuntimeError, match="beam 5"):
        l2.export(str(tmp_path / "beam"))
    with pytest.raises(RuntimeError, match="normalises its inputs"):
        semid.train(x, kind="rqkmeans", levels=2, codebook_size=16).export(str(tmp_path / "cos"))
    vae = semid.train(x, levels=2, codebook_size=16, metric="l2", epochs=1)
    with pytest.raises(RuntimeError, match="encoder and decoder"):
        vae.export(str(tmp_path / "vae"))
    cli = os.environ.get("SEMID_CLI")
    if cli:
        model_file = tmp_path / "m.safetensors"
        q.save(str(model_file))
        subprocess.run([cli, "export", str(model_file), "--format", "residual-quantizer", "--out",
                        str(tmp_path / "cli")], check=True, capture_output=True)
        np.testing.assert_array_equal(load_residual_quantizer(tmp_path / "cli").encode(probe).numpy(),
                                      q.encode(x))


class LcRecRqVae(torch.nn.Module):
    """LC-Rec's RQVAE as its index/models code lays it out: MLPLayers encoder and decoder
    (Dropout, Linear, ReLU per layer; Dropout, Linear last) and rq.vq_layers.{l}.embedding; codes
    by the nearest codeword (squared L2) of the encoder's output residual (get_indices)."""

    def __init__(self, in_dim, layers, e_dim, num_emb_list):
        super().__init__()

        def mlp(dims):
            modules = []
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
                modules += [torch.nn.Dropout(0.0), torch.nn.Linear(a, b)]
                if i != len(dims) - 2:
                    modules.append(torch.nn.ReLU())
            m = torch.nn.Module()
            m.mlp_layers = torch.nn.Sequential(*modules)
            return m

        dims = [in_dim] + layers + [e_dim]
        self.encoder = mlp(dims)
        self.decoder = mlp(dims[::-1])
        self.rq = torch.nn.Module()
        self.rq.vq_layers = torch.nn.ModuleList()
        for n in num_emb_list:
            vq = torch.nn.Module()
            vq.embedding = torch.nn.Embedding(n, e_dim)
            self.rq.vq_layers.append(vq)

    @torch.no_grad()
    def fit_codebooks(self, x):
        """Codewords drawn from the residuals themselves, level by level, so that codes are
        well spread (a stand-in for LC-Rec's k-means initialisation)."""
        r = self.encoder.mlp_layers(x)
        g = torch.Generator().manual_seed(3)
        for vq in self.rq.vq_layers:
            w = vq.embedding.weight
            w.copy_(r[torch.randperm(len(r), generator=g)[: w.shape[0]]])
            r = r - w[nearest(r, w)]

    @torch.no_grad()
    def encode(self, x):
        return residual_codes(self.encoder.mlp_layers(x),
                              [vq.embedding.weight for vq in self.rq.vq_layers])

    @torch.no_grad()
    def decode(self, codes):
        s = sum(vq.embedding.weight[codes[:, l]] for l, vq in enumerate(self.rq.vq_layers))
        return self.decoder.mlp_layers(s)


def lc_rec_model(seed=0, in_dim=48, layers=(64, 32), e_dim=16, levels=3, K=64):
    torch.manual_seed(seed)
    model = LcRecRqVae(in_dim, list(layers), e_dim, [K] * levels).eval()
    x = torch.randn(3000, in_dim)
    model.fit_codebooks(x)
    return model, x


def test_lc_rec_checkpoint_as_torch_saves_it(tmp_path):
    """LC-Rec's trainer saves {"args": argparse.Namespace, "state_dict", "epoch", "optimizer"}:
    the Namespace needs trust_pickle; the SIDs and decodings are torch's own."""
    import argparse
    model, x = lc_rec_model()
    args = argparse.Namespace(num_emb_list=[64] * 3, e_dim=16, layers=[64, 32], bn=False,
                              dropout_prob=0.0)
    path = tmp_path / "best_collision_model.pth"
    opt = torch.optim.Adam(model.parameters())
    torch.save({"args": args, "epoch": 7, "state_dict": model.state_dict(),
                "optimizer": opt.state_dict()}, path)
    with pytest.raises(ValueError, match="trust"):
        semid.import_checkpoint(str(path))
    q = semid.import_checkpoint(str(path), trust_pickle=True)
    assert (q.kind, q.levels, q.codebook_size, q.dim, q.metric) == ("rqvae", 3, 64, 48, "l2")
    assert q.config["architecture"] == "mlp" and q.config["hidden"] == [64, 32]
    assert q.config["latent_dim"] == 16 and q.config["beam_size"] == 1
    source = q.config["source"]
    assert source["format"] == "lc-rec" and source["config"]["e_dim"] == 16
    assert source["file"] == "best_collision_model.pth" and len(source["sha256"]) == 64
    check_same(model, q, x)
    # Saved and loaded back as a semid model file: the same SIDs.
    q.save(str(tmp_path / "m.safetensors"))
    again = semid.load_quantizer(str(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(again.encode(x.numpy()), q.encode(x.numpy()))


def test_a_plain_state_dict_pickle_needs_no_trust(tmp_path):
    model, x = lc_rec_model(seed=1, layers=(40,), levels=2, K=32)
    path = tmp_path / "rqvae.pt"
    torch.save(model.state_dict(), path)
    q = semid.import_checkpoint(str(path), "lc-rec")
    assert q.config["hidden"] == [40] and q.levels == 2
    check_same(model, q, x)
    cli = os.environ.get("SEMID_CLI")
    if cli:
        out = tmp_path / "cli.safetensors"
        run = subprocess.run([cli, "import", str(path), "--out", str(out)], capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stderr
        np.testing.assert_array_equal(semid.load_quantizer(str(out)).encode(x.numpy()),
                                      q.encode(x.numpy()))


def test_malformed_lc_rec_checkpoints_are_clear_errors(tmp_path):
    model, _ = lc_rec_model(seed=2, levels=2, K=32)
    sd = {k: v.clone() for k, v in model.state_dict().items()}

    def attempt(tensors, match, **kwargs):
        path = tmp_path / "bad.safetensors"
        write_safetensors(path, tensors)
        with pytest.raises(ValueError, match=match):
            semid.import_checkpoint(str(path), **kwargs)

    bn = dict(sd)
    bn["encoder.mlp_layers.2.running_mean"] = torch.zeros(64)
    attempt(bn, "batch-norm")
    attempt({k: v for k, v in sd.items() if k != "rq.vq_layers.1.embedding.weight"}
            | {"rq.vq_layers.2.embedding.weight": sd["rq.vq_layers.1.embedding.weight"]},
            "without gaps")
    short = dict(sd)
    short["rq.vq_layers.1.embedding.weight"] = torch.randn(32, 15)
    attempt(short, r"\[K, 16\]")
    nan = dict(sd)
    nan["decoder.mlp_layers.1.weight"] = nan["decoder.mlp_layers.1.weight"].clone()
    nan["decoder.mlp_layers.1.weight"][0, 0] = float("nan")
    with pytest.raises((ValueError, RuntimeError), match="NaN"):
        path = tmp_path / "nan.safetensors"
        write_safetensors(path, nan)
        semid.import_checkpoint(str(path))
    mixed = dict(sd)
    mixed["centroids.0"] = torch.randn(32, 48)
    attempt(mixed, "not part of an lc-rec checkpoint")
    no_bias = {k: v for k, v in sd.items() if k != "encoder.mlp_layers.4.bias"}
    attempt(no_bias, "weight and bias")
    (tmp_path / "garbage.pth").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="torch.load failed"):
        semid.import_checkpoint(str(tmp_path / "garbage.pth"))
    torch.save({"epoch": 1, "note": "no tensors"}, tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="no state dict"):
        semid.import_checkpoint(str(tmp_path / "empty.pt"))


def test_a_pickle_without_python3_torch_names_the_package(tmp_path, monkeypatch):
    model, _ = lc_rec_model(seed=4, layers=(8,), levels=1, K=16)
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    monkeypatch.setenv("SEMID_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(RuntimeError, match="python3-torch"):
        semid.import_checkpoint(str(path))
    # An interpreter that runs but has no torch (a bare python3, as `env -i` finds first).
    bare = tmp_path / "bare-python"
    bare.write_text("#!/bin/sh\nexec /usr/bin/python3 -S -I -c "
                    "'import sys; sys.path = [p for p in sys.path if \"dist-packages\" not in p]; "
                    "exec(sys.argv[2])' \"$@\"\n")
    bare.chmod(0o755)
    monkeypatch.setenv("SEMID_PYTHON", str(bare))
    with pytest.raises(RuntimeError, match="python3-torch is missing"):
        semid.import_checkpoint(str(path))


class ResidualVQ(torch.nn.Module):
    """lucidrains' ResidualVQ as its state dict lays it out: layers.{l}._codebook with the embed
    [1, K, e] buffer (and embed_avg, cluster_size, initted, its training state), project_in /
    project_out when codebook_dim != dim. Euclidean: the nearest codeword by L2; use_cosine_sim:
    by cosine to the unit-norm codewords, whose unit vectors are then subtracted."""

    def __init__(self, dim, levels, K, codebook_dim=None, cosine=False):
        super().__init__()
        e = codebook_dim or dim
        self.cosine = cosine
        if e != dim:
            self.project_in = torch.nn.Linear(dim, e)
            self.project_out = torch.nn.Linear(e, dim)
        self.layers = torch.nn.ModuleList()
        for _ in range(levels):
            layer = torch.nn.Module()
            layer._codebook = torch.nn.Module()
            embed = torch.randn(1, K, e)
            if cosine:
                embed = torch.nn.functional.normalize(embed, dim=-1)
            layer._codebook.register_buffer("embed", embed)
            layer._codebook.register_buffer("embed_avg", embed.clone())
            layer._codebook.register_buffer("cluster_size", torch.ones(1, K))
            layer._codebook.register_buffer("initted", torch.tensor([True]))
            self.layers.append(layer)

    def books(self):
        return [layer._codebook.embed[0] for layer in self.layers]

    @torch.no_grad()
    def encode(self, x):
        r = self.project_in(x) if hasattr(self, "project_in") else x
        if not self.cosine:
            return residual_codes(r, self.books())
        codes = []
        for w in self.books():
            idx = (torch.nn.functional.normalize(r, dim=-1) @ w.T).argmax(1)
            codes.append(idx)
            r = r - w[idx]
        return torch.stack(codes, 1)

    @torch.no_grad()
    def decode(self, codes):
        s = sum(w[codes[:, l]] for l, w in enumerate(self.books()))
        return self.project_out(s) if hasattr(self, "project_out") else s


@pytest.mark.parametrize("codebook_dim,cosine,kind", [(None, False, "rqkmeans"),
                                                       (12, False, "rqvae"),
                                                       (None, True, "rqvae"),
                                                       (12, True, "rqvae")])
def test_vector_quantize_residual_vq(tmp_path, codebook_dim, cosine, kind):
    torch.manual_seed(5)
    model = ResidualVQ(24, 3, 32, codebook_dim=codebook_dim, cosine=cosine).eval()
    x = torch.randn(3000, 24)
    path = tmp_path / "rvq.pt"
    torch.save(model.state_dict(), path)
    q = semid.import_checkpoint(str(path), cosine_codebook=cosine)
    assert (q.kind, q.levels, q.codebook_size, q.dim) == (kind, 3, 32, 24)
    assert q.config["source"]["format"] == "vector-quantize"
    check_same(model, q, x)


def test_malformed_vector_quantize_checkpoints_are_clear_errors(tmp_path):
    model = ResidualVQ(24, 2, 32, codebook_dim=12)
    sd = dict(model.state_dict())
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, {k: v for k, v in sd.items() if k != "project_out.bias"
                             and v.dtype == torch.float32})
    with pytest.raises(ValueError, match="project_out"):
        semid.import_checkpoint(str(path))
    heads = {k: v for k, v in sd.items() if v.dtype == torch.float32}
    heads["layers.1._codebook.embed"] = torch.randn(2, 32, 12)
    write_safetensors(path, heads)
    with pytest.raises(ValueError, match="multi-head"):
        semid.import_checkpoint(str(path))


class RqVaeRecommender(torch.nn.Module):
    """RQ-VAE-Recommender's RqVae as its modules/ lay it out: encoder.mlp and decoder.mlp are
    Sequentials of bias-free Linear layers with SiLU between and an L2 normalisation (or identity)
    last; layers.{l} hold embedding (nn.Embedding [K, e]) and out_proj (SimVQ's bias-free Linear
    or identity, then level 0's L2 normalisation with codebook_normalize). Codes: the nearest
    effective codeword by squared L2, subtracted level by level (get_semantic_ids in eval)."""

    def __init__(self, input_dim, embed_dim, hidden_dims, codebook_size, codebook_normalize=False,
                 codebook_sim_vq=False, n_layers=3, **_):
        super().__init__()
        self.normalize = codebook_normalize

        def mlp(dims, normalize):
            m = torch.nn.Module()
            m.mlp = torch.nn.Sequential()
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
                m.mlp.append(torch.nn.Linear(a, b, bias=False))
                if i != len(dims) - 2:
                    m.mlp.append(torch.nn.SiLU())
            m.mlp.append(L2Norm() if normalize else torch.nn.Identity())
            return m

        dims = [input_dim] + list(hidden_dims) + [embed_dim]
        self.encoder = mlp(dims, codebook_normalize)
        self.decoder = mlp(dims[::-1], True)
        self.layers = torch.nn.ModuleList()
        for l in range(n_layers):
            layer = torch.nn.Module()
            layer.embedding = torch.nn.Embedding(codebook_size, embed_dim)
            layer.out_proj = torch.nn.Sequential(
                torch.nn.Linear(embed_dim, embed_dim, bias=False) if codebook_sim_vq
                else torch.nn.Identity(),
                L2Norm() if (l == 0 and codebook_normalize) else torch.nn.Identity())
            self.layers.append(layer)

    def books(self):
        return [layer.out_proj(layer.embedding.weight) for layer in self.layers]

    @torch.no_grad()
    def fit_codebooks(self, x):
        """Codewords drawn from the residuals (a stand-in for its k-means initialisation); SimVQ's
        projection is left as it is, so the effective codebooks are projected draws."""
        r = self.encoder.mlp(x)
        g = torch.Generator().manual_seed(4)
        for layer in self.layers:
            w = layer.embedding.weight
            w.copy_(r[torch.randperm(len(r), generator=g)[: w.shape[0]]])
            book = layer.out_proj(w)
            r = r - book[nearest(r, book)]

    @torch.no_grad()
    def encode(self, x):
        return residual_codes(self.encoder.mlp(x), self.books())

    @torch.no_grad()
    def decode(self, codes):
        s = sum(w[codes[:, l]] for l, w in enumerate(self.books()))
        return self.decoder.mlp(s)


class L2Norm(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.normalize(x, dim=-1)


def rqvae_recommender(seed=0, sim_vq=False, normalize=False, n_layers=3, K=32):
    torch.manual_seed(seed)
    config = {"input_dim": 40, "embed_dim": 12, "hidden_dims": [48, 24], "codebook_size": K,
              "codebook_kmeans_init": True, "codebook_normalize": normalize,
              "codebook_sim_vq": sim_vq, "n_layers": n_layers, "commitment_weight": 0.25,
              "n_cat_features": 0}
    model = RqVaeRecommender(**config).eval()
    x = torch.randn(3000, 40) * 3.0  # raw, not unit: RqVae does not normalise its input
    model.fit_codebooks(x)
    return model, config, x


@pytest.mark.parametrize("sim_vq,normalize,saved", [(False, False, "hub"), (True, False, "pt"),
                                                    (False, True, "pt"), (True, True, "hub")])
def test_rqvae_recommender_checkpoints(tmp_path, sim_vq, normalize, saved):
    model, config, x = rqvae_recommender(sim_vq=sim_vq, normalize=normalize)
    if saved == "hub":  # a PyTorchModelHubMixin folder
        path = tmp_path / "hub"
        path.mkdir()
        write_safetensors(path / "model.safetensors", dict(model.state_dict()))
        (path / "config.json").write_text(json.dumps(config))
    else:  # its trainer's torch.save({"iter", "model", "model_config"})
        path = tmp_path / "checkpoint_20000.pt"
        torch.save({"iter": 20000, "model": model.state_dict(), "model_config": config}, path)
    q = semid.import_checkpoint(str(path))
    assert (q.kind, q.levels, q.codebook_size, q.dim, q.metric) == ("rqvae", 3, 32, 40, "cosine")
    assert q.config["activation"] == "silu" and q.config["hidden"] == [48, 24]
    assert q.config["normalize_input"] is False and q.config["normalize_output"] is True
    assert q.config.get("normalize_latent", False) == normalize
    assert q.config["source"]["format"] == "rqvae-recommender"
    check_same(model, q, x)
    # The torch face (semid.torch.load_tokenizer) computes the same.
    from semid.torch import load_tokenizer
    q.save(str(tmp_path / "m.safetensors"))
    tok = load_tokenizer(str(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(tok.encode(x).numpy(), q.encode(x.numpy()))
    np.testing.assert_allclose(tok.decode(tok.encode(x)).numpy(),
                               q.decode(q.encode(x.numpy())), atol=1e-5)
    # Exported back: RqVae built from config.json, load_state_dict, the same SIDs.
    out = tmp_path / "exported"
    q.export(str(out), "rqvae-recommender")
    back_config = json.loads((out / "config.json").read_text())
    assert back_config["codebook_normalize"] == normalize and back_config["n_layers"] == 3
    back = RqVaeRecommender(**back_config).eval()
    from semid.torch import read_safetensors
    tensors, _ = read_safetensors(str(out / "model.safetensors"))
    back.load_state_dict(tensors)
    np.testing.assert_array_equal(back.encode(x).numpy(), q.encode(x.numpy()))
    np.testing.assert_allclose(back.decode(back.encode(x)).numpy(),
                               model.decode(model.encode(x)).numpy(), atol=1e-5)


def test_rqvae_recommender_export_refuses_what_it_cannot_hold(data, tmp_path):
    x, _ = data
    vae = semid.train(x, levels=2, codebook_size=16, epochs=1)
    with pytest.raises(RuntimeError, match="RQ-VAE-Recommender"):
        vae.export(str(tmp_path / "vae"), "rqvae-recommender")
    kmeans = semid.train(x, kind="rqkmeans", levels=2, codebook_size=16, metric="l2")
    with pytest.raises(RuntimeError, match="no encoder"):
        kmeans.export(str(tmp_path / "km"), "rqvae-recommender")


def test_malformed_rqvae_recommender_checkpoints_are_clear_errors(tmp_path):
    model, config, _ = rqvae_recommender(sim_vq=True, n_layers=2)
    sd = dict(model.state_dict())
    path = tmp_path / "bad.safetensors"
    cases = {
        "a bias-free Linear": {**sd, "encoder.mlp.0.bias": torch.zeros(48)},
        "at 0, 2, 4": {k.replace("encoder.mlp.2.", "encoder.mlp.3."): v for k, v in sd.items()},
        "without gaps": {k.replace("layers.1.", "layers.2."): v for k, v in sd.items()},
        "out_proj.0.weight must be": {**sd, "layers.0.out_proj.0.weight": torch.randn(12, 5)},
        "the same K": {**sd, "layers.1.embedding.weight": torch.randn(16, 12)},
        "mirrors its encoder": {k: v for k, v in sd.items() if k != "decoder.mlp.4.weight"},
        "NaN": {**sd, "decoder.mlp.0.weight": torch.full_like(sd["decoder.mlp.0.weight"],
                                                             float("nan"))},
    }
    for expected, tensors in cases.items():
        write_safetensors(path, tensors)
        with pytest.raises(ValueError, match=expected):
            semid.import_checkpoint(str(path), "rqvae-recommender")
