import numpy as np
import pytest

from runtime.bundle import format as bf
from runtime.bundle.index_members import index_from_members, index_members
from runtime.errors import SitelensError
from runtime.search.index import IndexParams, ReferenceIndex


def _data(n=300, d=32, groups=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, d))
    labels = [f"obj{i % groups}" for i in range(n)]
    x = centres[np.arange(n) % groups] + 0.3 * rng.normal(size=(n, d))
    return x.astype(np.float32), labels, centres.astype(np.float32)


def test_search_aggregates_instances_and_matches_exact():
    x, labels, centres = _data()
    idx = ReferenceIndex(x, labels)
    for mode in ("hnsw", "exact"):
        hits = idx.search(centres[3], k=5, mode=mode)
        assert hits[0][0] == "obj3" and len(hits) == 5
        assert len({h[0] for h in hits}) == 5
        assert all(a[1] >= b[1] for a, b in zip(hits, hits[1:]))


def test_k_larger_than_index():
    x, labels, _ = _data(n=3, groups=3)
    idx = ReferenceIndex(x, labels)
    assert len(idx.search(x[0], k=10)) == 3


def test_add_remove_and_members_roundtrip():
    x, labels, centres = _data()
    idx = ReferenceIndex(x, labels, params=IndexParams(ef=50))
    idx.add(centres[:1] * 5, "new")
    assert idx.search(centres[0], k=1)[0][0] == "new"    # the centre itself: cosine 1, above obj0's noisy rows
    assert idx.remove("obj0") == 10
    assert all(h[0] != "obj0" for h in idx.search(centres[0], k=10))
    members, live = index_members(idx)
    assert "obj0" not in live and "new" in live
    quantized = np.load(__import__("io").BytesIO(members[bf.REFS]))
    scale = np.load(__import__("io").BytesIO(members[bf.REFS_SCALE]))
    assert quantized.dtype == np.int8 and scale.shape == (len(quantized),)   # a byte a dimension
    refs = quantized.astype(np.float32) * scale[:, None]
    import json

    from runtime.bundle.hnsw_file import with_vectors

    graph = members[bf.GRAPH]                       # the graph is stored without its vectors ...
    full = with_vectors(graph, refs)                # ... which come back from refs.npy
    assert len(full) - len(graph) == 4 * refs.size
    np.testing.assert_allclose(refs @ refs.T, idx.compacted().descriptors @ idx.compacted().descriptors.T, atol=1.5e-2)
    again = index_from_members(refs, json.loads(members[bf.LABELS]), full, IndexParams(ef=50))
    assert again.live_count == 291 and "obj0" not in again.live_instances()
    np.testing.assert_allclose(again.search(centres[5], 3)[0][1], idx.search(centres[5], 3)[0][1], atol=2e-3)


def test_dim_mismatch_rejected():
    x, labels, _ = _data()
    idx = ReferenceIndex(x, labels)
    with pytest.raises(SitelensError, match="descriptor dim 8 != index dim"):
        idx.add(np.zeros((1, 8), np.float32), "bad")


def test_the_same_rows_give_the_same_graph(tmp_path):
    """build_hnsw inserts on one thread by default: a rebuilt bundle holds the same graph bytes."""
    from runtime.search.index import build_hnsw

    rows = np.random.default_rng(3).normal(size=(600, 32)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    saved = []
    for i in range(2):
        build_hnsw(rows, IndexParams(M=8, ef_construction=40)).save_index(str(tmp_path / f"{i}.bin"))
        saved.append((tmp_path / f"{i}.bin").read_bytes())
    assert saved[0] == saved[1]
