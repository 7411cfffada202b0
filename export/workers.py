"""Build stages over independent items (reference images, calibration samples) in a pool of
processes, ``--workers N``.

``Pool(state, make_state, make_args, workers).map(task, items)`` calls ``task(state, item)`` for
every item and returns the results in the items' order (``run``: one stage in a pool of its own). With one worker everything runs in this process on
``state`` (the objects the build already holds). With more, each worker process (spawned, so no
ONNX Runtime thread pool is inherited half-initialised from a fork) builds its own state once with
``make_state(*make_args)`` (models from their ONNX bytes) and ONNX Runtime, numpy's BLAS and
OpenCV each run with ``cores // workers`` threads in it (``limit_threads``), so the pool does not
oversubscribe the machine: left at one thread per core each, two workers' matrix products and
RANSAC fits on two cores left a build no quicker than one process (``bench/build_cost.py --workers``).

Results do not depend on the number of workers: each item carries everything that decides its
result (its seeds included), and ONNX Runtime's CPU kernels give the same outputs at any thread
count (``tests/export/test_workers.py``). Items and results cross process boundaries as Python
objects of this package (numpy arrays, dataclasses), between processes of the same build; nothing
read from a file or a bundle is unpickled.
"""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable

from tqdm import tqdm

_STATE: Any = None  # the worker's own state (models), made once by _start


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """Workers when the user gave none: one per core, at most 8 (each holds its own models)."""
    return min(cores(), 8)


def threads_per_worker(workers: int) -> int:
    return max(1, cores() // max(workers, 1))


def limit_threads(threads: int) -> None:
    """numpy's BLAS and OpenCV in this process use at most ``threads`` threads from now on (ONNX
    Runtime's sessions take theirs when made). For worker processes: each library's pool starts
    with one thread per core, whatever the other workers run, and a BLAS call whose threads are
    descheduled waits for the slowest. The outputs do not depend on it (the products and fits are
    the same at any thread count: ``tests/export/test_workers.py``)."""
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(int(threads))
    threadpool_limits(int(threads))


def _start(make_state: Callable, make_args: tuple, threads: int) -> None:
    global _STATE
    limit_threads(threads)
    _STATE = make_state(*make_args)


def _call(task: Callable, item) -> Any:
    return task(_STATE, item)


class Pool:
    """``with Pool(state, make_state, make_args, workers) as pool: pool.map(task, items)``: the
    same pool (and each worker's models) for several stages. ``task`` and ``make_state`` must be
    module-level functions (they are named, not pickled, across processes)."""

    def __init__(self, state: Any, make_state: Callable, make_args: tuple, workers: int = 1):
        self.state, self.make_state, self.make_args = state, make_state, make_args
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Pool":
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start,
                                             initargs=(self.make_state, self.make_args,
                                                       threads_per_worker(self.workers)))
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def map(self, task: Callable, items: Iterable, desc: str = "", progress: bool = True,
            batch: int | None = None) -> list:
        """``[task(state, item) for item in items]`` in the items' order. ``items`` may be a
        generator: at most ``batch`` of them (default: all) are taken and not yet answered at any
        time, so at most that many (images, say) are held at once. In a pool, an item is handed
        to the next free worker as soon as one finishes, with no wait for a batch's slowest item
        (a barrier per batch, or a long last share of items, left a core idle at every end)."""
        out: list = []
        total = len(items) if hasattr(items, "__len__") else None
        with tqdm(total=total, desc=desc, unit="item", disable=not progress) as bar:
            if self._pool is None:
                for item in items:
                    out.append(task(self.state, item))
                    bar.update()
                return out
            window = max(1, int(batch)) if batch else None
            pending: deque = deque()
            for item in items:
                pending.append(self._pool.submit(_call, task, item))
                if window is not None and len(pending) >= window:
                    out.append(pending.popleft().result())
                    bar.update()
            while pending:
                out.append(pending.popleft().result())
                bar.update()
        return out


def run(task: Callable, items: Iterable, state: Any, make_state: Callable, make_args: tuple, workers: int = 1,
        desc: str = "", progress: bool = True) -> list:
    """One stage's ``Pool.map`` in a pool of its own (none when ``workers`` <= 1)."""
    items = list(items)
    with Pool(state, make_state, make_args, min(workers, len(items)) if len(items) > 1 else 1) as pool:
        return pool.map(task, items, desc, progress)
