"""Tentative correspondences between two sets of local features.

- ``mutual_nearest``: learned float descriptors (XFeat): each query keypoint's most similar
  reference keypoint and back, above a cosine floor. One matrix product per pair.
- ``ratio_test``: ORB/SIFT, Lowe's ratio test on the two nearest neighbours (OpenCV's matcher).
"""
from __future__ import annotations

import cv2
import numpy as np

from .local_features import dequantize


def mutual_nearest(q_desc: np.ndarray, r_desc: np.ndarray, min_cosine: float = 0.78) -> tuple[np.ndarray, np.ndarray]:
    """Indices (query, reference) of mutual nearest neighbours with cosine >= ``min_cosine``."""
    if len(q_desc) == 0 or len(r_desc) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    q = dequantize(q_desc) if q_desc.dtype == np.int8 else q_desc.astype(np.float32, copy=False)
    r = dequantize(r_desc) if r_desc.dtype == np.int8 else r_desc.astype(np.float32, copy=False)
    sim = q @ r.T
    fwd = sim.argmax(axis=1)
    back = (r @ q.T).argmax(axis=1)  # a second product beats a strided argmax over axis 0
    rows = np.arange(len(q))
    ok = (back[fwd] == rows) & (sim[rows, fwd] >= min_cosine)
    return rows[ok], fwd[ok]


def ratio_test(q_desc: np.ndarray, r_desc: np.ndarray, binary: bool, ratio: float = 0.8):
    if len(q_desc) < 2 or len(r_desc) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if binary:
        matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        pairs = matcher.knnMatch(q_desc, r_desc, k=2)
    else:
        matcher = cv2.BFMatcher(cv2.NORM_L2)
        pairs = matcher.knnMatch(q_desc.astype(np.float32), r_desc.astype(np.float32), k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    return (np.array([m.queryIdx for m in good], np.int64), np.array([m.trainIdx for m in good], np.int64))
