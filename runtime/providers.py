"""Choosing ONNX Runtime execution providers: TensorRT > CUDA > OpenVINO > CPU, whatever is installed.

Three flavours of ONNX Runtime install the same ``onnxruntime`` module: ``onnxruntime`` (CPU),
``onnxruntime-gpu`` (CUDA, TensorRT) and ``onnxruntime-openvino`` (OpenVINO's CPU plugin beside
ONNX Runtime's own CPU provider). On an x86 CPU the OpenVINO provider runs sitelens's network in
less time than ONNX Runtime's CPU provider, with the same descriptors and decisions (2-core AMD
EPYC, one run of ``bench/latency.py``: 0.86x the CPU provider's time in float32, 0.84x in INT8;
``recognize()`` with verification unchanged, its local features run on the CPU provider). It is
asked for float32 arithmetic (``precision`` FP32, not the bfloat16 OpenVINO would pick on CPUs
that have it), so that a bundle's calibrated thresholds hold as they were measured.

The OpenVINO plugin for ONNX Runtime's newer plugin interface (``onnxruntime-ep-openvino``) offers
its devices on Intel hardware only (it checks the CPU's vendor id), so sitelens uses the
``onnxruntime-openvino`` build, whose OpenVINO provider also runs on AMD CPUs (measured above)."""
from __future__ import annotations

import logging
from importlib import metadata

from .errors import DependencyError

log = logging.getLogger("sitelens")

PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider")
FLAVOURS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")


def import_onnxruntime():
    """Import onnxruntime, with a clear error when it is missing or doubly installed."""
    flavours = []
    for dist in FLAVOURS:
        try:
            metadata.version(dist)
            flavours.append(dist)
        except metadata.PackageNotFoundError:
            pass
    if len(flavours) > 1:
        raise DependencyError(
            f"{' and '.join(flavours)} are installed together; they overwrite each other's onnxruntime module. "
            f"Uninstall them ({' '.join(flavours)}) and install exactly one: pip install 'sitelens[cpu]', "
            "'sitelens[gpu]' or 'sitelens[openvino]'"
        )
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyError(
            f"onnxruntime is not importable ({exc}); install 'sitelens[cpu]', 'sitelens[gpu]' or 'sitelens[openvino]'"
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


def provider_defaults(threads: int | None = None) -> dict[str, dict]:
    """Options sitelens gives a provider unless the caller gives its own: OpenVINO on the CPU in
    float32 arithmetic, with ``threads`` threads (its own pool, not ONNX Runtime's)."""
    openvino = {"device_type": "CPU", "precision": "FP32"}
    if threads:
        openvino["num_of_threads"] = str(int(threads))
    return {"OpenVINOExecutionProvider": openvino}


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
