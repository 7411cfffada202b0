"""numpy's BLAS thread pool on a small device: no busy-waiting after each call.

Verification matches the frame's local descriptors against the shortlist's with matrix products
(``runtime/verify/matching.py``), which numpy hands to OpenBLAS, multi-threaded. After every call
OpenBLAS's worker threads spin, by default for about 2^28 cycles (a tenth of a second), waiting
for the next one. On a 2-core device they then compete with ONNX Runtime's threads for the next
network run, and the network and XFeat right after a match run markedly slower (``bench/latency.py``
measures ``recognize()`` with the setting in place; BENCHMARKS.md, "Latency"). ONNX Runtime's own sessions are made without
spinning for the same reason (``runtime/models/embedder.py``).

OpenBLAS reads its spin time (``OPENBLAS_THREAD_TIMEOUT``, 2^N cycles, N from 4 to 30) once, when
numpy loads it, and has no call to change it later. So the runtime sets it, unless the environment
already does, on import, and that works only if numpy is not loaded yet: an app that imports numpy
(or OpenCV, which imports numpy) before sitelens sets ``OPENBLAS_THREAD_TIMEOUT=4`` in its own
environment instead. numpy builds on other BLAS libraries are left as they are.
"""
from __future__ import annotations

import os
import sys

ENV = "OPENBLAS_THREAD_TIMEOUT"
QUIET = "4"  # the smallest OpenBLAS accepts: 2^4 cycles, i.e. threads sleep as soon as a call ends


def quiet_blas_threads() -> bool:
    """Ask OpenBLAS not to spin between calls. True when it can still take effect (numpy not loaded
    yet, or the environment already said how long to spin), False when numpy came first."""
    if ENV in os.environ:
        return True
    if "numpy" in sys.modules:
        return False
    os.environ[ENV] = QUIET
    return True
