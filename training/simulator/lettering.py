"""Lines of text drawn from our own stroke font, for simulated labels and test posters.

Why not ``cv2.putText``: OpenCV 5 renders its font codes from a built-in TrueType face, and the
glyphs' shapes and advances change between minor releases (5.0 -> 5.1). A synthetic scene drawn
with it is then another scene under another OpenCV: calibration negatives and test fixtures drift
with the installed version. Here each glyph is a few polylines on a 4 x 6 grid, rasterised by
``cv2.polylines`` (line drawing, stable across releases), so the same text gives the same pixels.

Upper case only; lower-case letters are drawn as small capitals (0.7 of the height), digits and
other characters as a box, a space as an empty advance.
"""
from __future__ import annotations

import cv2
import numpy as np

GRID_W, GRID_H, ADVANCE = 4, 6, 6   # glyph box and advance, in grid units
_SHIFT = 4                          # sub-pixel bits handed to cv2.polylines

_O = [(1, 0), (3, 0), (4, 1), (4, 5), (3, 6), (1, 6), (0, 5), (0, 1), (1, 0)]
_P = [(0, 6), (0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (0, 3)]
GLYPHS: dict[str, list[list[tuple[int, int]]]] = {
    "A": [[(0, 6), (2, 0), (4, 6)], [(1, 3), (3, 3)]],
    "B": [[(0, 0), (0, 6), (3, 6), (4, 5), (4, 4), (3, 3), (0, 3)], [(0, 0), (3, 0), (4, 1), (4, 2), (3, 3)]],
    "C": [[(4, 1), (3, 0), (1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5)]],
    "D": [[(0, 0), (0, 6), (3, 6), (4, 5), (4, 1), (3, 0), (0, 0)]],
    "E": [[(4, 0), (0, 0), (0, 6), (4, 6)], [(0, 3), (3, 3)]],
    "F": [[(4, 0), (0, 0), (0, 6)], [(0, 3), (3, 3)]],
    "G": [[(4, 1), (3, 0), (1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5), (4, 3), (2, 3)]],
    "H": [[(0, 0), (0, 6)], [(4, 0), (4, 6)], [(0, 3), (4, 3)]],
    "I": [[(1, 0), (3, 0)], [(2, 0), (2, 6)], [(1, 6), (3, 6)]],
    "J": [[(4, 0), (4, 5), (3, 6), (1, 6), (0, 5)]],
    "K": [[(0, 0), (0, 6)], [(4, 0), (0, 4)], [(1, 3), (4, 6)]],
    "L": [[(0, 0), (0, 6), (4, 6)]],
    "M": [[(0, 6), (0, 0), (2, 3), (4, 0), (4, 6)]],
    "N": [[(0, 6), (0, 0), (4, 6), (4, 0)]],
    "O": [_O],
    "P": [_P],
    "Q": [_O, [(2, 4), (4, 6)]],
    "R": [_P, [(2, 3), (4, 6)]],
    "S": [[(4, 1), (3, 0), (1, 0), (0, 1), (0, 2), (1, 3), (3, 3), (4, 4), (4, 5), (3, 6), (1, 6), (0, 5)]],
    "T": [[(0, 0), (4, 0)], [(2, 0), (2, 6)]],
    "U": [[(0, 0), (0, 5), (1, 6), (3, 6), (4, 5), (4, 0)]],
    "V": [[(0, 0), (2, 6), (4, 0)]],
    "W": [[(0, 0), (1, 6), (2, 3), (3, 6), (4, 0)]],
    "X": [[(0, 0), (4, 6)], [(4, 0), (0, 6)]],
    "Y": [[(0, 0), (2, 3), (4, 0)], [(2, 3), (2, 6)]],
    "Z": [[(0, 0), (4, 0), (0, 6), (4, 6)]],
}
_BOX = [[(0, 0), (4, 0), (4, 6), (0, 6), (0, 0)]]
SMALL = 0.7  # lower-case height as a share of the capital height


def text_width(text: str, height: float) -> float:
    """Width in pixels of ``text`` drawn ``height`` pixels tall (capitals), without the last gap."""
    return max(0, len(text) * ADVANCE - (ADVANCE - GRID_W)) * height / GRID_H


def draw_text(img: np.ndarray, text: str, origin: tuple[float, float], height: float, colour,
              thickness: int = 1) -> np.ndarray:
    """Draw ``text`` into ``img`` in place, its baseline starting at ``origin`` (x, y) as for
    ``cv2.putText``; capitals ``height`` pixels tall, anti-aliased strokes ``thickness`` wide.
    Returns ``img``."""
    unit = height / GRID_H
    x0, base = origin
    lines = []
    for k, ch in enumerate(text):
        if ch == " ":
            continue
        glyph = GLYPHS.get(ch.upper(), _BOX)
        s = unit * (SMALL if ch.islower() else 1.0)
        left = x0 + k * ADVANCE * unit
        for stroke in glyph:
            pts = [(left + gx * s, base - (GRID_H - gy) * s) for gx, gy in stroke]
            lines.append(np.round(np.array(pts) * (1 << _SHIFT)).astype(np.int32))
    if lines:
        cv2.polylines(img, lines, False, colour, max(1, int(thickness)), cv2.LINE_AA, _SHIFT)
    return img
