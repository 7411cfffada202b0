"""Reference image -> index rows: the one definition the bundler (``export/references.py``) and
``Recognizer.add`` share, so a work added on the device is described exactly as a built one.

An image gives one row per quarter turn in ``rotations``: the turned copy's global descriptor (a
book photographed sideways still finds its cover) and, when a feature maker is given, that row's
local features (learned local features are not rotation invariant; the feature maker decides
whether turned rows store their own or share the upright image's). An image with almost no
texture gives no rows: it identifies nothing and would fire on every plain wall.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.image.image_io import is_blank


@dataclass
class ImageRows:
    descriptors: list[np.ndarray]   # one (D,) per row
    rotations: list[int]            # quarter turns of each row
    features: list | None           # (keypoints, descriptors) per row, or None without a feature maker


def image_rows(img: np.ndarray, embedder, rotations=(0,), scales=(1.0,), gem_p: float = 1.0,
               feature_maker=None, keep_blank: bool = False) -> ImageRows | None:
    """The rows of one decoded RGB reference image, or None when it is blank (unless ``keep_blank``)."""
    if not keep_blank and is_blank(img):
        return None
    descs, rots, feats = [], [], []
    for r in rotations:
        turned = np.ascontiguousarray(np.rot90(img, r)) if r else img
        descs.append(embedder.embed(turned, scales, gem_p))
        rots.append(int(r))
        if feature_maker is not None:
            feats.append(feature_maker.reference_features(img, r, turned=turned))
    return ImageRows(descs, rots, feats if feature_maker is not None else None)
