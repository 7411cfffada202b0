"""Colour around keypoints: does a verified match show the reference's colours?

XFeat describes grey levels, so a look-alike in other colours (the same toy car in blue, the green
tin of a pink one, the coloured version of a grey painting) lines up as many homography inliers as
the work itself. The global descriptor sees colour, but it only ranks; once geometry has verified a
candidate nothing looked at colour again. A bundle therefore stores each reference keypoint's
chroma (CIELAB a*, b*, two int8 a keypoint): the mean over a square of ``2 * PATCH`` working-image
pixels centred on it. A candidate's homography inliers compare it with the frame's mean chroma
over the square the same part of the work covers in the frame (``PATCH`` times the match's scale),
so both sides average the same paint: keypoints sit on edges and corners, where a fixed square in
both images would mix different shares of the colours on either side. ``colour_gap`` is the median
distance over the points coloured on either side (black text, grey stone and white margins say
nothing about paint). A change of light (warm lamps, a phone's white balance, a cast through glass)
moves chroma by a fraction of what a different paint does, and the median ignores the inliers on
glare or on a visitor's sleeve.

A frame costs one small resize, one colour conversion and two integral images, only when a bundle
stores chroma.
"""
from __future__ import annotations

import cv2
import numpy as np

PATCH = 8.0         # half the side, in reference working-image pixels, of the square a keypoint's chroma averages
DOWN = 2            # chroma is computed at 1 / DOWN of the working scale (cheaper; the squares are larger)
MIN_POINTS = 12     # coloured inliers needed to measure a gap (fewer: no colour evidence either way)
COLOURED_SHARE = 0.4  # ... and this share of them: a mostly grey work (stone, ink) tells little by its few tints
CHROMATIC = 12.0    # a*b* chroma from which a point counts as coloured
MAX_SHIFT = 15.0    # the longest chroma shift a change of light is credited with (``light_shift``)
SATURATION = (0.5, 2.0)  # saturation gains a camera and its light are credited with (``colour_gap``)
GAP = 20.0          # the colour gap a bundle's rules allow (``Rule.colour``), see ``colour_gap``


class ChromaField:
    """Mean (a*, b*) over any axis-aligned square of one image, in O(1) a square (integral images).
    Immutable once made; safe to read from several threads."""

    def __init__(self, img_rgb: np.ndarray, working: tuple[int, int]):
        """``working``: the (height, width) of the image's local-feature working image, whose
        pixels the points given to ``at`` are in. A grey image (2-D) has no chroma (zeros)."""
        h, w = working
        self.size = (max(1, int(round(w / DOWN))), max(1, int(round(h / DOWN))))
        if img_rgb.ndim == 2:
            ab = np.zeros((self.size[1], self.size[0], 2), np.float32)
        else:
            small = cv2.resize(np.ascontiguousarray(img_rgb[:, :, :3]), self.size, interpolation=cv2.INTER_AREA)
            ab = cv2.cvtColor(small, cv2.COLOR_RGB2Lab)[:, :, 1:].astype(np.float32) - 128.0  # 8-bit: offset 128
        self.integral = cv2.integral(np.ascontiguousarray(ab), sdepth=cv2.CV_64F)   # (h+1, w+1, 2)

    def at(self, points: np.ndarray, half) -> np.ndarray:
        """int8 (a*, b*): the mean over the square of half side ``half`` (working pixels; a number
        or one per point) centred on each point (x, y in working pixels), clipped to the image."""
        if len(points) == 0:
            return np.zeros((0, 2), np.int8)
        w, h = self.size
        p = np.asarray(points, np.float64) / DOWN
        r = np.maximum(np.broadcast_to(np.asarray(half, np.float64) / DOWN, (len(p),)), 0.5)
        x0 = np.clip(np.floor(p[:, 0] - r), 0, w - 1).astype(np.int64)
        x1 = np.clip(np.ceil(p[:, 0] + r), x0 + 1, w).astype(np.int64)
        y0 = np.clip(np.floor(p[:, 1] - r), 0, h - 1).astype(np.int64)
        y1 = np.clip(np.ceil(p[:, 1] + r), y0 + 1, h).astype(np.int64)
        s = self.integral
        total = s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]
        mean = total / ((x1 - x0) * (y1 - y0))[:, None]
        return np.clip(np.round(mean), -127, 127).astype(np.int8)


def reference_chroma(img_rgb: np.ndarray, working: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """What a bundle stores for a reference row's keypoints (``points`` in its ``working`` pixels)."""
    return ChromaField(img_rgb, working).at(points, PATCH)


def match_scale(frame_points: np.ndarray, reference_points: np.ndarray) -> float:
    """Frame pixels per reference pixel of a match: the ratio of the inliers' spreads about their
    centroids (the homography's local scale varies over a tilted work; the median patch does not
    need more)."""
    f, r = np.asarray(frame_points, np.float64), np.asarray(reference_points, np.float64)
    fs, rs = f.var(axis=0).sum() if len(f) else 0.0, r.var(axis=0).sum() if len(r) else 0.0
    return float(np.sqrt(fs / rs)) if fs > 0 and rs > 0 else 1.0


def light_shift(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The chroma a change of light adds to the frame: the median (frame - reference) over the
    points grey in the reference (white, black, stone: they show the light, not paint), at most
    ``MAX_SHIFT`` long (a lamp tints, it does not paint); zero with fewer than ``MIN_POINTS`` // 2
    of them."""
    grey = np.hypot(reference[:, 0], reference[:, 1]) < CHROMATIC / 2
    if grey.sum() < MIN_POINTS // 2:
        return np.zeros(2, np.float32)
    shift = np.median(frame[grey] - reference[grey], axis=0)
    n = float(np.hypot(*shift))
    return (shift * min(1.0, MAX_SHIFT / n) if n > 0 else shift).astype(np.float32)


def colour_gap(frame: np.ndarray, reference: np.ndarray) -> float | None:
    """How far matched points' chroma (N x 2 each) is from what light and camera make of the
    reference's: the frame's corrected by ``light_shift``, then the reference's scaled by the
    saturation gain that fits it best (least squares, within ``SATURATION``: a photo of a print is
    paler or more vivid than its catalogue image, not another hue); the median a*b* distance of
    what is left, over the points coloured on either side (chroma ``CHROMATIC`` or more). None
    below ``MIN_POINTS`` of them or below ``COLOURED_SHARE`` of the points."""
    if len(frame) != len(reference):
        return None
    f, r = frame.astype(np.float32), reference.astype(np.float32)
    coloured = np.maximum(np.hypot(f[:, 0], f[:, 1]), np.hypot(r[:, 0], r[:, 1])) >= CHROMATIC
    if coloured.sum() < max(MIN_POINTS, COLOURED_SHARE * len(f)):
        return None
    f, r = f[coloured] - light_shift(f, r), r[coloured]
    gain = float(np.clip((f * r).sum() / max(float((r * r).sum()), 1e-6), *SATURATION))
    d = f - gain * r
    return float(np.median(np.hypot(d[:, 0], d[:, 1])))
