"""Query-side regions for the object inside a cluttered frame (issue 11, point 3): does describing a
few crops of the frame (an R-MAC-style grid, in one batch) and keeping each reference's best match
put the right work on the shortlist more often than the full frame alone, and at what cost?

The shortlist is what matters: verification re-ranks it, so recall@k for k = 1, 5, 10 (the
verifier's candidates) is reported per variant, with the network time per frame. Prints JSON
(``--out NAME`` also writes bench/results/NAME.json).

    python bench/regions.py [--sets smvs_books smvs_landmarks mcv_museum] [--model-dir DIR]

``--model-dir``: a folder with ``<set>_ft.sitelens`` bundles (e.g. ``bench/hard_sets.py --keep DIR``)
to measure the fine-tuned networks too; off-the-shelf bundles are built here.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit, site_manifest

from export.bundler import build_bundle
from runtime.image.image_io import load_image
from runtime.metrics import recall_at_k
from runtime.recognizer import Recognizer
from runtime.site import load_queries

KS = (1, 5, 10)


def grid(img: np.ndarray, share: float) -> list[np.ndarray]:
    """The frame and five crops of ``share`` of each side: centre and the four corners."""
    h, w = img.shape[:2]
    ch, cw = int(h * share), int(w * share)
    corners = [((h - ch) // 2, (w - cw) // 2), (0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)]
    return [img] + [img[y:y + ch, x:x + cw] for y, x in corners]


def ranked(scores: np.ndarray, labels: np.ndarray) -> list[str]:
    seen: dict[str, None] = {}
    for j in np.argsort(-scores):
        seen.setdefault(labels[j], None)
    return list(seen)


def measure(rec: Recognizer, queries, share: float) -> dict:
    refs = rec.index.descriptors
    labels = np.asarray(rec.index.instances)
    variants = {"full_frame": [], "max_over_crops": [], "mean_over_crops": []}
    seconds = {"full_frame": [], "crops_batch": []}
    for q in queries:
        img = load_image(q.path)
        t = time.perf_counter()
        full = rec.embedder.run(rec.embedder.prepare(img)[None])
        seconds["full_frame"].append(time.perf_counter() - t)
        t = time.perf_counter()
        crops = grid(img, share)[1:]
        batch = np.stack([rec.embedder.prepare(c) for c in crops])  # same aspect: one batch
        descs = np.vstack([full, rec.embedder.run(batch)])
        seconds["crops_batch"].append(time.perf_counter() - t)
        sims = refs @ descs.T
        for name, s in (("full_frame", sims[:, 0]), ("max_over_crops", sims.max(1)),
                        ("mean_over_crops", sims.mean(1))):
            order = ranked(s, labels)
            variants[name].append([recall_at_k(order, q.instances, k) for k in KS])
    out = {name: {f"recall@{k}": round(float(np.mean([r[i] for r in rows])), 4) for i, k in enumerate(KS)}
           for name, rows in variants.items()}
    out["network_ms_per_frame"] = {k: round(1000 * float(np.median(v)), 1) for k, v in seconds.items()}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=["smvs_books", "smvs_landmarks", "mcv_museum"])
    ap.add_argument("--share", type=float, default=0.7, help="crop side as a share of the frame's side")
    ap.add_argument("--model-dir", help="folder with <set>_ft.sitelens bundles (fine-tuned networks)")
    ap.add_argument("--out", help="also write bench/results/OUT.json")
    args = ap.parse_args()
    result = {"share": args.share, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            manifest = site_manifest(name)
            queries = [q for q in load_queries(manifest) if q.instances]
            bundles = {"off_the_shelf": build_bundle(manifest, Path(tmp) / f"{name}.sitelens", progress=False,
                                                     verify=None, calibrate=False, upright=True)}
            if args.model_dir and (Path(args.model_dir) / f"{name}_ft.sitelens").exists():
                bundles["fine_tuned"] = Path(args.model_dir) / f"{name}_ft.sitelens"
            result["sets"][name] = {kind: measure(Recognizer.open(b), queries, args.share)
                                    for kind, b in bundles.items()}
            result["sets"][name]["queries"] = len(queries)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
