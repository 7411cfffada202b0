"""Warming a bundle's TensorRT engine cache: an export-side job, run on the device's GPU model
before shipping so the first open on the device does not build the engine. The cache's layout and
its integrity record live in ``runtime/models/tensorrt_cache.py``, which the device reads."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.models.tensorrt_cache import cache_dir, record_engines, require_tensorrt
from runtime.recognizer import Recognizer


def warm_engine_cache(bundle: str | Path) -> Path:
    """Open the bundle with the TensorRT provider and run one frame, so the engine for this GPU is
    built into the bundle's engine cache now rather than at the first open on the device."""
    require_tensorrt()
    rec = Recognizer.open(bundle, providers=["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                             "CPUExecutionProvider"])
    size = rec.spec.size
    rec.embed(np.zeros((size, size, 3), np.uint8))
    record_engines(cache_dir(bundle))
    return cache_dir(bundle)
