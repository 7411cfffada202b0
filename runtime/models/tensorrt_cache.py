"""TensorRT, one path: ONNX Runtime's TensorRT execution provider with its engine cache.

Engines are tied to one GPU model and TensorRT version, so the portable bundle carries none.
When ORT's TensorRT provider is available, ``Recognizer.open`` points it at
``<bundle>.trtcache/<gpu>__trt<version>/``: the first open on a device builds the engine there
(FP16, or INT8 from the QDQ model, with a profile for the bundle's input sizes), later opens
load it. ``sitelens export --tensorrt`` builds that cache on the export machine ahead of time
(``warm_engine_cache``). Without an NVIDIA GPU and ``onnxruntime-gpu`` + ``tensorrt`` every
entry point here raises ``DependencyError`` and the CPU path is unaffected.

The engine cache is outside the bundle's signature, and an engine is code the GPU runs: the sha256
of every file in a cache folder is recorded when sitelens built it (``record_engines``) and checked
before the provider may load from it (``check_engines``); a folder with a changed, unlisted or
unrecorded file is emptied and its engines are built again. Who can rewrite the folder can rewrite
the list too: keep the cache in the app's private storage (it lives beside the bundle)."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

from runtime.errors import DependencyError

log = logging.getLogger("sitelens")
SUMS = "engines.sha256.json"


def gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    name = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    return name


def tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt.__version__


def cache_key() -> str:
    gpu, trt = gpu_name(), tensorrt_version()
    if not gpu or not trt:
        raise DependencyError("TensorRT needs an NVIDIA GPU (nvidia-smi) and the tensorrt package "
                              f"(found GPU {gpu!r}, tensorrt {trt!r}); install 'sitelens[gpu]' on a GPU machine")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{gpu}__trt{trt}")


def cache_dir(bundle: str | Path) -> Path:
    return Path(f"{bundle}.trtcache") / cache_key()


def _digests(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(folder.iterdir()):
        if f.name != SUMS and f.is_file() and not f.is_symlink():
            out[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def record_engines(folder: str | Path) -> dict[str, str]:
    """Write the sha256 of every file in ``folder`` (engines sitelens just built) to its list."""
    from runtime.bundle.format import atomic_write

    folder = Path(folder)
    sums = _digests(folder)
    atomic_write(folder / SUMS, lambda fh: fh.write(json.dumps(sums, indent=1).encode()))
    return sums


def check_engines(folder: str | Path) -> bool:
    """True when every file in ``folder`` is one sitelens recorded, unchanged (or the folder is
    empty); otherwise the folder is emptied (its engines are built again) and False returned."""
    folder = Path(folder)
    if not folder.is_dir():
        return True
    present = [f for f in folder.iterdir() if f.name != SUMS]
    if not present:
        return True
    try:
        recorded = json.loads((folder / SUMS).read_text())
        ok = isinstance(recorded, dict) and not any(f.is_symlink() or not f.is_file() for f in present) \
            and all(recorded.get(name) == digest for name, digest in _digests(folder).items())
    except (OSError, ValueError, RecursionError):
        ok = False
    if not ok:
        log.warning("sitelens: %s holds engine files sitelens did not build or that changed since; removing them "
                    "(the engines are built again)", folder)
        for f in folder.iterdir():
            if f.is_dir() and not f.is_symlink():
                shutil.rmtree(f)
            else:
                f.unlink()
    return ok


def provider_options(bundle: str | Path, precision: str, spec_size: int, max_batch: int = 8) -> dict:
    """Options for ORT's TensorrtExecutionProvider: engine cache + a profile for the bundle's sizes.
    The cache folder is checked first (``check_engines``)."""
    path = cache_dir(bundle)
    path.mkdir(parents=True, exist_ok=True)
    check_engines(path)
    lo, hi = spec_size // 2, spec_size * 2
    return {
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(path), "trt_timing_cache_enable": True,
        "trt_fp16_enable": precision in ("fp16", "int8"), "trt_int8_enable": precision == "int8",
        "trt_profile_min_shapes": f"image:1x{lo}x{lo}x3",
        "trt_profile_opt_shapes": f"image:1x{spec_size}x{spec_size}x3",
        "trt_profile_max_shapes": f"image:{max_batch}x{hi}x{hi}x3",
    }


def require_tensorrt() -> None:
    """Raise DependencyError unless ORT's TensorRT provider can run on this machine."""
    from runtime.models.providers import import_onnxruntime

    cache_key()
    if "TensorrtExecutionProvider" not in import_onnxruntime().get_available_providers():
        raise DependencyError("onnxruntime has no TensorrtExecutionProvider here; install 'sitelens[gpu]' "
                              "(onnxruntime-gpu + tensorrt) on a machine with an NVIDIA GPU")
