"""HNSW settings chosen at export for recall@1 >= 0.99 against exact search."""
import numpy as np

from export.index_tuning import exact_top1, recall_at_1, tune_index
from runtime.search.index_params import IndexParams


def clustered(n, d, groups, noise, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, d))
    x = centres[rng.integers(0, groups, n)] + noise * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ef_is_raised_until_recall_is_reached():
    base = clustered(3000, 64, 300, 0.6, 0)
    queries = clustered(200, 64, 300, 0.6, 1)
    params, index, report = tune_index(base, queries, IndexParams(M=8, ef=16))
    assert report["recall@1"] >= 0.99 and report["tried"][0]["ef"] == 16
    found, _ = index.knn_query(queries, k=1)
    assert recall_at_1(found, exact_top1(queries, base)) == report["recall@1"]
    assert (params.M, params.ef) == (report["chosen"]["M"], report["chosen"]["ef"])
    # an easy case stops at the first setting
    params, _, report = tune_index(base[:50], queries, IndexParams())
    assert params.ef == 16 and report["recall@1"] >= 0.99 and len(report["tried"]) == 1


def test_bundle_records_the_tuning(tiny_bundle):
    import json
    import zipfile

    m = json.loads(zipfile.ZipFile(tiny_bundle).read("manifest.json"))
    assert m["index"]["tuning"]["recall@1"] >= 0.99 and m["index"]["ef"] == m["index"]["tuning"]["chosen"]["ef"]


def test_unreachable_target_keeps_the_best_graph_tried():
    base = clustered(2000, 64, 200, 0.6, 2)
    queries = clustered(100, 64, 200, 0.6, 3)
    params, index, report = tune_index(base, queries, IndexParams(M=8, ef=16), target=1.01)
    best = max(report["tried"], key=lambda t: t["recall@1"])
    assert report["note"] and (params.M, params.ef) == (best["M"], best["ef"]) == tuple(report["chosen"].values())
    assert index.get_current_count() == len(base) and index.ef == params.ef and index.M == params.M
    found, _ = index.knn_query(queries, k=1)
    assert round(recall_at_1(found, exact_top1(queries, base)), 4) == report["recall@1"] == best["recall@1"]
