"""Train on a set's references (never its queries), export, evaluate; before/after JSON.

    python bench/train_quality.py --sets mcv_museum coil100 --epochs 10
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import DEV_SETS
from quality import run as evaluate_bundle

from runtime.site import load_site
from training.trainer import TrainConfig, train


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(DEV_SETS))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--whitening-dim", type=int, default=None)
    ap.add_argument("--keep", help="folder to keep the runs in")
    args = ap.parse_args()
    out = {"size": args.size, "epochs": args.epochs, "sets": {}}
    for name in args.sets:
        manifest = DEV_SETS.get(name, Path(name))
        before = evaluate_bundle(manifest, args.size, None, "exact")
        runs = Path(args.keep or tempfile.mkdtemp())
        t = time.perf_counter()
        cfg = TrainConfig(epochs=args.epochs, size=args.size, batch=args.batch, negatives=args.negatives,
                          lr=args.lr, whitening_dim=args.whitening_dim)
        run = train(load_site(manifest), runs / name, cfg, resume=False)
        train_s = time.perf_counter() - t
        after = evaluate_bundle(manifest, args.size, run, "exact")
        hist = json.loads((run / "config.json").read_text())
        out["sets"][name] = {
            "before": {k: before[k] for k in ("mP@1", "mAP", "recall@5")},
            "after": {k: after[k] for k in ("mP@1", "mAP", "recall@5")},
            "train_seconds": round(train_s, 1), "history": hist["history"], "whitening": hist["whitening"],
            "run": str(run),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
