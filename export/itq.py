"""Iterative Quantization (Gong & Lazebnik): PCA to ``bits`` dimensions, then the rotation
that minimises the quantization error to the binary hypercube, learned in closed-form steps."""
from __future__ import annotations

import numpy as np

from runtime.errors import SitelensError

ALLOWED_BITS = (64, 128, 256, 512, 1024)


def learn_itq(x: np.ndarray, bits: int = 256, iterations: int = 50, seed: int = 0):
    """Returns (proj (D, bits), mean (D,)). Needs bits <= descriptor dim; with fewer
    descriptors than bits, the PCA basis is padded with random orthogonal directions."""
    if bits not in ALLOWED_BITS:
        raise SitelensError(f"ITQ bits must be one of {ALLOWED_BITS}, got {bits}")
    x = np.asarray(x, np.float64)
    n, d = x.shape
    if bits > d:
        raise SitelensError(f"ITQ with {bits} bits needs descriptors of at least {bits} dims (have {d})")
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=0)
    xc = x - mean
    # PCA basis (top components); pad with random orthonormal directions if n < bits
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    basis = vt[:bits].T
    if basis.shape[1] < bits:
        extra = rng.normal(size=(d, bits - basis.shape[1]))
        extra -= basis @ (basis.T @ extra)
        q, _ = np.linalg.qr(extra)
        basis = np.concatenate([basis, q], axis=1)
    v = xc @ basis
    r, _ = np.linalg.qr(rng.normal(size=(bits, bits)))
    for _ in range(iterations):
        b = np.sign(v @ r)
        b[b == 0] = 1
        u, _, wt = np.linalg.svd(v.T @ b)  # Procrustes: R = argmin ||B - V R||
        r = u @ wt
    return (basis @ r).astype(np.float32), mean.astype(np.float32)
