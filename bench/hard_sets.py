"""The product's defaults on real photos, one run; prints JSON (``--out NAME`` also writes
bench/results/). For each dev set, exactly what a site engineer runs:

    sitelens bundle SITE -o off.sitelens                       (off the shelf)
    sitelens train SITE -o run/ ; sitelens export run/ --site SITE -o ft.sitelens
    sitelens eval BUNDLE SITE --json                           (mP@1, mAP, TAR, FAR on the query rows)

with SITE the set's ``manifest_openset.csv`` where it has one (its ``__unknown__`` photos measure
the false-accept rate on real photos), and, measured in the same run as the anchor, classical
SIFT + RANSAC against every reference.

    python bench/hard_sets.py [--sets smvs_books smvs_landmarks mcv_museum coil100] [--keep DIR [--reuse-runs]]
                              [--out hard_sets]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, ROOT, emit, site_manifest  # first: before numpy loads (runtime/models/blas_threads.py)

import numpy as np
from latency import SiftAll

KEYS = ("queries", "known", "unknown", "mP@1", "mAP", "recall@5", "accuracy", "true_accept_rate", "wrong_accept_rate",
        "false_accept_rate", "GAP")


def sitelens(*args) -> tuple[str, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "sdk.cli", "-q", *map(str, args)], cwd=ROOT, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"sitelens {' '.join(map(str, args))} failed:\n{out.stderr[-3000:]}")
    return out.stdout, time.perf_counter() - t


def evaluate_multi(bundle: Path, manifest: Path) -> dict:
    """``sitelens eval BUNDLE MANIFEST --multi --json`` on photos that show several works."""
    stdout, seconds = sitelens("eval", bundle, manifest, "--multi", "--json")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {k: result.get(k) for k in ("queries", "multi_recall", "multi_precision", "multi_answers", "mP@1")}


def evaluate(bundle: Path, manifest: Path, picture: Path | None = None) -> dict:
    """``sitelens eval --json``; with ``picture``, also its report (failures, score histograms, ROC) as PNG."""
    extra = ("--report", picture, "--site", manifest) if picture else ()
    stdout, seconds = sitelens("eval", bundle, manifest, "--json", *extra)
    result = json.loads(stdout.strip().splitlines()[-1])
    row = {k: result.get(k) for k in KEYS}
    row["eval_ms_per_query"] = round(1000 * seconds / max(1, result["queries"]), 1)
    row["bundle_mb"] = round(bundle.stat().st_size / 1e6, 1)
    return row


def sift_anchor(manifest: Path) -> dict:
    from runtime.image.image_io import load_image
    from runtime.site import load_queries, load_site

    site = load_site(manifest)
    sift = SiftAll([load_image(r.path) for r in site.references])
    names = [r.instance for r in site.references]
    known = [q for q in load_queries(manifest) if q.instances]
    t = time.perf_counter()
    right = [(i := sift.best(load_image(q.path))) >= 0 and names[i] in q.instances for q in known]
    return {"mP@1": round(float(np.mean(right)), 4), "queries": len(known), "references": len(names),
            "ms_per_query": round(1000 * (time.perf_counter() - t) / max(1, len(known)), 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=["smvs_books", "smvs_landmarks", "mcv_museum", "coil100"])
    ap.add_argument("--sift-max-refs", type=int, default=300, help="skip the SIFT anchor on larger sites")
    ap.add_argument("--keep", help="keep bundles and runs in this folder")
    ap.add_argument("--reuse-runs", action="store_true",
                    help="with --keep: use finished training runs found there (their train_seconds are reported)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="hard_sets_"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"sets": {}}
    for name in args.sets:
        manifest = site_manifest(name)
        row: dict = {"manifest": manifest.name}
        from runtime.site import load_site

        if len(load_site(manifest).references) <= args.sift_max_refs:
            row["sift_ransac_all_references"] = sift_anchor(manifest)
        off = work / f"{name}_off.sitelens"
        _, row["bundle_seconds"] = sitelens("bundle", manifest, "-o", off)
        picture = (lambda kind: RESULTS / f"{args.out}_{name}_{kind}.png" if args.out else None)
        row["off_the_shelf"] = evaluate(off, manifest, picture("off"))
        multi = manifest.parent / "manifest_multi.csv"   # photos of several works (mcv_museum)
        if multi.exists():
            row["off_the_shelf"]["multi"] = evaluate_multi(off, multi)
        run = work / f"{name}_run"
        if args.reuse_runs and (run / "model.pt").exists() and (run / "config.json").exists():
            # a finished training run from an earlier invocation (same --keep folder): its own timing
            row["train_seconds"] = json.loads((run / "config.json").read_text())["train_seconds"]
            row["training_reused"] = True
        else:
            _, row["train_seconds"] = sitelens("train", manifest, "-o", run, "--no-resume")
        ft = work / f"{name}_ft.sitelens"
        _, row["export_seconds"] = sitelens("export", run, "--site", manifest, "-o", ft)
        row["fine_tuned"] = evaluate(ft, manifest, picture("ft"))
        if multi.exists():
            row["fine_tuned"]["multi"] = evaluate_multi(ft, multi)
        config = json.loads((run / "config.json").read_text())
        row["training"] = {"epochs": config["epochs"], "best": config["best"], "whitening": config["whitening"]}
        for key in ("bundle_seconds", "train_seconds", "export_seconds"):
            row[key] = round(row[key], 1)
        result["sets"][name] = row
        emit(result, args, args.out, show=False)  # the results file holds every finished set
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
