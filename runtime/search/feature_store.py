"""Local features (keypoints + descriptors) of reference rows, stored flat with row offsets.

Row ``i``'s keypoints are ``kps[offsets[i]:offsets[i + 1]]``. The store is row-aligned with the
reference index and only ever changed under the index's write lock (see ``runtime/search/index.py``);
``append`` builds new arrays instead of mutating the old ones, so a reader holding views of
earlier rows is never disturbed.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RowFeatures(NamedTuple):
    """One reference row's local features, as the verifier gets them (``ReferenceIndex.features_of``)."""
    row: int                  # index row
    rotation: int             # quarter turns of the row's reference image
    keypoints: np.ndarray
    descriptors: np.ndarray



class FeatureStore:
    def __init__(self, kps: np.ndarray, descs: np.ndarray, offsets: np.ndarray):
        self.kps, self.descs, self.offsets = kps, descs, np.asarray(offsets, np.int64)

    @classmethod
    def from_rows(cls, rows, like: "FeatureStore | None" = None) -> "FeatureStore":
        """``rows``: (keypoints, descriptors) per reference row."""
        rows = list(rows)
        kps = ([like.kps[:0]] if like is not None else []) + [np.asarray(r[0]) for r in rows]
        descs = ([like.descs[:0]] if like is not None else []) + [np.asarray(r[1]) for r in rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        offsets[1:] = np.cumsum([len(r[0]) for r in rows])
        return cls(np.concatenate(kps) if kps else np.zeros((0, 2), np.float32),
                   np.concatenate(descs) if descs else np.zeros((0, 0), np.float32), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.kps[a:b], self.descs[a:b]

    def appended(self, rows) -> "FeatureStore":
        """A new store with ``rows`` added at the end (this one is left as it was)."""
        extra = FeatureStore.from_rows(rows, like=self)
        return FeatureStore(np.concatenate([self.kps, extra.kps]), np.concatenate([self.descs, extra.descs]),
                            np.concatenate([self.offsets, self.offsets[-1] + extra.offsets[1:]]))

    def select(self, rows) -> "FeatureStore":
        return FeatureStore.from_rows((self.row(i) for i in rows), like=self)

