"""Export report: one row per precision x match mode (bundle size, network latency p50/p95/p99
on this machine, mP@1 on the dev sets, agreement with FP32 as the export measured it). Matching
at 1k..100k references is measured by bench/latency.py. Prints JSON (``--out NAME`` also writes
bench/results/NAME.json).

    python bench/export_report.py [--sets mcv_museum] [--model run/] [--out export_report]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import DEV_SETS, emit, percentiles, timed

from export.bundler import build_bundle
from runtime.evaluate import evaluate
from runtime.kinds import MATCH_MODES
from runtime.recognizer import Recognizer
from runtime.site import load_queries


def precision_rows(sets, size, model, bits, repeat, verify):
    rows = []
    for name in sets:
        manifest = DEV_SETS.get(name, Path(name))
        queries = load_queries(manifest)
        for precision, retain in (("fp32", None), ("fp16", None), ("int8", None), ("int8", 0.0)):
            if retain == 0.0 and rows[-1]["shipped"] == "int8":
                continue  # int8 shipped on its own merit: no forced row needed
            with tempfile.TemporaryDirectory() as tmp:
                b = build_bundle(manifest, Path(tmp) / "b.sitelens", model, size=size, precision=precision,
                                 hash_bits=bits, progress=False, calibrate=False, retain=retain,
                                 verify=verify)
                size_mb = round(b.stat().st_size / 1e6, 2)
                rec = Recognizer.open(b, threads=2)
                frame = rec.embedder.prepare(queries[0].path)
                lat = percentiles(timed(lambda: rec.embedder.run(frame[None]), repeat))
                for mode in MATCH_MODES:
                    rec.match = mode
                    r = evaluate(rec, queries, progress=False)
                    rows.append({"set": name, "requested": precision + (" (forced)" if retain == 0.0 else ""),
                                 "shipped": rec.manifest.model.precision,
                                 "match": mode, "bundle_mb": size_mb, "embed_latency": lat, "mP@1": r["mP@1"],
                                 "mAP": r["mAP"], "agreement": rec.manifest.model.details.get("precision_report")})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="*", default=["mcv_museum"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--model")
    ap.add_argument("--bits", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--verify", default="none",
                    help="verification in these bundles (default none: the table compares global descriptors)")
    ap.add_argument("--out", help="also write bench/results/OUT.json")
    args = ap.parse_args()
    emit({"precision": precision_rows(args.sets, args.size, args.model, args.bits, args.repeat, args.verify)},
         args, args.out)


if __name__ == "__main__":
    main()
