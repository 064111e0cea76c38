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
"""

import torch as _torch


class TrieConstraint:
    """Valid next codes of a SidTrie, as torch tensors.

    For each level l the trie's nodes at depth l are numbered in trie order; level l holds the
    sorted keys ``node * K + code`` of its edges, the child node each edge leads to, and ``indptr``
    (the edges of node i are ``indptr[i]:indptr[i + 1]``).
    """

    def __init__(self, trie, device=None):
        self.levels = trie.levels
        self.codebook_size = trie.codebook_size
        self.device = _torch.device(device) if device is not None else _torch.device("cpu")
        K = self.codebook_size
        self._keys, self._child, self._indptr, self._codes = [], [], [], []
        for level in trie.to_csr():
            indptr = _torch.as_tensor(level["indptr"], dtype=_torch.int64)
            codes = _torch.as_tensor(level["codes"], dtype=_torch.int64)
            nodes = _torch.repeat_interleave(
                _torch.arange(indptr.numel() - 1, dtype=_torch.int64), indptr[1:] - indptr[:-1]
            )
            self._keys.append((nodes * K + codes).to(self.device))
            self._child.append(_torch.as_tensor(level["child"], dtype=_torch.int64).to(self.device))
            self._indptr.append(indptr.to(self.device))
            self._codes.append(codes.to(self.device))

    def nodes(self, prefixes):
        """The node (at depth j) of each prefix row (LongTensor [B, j]); -1 where the prefix
        leaves the trie."""
        prefixes = _torch.as_tensor(prefixes, dtype=_torch.int64, device=self.device)
        if prefixes.dim() != 2:
            raise ValueError(f"prefixes must be [B, j], got shape {tuple(prefixes.shape)}")
        batch, depth = prefixes.shape
        if depth >= self.levels:
            raise ValueError(
                f"prefixes hold {depth} codes; a SID of {self.levels} levels has next codes "
                f"after 0..{self.levels - 1}"
            )
        K = self.codebook_size
        node = _torch.zeros(batch, dtype=_torch.int64, device=self.device)
        alive = _torch.ones(batch, dtype=_torch.bool, device=self.device)
        for level in range(depth):
            code = prefixes[:, level]
            alive &= (code >= 0) & (code < K)
            keys = self._keys[level]
            if keys.numel() == 0:  # an empty trie
                alive = _torch.zeros_like(alive)
                break
            wanted = node * K + code.clamp(0, K - 1)
            at = _torch.searchsorted(keys, wanted).clamp(max=keys.numel() - 1)
            alive &= keys[at] == wanted
            node = _torch.where(alive, self._child[level][at], _torch.zeros_like(node))
        return _torch.where(alive, node, _torch.full_like(node, -1))

    def allowed_mask(self, prefixes):
        """BoolTensor [B, K]: the populated next codes of each prefix row (LongTensor [B, j])."""
        node = self.nodes(prefixes)
        depth = _torch.as_tensor(prefixes).shape[1]
        indptr, codes = self._indptr[depth], self._codes[depth]
        batch = node.numel()
        mask = _torch.zeros(batch, self.codebook_size, dtype=_torch.bool, device=self.device)
        alive = node >= 0
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
        mask = self.allowed_mask(prefixes)
        if logits.shape != mask.shape:
            raise ValueError(f"logits has shape {tuple(logits.shape)}; expected {tuple(mask.shape)}")
        return logits.masked_fill(~mask.to(logits.device), fill)
