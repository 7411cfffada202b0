"""Optional geometric verification: local features (ORB by default, SIFT option) matched to
the top candidates' references, RANSAC homography, inlier count. Used only when the global
answer is ambiguous (small margin, or a score just under the threshold), to confirm or
re-rank. Reference keypoints are cached in the bundle when enabled at export.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import SitelensError

WORK_SIDE = 480  # images are resized so the longer side is this before detection


@dataclass
class VerifyParams:
    feature: str = "orb"
    n_features: int = 800
    ratio: float = 0.8
    min_inliers: int = 15
    candidates: int = 3
    ambiguous_margin: float = 0.05   # verify when top1 - top2 < this ...
    near_threshold: float = 0.10     # ... or when the score is this close below the threshold

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "VerifyParams":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _detector(feature: str, n: int):
    if feature == "orb":
        return cv2.ORB_create(nfeatures=n, fastThreshold=7), cv2.NORM_HAMMING
    if feature == "sift":
        return cv2.SIFT_create(nfeatures=n), cv2.NORM_L2
    raise SitelensError(f"unknown local feature {feature!r}; use 'orb' or 'sift'")


def local_features(img_rgb: np.ndarray, params: VerifyParams):
    """(keypoints N x 2 float32 in working-image pixels, descriptors)."""
    h, w = img_rgb.shape[:2]
    f = WORK_SIDE / max(h, w)  # same working scale for queries and references, up or down
    gray = cv2.cvtColor(img_rgb, cv2.COLOR_RGB2GRAY)
    if abs(f - 1.0) > 0.05:
        gray = cv2.resize(gray, (max(1, int(w * f)), max(1, int(h * f))),
                          interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    det, _ = _detector(params.feature, params.n_features)
    kps, desc = det.detectAndCompute(gray, None)
    if desc is None or not kps:
        dim, dtype = (32, np.uint8) if params.feature == "orb" else (128, np.float32)
        return np.zeros((0, 2), np.float32), np.zeros((0, dim), dtype)
    return np.float32([k.pt for k in kps]), desc


def count_inliers(q_kp, q_desc, r_kp, r_desc, params: VerifyParams) -> int:
    if len(q_desc) < 4 or len(r_desc) < 4:
        return 0
    _, norm = _detector(params.feature, 1)
    matcher = cv2.BFMatcher(norm)
    pairs = matcher.knnMatch(q_desc, r_desc, k=2)
    good = [m for m, *rest in (p for p in pairs if p) if not rest or m.distance < params.ratio * rest[0].distance]
    if len(good) < 4:
        return 0
    src = q_kp[[m.queryIdx for m in good]]
    dst = r_kp[[m.trainIdx for m in good]]
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    return int(mask.sum()) if mask is not None else 0


def best_inliers(query_rgb: np.ndarray, features_by_instance: dict[str, list], params: VerifyParams) -> dict[str, int]:
    """Most RANSAC inliers between the query and any reference row of each instance.
    ``features_by_instance``: {instance: [(keypoints, descriptors), ...]} (``ReferenceIndex.features_of``)."""
    q_kp, q_desc = local_features(query_rgb, params)
    return {inst: max((count_inliers(q_kp, q_desc, kp, desc, params) for kp, desc in rows), default=0)
            for inst, rows in features_by_instance.items()}
