"""Trie-constrained decoding in torch.

``TrieConstraint`` holds a ``semid.SidTrie`` flattened (``SidTrie.to_csr``) as torch tensors, on
any device, and answers for a whole beam batch per decoding step which next codes are valid --
vectorised, with no Python loop over the batch and no call back into semid:

    from semid.torch import TrieConstraint
    constraint = TrieConstraint(trie, device="cuda")
    for step in range(levels):
        logits = model(...)                                   # [B, K]
        logits = constraint.mask_logits(logits, prefixes)     # invalid codes -> -inf
        ...                                                   # prefixes: LongTensor [B, step]

A prefix that leaves the trie (no stored SID starts with it) allows no code at all.
``TrieLogitsMask`` is the same as a logits processor: ``mask(prefix_ids, logits) -> logits``.
A collection's collision suffix is one more level: build the trie from the codes with the suffix
as their last column (``SidTrie.from_codes(np.c_[sids, suffixes], codebook_size=max(K, ...))``).
"""

import torch as _torch


class TrieConstraint:
    """Valid next codes of a SidTrie, as torch tensors.

    For each level l the trie's nodes at depth l are numbered in trie order. Where it fits in
    `dense_bytes` (default 256 MiB in all), a level keeps dense tables -- the child of each (node,
    code) and the allowed codes of each node -- so one decoding step is a few gathers, whatever
    the batch; a level too large for that keeps its edges as sorted keys ``node * K + code`` and
    walks them with ``searchsorted``. Both answer alike.
    """

    def __init__(self, trie, device=None, dense_bytes=256 << 20):
        self.levels = trie.levels
        self.codebook_size = trie.codebook_size
        self.device = _torch.device(device) if device is not None else _torch.device("cpu")
        K = self.codebook_size
        budget = dense_bytes
        self._keys, self._child, self._indptr, self._codes = [], [], [], []
        self._dense_child, self._dense_mask, self._dense_penalty = [], [], []
        for level in trie.to_csr():
            indptr = _torch.as_tensor(level["indptr"], dtype=_torch.int64)
            codes = _torch.as_tensor(level["codes"], dtype=_torch.int64)
            child = _torch.as_tensor(level["child"], dtype=_torch.int64)
            nodes = indptr.numel() - 1
            owner = _torch.repeat_interleave(_torch.arange(nodes, dtype=_torch.int64),
                                             indptr[1:] - indptr[:-1])
            dense_child = dense_mask = dense_penalty = None
            walks = len(self._keys) + 1 < self.levels  # the last level is never walked from
            cost = (nodes + 1) * ((K + 1) * 8 * walks + K * 5)  # child int64, bool, float32
            if cost <= budget:
                budget -= cost
                # Row `nodes` and column K are "dead": every lookup that leaves the trie (an
                # absent code, a code outside [0, K) -- clamped to -1 or K, both column K -- or a
                # dead parent) lands there, so a step needs no validity checks.
                # Each edge leads to its own child, numbered 0..edges-1: `edges` is the next
                # level's dead row.
                dense_child = _torch.full((nodes + 1, K + 1), child.numel(), dtype=_torch.int64)
                dense_child[owner, codes] = child
                dense_mask = _torch.zeros(nodes + 1, K, dtype=_torch.bool)
                dense_mask[owner, codes] = True
                # 0 where allowed, -inf elsewhere: masking is then one gather and one add
                # (torch's masked_fill is ~15x slower than an add on CPU).
                dense_penalty = _torch.full((nodes + 1, K), float("-inf"))
                dense_penalty[owner, codes] = 0.0
                dense_child = dense_child.to(self.device) if walks else None
                dense_mask = dense_mask.to(self.device)
                dense_penalty = dense_penalty.to(self.device)
            self._dense_child.append(dense_child)
            self._dense_mask.append(dense_mask)
            self._dense_penalty.append(dense_penalty)
            self._keys.append((owner * K + codes).to(self.device))
            self._child.append(child.to(self.device))
            self._indptr.append(indptr.to(self.device))
            self._codes.append(codes.to(self.device))

    def _prefixes(self, prefixes):
        prefixes = _torch.as_tensor(prefixes, dtype=_torch.int64, device=self.device)
        if prefixes.dim() != 2:
            raise ValueError(f"prefixes must be [B, j], got shape {tuple(prefixes.shape)}")
        if prefixes.shape[1] >= self.levels:
            raise ValueError(
                f"prefixes hold {prefixes.shape[1]} codes; a SID of {self.levels} levels has next "
                f"codes after 0..{self.levels - 1}"
            )
        return prefixes

    def _dense(self, depth):
        """Whether prefixes of `depth` codes take the dense path (every table it needs exists)."""
        return all(t is not None for t in self._dense_child[:depth]) and (
            self._dense_mask[depth] is not None)

    def _dense_nodes(self, prefixes):
        """The dense path's node of each row: one gather per level (dead rows for lost ones)."""
        K = self.codebook_size
        node = _torch.zeros(prefixes.shape[0], dtype=_torch.int64, device=self.device)
        codes = prefixes.clamp(-1, K)
        for level in range(prefixes.shape[1]):
            node = self._dense_child[level][node, codes[:, level]]
        return node

    def nodes(self, prefixes):
        """The node (at depth j) of each prefix row (LongTensor [B, j]); -1 where the prefix
        leaves the trie (or holds a code outside [0, K))."""
        prefixes = self._prefixes(prefixes)
        batch, depth = prefixes.shape
        K = self.codebook_size
        node = _torch.zeros(batch, dtype=_torch.int64, device=self.device)
        for level in range(depth):
            code = prefixes[:, level]
            ok = (node >= 0) & (code >= 0) & (code < K)
            safe_node, safe_code = node.clamp(min=0), code.clamp(0, K - 1)
            table = self._dense_child[level]
            if table is not None:
                nxt = table[safe_node, safe_code]
                dead = nxt >= self._child[level].numel()
                nxt = _torch.where(dead, _torch.full_like(nxt, -1), nxt)
            else:
                keys = self._keys[level]
                if keys.numel() == 0:  # an empty trie
                    return _torch.full_like(node, -1)
                wanted = safe_node * K + safe_code
                at = _torch.searchsorted(keys, wanted).clamp(max=keys.numel() - 1)
                nxt = _torch.where(keys[at] == wanted, self._child[level][at],
                                   _torch.full_like(node, -1))
            node = _torch.where(ok, nxt, _torch.full_like(node, -1))
        return node

    def allowed_mask(self, prefixes):
        """BoolTensor [B, K]: the populated next codes of each prefix row (LongTensor [B, j])."""
        prefixes = self._prefixes(prefixes)
        depth = prefixes.shape[1]
        if self._dense(depth):
            return self._dense_mask[depth][self._dense_nodes(prefixes)]
        node = self.nodes(prefixes)
        alive = node >= 0
        table = self._dense_mask[depth]
        if table is not None:
            return table[node.clamp(min=0)] & alive.unsqueeze(1)
        indptr, codes = self._indptr[depth], self._codes[depth]
        batch = node.numel()
        mask = _torch.zeros(batch, self.codebook_size, dtype=_torch.bool, device=self.device)
        if not bool(alive.any()):
            return mask
        rows = _torch.nonzero(alive).squeeze(1)
        start, end = indptr[node[rows]], indptr[node[rows] + 1]
        counts = end - start
        row_of_edge = _torch.repeat_interleave(rows, counts)
        offsets = _torch.arange(int(counts.sum()), device=self.device) - _torch.repeat_interleave(
            _torch.cumsum(counts, 0) - counts, counts
        )
        edge = _torch.repeat_interleave(start, counts) + offsets
        mask[row_of_edge, codes[edge]] = True
        return mask

    def mask_logits(self, logits, prefixes, fill=float("-inf")):
        """logits [B, K] with every invalid next code set to `fill`."""
        prefixes = self._prefixes(prefixes)
        depth = prefixes.shape[1]
        if fill == float("-inf") and self._dense(depth) and logits.dim() == 2:
            if tuple(logits.shape) != (prefixes.shape[0], self.codebook_size):
                raise ValueError(f"logits has shape {tuple(logits.shape)}; expected "
                                 f"{(prefixes.shape[0], self.codebook_size)}")
            penalty = self._dense_penalty[depth][self._dense_nodes(prefixes)]
            return logits + penalty.to(device=logits.device, dtype=logits.dtype)
        mask = self.allowed_mask(prefixes)
        if logits.shape != mask.shape:
            raise ValueError(f"logits has shape {tuple(logits.shape)}; expected {tuple(mask.shape)}")
        return logits.masked_fill(~mask.to(logits.device), fill)


class TrieLogitsMask(_torch.nn.Module):
    """A logits processor for generation under a trie: ``mask(prefix_ids, logits)`` returns the
    logits with every next code that no stored SID continues ``prefix_ids`` with set to -inf.

    prefix_ids: LongTensor [B, j] (the codes decoded so far, j < levels); logits: [B, K]. One
    vectorised step over the whole batch (TrieConstraint), on the logits' device.
    """

    def __init__(self, trie, device=None, dense_bytes=256 << 20):
        super().__init__()
        self.constraint = TrieConstraint(trie, device=device, dense_bytes=dense_bytes)

    def forward(self, prefix_ids, logits):
        return self.constraint.mask_logits(logits, prefix_ids)


# ---- the tokenizer: semid's models in torch ------------------------------------------------

_DTYPES = {"F32": _torch.float32, "F64": _torch.float64, "I32": _torch.int32, "I64": _torch.int64}


def read_safetensors(path):
    """(tensors by name, metadata dict) of a safetensors file, read without the safetensors
    package; a truncated or malformed file is a ValueError naming the path."""
    import json
    import struct

    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, too short for a safetensors file")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > len(blob) - 8:
        raise ValueError(f"{path}: header of {size} bytes in a file of {len(blob)}")
    try:
        header = json.loads(blob[8:8 + size])
    except ValueError as e:
        raise ValueError(f"{path}: the header is not JSON ({e})") from None
    metadata = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + size:]
    tensors = {}
    for name, spec in header.items():
        dtype = _DTYPES.get(spec.get("dtype"))
        begin, end = spec["data_offsets"]
        if dtype is None or not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name} has dtype {spec.get('dtype')} or offsets "
                             f"{begin}..{end} outside the {len(data)} data bytes")
        flat = _torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else (
            _torch.empty(0, dtype=dtype))
        tensors[name] = flat.reshape(spec["shape"])
    return tensors, metadata


def _normalize_rows(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _beam_codes(z, codebooks, beam):
    """Residual beam search: at every level the `beam` (beam, code) pairs of least squared error
    ||r - e||^2 = ||r||^2 - 2 <r, e> + ||e||^2 survive; the SID of least final error wins."""
    n = z.shape[0]
    residual = z[:, None, :]
    codes = _torch.empty(n, 1, 0, dtype=_torch.int64, device=z.device)
    for level, book in enumerate(codebooks):
        K = book.shape[0]
        err = (residual.pow(2).sum(2, keepdim=True) - 2.0 * (residual @ book.T)) + book.pow(2).sum(1)
        width = residual.shape[1]
        keep = min(beam if level + 1 < len(codebooks) else 1, width * K)
        _, flat = err.reshape(n, width * K).topk(keep, dim=1, largest=False, sorted=True)
        parent, code = flat // K, flat % K
        residual = residual.gather(1, parent[:, :, None].expand(-1, -1, residual.shape[2])) - book[code]
        codes = _torch.cat([codes.gather(1, parent[:, :, None].expand(-1, -1, codes.shape[2])),
                            code[:, :, None]], dim=2)
    return codes[:, 0, :]


class SemidTokenizer(_torch.nn.Module):
    """A semid model (RQ-VAE or residual k-means) as a torch module: ``encode(x) -> codes`` (int64
    [n, L]) and ``decode(codes) -> x`` (float [n, d]) compute what semid's C++ encode and decode
    compute, in float32, on whatever device the module is moved to. Codes may differ from the C++
    ones only where two candidate SIDs tie to the last bits."""

    def __init__(self, kind, config, tensors):
        super().__init__()
        self.kind = kind
        self.config = dict(config)
        self.levels = int(config["levels"])
        self.codebook_size = int(config["codebook_size"])
        self.dim = int(config["dim"])
        self.metric = config.get("metric", "cosine")
        self.beam_size = int(config.get("beam_size", 1))
        if kind == "rqkmeans":
            books = tensors["codebooks"].float()
            self.architecture = None
            self.codebook_distance = "l2"
            for level in range(self.levels):
                self.register_buffer(f"codebook_{level}", books[level].clone())
            return
        if kind != "rqvae":
            raise ValueError(f"unknown model kind '{kind}'; expected 'rqvae' or 'rqkmeans'")
        self.architecture = config.get("architecture", "mlp")
        self.codebook_distance = config.get("codebook_distance", "l2")
        self.activation = config.get("activation", "relu")
        self.shared_codebook = bool(config.get("shared_codebook", False))
        # Imported networks may normalise other than the metric says (rqvae.h's overrides).
        self.normalize_input = bool(config.get("normalize_input", self.metric == "cosine"))
        self.normalize_output = bool(config.get("normalize_output", self.metric == "cosine"))
        self.normalize_latent = bool(config.get("normalize_latent", False))
        for side in ("encoder", "decoder"):
            layers = sorted({int(name.split(".")[1]) for name in tensors if name.startswith(side + ".")})
            linears = _torch.nn.ModuleList()
            for index in layers:
                weight = tensors[f"{side}.{index}.weight"].float()
                linear = _torch.nn.Linear(weight.shape[1], weight.shape[0])
                with _torch.no_grad():
                    linear.weight.copy_(weight)
                    linear.bias.copy_(tensors[f"{side}.{index}.bias"].float())
                linears.append(linear)
            setattr(self, side, linears)
        if self.architecture == "residual":
            self.register_buffer("input_shift", tensors["input_shift"].float().clone())
            self.register_buffer("input_scale", tensors["input_scale"].float().clone())
        for level in range(1 if self.shared_codebook else self.levels):
            self.register_buffer(f"codebook_{level}", tensors[f"codebook_{level}"].float().clone())

    def codebook(self, level):
        if self.kind == "rqvae" and self.shared_codebook:
            level = 0
        return getattr(self, f"codebook_{level}")

    def _mlp(self, linears, v):
        act = _torch.nn.functional.silu if self.activation == "silu" else _torch.relu
        for i, linear in enumerate(linears):
            v = linear(v)
            if i + 1 < len(linears):
                v = act(v)
        return v

    def _check(self, x, cols, name):
        if x.dim() != 2 or x.shape[1] != cols:
            raise ValueError(f"{name} must be [n, {cols}], got shape {tuple(x.shape)}")

    @_torch.no_grad()
    def latent(self, x):
        """The latent the codebooks quantise (the normalised input itself for residual k-means)."""
        x = _torch.as_tensor(x, dtype=_torch.float32, device=self.codebook(0).device)
        self._check(x, self.dim, "x")
        if not bool(_torch.isfinite(x).all()):
            raise ValueError("x holds NaN or Inf")
        if self.kind == "rqkmeans":
            if self.metric == "cosine":  # FAISS's renorm: times the reciprocal, zero rows stay 0
                norm = x.pow(2).sum(1, keepdim=True)
                x = _torch.where(norm > 0, x * (1.0 / norm.sqrt()), x)
            return x
        if self.normalize_input:
            x = _normalize_rows(x)
        if self.architecture == "residual":
            xs = (x - self.input_shift) / self.input_scale
            return xs + self._mlp(self.encoder, xs)
        z = self._mlp(self.encoder, x)
        return _normalize_rows(z) if self.normalize_latent else z

    @_torch.no_grad()
    def encode(self, x):
        z = self.latent(x)
        books = [self.codebook(level) for level in range(self.levels)]
        if self.beam_size > 1 and self.codebook_distance == "l2":
            return _beam_codes(z, books, self.beam_size)
        codes, r = [], z
        for book in books:
            if self.codebook_distance == "cosine":
                idx = (_normalize_rows(r) @ _normalize_rows(book).T).argmax(dim=1)
            else:
                idx = (book.pow(2).sum(1)[None, :] - 2.0 * (r @ book.T)).argmin(dim=1)
            codes.append(idx)
            r = r - book[idx]
        return _torch.stack(codes, dim=1)

    @_torch.no_grad()
    def decode(self, codes):
        codes = _torch.as_tensor(codes, device=self.codebook(0).device).long()
        self._check(codes, self.levels, "codes")
        if bool(((codes < 0) | (codes >= self.codebook_size)).any()):
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        s = self.codebook(0)[codes[:, 0]]
        for level in range(1, self.levels):
            s = s + self.codebook(level)[codes[:, level]]
        if self.kind == "rqkmeans":
            return s
        y = s + self._mlp(self.decoder, s) if self.architecture == "residual" else (
            self._mlp(self.decoder, s))
        if self.normalize_output:
            return _normalize_rows(y)
        if self.architecture == "residual":
            return y * self.input_scale + self.input_shift
        return y

    def forward(self, x):
        return self.encode(x)


def load_tokenizer(path):
    """A semid model file (`semid train`, `Quantizer.save`) as a SemidTokenizer module."""
    import json

    tensors, metadata = read_safetensors(path)
    if metadata.get("semid.format") != "semid-model":
        raise ValueError(f"{path} is not a semid model file (semid.format = "
                         f"{metadata.get('semid.format')!r})")
    config = json.loads(metadata["semid.config"])
    if metadata.get("semid.kind") == "rqvae" and "architecture" not in config:
        # Files from before the residual architecture: their defaults (rqvae.cpp).
        config = {"architecture": "mlp", "activation": "relu", "beam_size": 1, **config}
    return SemidTokenizer(metadata.get("semid.kind"), config, tensors)
