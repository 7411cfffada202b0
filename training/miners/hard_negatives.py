from __future__ import annotations

import numpy as np


def mine_negatives(anchors: np.ndarray, anchor_labels: np.ndarray, pool: np.ndarray, pool_labels: np.ndarray,
                   k: int, positive_sims: np.ndarray | None = None, strategy: str = "hardest",
                   margin: float = 0.1, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pick ``k`` negative pool rows per anchor, at most one per instance (diversity).

    ``hardest``: the most similar rows of other instances. ``semihard``: prefer rows whose
    similarity lies within ``margin`` below the anchor's positive similarity (violating but
    not the hardest), topped up with the hardest; needs ``positive_sims``.
    Returns (A, k) pool indices (-1 where fewer than k other instances exist).
    """
    rng = rng or np.random.default_rng()
    sims = anchors @ pool.T
    out = np.full((len(anchors), k), -1, np.int64)
    for a in range(len(anchors)):
        s = sims[a].copy()
        s[pool_labels == anchor_labels[a]] = -np.inf
        order = np.argsort(-s)
        order = order[np.isfinite(s[order])]
        if strategy == "semihard" and positive_sims is not None:
            p = positive_sims[a]
            band = order[(s[order] < p) & (s[order] > p - margin)]
            order = np.concatenate([rng.permutation(band), order])
        chosen, seen = [], set()
        for i in order:
            lab = pool_labels[i]
            if lab in seen:
                continue
            seen.add(lab)
            chosen.append(i)
            if len(chosen) == k:
                break
        out[a, : len(chosen)] = chosen
    return out
