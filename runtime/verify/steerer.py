"""Quarter-turned reference rows made from the upright row at match time: a linear *steerer*.

A visitor may hold the phone sideways, so every reference is also matched a quarter, a half and
three quarters turned. XFeat is not rotation invariant: by default a bundle stores each turned
row's own keypoints and descriptors, most of a work's bytes. A bundle built with
``--turned-features steered`` stores the upright rows only, plus three 64 x 64 matrices fitted on
the site's own references at build time: for a keypoint seen upright with descriptor ``d``, the
descriptor XFeat gives the same point in the image turned ``k`` quarter turns is close to
``unit(d @ W_k)`` (the idea of Bökman et al., "Steerers", CVPR 2024, fitted here to a fixed
descriptor by least squares). The turned row's keypoints are the upright ones turned exactly.

``verify_steer.npy`` (float32, 3 x 64 x 64) holds ``W_1, W_2, W_3``. The matrices are fitted per
site, not shipped once, so a bundle's steerer always belongs to the local-feature model it was
fitted with. Matching, geometry and the learned matcher then see a turned row as they see a stored
one: the learned matcher normalises keypoints by their own extent, so a turned row's position in
its (unknown) working image does not matter, only its shape. What it costs in answers, and in
bytes and build time saved: ``bench/bundle_size.py`` (variant ``steered``).
"""
from __future__ import annotations

import numpy as np

from runtime.errors import BundleError
from runtime.verify.geometric import rot90_points
from runtime.verify.local_features import as_float, quantize, working_size

DIM = 64                # XFeat's descriptor width, the only feature steered
FIT_IMAGES = 48         # reference images (evenly spread over the site) the steerer is fitted on
FIT_KEYPOINTS = 2048    # keypoints a fitting image is described with, upright and turned
PAIR_DISTANCE = 2.0     # pixels (working image): an upright keypoint turned lands this close to one found turned
RIDGE = 1e-3            # least squares regularisation, relative to the pairs' mean energy


def turned_points(kp: np.ndarray, turns: int) -> np.ndarray:
    """Keypoints turned ``turns`` quarter turns the way ``np.rot90`` turns an image, inside their
    own extent (the working image's size is not stored; geometry and the learned matcher do not
    depend on where the row sits)."""
    kp = kp.astype(np.float32)
    h, w = (kp.max(axis=0) + 1 if len(kp) else np.ones(2, np.float32))[::-1]
    return rot90_points(kp, turns, h, w)


def _unit(d: np.ndarray) -> np.ndarray:
    d = as_float(d).astype(np.float32, copy=False)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


class Steerer:
    """Three 64 x 64 matrices: upright XFeat descriptors -> the turned image's. Immutable, thread-safe."""

    def __init__(self, matrices: np.ndarray):
        self.matrices = np.ascontiguousarray(matrices, np.float32)

    @classmethod
    def from_array(cls, matrices, source: str) -> "Steerer":
        """The steerer a bundle stores; raises BundleError naming ``source`` unless it is one."""
        if (not isinstance(matrices, np.ndarray) or matrices.dtype != np.float32 or matrices.shape != (3, DIM, DIM)
                or not np.isfinite(matrices).all()):
            raise BundleError(f"{source}: verify_steer.npy must be float32 3 x {DIM} x {DIM}, finite; got "
                              f"{getattr(matrices, 'dtype', '?')} {getattr(matrices, 'shape', '?')}")
        if not np.all(np.linalg.norm(matrices.reshape(3, -1), axis=1) > 1e-6):
            raise BundleError(f"{source}: verify_steer.npy holds a zero matrix")
        return cls(matrices)

    def turn(self, rotation: int, kp: np.ndarray, desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An upright row's (keypoints, descriptors) as the row turned ``rotation`` quarter turns,
        in the stored dtypes (int8 descriptors stay int8)."""
        k = rotation % 4
        if k == 0 or len(kp) == 0:
            return kp, desc
        y = _unit(_unit(desc) @ self.matrices[k - 1])
        out = quantize(y) if desc.dtype == np.int8 else y.astype(desc.dtype)
        return turned_points(kp, k).astype(kp.dtype), out


def fit_pairs(extractor, image: np.ndarray, turns: int, keypoints: int = FIT_KEYPOINTS, upright=None):
    """(upright, turned) unit descriptors of the keypoints found at the same place of ``image``
    upright and turned ``turns`` quarter turns (detection is not rotation invariant either: about
    a tenth of the keypoints are found at both). ``upright``: the image's (keypoints, descriptors)
    when already extracted with ``keypoints``."""
    ku, du = upright if upright is not None else extractor.extract(image, keypoints)
    kt, dt = extractor.extract(np.ascontiguousarray(np.rot90(image, turns)), keypoints)
    if len(ku) == 0 or len(kt) == 0:
        return np.zeros((0, DIM), np.float32), np.zeros((0, DIM), np.float32)
    h, w = working_size(*image.shape[:2], extractor.work_side, 32)
    moved = rot90_points(ku.astype(np.float32), turns, h, w)
    d2 = ((moved[:, None, :] - kt[None, :, :].astype(np.float32)) ** 2).sum(-1)
    nearest = d2.argmin(axis=1)
    ok = d2[np.arange(len(ku)), nearest] <= PAIR_DISTANCE ** 2
    return _unit(du[ok]), _unit(dt[nearest[ok]])


def fit_steerer(extractor, images, progress: bool = False) -> Steerer:
    """A steerer fitted by ridge least squares on keypoints found at the same place of each image
    upright and turned (``fit_pairs``); ``images``: RGB arrays, a few dozen of the site's references."""
    from tqdm import tqdm

    pairs = {k: ([], []) for k in (1, 2, 3)}
    for image in tqdm(images, desc="steerer", unit="image", disable=not progress):  # one image in memory at a time
        upright = extractor.extract(image, FIT_KEYPOINTS)
        for k in (1, 2, 3):
            u, t = fit_pairs(extractor, image, k, upright=upright)
            pairs[k][0].append(u)
            pairs[k][1].append(t)
    matrices = []
    for k in (1, 2, 3):
        u, t = np.concatenate(pairs[k][0]), np.concatenate(pairs[k][1])
        if len(u) < DIM:
            raise ValueError(f"too few keypoints found both upright and turned to fit a steerer ({len(u)})")
        gram = u.T @ u
        gram += RIDGE * np.trace(gram) / DIM * np.eye(DIM, dtype=np.float32)
        matrices.append(np.linalg.solve(gram, u.T @ t))
    return Steerer(np.stack(matrices).astype(np.float32))
