"""semid: semantic IDs for items with embeddings.

Train an RQ-VAE (or residual k-means) that maps each embedding to a short tuple of codes, search
with semid's FAISS index, keep tries of valid next codes for constrained decoding, and store items
in durable collections -- in-process, numpy in and numpy out. ``semid.torch`` holds the parts that
run in torch (``TrieLogitsMask`` for trie-constrained decoding). ``semid.__version__`` is the
library's version.

    import numpy as np, semid
    q = semid.train(x, levels=3, codebook_size=256)      # x: float32 [n, d]
    codes = q.encode(x)                                  # int32 [n, 3]
    index = semid.IndexRQVAE(q); index.add_with_ids(x, ids)
    D, I = index.search(queries, 10)
    trie = semid.SidTrie.from_codes(codes, ids, codebook_size=256)
    mask = trie.allowed_mask(np.array([[17], [3]], dtype=np.int32))   # bool [2, 256]
"""

from ._semid import (  # noqa: F401
    METRIC_INNER_PRODUCT,
    METRIC_L2,
    Collection,
    CollectionManager,
    Index,
    IndexRQVAE,
    Quantizer,
    SearchParametersRQVAE,
    SidTrie,
    __version__,
    import_checkpoint,
    index_factory,
    load_quantizer,
    read_index,
    set_threads,
    train,
    write_index,
)

__all__ = [
    "__version__",
    "METRIC_INNER_PRODUCT",
    "METRIC_L2",
    "Collection",
    "CollectionManager",
    "Index",
    "IndexRQVAE",
    "Quantizer",
    "SearchParametersRQVAE",
    "SidTrie",
    "import_checkpoint",
    "index_factory",
    "load_quantizer",
    "read_index",
    "set_threads",
    "train",
    "write_index",
]
