"""Ways to search 100k references faster than the export's HNSW, measured against exact search on
the same synthetic descriptors as ``latency.py`` (one run; prints JSON, ``--out NAME`` writes
bench/results/):

- ``hnsw``: hnswlib on the full descriptors, graph degree M x search breadth ef;
- ``pca_hnsw``: hnswlib on a PCA projection of the descriptors (fitted on a sample of the
  references, re-normalised), a shortlist of ``short`` rows re-ranked by exact cosine in full
  dimension: fewer flops per graph hop, at the price of the projection's error;
- ``hnsw_smaller``: hnswlib on descriptors made by the same generator with fewer dimensions
  (what a smaller output, e.g. learned whitening to 512-d, would give): fewer flops per hop, the
  same intrinsic dimension. Recall is against exact search on those descriptors.

Each row: recall@1 against exact full-dimension search and p50 ms per query (one thread).

    python bench/ann_options.py [--refs 100000] [--dim 1280] [--M 16 32] [--pca 256] [--smaller 512 256] [--out ann_options]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _ann import CALIBRATED_INTRINSIC, ground_truth, recall_at_1, synthetic_descriptors
from _common import emit, percentiles

from runtime.search.index import build_hnsw, l2_normalize
from runtime.search.index_params import IndexParams

EF_GRID = (64, 128, 256, 384, 512)


def _graph(vectors: np.ndarray, m: int):
    """The export's graph (``build_hnsw``) with degree ``m``, and its build time in seconds."""
    t = time.perf_counter()
    index = build_hnsw(vectors, IndexParams(M=m))
    return index, round(time.perf_counter() - t, 1)


def _measure(search, queries, truth) -> dict:
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - t)
    return {"recall@1_vs_exact": round(recall_at_1(np.array(found), truth), 4), **percentiles(times)}


def _hnsw_rows(method: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, degrees) -> list[dict]:
    rows = []
    for m in degrees:
        index, build_s = _graph(base, m)
        for ef in EF_GRID:
            index.set_ef(ef)
            row = _measure(lambda q: index.knn_query(q[None], k=1, num_threads=1)[0][0, 0], queries, truth)
            rows.append({"method": method, "dim": base.shape[1], "M": m, "ef": ef, "build_s": build_s, **row})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--refs", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--M", type=int, nargs="*", default=[16, 32])
    ap.add_argument("--pca", type=int, nargs="*", default=[256])
    ap.add_argument("--short", type=int, nargs="*", default=[256, 512])
    ap.add_argument("--smaller", type=int, nargs="*", default=[512, 256],
                    help="also build graphs on generated descriptors of these dimensions")
    ap.add_argument("--intrinsic", type=int, default=CALIBRATED_INTRINSIC,
                    help="the generator's intrinsic dimension (default: matched to real descriptors, bench/intrinsic_dim.py)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    base, queries = synthetic_descriptors(args.refs, args.queries, args.dim, intrinsic=args.intrinsic, seed=args.refs)
    truth = ground_truth(queries, base)
    rows = _hnsw_rows("hnsw", base, queries, truth, args.M)
    rng = np.random.default_rng(0)
    mean = base.mean(axis=0)
    sample = base[rng.choice(len(base), min(len(base), 20000), replace=False)] - mean
    _, spectrum, vt = np.linalg.svd(sample, full_matrices=False)
    for d in args.pca:
        proj = vt[:d].T.astype(np.float32)
        kept = float((spectrum[:d] ** 2).sum() / (spectrum ** 2).sum())
        index, build_s = _graph(l2_normalize((base - mean) @ proj), 16)
        for short in args.short:
            for ef in [e for e in EF_GRID if e >= short] or [short]:
                index.set_ef(ef)

                def search(q):
                    ids = index.knn_query(l2_normalize(((q - mean) @ proj)[None]), k=short, num_threads=1)[0][0]
                    return ids[np.argmax(base[ids] @ q)]
                row = _measure(search, queries, truth)
                rows.append({"method": "pca_hnsw", "dim": d, "variance_kept": round(kept, 3), "M": 16, "ef": ef,
                             "short": short, "build_s": build_s, **row})
    for d in args.smaller:
        small, small_queries = synthetic_descriptors(args.refs, args.queries, d, intrinsic=args.intrinsic, seed=args.refs)
        rows += _hnsw_rows("hnsw_smaller", small, small_queries, ground_truth(small_queries, small), args.M)
    emit({"refs": args.refs, "dim": args.dim, "intrinsic": args.intrinsic, "rows": rows}, args, args.out)


if __name__ == "__main__":
    main()
