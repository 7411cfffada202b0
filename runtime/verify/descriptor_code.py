"""A compact code for the references' stored XFeat descriptors: the site's own principal components.

A reference's local descriptors are most of its bytes in a bundle (64 int8 a keypoint). XFeat's
64 dimensions are far from independent on one site's images, so a bundle built with
``--descriptor-code pcaK`` stores each keypoint as K int8 values: its coordinates on the K leading
principal components of the site's reference descriptors, each in units of its own step (the
component's 99.9th percentile over 127, so a code rarely clips). Why PCA and which K:
``bench/descriptor_codes.py``.

``verify_pca.npy`` (float32, (K + 1) x 64) holds the mean (row 0) and the components already
multiplied by their step (rows 1..K), so that

- decoding is one product: descriptor = unit(code @ basis + mean), then int8 as any stored
  descriptor (``local_features.quantize``);
- encoding is its inverse, since the components are orthogonal:
  code_k = round((descriptor - mean) . b_k / |b_k|^2), clipped to int8.

A decoded descriptor is what matching and the learned matcher see; the codes are what a bundle
stores. ``FeatureStore`` keeps both, so a bundle read and written again (``bundle --update``,
``learn``) holds the same bytes for the rows it already had, and rows added later are encoded
with the site's components, never refitted.
"""
from __future__ import annotations

import re

import numpy as np

from runtime.errors import BundleError, SitelensError
from runtime.verify.local_features import dequantize, quantize

DESCRIPTOR_CODES = "int8 (as extracted) or pcaK (K principal components of the site, 8 <= K < 64)"
DIM = 64                 # XFeat's descriptor width, the only feature a code applies to
FIT_ROWS = 50_000        # descriptors the components are fitted on (an evenly spaced sample)
LEVELS = 127             # int8 steps either side of the mean
CHUNK = 1 << 16          # rows decoded (or encoded) at a time
_NAME = re.compile(r"pca(\d{1,2})")


def components_of(name: str) -> int | None:
    """K of ``pcaK``, None for ``int8``; raises SitelensError for anything else."""
    if name == "int8":
        return None
    m = _NAME.fullmatch(str(name))
    if m is None or not 8 <= int(m.group(1)) < DIM:
        raise SitelensError(f"unknown descriptor code {name!r}: {DESCRIPTOR_CODES}")
    return int(m.group(1))


class DescriptorCode:
    """The site's components (``basis``: (K + 1) x 64 float32, see the module docstring).
    Immutable; every method is safe from any thread."""

    def __init__(self, basis: np.ndarray):
        self.basis = np.ascontiguousarray(basis, np.float32)
        self.mean, self.steps = self.basis[0], self.basis[1:]
        self._inverse = (self.steps / np.sum(self.steps ** 2, axis=1, keepdims=True)).T  # 64 x K

    @property
    def components(self) -> int:
        return len(self.steps)

    @property
    def name(self) -> str:
        return f"pca{self.components}"

    @classmethod
    def fit(cls, descriptors: np.ndarray, components: int) -> "DescriptorCode":
        """Fit on stored (int8) descriptors of the site's references."""
        if not 8 <= components < DIM:
            raise SitelensError(f"a descriptor code keeps 8 to {DIM - 1} components, not {components}")
        x = dequantize(np.asarray(descriptors))
        if x.ndim != 2 or x.shape[1] != DIM or len(x) < 2 * components:
            raise SitelensError(f"fitting a pca{components} descriptor code needs at least {2 * components} "
                                f"{DIM}-d descriptors, got {x.shape}")
        mean = x.mean(axis=0)
        sample = x[:: max(1, len(x) // FIT_ROWS)] - mean
        _, _, vt = np.linalg.svd(sample, full_matrices=False)
        vt = vt[:components]
        spread = np.percentile(np.abs(sample @ vt.T), 99.9, axis=0)
        steps = np.maximum(spread, 1e-4) / LEVELS
        return cls(np.vstack([mean, vt * steps[:, None]]))

    @classmethod
    def from_array(cls, basis: np.ndarray, source: str) -> "DescriptorCode":
        """The code a bundle stores; raises BundleError naming ``source`` unless it is one."""
        if (not isinstance(basis, np.ndarray) or basis.dtype != np.float32 or basis.ndim != 2
                or basis.shape[1] != DIM or not 9 <= len(basis) <= DIM or not np.isfinite(basis).all()):
            raise BundleError(f"{source}: verify_pca.npy must be float32 (K + 1) x {DIM} with 8 <= K < {DIM}, "
                              f"finite; got {getattr(basis, 'dtype', '?')} {getattr(basis, 'shape', '?')}")
        norms = np.linalg.norm(basis[1:], axis=1)
        if not np.all(norms > 1e-6):
            raise BundleError(f"{source}: verify_pca.npy holds a zero component")
        return cls(basis)

    def encode(self, descriptors: np.ndarray) -> np.ndarray:
        """Stored (int8, N x 64) descriptors -> codes (int8, N x K)."""
        descriptors = np.asarray(descriptors)
        out = np.empty((len(descriptors), self.components), np.int8)
        for a in range(0, len(descriptors), CHUNK):
            z = (dequantize(descriptors[a:a + CHUNK]) - self.mean) @ self._inverse
            out[a:a + CHUNK] = np.clip(np.round(z), -LEVELS, LEVELS)
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (int8, N x K) -> descriptors as stored ones are (int8, N x 64, unit length / 127).
        Decoded in chunks of ``CHUNK`` rows: a site of 10k references holds over 10M keypoints, whose
        float32 decoding at once would take gigabytes on the device."""
        out = np.empty((len(codes), DIM), np.int8)
        for a in range(0, len(codes), CHUNK):
            y = codes[a:a + CHUNK].astype(np.float32) @ self.steps + self.mean
            out[a:a + CHUNK] = quantize(y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12))
        return out
