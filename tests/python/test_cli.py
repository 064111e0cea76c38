"""The Python package and the `semid` program agree on the same data and model file."""
import os
import subprocess

import numpy as np
import pytest

import semid

CLI = os.environ.get("SEMID_CLI", "")


def write_fvecs(path, x):
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = x.astype(np.float32).view(np.int32)
    out.tofile(path)


def read_ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:]


@pytest.mark.skipif(not CLI, reason="SEMID_CLI (the semid program) is not set")
def test_cli_train_and_encode_give_the_sids_the_package_gives(data, tmp_path):
    x, _ = data
    vectors = str(tmp_path / "x.fvecs")
    write_fvecs(vectors, x)
    model = str(tmp_path / "m.safetensors")
    subprocess.run([CLI, "train", "--kind", "rqkmeans", "--data", vectors, "--out", model,
                    "--levels", "3", "--codebook-size", "16", "--quiet"], check=True,
                   capture_output=True)
    codes = str(tmp_path / "c.ivecs")
    subprocess.run([CLI, "encode", "--model", model, "--data", vectors, "--out", codes],
                   check=True, capture_output=True)
    q = semid.load_quantizer(model)
    np.testing.assert_array_equal(q.encode(x), read_ivecs(codes))
    # Training the same kind with the same defaults in Python gives the same model.
    again = semid.train(x, kind="rqkmeans", levels=3, codebook_size=16)
    assert again.content_hash == q.content_hash
