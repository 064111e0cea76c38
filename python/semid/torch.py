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
