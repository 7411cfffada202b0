"""How hard is nearest-neighbour search on real descriptors? The intrinsic dimension (TwoNN) of
the dev sets' reference descriptors, against the synthetic generator's (``bench/_ann.py``) at the
same number of rows, and the smallest generator setting that is at least as hard as every real
measurement: the setting the matching benchmarks use (``_ann.CALIBRATED_INTRINSIC``).

For each network among the kept bundles (fine-tuned or off the shelf), the first reference photo of
every work of each dev set is described by that bundle's network (one row per work, no quarter
turns: a site's several photos of one work would only lower the estimate), and TwoNN is measured
per set and on all sets pooled (a larger, more varied site). The generator's TwoNN is the median
over ``--seeds`` draws of the same number of rows. Prints JSON (``--out NAME`` also writes
bench/results/NAME.json).

    python bench/intrinsic_dim.py --model-dir DIR [--sets ...] [--grid 8 10 12 13 14 16 24] [--out intrinsic_dim]

``--model-dir``: a folder with ``<set>_ft.sitelens`` / ``<set>_off.sitelens`` bundles, as
``bench/hard_sets.py --keep DIR`` leaves them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _ann import CALIBRATED_INTRINSIC, STRESS_INTRINSIC, synthetic_descriptors, twonn_dimension
from _common import DEV_SETS, emit
from tqdm import tqdm

from runtime.recognizer import Recognizer
from runtime.site import load_site

GRID = (8, 10, 12, 13, 14, 16, 20, 24)


def first_reference_per_work(set_name: str) -> list[Path]:
    seen: dict[str, Path] = {}
    for ref in load_site(DEV_SETS[set_name]).references:
        seen.setdefault(ref.instance, ref.path)
    return list(seen.values())


def generator_twonn(n: int, intrinsic: int, dim: int, seeds: int) -> float:
    return float(np.median([twonn_dimension(synthetic_descriptors(n, 0, dim, intrinsic=intrinsic, seed=s)[0])
                            for s in range(seeds)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--sets", nargs="*", default=list(DEV_SETS))
    ap.add_argument("--grid", type=int, nargs="*", default=list(GRID), help="generator intrinsic settings to measure")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()

    photos = {name: first_reference_per_work(name) for name in args.sets}
    real, dim, networks = [], None, set()
    for bundle in sorted(args.model_dir.glob("*.sitelens")):
        rec = Recognizer.open(bundle, verify=False)
        if rec.manifest.model.fingerprint in networks:  # e.g. every site's off-the-shelf bundle: one network
            continue
        networks.add(rec.manifest.model.fingerprint)
        desc = {name: np.stack([rec.embed(p) for p in tqdm(paths, desc=f"{bundle.name}: {name}", leave=False)])
                for name, paths in photos.items()}
        dim = dim or next(iter(desc.values())).shape[1]
        row = {"bundle": bundle.name, "fine_tuned": bool(rec.manifest.model.details.get("trained")), "sets": {}}
        for name, d in desc.items():
            row["sets"][name] = {"rows": len(d), "twonn": round(twonn_dimension(d), 1)}
        pooled = np.concatenate(list(desc.values()))
        row["pooled"] = {"rows": len(pooled), "twonn": round(twonn_dimension(pooled), 1)}
        real.append(row)
        tqdm.write(f"{bundle.name}: " + ", ".join(f"{k} {v['twonn']}" for k, v in row["sets"].items())
                   + f", pooled {row['pooled']['twonn']}", file=sys.stderr)
    if not real:
        raise SystemExit(f"no *.sitelens bundles in {args.model_dir}")

    sizes = sorted({m["rows"] for r in real for m in [*r["sets"].values(), r["pooled"]]})
    generator = []
    for intrinsic in tqdm(args.grid, desc="generator"):
        generator.append({"intrinsic": intrinsic,
                          "twonn_at_rows": {n: round(generator_twonn(n, intrinsic, dim, args.seeds), 1) for n in sizes}})

    def covers(g: dict) -> bool:
        return all(g["twonn_at_rows"][m["rows"]] >= m["twonn"] for r in real for m in [*r["sets"].values(), r["pooled"]])

    matching = [g["intrinsic"] for g in generator if covers(g)]
    emit({"dim": dim, "seeds": args.seeds, "real": real, "generator": generator,
          "smallest_matching": min(matching) if matching else None,
          "calibrated_intrinsic_in_use": CALIBRATED_INTRINSIC, "stress_intrinsic": STRESS_INTRINSIC}, args, args.out)


if __name__ == "__main__":
    main()
