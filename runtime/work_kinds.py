"""Kinds of works, as a bundle's rules see them (``runtime/thresholds.py``: a homography-support
bar per kind): each work's mean global descriptor, and the kind a work added after calibration
belongs to. Calibration groups the works (``export/kinds.py``); this is the part a device needs.
"""
from __future__ import annotations

import numpy as np


def work_means(descriptors: np.ndarray, row_instances, keep=None) -> tuple[list[str], np.ndarray]:
    """(instances sorted, one L2-normalised mean descriptor each) of the index rows
    (``descriptors``: one row per index row, ``row_instances`` its instance; ``keep``: a boolean
    mask of the rows to use, default all). Every row of a work counts, turned ones included."""
    rows = np.asarray(row_instances)
    descriptors = np.asarray(descriptors, np.float32)
    if keep is not None:
        rows, descriptors = rows[np.asarray(keep, bool)], descriptors[np.asarray(keep, bool)]
    if len(rows) == 0:
        return [], np.zeros((0, descriptors.shape[-1]), np.float32)
    names, which = np.unique(rows, return_inverse=True)
    order = np.argsort(which, kind="stable")   # rows of a work together: one sum per work (np.add.at is slow)
    starts = np.searchsorted(which[order], np.arange(len(names)))
    sums = np.add.reduceat(descriptors[order].astype(np.float64), starts, axis=0)
    means = (sums / np.bincount(which)[:, None]).astype(np.float32)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    instances = [str(n) for n in names]
    return instances, means


def nearest_kind(mean: np.ndarray, instances: list[str], means: np.ndarray, kinds: dict[str, str]) -> str | None:
    """The kind whose works' mean descriptor (the normalised mean of ``means`` of ``instances``
    that have a kind in ``kinds``) is nearest to a new work's ``mean``; None when no work has a kind."""
    groups: dict[str, list[int]] = {}
    for k, inst in enumerate(instances):
        if inst in kinds:
            groups.setdefault(kinds[inst], []).append(k)
    if not groups:
        return None
    names = sorted(groups)
    centres = np.stack([means[groups[g]].mean(axis=0) for g in names])
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    return names[int(np.argmax(centres @ np.asarray(mean, np.float32)))]
