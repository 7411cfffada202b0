"""Area-averaging downscale (OpenCV's ``INTER_AREA``) on several cores, with the same result.

OpenCV runs ``INTER_AREA`` at a non-integer factor as one task when the output is small (its work
split is sized by output pixels: a 224 x 398 network input is one stripe), so a 1280 x 720 camera
frame is resized on one core while the others wait (``bench/latency.py`` times preprocessing). Output rows whose area boundaries fall on
a whole input row split the image into independent bands: band k maps input rows
[k * h / th, ...) to output rows [k, ...) at the same factor, so each band is resized by its own
``cv2.resize`` call (OpenCV releases the GIL; the caller takes the first band, a shared pool the
others) and the bands are written into one output array.
Only such exact cuts are used (16:9 frames to a 224-row input have one at the middle row); without
one, or for small images, it is one ``cv2.resize`` call.

Thread safety: ``area_resize`` may be called from any number of threads at once; the pool is
shared, created on first use, and made anew in a forked child process.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from math import gcd

import cv2
import numpy as np

MIN_SPLIT_PIXELS = 100_000  # input pixels below which one call is cheaper than handing out bands
MAX_BANDS = 4  # bands per image, at most one per core
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool_in_child() -> None:
    """A forked child (e.g. a DataLoader worker) has the parent's pool object but none of its
    threads: it must make its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_BANDS, _workers()) - 1),
                                       thread_name_prefix="sitelens-resize")
        return _pool


def exact_cuts(h: int, th: int, parts: int) -> list[int]:
    """Output rows (0 < r < th) where an area downscale of ``h`` rows to ``th`` can be cut exactly
    (r * h / th is a whole input row), the ones nearest to ``parts`` equal bands, without repeats."""
    step = th // gcd(h, th)  # output rows between exact cuts
    cuts = []
    for k in range(1, parts):
        r = round(th * k / parts / step) * step
        if 0 < r < th and r not in cuts:
            cuts.append(r)
    return cuts


def area_resize(img: np.ndarray, size: tuple[int, int], parts: int | None = None) -> np.ndarray:
    """``cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)`` for ``size = (th, tw)`` smaller than
    ``img``, split into row bands resized in parallel where the cuts are exact (same output)."""
    th, tw = size
    h, w = img.shape[:2]
    parts = min(MAX_BANDS, _workers()) if parts is None else parts
    cuts = exact_cuts(h, th, parts) if parts > 1 and h * w >= MIN_SPLIT_PIXELS else []
    if not cuts:
        return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    out = np.empty((th, tw) + img.shape[2:], dtype=img.dtype)
    bounds = [0, *cuts, th]

    def band(i: int) -> None:
        r0, r1 = bounds[i], bounds[i + 1]
        src = img[r0 * h // th:r1 * h // th]
        cv2.resize(src, (tw, r1 - r0), dst=out[r0:r1], interpolation=cv2.INTER_AREA)

    others = [_shared_pool().submit(band, i) for i in range(1, len(bounds) - 1)]
    band(0)  # the calling thread takes the first band instead of waiting
    for f in others:
        f.result()
    return out
