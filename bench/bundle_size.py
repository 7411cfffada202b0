"""Bytes per work against answers: which reference local features can a site drop?

The bundle's main cost per reference image is its local features (``verify_desc.npy``, keypoints
in ``verify_kpts.npy``): this bench builds each open dev set's site with each variant of the
bundle options that set their number (``--ref-keypoints``, ``--spread-keypoints``,
``--turned-features``, ``--descriptor-code``) or the work verification does per frame
(``--glue-keypoints``, ``--glue-layers``), off the shelf and otherwise with the defaults, and reports for each the
build time (when built in the run), the bytes per reference image, per member (``sitelens inspect
--json``) beside the set's scores (``sitelens eval --json``: mP@1, TAR, WAR, FAR, GAP on its
open-set manifest) and eval's time per query. One run, prints
JSON (``--out NAME`` also writes bench/results/).

    python bench/bundle_size.py [--sets ...] [--variants default ref256_spread ...] [--keep DIR]
                                [--workers N] [--out bundle_size]

``--keep DIR``: bundles are kept and reused (the default variant is the ``DIR/<set>.sitelens``
that ``bench/large_site.py`` and ``bench/learn_from_visitors.py`` build there).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import OPEN_SETS, emit, site_manifest  # first: before numpy loads

from hard_sets import evaluate, sitelens
from large_site import rows_of, write

VARIANTS = {
    "default": (),
    "ref256_spread": ("--ref-keypoints", "256", "--spread-keypoints"),
    "ref128_spread": ("--ref-keypoints", "128", "--spread-keypoints"),
    "query": ("--turned-features", "query"),
    "pca32": ("--descriptor-code", "pca32"),
    "pca48": ("--descriptor-code", "pca48"),
    "query_pca32": ("--turned-features", "query", "--descriptor-code", "pca32"),
    "upright_pca32": ("--upright", "--descriptor-code", "pca32"),
    "ref256_spread_query": ("--ref-keypoints", "256", "--spread-keypoints", "--turned-features", "query"),
    "glue3": ("--glue-layers", "3"),
    "glue4": ("--glue-layers", "4"),
    "glue5": ("--glue-layers", "5"),
    "steered": ("--turned-features", "steered"),
    "steered_pca32": ("--turned-features", "steered", "--descriptor-code", "pca32"),
    # ... with fewer reference keypoints: under 24 KB a reference image on the dev sets' sites
    "steered_pca32_ref448": ("--turned-features", "steered", "--descriptor-code", "pca32", "--ref-keypoints", "448"),
    # ... or descriptors as extracted (int8) and fewer keypoints, spread over the image: about as many bytes
    "steered_ref240_spread": ("--turned-features", "steered", "--ref-keypoints", "240", "--spread-keypoints"),
    "glue_all": ("--glue-keypoints", "0"),   # the learned matcher sees every frame keypoint (the default
                                             # again after bundle_size_glue.json, whose default was 512)
    "glue512": ("--glue-keypoints", "512"),
}
# another draw of calibration's samples: how far a variant's answers may move by the draw alone
# ("seed1", "steered_seed1", ...: the variant's own flags and the seed)
VARIANTS.update({f"{'' if name == 'default' else name + '_'}seed{k}": (*VARIANTS[name], "--calibration-seed", str(k))
                 for k in range(1, 6)
                 for name in ("default", "steered", "steered_pca32", "steered_pca32_ref448", "steered_ref240_spread")})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(OPEN_SETS))
    ap.add_argument("--variants", nargs="+", default=["default", "ref256_spread", "ref128_spread"],
                    choices=list(VARIANTS))
    ap.add_argument("--keep", help="keep (and reuse) bundles in this folder")
    ap.add_argument("--workers", type=int, default=1, help="`sitelens bundle --workers` (the bundle is the same)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bundle_size_"))
    result = {"variants": {v: list(VARIANTS[v]) for v in args.variants}, "sets": {}}
    for name in args.sets:
        rows = rows_of(site_manifest(name), name)
        manifest = write(rows, work / name / "manifest.csv")
        out = result["sets"].setdefault(name, {})
        for variant in args.variants:
            bundle = work / (f"{name}.sitelens" if variant == "default" else f"{name}__{variant}.sitelens")
            seconds = None
            if not bundle.exists():
                _, seconds = sitelens("bundle", manifest, "-o", bundle, "--workers", args.workers, *VARIANTS[variant])
            info = json.loads(sitelens("inspect", bundle, "--json")[0].strip().splitlines()[-1])
            per_image = info["bytes_per_reference_image"]
            out[variant] = {"reference_images": info["reference_images"], "build_s": None if seconds is None
                            else round(seconds, 1), "kb_per_reference_image": round(sum(per_image.values()) / 1e3, 1),
                            "bytes_per_reference_image": per_image, **evaluate(bundle, manifest)}
            emit(result, args, args.out, show=False)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
