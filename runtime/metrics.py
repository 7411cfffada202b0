"""Retrieval metrics: precision@1, average precision, recall@k."""
from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one ranking: ``scores`` over all references, ``relevant`` a boolean mask."""
    n_rel = int(relevant.sum())
    if n_rel == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, n_rel + 1) / ranks))


def recall_at_k(ranked_instances: list[str], truth: frozenset, k: int) -> float:
    return float(any(inst in truth for inst in ranked_instances[:k]))
