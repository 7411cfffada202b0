"""Helpers shared by the bench scripts (not part of the package)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

DEV_SETS = {"coil100": SHARED / "coil100" / "manifest.csv", "mcv_museum": SHARED / "mcv_museum" / "manifest.csv"}


def percentiles(samples_s) -> dict:
    a = np.asarray(samples_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def timed(fn, repeat: int, warmup: int = 2):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out
