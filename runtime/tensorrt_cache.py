"""TensorRT engines are tied to one GPU model and TensorRT version: when ONNX Runtime's
TensorRT provider is used, engines are built at first open and cached beside the bundle
in ``<bundle>.trtcache/<gpu>__trt<version>/``, so later opens start fast."""
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
