"""Geometric verification of correspondences: does one rigid scene explain them?

- Planar objects (paintings, covers, panels): a RANSAC homography (OpenCV's USAC MAGSAC++),
  accepted only if sane: orientation preserved, bounded scale change and perspective. Its
  inliers are the main evidence.
- 3-D objects (buildings, sculptures): a fundamental matrix as the fallback model, used when the
  homography explains too few matches. Epipolar constraints are weaker (a point-to-line test),
  so its inlier count is calibrated with its own, higher threshold.

Both estimators get every USAC parameter spelled out (``usac_params``), the random generator's
seed included, instead of OpenCV's method presets: the same correspondences give the same inliers
whatever OpenCV release is installed (a calibrated bundle's thresholds assume them), and a release
that changes a preset's defaults cannot change a verdict. The values are those of the presets the
thresholds were calibrated with (``USAC_MAGSAC`` for the homography, ``USAC_ACCURATE`` for the
fundamental matrix); ``tests/runtime/verify/test_geometric.py`` pins their output on fixed
correspondences, so a release whose USAC internals differ fails there first.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_MATCHES = 8
H_THRESHOLD_PX = 6.0   # at the 480-640 px working scale
F_THRESHOLD_PX = 3.0
CONFIDENCE = 0.999
MAX_ITERATIONS = 1000
SEED = 0               # USAC's random generator state: the same sample sequence on every call
MAX_SCALE = 100.0      # area scale between query and reference (close-ups of a detail are large)
CHANCE_INLIERS = 8     # homography inliers random correspondences stay under (they give 4-6)
FULL_COVERAGE = 0.15   # inliers spread over this share of the reference count fully (see Evidence.support)


@dataclass(frozen=True)
class Evidence:
    """What verification found for one candidate instance (its best reference and query rotation)."""

    matches: int = 0        # tentative correspondences
    inliers: int = 0        # homography inliers (0 if the homography is not sane)
    fundamental: int = 0    # fundamental-matrix inliers (0 when not computed)
    rotation: int = 0       # quarter turns applied to the query
    coverage: float = 0.0   # area of the inliers' hull / area of all the reference's keypoints' hull
    query_coverage: float = 0.0  # the same in the query: how much of the frame the object fills
    region: tuple | None = None  # the reference's outline in the frame: 4 (x, y) corners in its pixels
    colour: float | None = None  # median a*b* distance of the inliers' chroma, frame vs reference
                                 # (``runtime/verify/colour.py``); None: not measured

    @property
    def support(self) -> float:
        """Homography inliers, discounted when they cluster in a small part of the reference: a few
        words of the same typeface or a shared logo can line up 20+ points, a real view of the
        object spreads them over much of it (a close-up still covers 20% or more)."""
        return self.inliers * min(1.0, self.coverage / FULL_COVERAGE)

    @property
    def ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    def to_dict(self) -> dict:
        d = {"matches": self.matches, "inliers": self.inliers, "coverage": round(self.coverage, 4),
             "query_coverage": round(self.query_coverage, 4), "support": round(self.support, 2),
             "fundamental": self.fundamental, "rotation": 90 * self.rotation}
        if self.colour is not None:
            d["colour"] = round(self.colour, 1)
        if self.region is not None:
            d["region"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.region]
        return d

    @property
    def telling_support(self) -> float:
        """``support`` where its homography has more inliers than chance gives, else 0."""
        return self.support if self.inliers >= CHANCE_INLIERS else 0.0

    def better_than(self, other: "Evidence") -> bool:
        """Is this evidence of a candidate (from one of its reference rows) better than ``other``
        (from another row)? By homography support where it exceeds chance, then 3-D inliers, then
        correspondences. Support at chance level does not rank rows: a building seen from another
        corner gives its upright row many correspondences and no plane, while a quarter-turned row
        of it may line up a few random inliers; kept for those, the row with far fewer
        correspondences was the one the 3-D test (which looks at the candidates with the most)
        judged, and the right row never got its model."""
        return ((self.telling_support, self.fundamental, self.matches)
                > (other.telling_support, other.fundamental, other.matches))


def sane_homography(h: np.ndarray | None) -> bool:
    """Orientation kept (no mirror), bounded scale change, moderate perspective."""
    if h is None or not np.all(np.isfinite(h)) or abs(h[2, 2]) < 1e-12:
        return False
    h = h / h[2, 2]
    det = float(np.linalg.det(h[:2, :2]))
    if not 1.0 / MAX_SCALE < det < MAX_SCALE:
        return False
    return abs(h[2, 0]) < 5e-3 and abs(h[2, 1]) < 5e-3


def usac_params(model: str) -> "cv2.UsacParams":
    """Every USAC parameter of the ``model`` estimator ("homography" or "fundamental"), explicit.

    Homography: MAGSAC++ scoring with sigma-consensus local optimisation (75-point samples, 15
    iterations); fundamental matrix: MSAC scoring with graph-cut local optimisation (20-point
    samples, 25 iterations). Both: uniform sampling, a least-squares polish of the final model (3
    iterations), one thread, seed ``SEED``, at most ``MAX_ITERATIONS`` hypotheses for
    ``CONFIDENCE``."""
    p = cv2.UsacParams()
    homography = model == "homography"
    if not homography and model != "fundamental":
        raise ValueError(f"unknown model {model!r}")
    p.threshold = H_THRESHOLD_PX if homography else F_THRESHOLD_PX
    p.confidence, p.maxIterations = CONFIDENCE, MAX_ITERATIONS
    p.sampler = cv2.SAMPLING_UNIFORM
    p.score = cv2.SCORE_METHOD_MAGSAC if homography else cv2.SCORE_METHOD_MSAC
    p.loMethod = cv2.LOCAL_OPTIM_SIGMA if homography else cv2.LOCAL_OPTIM_GC
    p.loSampleSize, p.loIterations = (75, 15) if homography else (20, 25)
    p.final_polisher, p.final_polisher_iterations = cv2.LSQ_POLISHER, 3
    p.neighborsSearch = cv2.NEIGH_GRID   # graph-cut neighbourhoods, as the preset builds them
    p.isParallel, p.randomGeneratorState = False, SEED
    return p


def fit_homography(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A sane RANSAC homography src -> dst and its boolean inlier mask, or None."""
    if len(src) < MIN_MATCHES:
        return None
    try:
        h, mask = cv2.findHomography(src, dst, usac_params("homography"))
    except cv2.error:
        return None
    if mask is None or not sane_homography(h):
        return None
    return h, mask.ravel().astype(bool)


def outline_in_query(h: np.ndarray, ref_points: np.ndarray) -> np.ndarray | None:
    """The corners of ``ref_points``' bounding box (the reference's extent as its keypoints show it)
    mapped into the query by the inverse of ``h`` (query -> reference); None if degenerate."""
    if len(ref_points) < 3:
        return None
    lo, hi = ref_points.min(axis=0), ref_points.max(axis=0)
    box = np.float32([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    try:
        corners = cv2.perspectiveTransform(box[None], np.linalg.inv(h))[0]
    except (np.linalg.LinAlgError, cv2.error):
        return None
    return corners if np.all(np.isfinite(corners)) else None


def polygon_iou(a, b) -> float:
    """Intersection over union of two convex quadrilaterals (regions)."""
    a, b = np.float32(a), np.float32(b)
    area_a, area_b = abs(cv2.contourArea(a)), abs(cv2.contourArea(b))
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(cv2.convexHull(a), cv2.convexHull(b))
    return float(inter / max(area_a + area_b - inter, 1e-9))


def homography_inliers(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Boolean inlier mask of a sane RANSAC homography src -> dst, or None."""
    fit = fit_homography(src, dst)
    return None if fit is None else fit[1]


def hull_area(points: np.ndarray) -> float:
    if len(points) < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(np.asarray(points, np.float32))))


def fundamental_inliers(src: np.ndarray, dst: np.ndarray) -> int:
    """Fundamental-matrix inliers among the correspondences, each reference point counted once:
    many query points matched to one reference point (a ratio test runs from the query side only,
    and a repeated texture in clutter lands many times on a few reference keypoints) fit any
    fundamental matrix whose epipole sits on it, which is no evidence of a 3-D scene."""
    _, first = np.unique(np.asarray(dst), axis=0, return_index=True)
    if len(first) < len(dst):
        first.sort()
        src, dst = src[first], dst[first]
    if len(src) < MIN_MATCHES:
        return 0
    try:
        _, mask = cv2.findFundamentalMat(src, dst, usac_params("fundamental"))
    except cv2.error:  # degenerate configurations (e.g. all points on a line)
        return 0
    return int(mask.sum()) if mask is not None else 0


def rot90_points(pts: np.ndarray, turns: int, h: int, w: int) -> np.ndarray:
    """Points (x, y) of an h x w image in ``np.rot90(image, turns)``'s coordinates."""
    for _ in range(turns % 4):
        # np.rot90(img, 1) maps (x, y) of an image of width W to (y, W - 1 - x)
        pts = np.stack([pts[:, 1], (w - 1) - pts[:, 0]], axis=1)
        h, w = w, h
    return pts
