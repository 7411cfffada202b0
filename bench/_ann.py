"""Shared helpers for matching benchmarks: synthetic descriptors that are not trivially separable,
exact ground truth and recall against it (one copy for latency.py and export_report.py)."""
from __future__ import annotations

import numpy as np

from export.index_tuning import exact_top1, recall_at_1  # noqa: F401 (re-exported)


def synthetic_descriptors(n: int, n_queries: int, dim: int, intrinsic: int = 24, seed: int = 0):
    """(base, queries): unit vectors on a curved low-dimensional manifold in ``dim`` dimensions, in
    the spirit of faiss's SyntheticDataset: Gaussian points of ``intrinsic`` dimensions, a random
    linear map up, per-axis frequencies and a sine, so neighbourhoods are neither clusters with wide
    gaps nor uniform noise. Queries come from the same distribution."""
    rng = np.random.default_rng(seed)
    lift = rng.random((intrinsic, dim))
    freq = rng.random(dim) * 4 + 0.1
    x = np.sin((rng.normal(size=(n + n_queries, intrinsic)) @ lift) * freq).astype(np.float32)
    x -= x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


def ground_truth(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    return exact_top1(queries, base)
