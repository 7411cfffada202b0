"""Learned whitening Lw (Radenovic et al.): whiten the covariance of matching-pair
differences, then rotate by PCA of the whitened data; optional dimension reduction.

Closed form, numpy only. The result folds into a Linear layer: y = P (x - m).
"""
from __future__ import annotations

import numpy as np


def _inv_sqrt(c: np.ndarray, shrink: float) -> np.ndarray:
    d = c.shape[0]
    c = (1 - shrink) * c + shrink * (np.trace(c) / d) * np.eye(d)
    w, v = np.linalg.eigh(c)
    w = np.maximum(w, 1e-12)
    return (v / np.sqrt(w)) @ v.T


def learn_whitening(x: np.ndarray, pairs: np.ndarray, dim: int | None = None, shrink: float = 0.1):
    """``x``: (N, D) L2-normalised descriptors; ``pairs``: (P, 2) indices of matching rows.
    Returns (P_matrix (dim, D), mean (D,)). ``shrink`` regularises the pair covariance
    (D is often larger than the number of pairs)."""
    x = np.asarray(x, np.float64)
    pairs = np.asarray(pairs)
    m = x.mean(axis=0)
    diff = x[pairs[:, 0]] - x[pairs[:, 1]]
    cs = diff.T @ diff / max(len(diff), 1)
    p1 = _inv_sqrt(cs, shrink)
    xw = (x - m) @ p1.T
    cd = np.cov(xw, rowvar=False)
    w, v = np.linalg.eigh(cd)
    order = np.argsort(-w)
    p2 = v[:, order].T
    proj = p2 @ p1
    if dim:
        proj = proj[:dim]
    return proj.astype(np.float32), m.astype(np.float32)


def apply_whitening(x: np.ndarray, proj: np.ndarray, mean: np.ndarray) -> np.ndarray:
    y = (np.asarray(x, np.float32) - mean) @ proj.T
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
