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
