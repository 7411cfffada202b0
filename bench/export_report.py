"""Export report: one row per precision x match mode (bundle size, per-frame latency p50/p95
on this machine, mP@1 on the dev sets, agreement with FP32) and matching latency / recall@1
vs exact float search at 1k..1M synthetic references. Prints JSON.

    python bench/export_report.py [--sets mcv_museum] [--refs 1000 10000 100000 1000000] [--dim 256]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import DEV_SETS, percentiles, timed

from export.bundler import build_bundle
from export.itq import learn_itq
from runtime.binary_codes import BinaryCodes
from runtime.evaluate import evaluate
from runtime.index import IndexParams, ReferenceIndex
from runtime.recognizer import Recognizer
from runtime.site import load_queries


def precision_rows(sets, size, model, bits, repeat):
    rows = []
    for name in sets:
        manifest = DEV_SETS.get(name, Path(name))
        queries = load_queries(manifest)
        for precision, retain in (("fp32", None), ("fp16", None), ("int8", None), ("int8", 0.0)):
            if retain == 0.0 and rows[-1]["shipped"] == "int8":
                continue  # int8 shipped on its own merit: no forced row needed
            with tempfile.TemporaryDirectory() as tmp:
                b = build_bundle(manifest, Path(tmp) / "b.sitelens", model, size=size, precision=precision,
                                 hash_bits=bits, progress=False, calibrate=False, retain=retain)
                size_mb = round(b.stat().st_size / 1e6, 2)
                rec = Recognizer.open(b, threads=2)
                frame = rec.embedder.prepare(queries[0].path)
                lat = percentiles(timed(lambda: rec.embedder.run(frame[None]), repeat))
                for mode in ("hnsw", "exact", "binary", "hamming"):
                    rec.match = mode
                    r = evaluate(rec, queries, progress=False)
                    rows.append({"set": name, "requested": precision + (" (forced)" if retain == 0.0 else ""),
                                 "shipped": rec.manifest["model"]["precision"],
                                 "match": mode, "bundle_mb": size_mb, "embed_latency": lat, "mP@1": r["mP@1"],
                                 "mAP": r["mAP"], "agreement": rec.manifest["model"].get("precision_report")})
    return rows


def matching_rows(sizes, dim, bits, repeat, hnsw_max):
    rng = np.random.default_rng(0)
    out = []
    for n in sizes:
        groups = max(1, n // 4)
        centres = rng.normal(size=(groups, dim)).astype(np.float32)
        refs = centres[np.arange(n) % groups] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
        refs /= np.linalg.norm(refs, axis=1, keepdims=True)
        sample = refs[rng.choice(n, min(n, 20000), replace=False)]
        codes = BinaryCodes(*learn_itq(sample, bits))
        use_hnsw = n <= hnsw_max
        idx = ReferenceIndex(refs, [f"i{i % groups}" for i in range(n)], params=IndexParams(), binary=codes,
                             hnsw=None if use_hnsw else _empty_hnsw(dim))
        q = centres[rng.integers(0, groups, repeat)] + 0.6 * rng.normal(size=(repeat, dim)).astype(np.float32)
        truth = [idx.search(v, 1, "exact")[0][0] for v in q]
        row = {"refs": n, "dim": dim, "bits": bits, "memory_bytes_per_ref": idx.memory_per_reference()}
        for mode in (("hnsw",) if use_hnsw else ()) + ("exact", "binary", "hamming"):
            it = iter(q)
            row[mode] = percentiles(timed(lambda: idx.search(next(it, q[0]), 5, mode), repeat, warmup=0))
            row[mode]["recall@1_vs_exact"] = round(float(np.mean([idx.search(v, 1, mode)[0][0] == t for v, t in zip(q, truth)])), 4)
        out.append(row)
    return out


def _empty_hnsw(dim):
    import hnswlib

    h = hnswlib.Index(space="ip", dim=dim)
    h.init_index(max_elements=1)
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="*", default=["mcv_museum"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--model")
    ap.add_argument("--bits", type=int, default=256)
    ap.add_argument("--refs", type=int, nargs="*", default=[1000, 10000, 100000, 1000000])
    ap.add_argument("--dim", type=int, default=256, help="synthetic descriptor dim (e.g. after Lw reduction)")
    ap.add_argument("--hnsw-max", type=int, default=100000, help="skip building HNSW above this many refs")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--no-matching", action="store_true", help="precision table only")
    args = ap.parse_args()
    report = {"precision": precision_rows(args.sets, args.size, args.model, args.bits, args.repeat),
              "matching": [] if args.no_matching else matching_rows(args.refs, args.dim, args.bits, args.repeat,
                                                                     args.hnsw_max)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
