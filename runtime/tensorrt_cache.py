"""TensorRT, one path: ONNX Runtime's TensorRT execution provider with its engine cache.

Engines are tied to one GPU model and TensorRT version, so the portable bundle carries none.
When ORT's TensorRT provider is available, ``Recognizer.open`` points it at
``<bundle>.trtcache/<gpu>__trt<version>/``: the first open on a device builds the engine there
(FP16, or INT8 from the QDQ model, with a profile for the bundle's input sizes), later opens
load it. ``sitelens export --tensorrt`` builds that cache on the export machine ahead of time
(``warm_engine_cache``). Without an NVIDIA GPU and ``onnxruntime-gpu`` + ``tensorrt`` every
entry point here raises ``DependencyError`` and the CPU path is unaffected."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import DependencyError


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


def provider_options(bundle: str | Path, precision: str, spec_size: int, max_batch: int = 8) -> dict:
    """Options for ORT's TensorrtExecutionProvider: engine cache + a profile for the bundle's sizes."""
    path = cache_dir(bundle)
    path.mkdir(parents=True, exist_ok=True)
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
    from .providers import import_onnxruntime

    cache_key()
    if "TensorrtExecutionProvider" not in import_onnxruntime().get_available_providers():
        raise DependencyError("onnxruntime has no TensorrtExecutionProvider here; install 'sitelens[gpu]' "
                              "(onnxruntime-gpu + tensorrt) on a machine with an NVIDIA GPU")


def warm_engine_cache(bundle: str | Path) -> Path:
    """Open the bundle with the TensorRT provider and run one frame, so the engine for this GPU is
    built into the bundle's engine cache now rather than at the first open on the device."""
    import numpy as np

    from .recognizer import Recognizer

    require_tensorrt()
    rec = Recognizer.open(bundle, providers=["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                             "CPUExecutionProvider"])
    size = rec.spec.size
    rec.embed(np.zeros((size, size, 3), np.uint8))
    return cache_dir(bundle)
