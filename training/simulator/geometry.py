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


def place_on_wall(rng: np.random.Generator, img: np.ndarray, min_fill: float,
                  surroundings: np.ndarray | None = None) -> np.ndarray:
    """The whole object seen from afar: framed, smaller inside a wall background, or inside
    ``surroundings`` (a cluttered scene: neighbours on the wall, other things on a desk)."""
    img = add_frame(rng, img) if rng.random() < 0.7 else img
    h, w = img.shape[:2]
    fill = rng.uniform(min_fill, 0.9)
    H, W = int(h / np.sqrt(fill)), int(w / np.sqrt(fill))
    if surroundings is None:
        wall = random_wall(rng, H, W)
    else:
        wall = cv2.resize(surroundings, (W, H), interpolation=cv2.INTER_AREA)
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


def tilt(rng: np.random.Generator, img: np.ndarray, max_deg: float, background: np.ndarray | None = None) -> np.ndarray:
    """Viewpoint change of a flat object: the picture plane turned by up to ``max_deg`` degrees about a
    random in-plane axis, seen through a pinhole camera (focal length ~ the image size). Strong
    angles shrink one side and keystone the other, as a visitor standing to the side of a painting
    sees it. The uncovered area shows ``background`` (stretched) or a plain wall."""
    h, w = img.shape[:2]
    angle = np.deg2rad(rng.uniform(0, max_deg))
    axis_dir = rng.uniform(0, np.pi)
    axis = np.array([np.cos(axis_dir), np.sin(axis_dir), 0.0])
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx  # Rodrigues
    f = 1.2 * max(h, w)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) - [w / 2, h / 2]
    pts3 = np.concatenate([corners, np.zeros((4, 1))], axis=1) @ rot.T + [0, 0, f]
    proj = pts3[:, :2] / pts3[:, 2:3] * f
    proj -= proj.min(axis=0)
    scale = min(w / max(proj[:, 0].max(), 1), h / max(proj[:, 1].max(), 1))
    proj = proj * scale + ([w, h] - proj.max(axis=0) * scale) / 2
    m = cv2.getPerspectiveTransform((corners + [w / 2, h / 2]).astype(np.float32), proj.astype(np.float32))
    out = random_wall(rng, h, w) if background is None else cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.warpPerspective(img, m, (w, h), dst=out, borderMode=cv2.BORDER_TRANSPARENT)
