"""What the hostile-HTTP campaign and the HTTP crash test share: a free port and a small model."""
import random
import socket
import struct
import subprocess


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def small_model(semid, work, dim, rows, codebook_size, seed):
    """Trains a 2-level RQ-KMeans model on `rows` random `dim`-d vectors; returns its path."""
    rng = random.Random(seed)
    with open(f"{work}/train.fvecs", "wb") as f:
        for _ in range(rows):
            f.write(struct.pack(f"<i{dim}f", dim, *[rng.random() for _ in range(dim)]))
    out = f"{work}/m.safetensors"
    subprocess.run([semid, "train", "--kind", "rqkmeans", "--data", f"{work}/train.fvecs",
                    "--levels", "2", "--codebook-size", str(codebook_size), "--out", out,
                    "--quiet"], check=True, capture_output=True)
    return out
