"""Compact binary codes (ITQ) for matching: packed bits, Hamming top-k by vectorized popcount,
then an optional re-rank with the float descriptors.

Codes are ``sign((x - mean) @ proj)`` packed 8 bits per byte; ``proj`` (D x bits) is the ITQ
PCA projection times its learned rotation (learned at export, see ``export/itq.py``).
"""
from __future__ import annotations

import numpy as np

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount_rows(x: np.ndarray) -> np.ndarray:
    """Number of set bits per row of a (N, B) uint8 array."""
    if hasattr(np, "bitwise_count") and x.shape[1] % 8 == 0:
        return np.bitwise_count(np.ascontiguousarray(x).view(np.uint64)).sum(axis=1, dtype=np.int64)
    return _POP8[x].sum(axis=1, dtype=np.int64)


class BinaryCodes:
    def __init__(self, proj: np.ndarray, mean: np.ndarray, codes: np.ndarray | None = None):
        self.proj = np.asarray(proj, np.float32)
        self.mean = np.asarray(mean, np.float32)
        self.bits = int(self.proj.shape[1])
        if self.bits % 64:
            raise ValueError(f"ITQ bits must be a multiple of 64, got {self.bits}")
        self.codes = codes if codes is not None else np.zeros((0, self.bits // 8), np.uint8)

    def encode(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(np.asarray(x, np.float32)) - self.mean) @ self.proj
        return np.packbits(z > 0, axis=1)

    def append(self, x: np.ndarray) -> None:
        self.codes = np.concatenate([self.codes, self.encode(x)])

    def hamming(self, query: np.ndarray) -> np.ndarray:
        """Hamming distance from one descriptor to every stored code."""
        q = self.encode(query)[0]
        return popcount_rows(np.bitwise_xor(self.codes, q[None, :]))

    @property
    def bytes_per_reference(self) -> int:
        return self.bits // 8
