"""The shortlist's geometric verification, one local-feature kind against another, on real photos;
one run, prints JSON (``--out NAME`` also writes bench/results/).

For each dev set and each ``--verify`` choice (xfeat, the default; orb; sift; none: the global
descriptor alone), the same site and the same descriptor network, exactly as a site engineer would:

    sitelens export RUN --site SITE -o X.sitelens --verify MODE   (a training run, ``--model-dir``)
    sitelens bundle SITE -o X.sitelens --verify MODE              (off the shelf, without it)
    sitelens eval X.sitelens SITE --json                          (mP@1, TAR, FAR on real photos)

with SITE the set's open-set manifest, so every mode is calibrated for the same false-accept target
and its false accepts are counted on real photos of works the site does not hold. The cost per
photo is recognize() on the set's query photos (decoded arrays, one warm-up call, the same process
for every mode), and the bundle's size.

    python bench/verifiers.py [--sets smvs_books smvs_landmarks mcv_museum] [--model-dir DIR]
                              [--verify xfeat orb sift none] [--out verifiers]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import emit, percentiles, site_manifest, timed  # first: before numpy loads (runtime/models/blas_threads.py)

from hard_sets import evaluate, sitelens
from latency import cycle

from runtime.image.image_io import load_image
from runtime.verify.local_features import FEATURES

MODES = (*FEATURES, "none")


def recognize_times(bundle: Path, manifest: Path, limit: int) -> dict:
    """recognize() per query photo of the set (decoded beforehand), p50 / p95 ms."""
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries

    rec = Recognizer.open(bundle)
    images = [load_image(q.path) for q in load_queries(manifest)[:limit]]
    nxt = cycle(images)
    return percentiles(timed(lambda: rec.recognize(nxt()), len(images), warmup=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=["smvs_books", "smvs_landmarks", "mcv_museum"])
    ap.add_argument("--model-dir", help="folder with a training run per set, <set>_run (as hard_sets.py --keep "
                                        "leaves them); without it the bundles are off the shelf")
    ap.add_argument("--verify", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--timed", type=int, default=60, help="query photos timed per bundle")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    result = {"model": "fine-tuned" if args.model_dir else "off the shelf", "sets": {}}
    with tempfile.TemporaryDirectory(prefix="verifiers_") as tmp:
        for name in args.sets:
            manifest = site_manifest(name)
            run = Path(args.model_dir) / f"{name}_run" if args.model_dir else None
            if run is not None and not (run / "model.pt").exists():
                raise SystemExit(f"{run}: no finished training run (model.pt) for {name}")
            rows = {}
            for mode in args.verify:
                bundle = Path(tmp) / f"{name}_{mode}.sitelens"
                build = ("export", run, "--site", manifest) if run else ("bundle", manifest)
                _, seconds = sitelens(*build, "-o", bundle, "--verify", mode)
                row = evaluate(bundle, manifest)
                row["build_seconds"] = round(seconds, 1)
                row["recognize_ms"] = recognize_times(bundle, manifest, args.timed)
                rows[mode] = row
                bundle.unlink()
                result["sets"][name] = {"manifest": manifest.name, "verify": rows}
                emit(result, args, args.out, show=False)  # the results file holds every finished row
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
