"""Where a bundle build spends its time: named stages, timed.

``build_bundle`` and calibration time each stage with a :class:`StageClock`; the build logs the
stages at the end and hands them to a caller that asks (``bench/build_cost.py``). Stages nest by
name ("calibrate/look-alikes" inside "calibrate"); a stage entered twice adds up.
"""
from __future__ import annotations

import time
from contextlib import contextmanager


class StageClock:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._open: list[str] = []

    @contextmanager
    def stage(self, name: str):
        """Time the ``with`` block as ``name`` (under the enclosing stage's name, if any)."""
        full = "/".join([*self._open, name])
        self._open.append(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self._open.pop()
            self.seconds[full] = self.seconds.get(full, 0.0) + time.perf_counter() - start

    def top_level(self) -> dict[str, float]:
        return {k: v for k, v in self.seconds.items() if "/" not in k and k != "total"}

    def summary(self) -> str:
        """One line: each top-level stage's seconds, in order of entry."""
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.top_level().items())
