"""Local feature extractors for geometric verification: XFeat (learned, run by ONNX Runtime from the
bundle's ``local.onnx``), ORB and SIFT (OpenCV). One interface: ``extract(rgb) -> (keypoints,
descriptors)`` with keypoints in the pixels of a working image whose longer side is ``work_side``
(references and queries are brought to the same working scale).

Descriptors are stored compactly: XFeat's unit-length float descriptors as int8 (x127; cosine
error < 1e-2), ORB as its 32 bytes, SIFT as uint8 (its values are small integers).
"""
from __future__ import annotations

import cv2
import numpy as np

from runtime.errors import SitelensError
from runtime.image.preprocess import resize_to

XFEAT_MAX_KEYPOINTS = 1024
LOCAL_FINGERPRINT_KEY = "sitelens.local_fingerprint"
QUANT_SCALE = 127.0  # unit-length XFeat descriptors are stored as round(x * 127) in int8
FEATURES = ("xfeat", "orb", "sift")
# how each feature's descriptors are stored in a bundle: (dtype, width)
STORED_DESCRIPTORS = {"xfeat": (np.dtype(np.int8), 64), "orb": (np.dtype(np.uint8), 32),
                      "sift": (np.dtype(np.uint8), 128)}


MAX_UPSCALE = 2.0  # small images are enlarged at most this much (more would only add blur)


def working_size(h: int, w: int, side: int, multiple: int = 1) -> tuple[int, int]:
    """(height, width) of the working image of an h x w image: the longer side ``side`` (small
    images: at most ``MAX_UPSCALE`` x), both sides rounded to ``multiple``."""
    f = min(side / max(h, w), MAX_UPSCALE)
    return (max(multiple, int(round(h * f / multiple)) * multiple),
            max(multiple, int(round(w * f / multiple)) * multiple))


def working_image(img: np.ndarray, side: int, multiple: int = 1) -> np.ndarray:
    """Resize to ``working_size``."""
    h, w = img.shape[:2]
    th, tw = working_size(h, w, side, multiple)
    if (th, tw) == (h, w):
        return img
    return resize_to(img, (th, tw))


def gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


class OpenCVFeatures:
    """ORB (binary, Hamming) or SIFT (float, L2) from OpenCV."""

    def __init__(self, feature: str, work_side: int = 480, max_keypoints: int = 800):
        if feature not in ("orb", "sift"):
            raise SitelensError(f"unknown OpenCV local feature {feature!r}; use 'orb' or 'sift'")
        self.name, self.work_side, self.max_keypoints = feature, work_side, max_keypoints
        self.binary = feature == "orb"
        self.dim = 32 if self.binary else 128

    def working_scale(self, h: int, w: int) -> tuple[float, float]:
        """(x, y) scale from an h x w image's pixels to its keypoints' working image."""
        th, tw = working_size(h, w, self.work_side)
        return tw / w, th / h

    def _detector(self, n: int):
        if self.name == "orb":
            return cv2.ORB_create(nfeatures=n, fastThreshold=7)
        return cv2.SIFT_create(nfeatures=n)

    def extract(self, img_rgb: np.ndarray, max_keypoints: int | None = None):
        g = working_image(gray(img_rgb), self.work_side)
        kps, desc = self._detector(max_keypoints or self.max_keypoints).detectAndCompute(g, None)
        if desc is None or not kps:
            return np.zeros((0, 2), np.float32), np.zeros((0, self.dim), np.uint8)
        desc = desc if self.binary else np.clip(np.round(desc), 0, 255).astype(np.uint8)
        return np.float32([k.pt for k in kps]), desc


class XFeatFeatures:
    """XFeat sparse keypoints from ``local.onnx`` (see ``export/local_features.py``)."""

    name = "xfeat"
    binary = False
    dim = 64

    def __init__(self, onnx_bytes: bytes, fingerprint: str | None, work_side: int = 640,
                 max_keypoints: int = XFEAT_MAX_KEYPOINTS, threads: int | None = None, source: str = "local.onnx",
                 providers: list[str] | None = None):
        from runtime.models.providers import helper_session

        self.session, self.fingerprint = helper_session(onnx_bytes, source, LOCAL_FINGERPRINT_KEY, fingerprint, threads,
                                                        providers)
        self.work_side, self.max_keypoints = work_side, max_keypoints

    def working_scale(self, h: int, w: int) -> tuple[float, float]:
        """(x, y) scale from an h x w image's pixels to its keypoints' working image."""
        th, tw = working_size(h, w, self.work_side, 32)
        return tw / w, th / h

    def extract(self, img_rgb: np.ndarray, max_keypoints: int | None = None, spread: bool = False):
        """Keypoints (x, y at the working scale) and int8 descriptors, the strongest first; with
        ``spread``, chosen for coverage too (``spread_order``)."""
        g = working_image(gray(img_rgb), self.work_side, multiple=32)
        kp, score, desc = self.session.run(None, {"gray": np.ascontiguousarray(g)[None]})
        keep = score[0] > 0
        kp, score, desc = kp[0][keep], score[0][keep], desc[0][keep]
        n = min(len(kp), max_keypoints or self.max_keypoints)
        order = spread_order(kp, score, g.shape[:2]) if spread else np.arange(len(kp))
        return kp[order[:n]].astype(np.float32), quantize(desc[order[:n]])


SPREAD_CELLS = 8  # cells per side of the grid ``spread_order`` spreads keypoints over


def spread_order(kp: np.ndarray, score: np.ndarray, shape: tuple[int, int], cells: int = SPREAD_CELLS) -> np.ndarray:
    """Keypoint indices in the order a reference keeps them when it keeps few: the strongest of
    every grid cell first, then the second strongest of every cell, and so on (strongest first
    within a round). A painting's few hundred stored keypoints then cover all of it, not only its
    most contrasted corner, so a close-up of any part finds some."""
    if len(kp) == 0:
        return np.zeros(0, np.int64)
    h, w = shape
    cell = (np.minimum(kp[:, 1] * cells // max(h, 1), cells - 1) * cells
            + np.minimum(kp[:, 0] * cells // max(w, 1), cells - 1)).astype(np.int64)
    by_score = np.argsort(-score, kind="stable")
    rank = np.empty(len(kp), np.int64)
    seen: dict[int, int] = {}
    for i in by_score:                      # rank of each keypoint within its cell, strongest 0
        c = int(cell[i])
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    return np.lexsort((-score, rank))


def quantize(desc: np.ndarray) -> np.ndarray:
    """Unit-length float descriptors -> int8 (x127)."""
    return np.clip(np.round(desc * QUANT_SCALE), -QUANT_SCALE, QUANT_SCALE).astype(np.int8)


def dequantize(desc: np.ndarray) -> np.ndarray:
    return desc.astype(np.float32) / QUANT_SCALE


def as_float(desc: np.ndarray) -> np.ndarray:
    """Stored descriptors as float32: XFeat's int8 dequantized, others cast."""
    return dequantize(desc) if desc.dtype == np.int8 else desc.astype(np.float32, copy=False)
