"""Shared helpers for matching benchmarks: synthetic descriptors that are not trivially separable,
exact ground truth and recall against it (one copy for latency.py, ann_options.py and
export_report.py), and the intrinsic-dimension estimate that sets how hard the synthetic ones are.

How hard nearest-neighbour search is depends on the data's intrinsic dimension, not its width: the
generator's ``intrinsic`` is chosen so that its TwoNN estimate, at the sizes of the real sites, is
at least that of every real site's descriptors (``bench/intrinsic_dim.py`` measures both and
records the choice). ``STRESS_INTRINSIC`` is the earlier, harder setting (TwoNN about 3x the real
descriptors'), kept as a stress row.
"""
from __future__ import annotations

import numpy as np

from export.index_tuning import exact_top1, recall_at_1  # noqa: F401 (re-exported)

CALIBRATED_INTRINSIC = 13  # bench/results/intrinsic_dim.json: "smallest_matching"
STRESS_INTRINSIC = 24


def synthetic_descriptors(n: int, n_queries: int, dim: int, intrinsic: int = CALIBRATED_INTRINSIC, seed: int = 0):
    """(base, queries): unit vectors on a curved low-dimensional manifold in ``dim`` dimensions, in
    the spirit of faiss's SyntheticDataset: Gaussian points of ``intrinsic`` dimensions, a random
    linear map up, per-axis frequencies and a sine, so neighbourhoods are neither clusters with wide
    gaps nor uniform noise. Queries come from the same distribution (not near a reference: every
    query is as hard as a photo of a work the site does not hold)."""
    rng = np.random.default_rng(seed)
    lift = rng.random((intrinsic, dim))
    freq = rng.random(dim) * 4 + 0.1
    x = np.sin((rng.normal(size=(n + n_queries, intrinsic)) @ lift) * freq).astype(np.float32)
    x -= x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


def ground_truth(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    return exact_top1(queries, base)


def twonn_dimension(x: np.ndarray, discard: float = 0.1) -> float:
    """Intrinsic dimension of the rows of ``x`` by TwoNN (Facco et al., Sci. Rep. 2017): the ratio
    mu = r2 / r1 of each point's second- to first-neighbour distance follows a Pareto law with
    exponent d, fitted through the origin on -log(1 - F(mu)) = d log(mu), the largest ``discard``
    share of ratios left out. Distances are Euclidean between the unit-normalised rows (cosine
    search); exact duplicates are skipped. Quadratic in memory: for a few thousand rows."""
    x = np.asarray(x, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    d2 = np.maximum(2.0 - 2.0 * (x @ x.T), 0.0)
    np.fill_diagonal(d2, np.inf)
    r = np.sqrt(np.partition(d2, 1, axis=1)[:, :2])
    r = r[r[:, 0] > 1e-6]  # duplicates (up to rounding)
    if len(r) < 3:
        raise ValueError(f"twonn_dimension needs at least 3 distinct rows, got {len(r)}")
    mu = np.sort(r[:, 1] / r[:, 0])
    keep = max(2, int(len(mu) * (1 - discard)))
    log_mu = np.log(mu[:keep])
    cdf = np.arange(1, keep + 1) / len(mu)
    y = -np.log(1 - cdf)
    return float(log_mu @ y / (log_mu @ log_mu))
