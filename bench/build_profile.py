"""What a bundle build spends its CPU on, stage by stage; one run, prints JSON (``--out NAME`` also
writes bench/results/NAME.json and NAME.png).

``bench/build_cost.py`` times the stages of ``sitelens bundle``; this says which work inside each
stage holds it back. One site of the shared sets' first ``--references`` reference images (the
order of build_cost.py) is built off the shelf with the defaults in one process (``workers=1``:
the profiler sees only its own process) under cProfile, one profile per stage (``StageClock``).
Each stage's seconds are split into components: the network (global descriptor), XFeat keypoint
extraction, the learned matcher (LighterGlue), mutual nearest neighbours, the two RANSAC fits,
the camera simulator, synthetic walls, labels and scenes, image decoding, and the rest (Python
glue: rules, bookkeeping). The profiler slows Python code more than the native work behind these
components, so the rest is overstated a little and the stages run longer than in build_cost.py.

    python bench/build_profile.py [--references 200] [--keep DIR] [--out build_profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from _common import RESULTS, emit  # first: before numpy loads (runtime/models/blas_threads.py)

from build_cost import bundle_bytes, real_references, write_site
from export.stages import StageClock

# component -> (file suffix, function name) of the functions whose time it is; time a component's
# functions spend inside one another counts once
COMPONENTS = {
    "network": [("runtime/models/embedder.py", "run")],
    "XFeat keypoints": [("runtime/verify/local_features.py", "extract")],
    "learned matcher": [("runtime/verify/glue.py", "match")],
    "mutual nearest neighbours": [("runtime/verify/matching.py", "mutual_nearest_many")],
    "homography RANSAC": [("~", "<findHomography>")],
    "fundamental RANSAC": [("~", "<findFundamentalMat>")],
    "camera simulator": [("training/simulator/camera_view.py", "__call__")],
    "walls, labels, scenes": [("training/simulator/backgrounds.py", "random_wall"),
                              ("training/simulator/backgrounds.py", "wall_label"),
                              ("training/simulator/clutter.py", "collage")],
    "image decoding": [("runtime/image/image_io.py", "load_image")],
}


def _key_matches(key: tuple, spec: tuple[str, str]) -> bool:
    path, _, name = key
    suffix, func = spec
    if suffix == "~":   # a builtin (OpenCV's functions): cProfile files it under "~"
        return path == "~" and name == func
    return path.replace("\\", "/").endswith(suffix) and name == func


def split(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of each component in one profile: for each of its functions, the cumulative time of
    the calls made from outside the component (recursion and one of its functions calling another
    count once)."""
    table = stats.stats   # key -> (primitive calls, calls, own time, cumulative time, callers)
    out = {}
    for name, specs in COMPONENTS.items():
        keys = {k for k in table for s in specs if _key_matches(k, s)}
        total = 0.0
        for k in keys:
            callers = table[k][4]
            total += sum(edge[3] for caller, edge in callers.items() if caller not in keys) if callers else table[k][3]
        out[name] = round(total, 2)
    return out


class ProfilingClock(StageClock):
    """A ``StageClock`` whose every stage also runs under its own cProfile profile (only the
    innermost open stage's profile is on: an outer stage's time in its inner ones is theirs)."""

    def __init__(self):
        super().__init__()
        self.profiles: dict[str, cProfile.Profile] = {}

    @contextmanager
    def stage(self, name: str):
        outer = self.profiles.get("/".join(self._open)) if self._open else None
        prof = self.profiles.setdefault("/".join([*self._open, name]), cProfile.Profile())
        if outer is not None:
            outer.disable()
        try:
            with super().stage(name):
                prof.enable()
                try:
                    yield
                finally:
                    prof.disable()
        finally:
            if outer is not None:
                outer.enable()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--references", type=int, default=200)
    ap.add_argument("--keep", help="keep the site and its bundle in this folder")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json and .png")
    args = ap.parse_args()
    from export.bundler import build_bundle

    work = Path(args.keep or tempfile.mkdtemp(prefix="build_profile_"))
    rows = real_references()[: args.references]
    manifest = write_site(rows, work / f"site_{len(rows)}" / "manifest.csv")
    out = work / f"site_{len(rows)}.sitelens"
    clock = ProfilingClock()
    start = time.perf_counter()
    build_bundle(manifest, out, None, progress=False, clock=clock, workers=1)
    wall = time.perf_counter() - start
    stages = {}
    for name, prof in clock.profiles.items():
        own = split(pstats.Stats(prof))
        nested = [k for k in clock.profiles if k.startswith(name + "/")]
        inner = sum(clock.seconds.get(k, 0.0) for k in nested if "/" not in k[len(name) + 1:])
        seconds = clock.seconds.get(name, 0.0) - inner     # the stage's own time, inner stages apart
        stages[name] = {"seconds": round(seconds, 1), "components": own,
                        "rest": round(max(seconds - sum(own.values()), 0.0), 1)}
    totals = {c: round(sum(s["components"][c] for s in stages.values()), 1) for c in COMPONENTS}
    totals["rest"] = round(sum(s["rest"] for s in stages.values()), 1)
    result = {"references": len(rows), "works": len({w for _, w in rows}), "workers": 1,
              "wall_seconds": round(wall, 1), "stages": stages, "components": totals,
              "bundle_mb": bundle_bytes(out)["file_mb"]}
    if args.out:
        plot(result, RESULTS / f"{args.out}.png")
    emit(result, args, args.out)


def plot(result: dict, path: Path) -> None:
    """One stacked bar per stage: its seconds split into components."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s, v in result["stages"].items() if v["seconds"] >= 1.0]
    names = [*COMPONENTS, "rest"]
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(stages) + 1.5))
    left = [0.0] * len(stages)
    colours = plt.get_cmap("tab10")
    for c, name in enumerate(names):
        widths = [result["stages"][s]["components"].get(name, result["stages"][s]["rest"] if name == "rest" else 0.0)
                  for s in stages]
        ax.barh(stages, widths, left=left, label=name, color=colours(c % 10))
        left = [a + b for a, b in zip(left, widths)]
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds, one process, {result['references']} reference images")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
