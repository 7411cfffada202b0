"""Bundle a manifest's refs and evaluate its queries; prints one JSON object.

    python bench/quality.py                         # coil100 + mcv_museum, off the shelf, 224
    python bench/quality.py --size 384 --sets mcv_museum
    python bench/quality.py --model run/ --sets mcv_museum
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import DEV_SETS

from export.bundler import build_bundle
from runtime.evaluate import evaluate
from runtime.recognizer import Recognizer
from runtime.site import load_queries


def run(manifest: Path, size: int, model, match: str, **kw) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        bundle = build_bundle(manifest, Path(tmp) / "b.sitelens", model, size=size, progress=False, **kw)
        build_s = time.perf_counter() - t
        queries = load_queries(manifest)
        t = time.perf_counter()
        result = evaluate(Recognizer.open(bundle, match=match), queries, progress=False)
        eval_s = time.perf_counter() - t
        verified = sum(r.get("verified") is not None for r in result["results"])
        if kw.get("verify"):  # same bundle, same run, verification off: its cost and gain
            t = time.perf_counter()
            plain = evaluate(Recognizer.open(bundle, match=match, verify=False), queries, progress=False)
            plain_s = time.perf_counter() - t
            result["without_verification"] = {"mP@1": plain["mP@1"], "accuracy": plain["accuracy"],
                                              "ms_per_query": round(1000 * plain_s / max(1, len(queries)), 1)}
    result.pop("results")
    result.pop("bundle")
    result["bundle_build_s"] = round(build_s, 1)
    result["ms_per_query"] = round(1000 * eval_s / max(1, len(queries)), 1)
    result["verified_queries"] = verified
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(DEV_SETS), help="names in bench/_common.DEV_SETS or manifest paths")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--model", default=None, help="training run folder (default: off the shelf)")
    ap.add_argument("--match", default="exact", choices=["exact", "hnsw"])
    ap.add_argument("--multiscale", action="store_true")
    ap.add_argument("--verify", choices=["orb", "sift"], help="geometric verification of ambiguous answers")
    args = ap.parse_args()
    out = {"size": args.size, "model": args.model or "off-the-shelf tf_efficientnet_lite0", "verify": args.verify,
           "sets": {}}
    for name in args.sets:
        manifest = DEV_SETS.get(name, Path(name))
        out["sets"][name] = run(manifest, args.size, args.model, args.match, multiscale=args.multiscale,
                                verify=args.verify)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
