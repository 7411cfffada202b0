"""Geometric parts of a visitor's view: viewpoint, crops, placement, scale, rotation."""
from __future__ import annotations

import cv2
import numpy as np

from .backgrounds import add_frame, random_wall


def perspective(rng: np.random.Generator, img: np.ndarray, strength: float) -> np.ndarray:
    """Viewpoint change: move each corner inward by up to ``strength`` of the side."""
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(0, strength, (4, 2)) * np.float32([w, h])
    signs = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    dst = (src + jitter * signs).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def crop(rng: np.random.Generator, img: np.ndarray, min_area: float) -> np.ndarray:
    """A close-up: a random window holding ``min_area`` to 100% of the image area."""
    h, w = img.shape[:2]
    area = rng.uniform(min_area, 1.0)
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
    ch = int(np.clip(round(np.sqrt(area / aspect) * h), 8, h))
    cw = int(np.clip(round(np.sqrt(area * aspect) * w), 8, w))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return img[y0:y0 + ch, x0:x0 + cw]


def place_on_wall(rng: np.random.Generator, img: np.ndarray, min_fill: float) -> np.ndarray:
    """The whole object seen from afar: framed, smaller inside a wall background."""
    img = add_frame(rng, img) if rng.random() < 0.7 else img
    h, w = img.shape[:2]
    fill = rng.uniform(min_fill, 0.9)
    H, W = int(h / np.sqrt(fill)), int(w / np.sqrt(fill))
    wall = random_wall(rng, H, W)
    y0, x0 = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
    wall[y0:y0 + h, x0:x0 + w] = img
    return wall


def anisotropic_scale(rng: np.random.Generator, img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    h, w = img.shape[:2]
    sx, sy = rng.uniform(lo, hi, 2)
    return cv2.resize(img, (max(8, int(w * sx)), max(8, int(h * sy))), interpolation=cv2.INTER_LINEAR)


def rotate(rng: np.random.Generator, img: np.ndarray, max_deg: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-max_deg, max_deg), 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def limit_size(img: np.ndarray, longest: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= longest:
        return img
    f = longest / max(h, w)
    return cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)


def at_least(img: np.ndarray, shortest: int) -> np.ndarray:
    """Upscale so the shorter side is at least ``shortest`` (a view must stay describable)."""
    h, w = img.shape[:2]
    if min(h, w) >= shortest:
        return img
    f = shortest / min(h, w)
    return cv2.resize(img, (max(shortest, round(w * f)), max(shortest, round(h * f))), interpolation=cv2.INTER_LINEAR)
