"""The search index (rows, graph, labels, binary codes) and the references' local features as
bundle members, and back. The one place that knows which member holds which part of a row, so
``runtime/search`` stays free of the bundle format.

Thread safety: ``index_members`` takes a consistent snapshot through ``ReferenceIndex.compacted``
(shared lock), so it is safe alongside searches and serialised against ``add``/``remove``.
"""
from __future__ import annotations

import json
import os
import tempfile

import hnswlib
import numpy as np

from runtime.bundle.format import BundleContents, npy_bytes, quantize_rows
from runtime.bundle.hnsw_file import check_hnsw_bytes, strip_vectors
from runtime.bundle.members import (CODES, GRAPH, ITQ_MEAN, ITQ_PROJ, LABELS, REFS, REFS_SCALE, VERIFY_DESC,
                                    VERIFY_KPTS, VERIFY_OFFSETS)
from runtime.errors import BundleError
from runtime.search.binary_codes import BinaryCodes
from runtime.search.feature_store import FeatureStore
from runtime.search.index import ReferenceIndex
from runtime.search.index_params import IndexParams


def feature_members(store: FeatureStore) -> dict[str, bytes]:
    return {VERIFY_KPTS: npy_bytes(store.kps), VERIFY_DESC: npy_bytes(store.descs),
            VERIFY_OFFSETS: npy_bytes(store.offsets)}


def features_from_contents(contents: BundleContents) -> FeatureStore:
    return FeatureStore(contents.array(VERIFY_KPTS), contents.array(VERIFY_DESC), contents.array(VERIFY_OFFSETS))


def index_members(index: ReferenceIndex) -> tuple[dict[str, bytes], list[str]]:
    """A consistent snapshot of every live row as bundle members, plus the live instances.
    Deleted rows are dropped (the graph is rebuilt if any were)."""
    live = index.compacted()
    labels = {"instances": live.instances, "sources": live.sources, "rotations": live.rotations,
              "images": live.images}
    if any(live.digests):
        labels["digests"] = live.digests
    refs, scale = quantize_rows(live.descriptors)
    members = {GRAPH: strip_vectors(_hnsw_bytes(live.hnsw), live.dim), REFS: npy_bytes(refs),
               REFS_SCALE: npy_bytes(scale), LABELS: json.dumps(labels).encode("utf-8")}
    if live.binary is not None:
        members.update({CODES: npy_bytes(live.binary.codes), ITQ_PROJ: npy_bytes(live.binary.proj),
                        ITQ_MEAN: npy_bytes(live.binary.mean)})
    if live.features is not None:
        members.update(feature_members(live.features))
    return members, live.live_instances()


def index_from_members(refs: np.ndarray, labels: dict, index_bytes: bytes | None, params: IndexParams,
                       source: str = "bundle", binary: BinaryCodes | None = None,
                       features: FeatureStore | None = None, checked: bool = False) -> ReferenceIndex:
    """Rebuild the index from members; every count is checked against refs.npy before hnswlib
    reads a byte (a malformed hnswlib file can crash the process). ``checked``: the bytes come
    from a bundle that ``check_consistency`` passed, so the hnswlib structure is not walked again."""
    instances = labels.get("instances") if isinstance(labels, dict) else None
    if not isinstance(instances, list) or len(instances) != len(refs) or refs.ndim != 2:
        raise BundleError(f"{source}: labels.json does not match refs.npy ({len(refs)} rows)")
    hnsw = None
    if index_bytes is not None:
        if not checked:
            check_hnsw_bytes(index_bytes, refs.shape[1], len(refs), source)
        hnsw = _hnsw_load(index_bytes, refs.shape[1], len(refs), source)
    if binary is not None and len(binary.codes) != len(refs):
        raise BundleError(f"{source}: codes.npy has {len(binary.codes)} rows, refs.npy {len(refs)}")
    if features is not None and len(features) != len(refs):
        raise BundleError(f"{source}: local features cover {len(features)} rows, refs.npy {len(refs)}")
    return ReferenceIndex(refs.astype(np.float32), instances, labels.get("sources"), params, hnsw, binary, features,
                          labels.get("rotations"), labels.get("images"), labels.get("digests"))


def _hnsw_bytes(index: hnswlib.Index) -> bytes:
    fd, tmp = tempfile.mkstemp(suffix=".hnsw")
    os.close(fd)
    try:
        index.save_index(tmp)
        with open(tmp, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(tmp)


def _hnsw_load(data: bytes, dim: int, count: int, source: str) -> hnswlib.Index:
    # Only called on bytes that passed check_hnsw_bytes: a malformed hnswlib file can crash the process.
    fd, tmp = tempfile.mkstemp(suffix=".hnsw")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        index = hnswlib.Index(space="ip", dim=dim)
        try:
            index.load_index(tmp, max_elements=max(count, 1))
        except RuntimeError as exc:
            raise BundleError(f"{source}: cannot load index.hnsw ({exc})") from None
        return index
    finally:
        os.unlink(tmp)
