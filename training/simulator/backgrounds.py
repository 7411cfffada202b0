"""Gallery walls, frames and labels: backgrounds for placed views and negatives."""
from __future__ import annotations

import cv2
import numpy as np

from .lettering import draw_text


def random_wall(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A plain painted wall: a soft colour with a lighting gradient and fine texture.

    Computed a row ramp and a column ramp at a time and one colour plane at a time (the pixels
    are those of the whole-array formula: the same operations in the same order); walls behind
    a reference seen from afar reach several megapixels, and every simulated view pays for them."""
    base = rng.uniform(120, 235, 3) * rng.uniform(0.85, 1.0, 3)
    gx, gy = rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25)
    xs = np.arange(w, dtype=np.float32) / max(w, 1) - 0.5
    ys = np.arange(h, dtype=np.float32) / max(h, 1) - 0.5
    grad = ((1.0 + gx * xs)[None, :] + (gy * ys)[:, None]).astype(np.float64)
    noise = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 1.5)
    planes = []
    for c in range(3):
        plane = grad * base[c]
        plane += noise
        planes.append(np.clip(plane, 0, 255).astype(np.uint8))
    return cv2.merge(planes)


def wall_label(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A wall with a museum label (a white card with lines of text): a frame to reject."""
    wall = random_wall(rng, h, w)
    ch, cw = int(h * rng.uniform(0.3, 0.6)), int(w * rng.uniform(0.3, 0.6))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    wall[y0:y0 + ch, x0:x0 + cw] = rng.integers(225, 250)
    scale = max(ch, cw) / 300
    for i in range(int(rng.integers(3, 7))):
        text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz  ")) for _ in range(int(rng.integers(8, 18))))
        y = int(y0 + (i + 1) * ch / 8)
        if y < y0 + ch - 4:
            draw_text(wall, text, (x0 + 6, y), 13 * scale + 4, (40, 40, 40), max(1, int(scale)))
    return wall


def add_frame(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """A picture frame around the artwork (thickness 2-8% of the side)."""
    h, w = img.shape[:2]
    t = max(2, int(min(h, w) * rng.uniform(0.02, 0.08)))
    colour = rng.choice([rng.uniform(20, 70, 3), rng.uniform(140, 200, 3) * np.array([1.0, 0.85, 0.5])])
    framed = np.empty((h + 2 * t, w + 2 * t, 3), np.uint8)
    framed[:] = np.clip(colour, 0, 255).astype(np.uint8)
    framed[t:t + h, t:t + w] = img
    return framed
