"""Exact similarities between int8 local descriptors: ``R @ Q.T`` as whole numbers.

XFeat descriptors are unit vectors stored as ``round(x * 127)`` in int8 (``local_features.quantize``),
the frame's as well as the references'. Mutual nearest neighbours need every product of a
frame's keypoints with a shortlist's (``matching.mutual_nearest_many``), the largest matrix
product of verification. Over int8 values the products are whole numbers of at most
64 x 127 x 127, so they are exact both ways this module computes them, and every way gives the
same numbers, hence the same maxima, ties and matches, on every device:

- ONNX Runtime's ``MatMulInteger`` (uint8 x int8 with a zero point of 128: the int8 rows with
  their sign bit flipped), several times quicker than a float product, where the CPU sums
  uint8 x int8 pairs without saturating: VNNI or AMX x86 CPUs, ARM
  (``runtime/models/int8_products.saturates``: older x86 CPUs add pairs of products into 16 bits
  and would clip them);
- elsewhere numpy's float32 product of the int8 values (exact: the sums stay below 2 ** 24).

Thread safety: ``products`` may be called from several threads (one session per process, never
mutated; ONNX Runtime's ``run`` is thread-safe).
"""
from __future__ import annotations

import base64
import threading

import numpy as np

# The graph (opset 13): s = MatMulInteger(r: uint8 n x d, qt: int8 d x m, r_zero_point = 128) -> int32
# n x m. Made with onnx.helper (tests/runtime/verify/test_descriptor_products.py makes it again and
# compares), kept here as bytes: the runtime does not depend on the onnx package.
MODEL = base64.b64decode(
    "CAcSCHNpdGVsZW5zOoQBCh8KAXIKAnF0CgR6ZXJvEgFzIg1NYXRNdWxJbnRlZ2VyEg1pbnQ4X3Byb2R1Y3RzKgwQAioCgAFCBHplcm9a"
    "FQoBchIQCg4IAhIKCgMSAW4KAxIBZFoWCgJxdBIQCg4IAxIKCgMSAWQKAxIBbWIVCgFzEhAKDggGEgoKAxIBbgoDEgFtQgQKABAN")

_lock = threading.Lock()
_session = None          # None: not yet decided; False: the numpy product


def _integer_session():
    """The MatMulInteger session, or False where its products could saturate or it cannot run.
    Decided once per process; later calls (every block of every match) read it without the lock."""
    global _session
    if _session is not None:
        return _session
    with _lock:
        if _session is None:
            from runtime.models.int8_products import saturates

            made = False
            if not saturates():
                try:
                    from runtime.models.providers import import_onnxruntime, session_options

                    made = import_onnxruntime().InferenceSession(MODEL, sess_options=session_options(1),
                                                                 providers=["CPUExecutionProvider"])
                except Exception:  # noqa: BLE001 - no ONNX Runtime kernel: the numpy product
                    made = False
            _session = made
        return _session


def query_operand(q: np.ndarray) -> np.ndarray:
    """A frame's int8 descriptors (m x d) made ready for ``products`` (once for all the reference
    blocks matched against them)."""
    q = np.asarray(q)
    if q.dtype != np.int8:
        raise TypeError(f"int8 descriptors expected, got {q.dtype}")
    return np.ascontiguousarray(q.T)


def products(r: np.ndarray, qt: np.ndarray) -> np.ndarray:
    """``r @ qt`` for int8 ``r`` (n x d) and ``qt = query_operand(q)`` (d x m), exact: int32 or
    float32 holding the same whole numbers."""
    session = _integer_session()
    if session:
        shifted = np.bitwise_xor(np.ascontiguousarray(r).view(np.uint8), np.uint8(0x80))  # r + 128
        return session.run(None, {"r": shifted, "qt": qt})[0]
    return r.astype(np.float32) @ qt.astype(np.float32)
