import numpy as np
import pytest

import semid


@pytest.fixture(scope="session")
def data():
    """2,000 clustered 32-d vectors and 50 queries (seeded)."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 32))
    labels = rng.integers(0, 40, 2050)
    x = (centres[labels] + 0.3 * rng.standard_normal((2050, 32))).astype(np.float32)
    return x[:2000], x[2000:]


@pytest.fixture(scope="session")
def kmeans(data):
    """A residual k-means model, 3 x 16 codes (trains in about a second)."""
    return semid.train(data[0], kind="rqkmeans", levels=3, codebook_size=16)
