"""Choosing ONNX Runtime execution providers: TensorRT > CUDA > OpenVINO > CPU, whatever is installed.

Three flavours of ONNX Runtime install the same ``onnxruntime`` module: ``onnxruntime`` (CPU),
``onnxruntime-gpu`` (CUDA, TensorRT) and ``onnxruntime-openvino`` (OpenVINO's CPU plugin beside
ONNX Runtime's own CPU provider). On an x86 CPU the OpenVINO provider runs sitelens's network in
less time than ONNX Runtime's CPU provider, with the same descriptors and decisions
(``bench/latency.py`` interleaves the two providers; BENCHMARKS.md, "Latency"). The bundle's helper
models (XFeat, LighterGlue) run on it too, with the same keypoints, matches, decisions and scores
frame by frame. It is asked
for float32 arithmetic (``precision`` FP32, not the bfloat16 OpenVINO would pick on CPUs that
have it), so that a bundle's calibrated thresholds hold as they were measured.

The OpenVINO plugin for ONNX Runtime's newer plugin interface (``onnxruntime-ep-openvino``) offers
its devices on Intel hardware only (it checks the CPU's vendor id), so sitelens uses the
``onnxruntime-openvino`` build, whose OpenVINO provider also runs on AMD CPUs (measured above)."""
from __future__ import annotations

import logging
from importlib import metadata

from runtime.errors import BundleError, DependencyError

log = logging.getLogger("sitelens")

PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider")
FLAVOURS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")
# short names (the CLI's --provider) -> the providers to request, best first
NAMED = {"cpu": ["CPUExecutionProvider"], "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
         "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
         "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


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

    Spinning only while a run lasts (``session.force_spinning_stop``) makes the network alone a
    little faster but ``recognize()`` with verification, or with a capture thread decoding beside
    it, no faster; it stays off."""
    opts = import_onnxruntime().SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    return opts


def open_session(model: bytes | str, source: str, wanted: list[str], options: dict | None = None,
                 threads: int | None = None, fallback: bool = True):
    """An ONNX Runtime session on the ``wanted`` providers (with ``options`` per provider over
    ``provider_defaults``); if they cannot load the model and ``fallback``, the CPU provider alone
    (with a warning). A model nothing loads is a BundleError naming ``source``."""
    ort = import_onnxruntime()
    opts = session_options(threads)
    given = {**provider_defaults(threads), **(options or {})}
    with_options = [(p, given[p]) if p in given else p for p in wanted]
    try:
        try:
            return ort.InferenceSession(model, sess_options=opts, providers=with_options)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            if wanted == ["CPUExecutionProvider"] or not fallback:
                raise
            log.warning("sitelens: %s with %s failed (%s); falling back to CPU", source, wanted, exc)
            return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a model no provider can load
        raise BundleError(f"{source}: ONNX Runtime cannot load the model ({exc})") from None


def helper_session(onnx_bytes: bytes, source: str, fingerprint_key: str, fingerprint: str | None,
                   threads: int | None = None, providers: list[str] | None = None):
    """(session, fingerprint found) for one of a bundle's helper models (local features, matcher),
    on the CPU: OpenVINO's provider where installed (the same keypoints and matches, a little
    sooner), else ONNX Runtime's; ``providers`` (the recognizer's request) narrows that choice. The
    model's fingerprint must be the one the manifest names (None: not checked)."""
    wanted = [p for p in choose_providers(providers) if p in ("OpenVINOExecutionProvider", "CPUExecutionProvider")]
    session = open_session(onnx_bytes, source, wanted or ["CPUExecutionProvider"], threads=threads,
                           fallback=not providers)
    found = session.get_modelmeta().custom_metadata_map.get(fingerprint_key)
    if fingerprint is not None and found != fingerprint:
        raise BundleError(f"{source}: model fingerprint mismatch (manifest {fingerprint!r}, model {found!r}); "
                          "re-export the bundle")
    return session, found
