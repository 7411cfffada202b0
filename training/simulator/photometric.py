"""Photometric parts: colour cast, white balance, exposure, glare, blur, noise, JPEG."""
from __future__ import annotations

import cv2
import numpy as np


def colour_cast(rng: np.random.Generator, img: np.ndarray, strength: float) -> np.ndarray:
    """White-balance error / tinted lighting: per-channel gains."""
    gains = 1.0 + rng.uniform(-strength, strength, 3)
    return np.clip(img.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def exposure(rng: np.random.Generator, img: np.ndarray, brightness: float, gamma: float) -> np.ndarray:
    g = np.exp(rng.uniform(-np.log(gamma), np.log(gamma)))
    b = rng.uniform(1 - brightness, 1 + brightness)
    x = (img.astype(np.float32) / 255.0) ** g * b
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def glare(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Reflections on glass: a soft bright ellipse or a diagonal sheen."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    if rng.random() < 0.6:
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (max(2, int(w * rng.uniform(0.05, 0.3))), max(2, int(h * rng.uniform(0.03, 0.2))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    else:
        x0 = int(rng.integers(-w // 2, w))
        pts = np.array([[x0, 0], [x0 + w // 6, 0], [x0 + w // 6 + h // 2, h], [x0 + h // 2, h]], np.int32)
        cv2.fillPoly(mask, [pts], 1.0)
    sigma = max(1.0, min(h, w) * rng.uniform(0.02, 0.08))
    mask = cv2.GaussianBlur(mask, (0, 0), sigma) * rng.uniform(0.3, 0.8)
    out = img.astype(np.float32) * (1 - mask[:, :, None]) + 255.0 * mask[:, :, None]
    return np.clip(out, 0, 255).astype(np.uint8)


def motion_blur(rng: np.random.Generator, img: np.ndarray, max_len: int) -> np.ndarray:
    length = int(rng.integers(3, max(4, max_len)))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    m = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, m, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(img, -1, kernel)


def defocus(rng: np.random.Generator, img: np.ndarray, max_sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, max_sigma))


def sensor_noise(rng: np.random.Generator, img: np.ndarray, max_sigma: float) -> np.ndarray:
    noise = rng.normal(0, rng.uniform(1, max_sigma), img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def jpeg(rng: np.random.Generator, img: np.ndarray, min_quality: int) -> np.ndarray:
    q = int(rng.integers(min_quality, 96))
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else img


def occlude(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """A visitor's head or shoulder in front: a dark blob from one edge."""
    h, w = img.shape[:2]
    out = img.copy()
    cx = int(rng.integers(0, w))
    axes = (max(2, int(w * rng.uniform(0.1, 0.25))), max(2, int(h * rng.uniform(0.15, 0.35))))
    colour = tuple(int(c) for c in rng.uniform(10, 90, 3))
    cv2.ellipse(out, (cx, h), axes, 0, 0, 360, colour, -1)
    return out


def reflection(rng: np.random.Generator, img: np.ndarray, scene: np.ndarray) -> np.ndarray:
    """Glass in front of the work reflecting the room: a blurred, shifted copy of another scene
    added at low opacity."""
    h, w = img.shape[:2]
    mirror = cv2.resize(scene, (w, h), interpolation=cv2.INTER_AREA)[:, ::-1]
    mirror = cv2.GaussianBlur(mirror, (0, 0), rng.uniform(1.0, 4.0)).astype(np.float32)
    alpha = rng.uniform(0.1, 0.35)
    out = img.astype(np.float32) * (1 - alpha) + mirror * alpha + rng.uniform(0, 25)
    return np.clip(out, 0, 255).astype(np.uint8)
