"""Open-set rejection on mcv_museum/manifest_openset.csv (10 unknown paintings): true-accept
rate at the bundle's calibrated false-accept rate, plus an ROC picture. Prints JSON.

    python bench/openset.py [--model run/] [--target-far 0.01] [--png openset_roc.png]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import SHARED

from export.bundler import build_bundle
from runtime.evaluate import evaluate
from runtime.recognizer import Recognizer
from runtime.site import load_queries
from sdk.report import roc_points, score_charts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default=str(SHARED / "mcv_museum" / "manifest_openset.csv"))
    ap.add_argument("--model")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--target-far", type=float, default=0.01)
    ap.add_argument("--png", default="openset_roc.png")
    ap.add_argument("--verify", choices=["orb", "sift"], help="geometric verification of ambiguous answers")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(args.manifest, Path(tmp) / "o.sitelens", args.model, size=args.size,
                              target_far=args.target_far, progress=False, verify=args.verify)
        result = evaluate(Recognizer.open(bundle), load_queries(args.manifest), progress=False)
    far, tar = roc_points(result)
    best_tar_at_0 = float(max(t for f, t in zip(far, tar) if f == 0.0))
    score_charts(result, Path(args.png))
    print(json.dumps({
        "manifest": args.manifest, "model": args.model or "off-the-shelf", "verify": args.verify, "thresholds": result["thresholds"],
        "known": result["known"], "unknown": result["unknown"],
        "true_accept_rate": result["true_accept_rate"], "false_accept_rate": result["false_accept_rate"],
        "mP@1": result["mP@1"], "accuracy": result["accuracy"],
        "oracle_tar_at_far0": round(best_tar_at_0, 4), "roc_png": str(Path(args.png).resolve()),
    }, indent=2))


if __name__ == "__main__":
    main()
