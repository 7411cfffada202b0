"""How far the camera-view simulator is from real visitor photos, per dev set; prints JSON and
writes a picture (histograms, simulated vs real).

For each set: the global score of the right answer and of the best wrong answer, and the
geometric support of the right answer and of the best wrong one, for the set's real query photos
and for simulated views of its references (same bundle, same recognition path). Where the
simulated distributions sit above the real ones, calibration and training learn from views that
are easier than what a device sees.

    python bench/sim_vs_real.py [--sets smvs_books smvs_landmarks mcv_museum coil100] [--model run/]
                                [--png bench/results/sim_vs_real.png] [--out sim_vs_real]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import RESULTS, emit, site_manifest

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def evidence_rows(rec, items):
    """items: (image, truth instance) -> per item: right score, best wrong score, right support, wrong support."""
    rows = []
    for img, truth in items:
        f = rec.findings(img, rec.embedder.embed(img), "exact", k=10, all_passes=True)
        scores = {h[0]: h[1] for h in f.hits}
        ev = f.verification or {}
        right = scores.get(truth, np.nan)
        wrong = max((s for i, s in scores.items() if i != truth), default=np.nan)
        rs = ev[truth].support if truth in ev else 0.0
        ws = max((e.support for i, e in ev.items() if i != truth), default=0.0)
        rows.append((right, wrong, rs, ws))
    return np.array(rows, float)


def summary(values: np.ndarray) -> dict:
    v = values[np.isfinite(values)]
    return {"n": int(len(v)), **{f"q{int(q * 100)}": round(float(np.quantile(v, q)), 4) for q in QUANTILES}} if len(v) \
        else {"n": 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=["smvs_books", "smvs_landmarks", "mcv_museum", "coil100"])
    ap.add_argument("--model", help="training run folder (default: off the shelf)")
    ap.add_argument("--views", type=int, default=2, help="simulated views per reference (at most 300 references)")
    ap.add_argument("--png", default=str(RESULTS / "sim_vs_real.png"))
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    from export.bundler import build_bundle
    from runtime.image.image_io import load_image
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries, load_site
    from training.simulator import CameraViewSimulator
    from training.simulator.sampler import pick, views_of

    result, curves = {"sets": {}}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            manifest = site_manifest(name)
            bundle = build_bundle(manifest, Path(tmp) / f"{name}.sitelens", args.model, calibrate=False,
                                  progress=False)
            rec = Recognizer.open(bundle)
            real = [(load_image(q.path), next(iter(q.instances))) for q in load_queries(manifest) if q.instances]
            site = load_site(manifest)
            rng = np.random.default_rng(0)
            sim = CameraViewSimulator(seed=0)
            refs = [site.references[i] for i in pick(len(site.references), 300, rng)]
            views, source = views_of((load_image(r.path) for r in refs), args.views, sim, rng)
            simulated = [(view, refs[i].instance) for view, i in zip(views, source)]
            r_rows, s_rows = evidence_rows(rec, real), evidence_rows(rec, simulated)
            curves[name] = (r_rows, s_rows)
            keys = ("right_score", "best_wrong_score", "right_support", "best_wrong_support")
            result["sets"][name] = {
                "real": {k: summary(r_rows[:, i]) for i, k in enumerate(keys)},
                "simulated": {k: summary(s_rows[:, i]) for i, k in enumerate(keys)},
                "median_gap_sim_minus_real": {k: round(float(np.nanmedian(s_rows[:, i]) - np.nanmedian(r_rows[:, i])), 4)
                                              for i, k in enumerate(keys)},
            }
    result["png"] = plot(curves, Path(args.png))
    emit(result, args, args.out)


def plot(curves: dict, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    titles = ("right answer: global score", "best wrong: global score", "right answer: support", "best wrong: support")
    fig, axes = plt.subplots(len(curves), 4, figsize=(16, 3 * len(curves)), squeeze=False)
    for row, (name, (real, sim)) in enumerate(curves.items()):
        for col in range(4):
            ax = axes[row][col]
            r, s = real[:, col], sim[:, col]
            r, s = r[np.isfinite(r)], s[np.isfinite(s)]
            hi = max(np.max(r, initial=1), np.max(s, initial=1))
            lo = min(np.min(r, initial=0), np.min(s, initial=0))
            # support: a bin for "no support" (0), then log-spaced bins, so the two bulks are both visible
            bins = np.concatenate([[0.0, 1.0], np.geomspace(1.0, hi, 30)[1:]]) if col in (2, 3) and hi > 1 \
                else np.linspace(lo, hi, 30)
            # shares of samples per bin (not densities: the support bins have very different widths)
            ax.hist(s, bins, alpha=0.5, weights=np.full(len(s), 1 / max(len(s), 1)), label="simulated", color="C0")
            ax.hist(r, bins, alpha=0.5, weights=np.full(len(r), 1 / max(len(r), 1)), label="real", color="C3")
            ax.set_title(f"{name}: {titles[col]}", fontsize=9)
            if col in (2, 3):
                ax.set_xscale("symlog", linthresh=1.0)
        axes[row][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)


if __name__ == "__main__":
    main()
