"""Choosing ONNX Runtime execution providers: TensorRT > CUDA > CPU, whatever is installed."""
from __future__ import annotations

import logging
from importlib import metadata

from .errors import DependencyError

log = logging.getLogger("sitelens")

PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def import_onnxruntime():
    """Import onnxruntime, with a clear error when it is missing or doubly installed."""
    flavours = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
            flavours.append(dist)
        except metadata.PackageNotFoundError:
            pass
    if len(flavours) > 1:
        raise DependencyError(
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other. "
            "Uninstall both and install exactly one: pip install 'sitelens[cpu]' or 'sitelens[gpu]'"
        )
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyError(
            f"onnxruntime is not importable ({exc}); install 'sitelens[cpu]' or 'sitelens[gpu]'"
        ) from None
    return ort


def choose_providers(requested: list[str] | None = None) -> list[str]:
    """Providers to try, best first. ``requested`` (e.g. ['CPUExecutionProvider']) overrides."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise DependencyError(f"requested providers {missing} are not available (have {available})")
        return list(requested)
    return [p for p in PREFERENCE if p in available] or ["CPUExecutionProvider"]


def session_options(threads: int | None = None):
    """ONNX Runtime session options for sitelens's models: no busy-waiting between runs (on a
    2-core device the spinning pool starves numpy/OpenCV work), quiet logs, ``threads`` if given.

    Spinning only while a run lasts (``session.force_spinning_stop``) was measured too (2 cores,
    calls interleaved in random order): the network alone 7-9% faster (FP32 9.8 -> 9.1 ms, INT8
    5.3 -> 4.8), but ``recognize()`` with verification, or with a 30 fps capture thread decoding
    beside it, no faster or slower; it stays off."""
    opts = import_onnxruntime().SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    return opts


def helper_session(onnx_bytes: bytes, source: str, fingerprint_key: str, fingerprint: str | None,
                   threads: int | None = None):
    """(CPU session, fingerprint found) for one of a bundle's helper models (local features, matcher);
    the model's fingerprint must be the one the manifest names (None: not checked)."""
    from .errors import BundleError

    ort = import_onnxruntime()
    try:
        session = ort.InferenceSession(onnx_bytes, sess_options=session_options(threads),
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types for malformed models
        raise BundleError(f"{source}: ONNX Runtime cannot load the model ({exc})") from None
    found = session.get_modelmeta().custom_metadata_map.get(fingerprint_key)
    if fingerprint is not None and found != fingerprint:
        raise BundleError(f"{source}: model fingerprint mismatch (manifest {fingerprint!r}, model {found!r}); "
                          "re-export the bundle")
    return session, found
