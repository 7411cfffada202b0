"""Helpers shared by the bench scripts (not part of the package): provenance, timing, results.

Every bench prints one JSON object that starts with ``provenance`` (git commit, the command and
its options, the machine: cores, CPU model and flags, library versions, and the date) and, with
``--out NAME``, also writes it to ``bench/results/NAME.json``; BENCHMARKS.md is generated from
those files by ``bench/report.py``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

# Importing the runtime quiets numpy's BLAS pool as a device app gets it (runtime/models/blas_threads.py),
# which works only before numpy loads: scripts that time the runtime import this module first.
from runtime.models.blas_threads import ENV as BLAS_ENV  # noqa: E402

import numpy as np  # noqa: E402

DEV_SETS = {"coil100": SHARED / "coil100" / "manifest.csv", "mcv_museum": SHARED / "mcv_museum" / "manifest.csv",
            "smvs_books": SHARED / "smvs_books" / "manifest.csv",
            "smvs_landmarks": SHARED / "smvs_landmarks" / "manifest.csv"}
OPEN_SETS = {name: SHARED / name / "manifest_openset.csv" for name in ("mcv_museum", "smvs_books", "smvs_landmarks")}


def site_manifest(name: str) -> Path:
    """The set's open-set manifest (its ``__unknown__`` photos measure false accepts) where it has
    one, else its plain manifest."""
    open_set = OPEN_SETS.get(name)
    return open_set if open_set is not None and open_set.exists() else DEV_SETS[name]

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "fma", "neon", "asimddp")


def _git(*args) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _dirty() -> bool:
    """Uncommitted changes to tracked files other than bench/results/ (the results of earlier benches
    in the same session are not a change to the code that measured)."""
    text = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results") or ""
    return bool(text.strip())


def machine() -> dict:
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), None)
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith(("flags", "Features"))), [])
        info.update(cpu=model, cpu_flags=[f for f in CPU_FLAGS if f in flags])
    except OSError:
        info["cpu"] = platform.processor()
    from runtime.versions import installed

    info["versions"] = installed(build=True)
    info["env"] = {BLAS_ENV: os.environ.get(BLAS_ENV)}
    return info


def provenance(args=None) -> dict:
    """Where a number comes from: commit (and whether the tree had uncommitted changes), the exact
    command and its parsed options, the machine and the date."""
    return {
        "commit": _git("rev-parse", "HEAD"), "dirty": _dirty(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} if args else {},
        "machine": machine(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def emit(result: dict, args=None, name: str | None = None, show: bool = True) -> dict:
    """Print the result with its provenance (first) and write bench/results/<name>.json if asked
    (``show=False``: write only, e.g. to keep the finished part of a long run)."""
    out = {"provenance": provenance(args), **result}
    text = json.dumps(out, indent=2, default=_jsonable)
    if show:
        print(text)
    if name:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(text + "\n")
    return out


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def percentiles(samples_s) -> dict:
    a = np.asarray(samples_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "n": int(len(a))}


def timed(fn, repeat: int, warmup: int = 2):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def timed_together(fns: dict, repeat: int, block: int = 5, pause: float = 0.1, warmup: int = 3) -> dict:
    """Seconds per call of several functions, timed in alternating blocks of ``block`` calls
    (a's block, b's block, a's block, ...) so that a slow spell of a shared machine falls on all of
    them alike: their ratios are what to quote. A ``pause`` before each block lets the previous
    library's worker threads stop spinning (OpenMP's do, for a while after each parallel region),
    so that one library's idle pool does not slow the next one down."""
    out = {name: [] for name in fns}
    for name, fn in fns.items():
        time.sleep(pause)
        for _ in range(warmup):
            fn()
    while min(len(v) for v in out.values()) < repeat:
        for name, fn in fns.items():
            time.sleep(pause)
            for _ in range(min(block, repeat - len(out[name]))):
                t = time.perf_counter()
                fn()
                out[name].append(time.perf_counter() - t)
    return out
