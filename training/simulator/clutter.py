"""Cluttered scenes made of pieces of other pictures: what a visitor's frame looks like when it holds
no known object but plenty of familiar-looking stuff (neighbours on a wall, other covers on a desk,
the next building down the street). Used as hard negatives in calibration (the pieces' own
instances are left out of the index when the scene is scored) and as busy backgrounds."""
from __future__ import annotations

import cv2
import numpy as np

from .backgrounds import random_wall
from .geometry import crop, perspective


def collage(rng: np.random.Generator, pieces: list[np.ndarray], h: int = 480, w: int = 640) -> np.ndarray:
    """A wall with each picture of ``pieces`` (cropped, resized, slightly warped) pasted somewhere on
    it, overlapping freely."""
    canvas = random_wall(rng, h, w)
    for img in pieces:
        part = crop(rng, img, 0.3)
        side = rng.uniform(0.3, 0.7) * max(h, w)
        f = side / max(part.shape[:2])
        part = cv2.resize(part, (max(8, int(part.shape[1] * f)), max(8, int(part.shape[0] * f))),
                          interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            part = perspective(rng, part, 0.1)
        ph, pw = min(part.shape[0], h), min(part.shape[1], w)
        y, x = int(rng.integers(-ph // 3, h - 2 * ph // 3)), int(rng.integers(-pw // 3, w - 2 * pw // 3))
        y0, x0 = max(y, 0), max(x, 0)
        y1, x1 = min(y + ph, h), min(x + pw, w)
        canvas[y0:y1, x0:x1] = part[y0 - y:y1 - y, x0 - x:x1 - x]
    return canvas
