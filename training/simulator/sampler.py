"""Simulated visitor views of a site's references: the one sampler behind every check that needs
them (the bundler's precision agreement and index tuning, training validation, whitening and
``bench/sim_vs_real.py``; calibration draws one generator per view from it so that its two
passes see the same views).

``pick`` caps how many references are used; ``views_of`` makes ``per_image`` views of each, image
by image, all from one generator, so the same seed gives the same views everywhere.
"""
from __future__ import annotations

import numpy as np


def pick(count: int, limit: int, rng: np.random.Generator, in_order: bool = True) -> list[int]:
    """Indices of at most ``limit`` of ``count`` items, drawn without replacement. ``in_order``: in
    item order, and all of them without a draw when there are no more than ``limit``; otherwise a
    draw in random order (a shuffle when all are kept)."""
    if in_order and count <= limit:
        return list(range(count))
    chosen = [int(i) for i in rng.choice(count, min(count, limit), replace=False)]
    return sorted(chosen) if in_order else chosen


def views_of(images, per_image: int, sim, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """``per_image`` simulated views of each image, and the index of the image each came from.
    ``images`` may be a generator: each is held only while its views are made."""
    views, source = [], []
    for i, img in enumerate(images):
        for _ in range(per_image):
            views.append(sim(img, rng))
            source.append(i)
    return views, np.asarray(source, dtype=np.int64)
