"""Kinds of works on a site, and a homography-support bar for each.

One support bar per rule (``export/calibration.py``) is set by the site's hardest unknowns. On a
site that mixes kinds (objects with look-alike siblings beside paintings, book covers and
buildings) the hardest kind sets it, and the other kinds' weakly verifying photos fall under it.
Calibration therefore groups the works and gives each group its own bar (``Rule.kind_support``,
``runtime/thresholds.py``); ``bench/kind_bars.py`` probed the idea on the large dev site.

- ``number_of_kinds``: how many groups the samples can carry: each kind's share of the
  homography budget must still allow one simulated view of an unknown work (so a small site,
  with a few hundred views, keeps one bar), at most ``MAX_KINDS``.
- ``kinds_of``: groups of the works by their mean global descriptor (k-means,
  ``runtime.work_kinds.work_means``): what a build can find without a curator's labels.
- ``support_bars``: each kind's bar, from calibration's negatives (``export.calibration.Sample``):
  the strongest support each negative finds among that kind's works, each kind of negative
  (``Sample.source``) within the kind's share of the homography budget (its share of the
  works), never below ``MIN_SUPPORT``. The shares add up to the site's budget, so the kinds
  together let through what the one bar did.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from runtime.work_kinds import work_means

from .calibration import MIN_SUPPORT, SHARE_HOMOGRAPHY, _smallest_threshold

MAX_KINDS = 8   # k-means 4 and 8 split the large dev site alike; more only thins each kind's budget


def number_of_kinds(simulated_negatives: int, target_far: float) -> int:
    """Kinds the samples can carry (see the module's docstring): 1 to ``MAX_KINDS``."""
    return int(np.clip(np.floor(SHARE_HOMOGRAPHY * target_far * simulated_negatives), 1, MAX_KINDS))


def kinds_of(descriptors: np.ndarray, row_instances, k: int, seed: int = 0) -> dict[str, str]:
    """{instance: kind name} for ``k`` groups (k-means, ``seed`` for its start) of the works' mean
    row descriptor (``descriptors``: one L2-normalised row per index row, ``row_instances`` its
    instance; every row of a work counts, turned ones included). Fewer works than ``k``: one
    kind each."""
    import cv2

    instances, means = work_means(descriptors, row_instances)
    if not instances:
        return {}
    k = max(1, min(int(k), len(instances)))
    if k == 1:
        return {i: "k0" for i in instances}
    cv2.setRNGSeed(seed)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-4)
    _, labels, _ = cv2.kmeans(means, k, None, crit, 5, cv2.KMEANS_PP_CENTERS)
    return {i: f"k{int(g)}" for i, g in zip(instances, labels.ravel())}


def support_bars(negatives, kind_of: dict[str, str], target_far: float, mode: str = "hnsw") -> dict[str, float]:
    """{kind: homography-support bar} from calibration's ``negatives`` (``Sample``s) in match ``mode``
    (see the module's docstring); a kind no negative comes near gets ``MIN_SUPPORT``."""
    works = Counter(kind_of.values())
    kinds = sorted(works)
    share = {g: works[g] / len(kind_of) for g in kinds}
    strongest: dict[str, dict[str, list]] = {}   # source -> kind -> each negative's strongest support
    for s in negatives:
        best = dict.fromkeys(kinds, 0.0)
        for i, e in (s.findings[mode].verification or {}).items():
            if i in kind_of:
                best[kind_of[i]] = max(best[kind_of[i]], e.support)
        per_kind = strongest.setdefault(s.source, {g: [] for g in kinds})
        for g in kinds:
            per_kind[g].append(best[g])
    return {g: float(max([MIN_SUPPORT] + [_smallest_threshold(np.array(values[g], float),
                                                              SHARE_HOMOGRAPHY * target_far * share[g], MIN_SUPPORT)
                                          for values in strongest.values()]))
            for g in kinds}
