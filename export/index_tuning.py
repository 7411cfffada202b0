"""Choosing the HNSW search breadth (``ef``, and the graph degree ``M`` if needed) for a site at
export: recall@1 of the index against exact search, measured on query-like descriptors (the
site's simulated visitor views), must reach ``TARGET_RECALL``. The choice and the measured recall
are stored in the bundle (hnswlib does not save ``ef``)."""
from __future__ import annotations

import numpy as np

from runtime.metrics import precision_at_1
from runtime.search.index import build_hnsw
from runtime.search.index_params import IndexParams

TARGET_RECALL = 0.99
EF_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
M_GRID = (16, 32, 48)


def exact_top1(queries: np.ndarray, base: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Row of each query's nearest base vector (inner product), in chunks to bound memory."""
    out = np.empty(len(queries), np.int64)
    for s in range(0, len(queries), chunk):
        out[s:s + chunk] = np.argmax(queries[s:s + chunk] @ base.T, axis=1)
    return out


def recall_at_1(found: np.ndarray, truth: np.ndarray) -> float:
    return precision_at_1(np.asarray(found).reshape(len(truth), -1)[:, 0], truth) if len(truth) else 1.0


def measured_recall(index, queries: np.ndarray, truth: np.ndarray) -> float:
    """recall@1 of an hnswlib graph at its current ``ef`` against exact-search ``truth``."""
    found, _ = index.knn_query(queries, k=1)
    return recall_at_1(found, truth)


def tune_index(descriptors: np.ndarray, queries: np.ndarray, params: IndexParams = IndexParams(),
               target: float = TARGET_RECALL, hnsw=None):
    """(params, hnsw index, report): the smallest ``ef`` (trying larger ``M`` only if no ``ef``
    reaches the target) whose recall@1 against exact search is at least ``target``. If none does,
    the best setting tried is used (its graph is kept, not rebuilt)."""
    descriptors = np.asarray(descriptors, np.float32)
    queries = np.asarray(queries, np.float32)
    truth = exact_top1(queries, descriptors)
    tried, best = [], None  # best: (recall, M, ef, graph)
    for m in [params.M] + [m for m in M_GRID if m > params.M]:
        index = hnsw if (hnsw is not None and m == params.M) else build_hnsw(descriptors, IndexParams(m, params.ef_construction, 64))
        for ef in EF_GRID:
            index.set_ef(ef)
            recall = measured_recall(index, queries, truth)
            tried.append({"M": m, "ef": ef, "recall@1": round(recall, 4)})
            if best is None or recall > best[0]:
                best = (recall, m, ef, index)
            if recall >= target:
                break
        if best[0] >= target:
            break
    recall, m, ef, index = best
    index.set_ef(ef)
    report = {"target_recall@1": target, "recall@1": round(recall, 4), "queries": len(queries),
              "chosen": {"M": m, "ef": ef}, "tried": tried}
    if recall < target:
        report["note"] = "no setting reached the target; the best one is used"
    return IndexParams(m, params.ef_construction, ef), index, report
