"""Model input specification and the one resize every stage uses."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from runtime.image.area_resize import area_resize


@dataclass(frozen=True)
class InputSpec:
    """What the exported network takes: uint8 RGB, NHWC, shorter side resized to `size`.

    The longer side is capped at `max_aspect * size` (the shorter side then ends up
    smaller), so panoramas and tall strips do not blow up the cost of a frame.
    Normalisation (mean/std) happens inside the network.
    """

    size: int = 224
    max_aspect: float = 2.0
    layout: str = "NHWC"
    dtype: str = "uint8"
    color: str = "RGB"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        known = {k: d[k] for k in ("size", "max_aspect", "layout", "dtype", "color") if k in d}
        return cls(**known)

    def target_shape(self, height: int, width: int, scale: float = 1.0) -> tuple[int, int]:
        """(h, w) an image of this shape is resized to, for a given multi-scale factor."""
        size = self.size * scale
        factor = size / min(height, width)
        longest = max(height, width) * factor
        cap = self.max_aspect * size
        if longest > cap:
            factor *= cap / longest
        return max(16, round(height * factor)), max(16, round(width * factor))


def resize_to(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` at ``size`` = (h, w): area averaging down (INTER_AREA, on several cores where the cut
    is exact: ``runtime.image.area_resize``), bilinear up."""
    th, tw = size
    if th * tw < img.shape[0] * img.shape[1]:
        return area_resize(img, (th, tw))
    return cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR)


def resize_for_model(img: np.ndarray, spec: InputSpec, scale: float = 1.0) -> np.ndarray:
    """Resize an RGB uint8 image for the network (``resize_to``: area down, bilinear up)."""
    h, w = img.shape[:2]
    th, tw = spec.target_shape(h, w, scale)
    if (th, tw) == (h, w):
        return np.ascontiguousarray(img)
    return resize_to(img, (th, tw))
