"""Tentative correspondences between two sets of local features.

- ``mutual_nearest``: learned descriptors (XFeat, stored int8): each query keypoint's most similar
  reference keypoint and back, above a cosine floor.
- ``mutual_nearest_many``: the same for one query against several references at once (a few
  matrix products over blocks of references, the per-reference maxima by slices), as verification
  of a shortlist needs it.
- ``ratio_test``: ORB/SIFT, Lowe's ratio test on the two nearest neighbours (OpenCV's matcher),
  one correspondence per reference keypoint.
"""
from __future__ import annotations

import cv2
import numpy as np

from runtime.verify.descriptor_products import products, query_operand
from runtime.verify.local_features import QUANT_SCALE, as_float

BLOCK_ROWS = 2048  # reference keypoints per product: a 2048 x 1024 float32 block stays in cache for its reductions


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)


def mutual_nearest(q_desc: np.ndarray, r_desc: np.ndarray, min_cosine: float = 0.78) -> tuple[np.ndarray, np.ndarray]:
    """Indices (query, reference) of mutual nearest neighbours with cosine >= ``min_cosine``; ties
    go to the first keypoint. The definition ``mutual_nearest_many`` is held to (int8 descriptors:
    whole-number products, as there)."""
    if len(q_desc) == 0 or len(r_desc) == 0:
        return _empty()
    if q_desc.dtype == np.int8 and r_desc.dtype == np.int8:
        q, r, min_cosine = q_desc.astype(np.int64), r_desc.astype(np.int64), min_cosine * QUANT_SCALE ** 2
    else:
        q, r = as_float(q_desc), as_float(r_desc)
    sim = q @ r.T
    fwd = sim.argmax(axis=1)
    back = (r @ q.T).argmax(axis=1)  # a second product beats a strided argmax over axis 0
    rows = np.arange(len(q))
    ok = (back[fwd] == rows) & (sim[rows, fwd] >= min_cosine)
    return rows[ok], fwd[ok]


def mutual_nearest_many(q_desc: np.ndarray, r_descs: list[np.ndarray],
                        min_cosine: float = 0.78) -> list[tuple[np.ndarray, np.ndarray]]:
    """``mutual_nearest(q_desc, r, min_cosine)`` for every ``r`` in ``r_descs``.

    With ``S = R @ Q.T`` over the reference keypoints of a block of references: reference keypoint
    ``j`` (of reference ``s``) and its best query keypoint ``i`` are mutual nearest neighbours
    exactly when ``S[j, i]`` is the maximum of column ``i`` over the rows of ``s``: one row-wise
    argmax and one column maximum per reference instead of two products per reference. Blocks of
    about ``BLOCK_ROWS`` rows keep the similarity matrix in cache for those reductions (one product
    over a whole shortlist writes and re-reads tens of MB). XFeat's int8 descriptors are multiplied
    as whole numbers (``descriptor_products``: exact, the same matches on every device)."""
    out = [_empty() for _ in r_descs]
    todo = [s for s, r in enumerate(r_descs) if len(r)]
    if len(q_desc) == 0 or not todo:
        return out
    exact = q_desc.dtype == np.int8 and all(r_descs[s].dtype == np.int8 for s in todo)
    if exact:   # XFeat's stored int8 on both sides: whole-number products, the floor scaled to them
        qt, min_cosine = query_operand(q_desc), min_cosine * QUANT_SCALE ** 2
    else:
        qt = as_float(q_desc).T
    while todo:
        block = [todo.pop(0)]
        rows = len(r_descs[block[0]])
        while todo and rows + len(r_descs[todo[0]]) <= BLOCK_ROWS:
            rows += len(r_descs[todo[0]])
            block.append(todo.pop(0))
        if exact:
            sim = products(np.concatenate([r_descs[s] for s in block]), qt)  # (reference kps, query kps)
        else:
            sim = np.concatenate([as_float(r_descs[s]) for s in block]) @ qt
        back = sim.argmax(axis=1)                        # each reference keypoint's best query keypoint
        best = sim[np.arange(len(sim)), back]
        lo = 0
        for s in block:
            hi = lo + len(r_descs[s])
            col_max = sim[lo:hi].max(axis=0)             # each query keypoint's best within reference s
            j = np.flatnonzero((best[lo:hi] >= col_max[back[lo:hi]]) & (best[lo:hi] >= min_cosine))
            qi, first = np.unique(back[lo:hi][j], return_index=True)  # sorted; ties: one reference keypoint each
            out[s] = (qi.astype(np.int64), j[first].astype(np.int64))
            lo = hi
    return out


def ratio_test(q_desc: np.ndarray, r_desc: np.ndarray, binary: bool, ratio: float = 0.8):
    if len(q_desc) < 2 or len(r_desc) < 2:
        return _empty()
    if binary:
        matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        pairs = matcher.knnMatch(q_desc, r_desc, k=2)
    else:
        matcher = cv2.BFMatcher(cv2.NORM_L2)
        pairs = matcher.knnMatch(q_desc.astype(np.float32), r_desc.astype(np.float32), k=2)
    good = sorted((p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance),
                  key=lambda m: m.distance)
    # several query keypoints that pass the test against the same reference keypoint (SIFT puts
    # keypoints of two orientations at one place; repeated texture) are one piece of evidence: a
    # homography through them counts that point once, the best match, as the fundamental matrix does
    taken, unique = set(), []
    for m in good:
        if m.trainIdx not in taken:
            taken.add(m.trainIdx)
            unique.append(m)
    return (np.array([m.queryIdx for m in unique], np.int64), np.array([m.trainIdx for m in unique], np.int64))
