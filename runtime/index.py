"""The per-site reference index: hnswlib (inner product) plus labels and float descriptors.

Thread safety (per method, as hnswlib's README states it):

- ``search``: safe from many threads at once.
- ``add`` / ``remove``: take an exclusive lock; they wait for running searches and block new
  ones meanwhile (hnswlib itself is not safe for concurrent add + query).
- ``to_members``: takes the shared lock; safe alongside searches.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

import hnswlib
import numpy as np

from .binary_codes import BinaryCodes
from .bundle_format import CODES, INDEX, ITQ_MEAN, ITQ_PROJ, LABELS, REFS, npy_bytes
from .errors import BundleError, SitelensError
from .rwlock import RWLock

MATCH_MODES = ("hnsw", "exact", "binary", "hamming")
BINARY_SHORTLIST = 100  # Hamming candidates re-ranked with float descriptors in "binary" mode


@dataclass(frozen=True)
class IndexParams:
    M: int = 16
    ef_construction: int = 200
    ef: int = 64

    def to_dict(self) -> dict:
        return {"type": "hnsw", "space": "ip", "M": self.M, "ef_construction": self.ef_construction, "ef": self.ef}

    @classmethod
    def from_dict(cls, d: dict) -> "IndexParams":
        return cls(M=int(d.get("M", 16)), ef_construction=int(d.get("ef_construction", 200)), ef=int(d.get("ef", 64)))


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def build_hnsw(descriptors: np.ndarray, params: IndexParams, capacity: int | None = None,
               threads: int = -1) -> hnswlib.Index:
    n, dim = descriptors.shape
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=max(capacity or n, 1), ef_construction=params.ef_construction,
                     M=params.M, random_seed=100)
    if n:
        index.add_items(descriptors.astype(np.float32), np.arange(n), num_threads=threads)
    index.set_ef(params.ef)
    return index


class ReferenceIndex:
    def __init__(self, descriptors: np.ndarray, instances: list[str], sources: list[str] | None = None,
                 params: IndexParams = IndexParams(), hnsw: hnswlib.Index | None = None,
                 binary: BinaryCodes | None = None):
        descriptors = _l2(descriptors)
        if len(descriptors) != len(instances):
            raise SitelensError(f"{len(descriptors)} descriptors but {len(instances)} labels")
        self.params = params
        self.descriptors = descriptors
        self.instances = list(instances)
        self.sources = list(sources) if sources is not None else [""] * len(instances)
        self.deleted = np.zeros(len(instances), bool)
        self.hnsw = hnsw if hnsw is not None else build_hnsw(descriptors, params)
        self.hnsw.set_ef(params.ef)  # ef is not saved by hnswlib: it lives in the manifest
        self.binary = binary
        if binary is not None and len(binary.codes) != len(instances):
            binary.codes = binary.encode(descriptors)
        self.lock = RWLock()

    # -- queries --------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.descriptors.shape[1])

    @property
    def live_count(self) -> int:
        return int((~self.deleted).sum())

    def live_instances(self) -> list[str]:
        return sorted({inst for inst, dead in zip(self.instances, self.deleted) if not dead})

    def search(self, query: np.ndarray, k: int = 5, mode: str = "hnsw") -> list[tuple[str, float]]:
        """Top-``k`` instances for one descriptor, scored by their best reference (cosine)."""
        return self.search_many(np.asarray(query)[None], k, mode)[0]

    def search_many(self, queries: np.ndarray, k: int = 5, mode: str = "hnsw") -> list[list[tuple[str, float]]]:
        if mode not in MATCH_MODES:
            raise SitelensError(f"unknown match mode {mode!r}; choose from {MATCH_MODES}")
        queries = _l2(np.atleast_2d(queries))
        with self.lock.read():
            live = self.live_count
            if live == 0:
                return [[] for _ in queries]
            want = min(live, max(4 * k, 32))
            while True:
                ids, scores = self._neighbours(queries, want, mode)
                results = [self._aggregate(i, s, k) for i, s in zip(ids, scores)]
                if want >= live or all(len(r) >= k for r in results):
                    return results
                want = min(live, want * 4)

    def _neighbours(self, queries: np.ndarray, want: int, mode: str):
        if mode in ("binary", "hamming"):
            if self.binary is None:
                raise SitelensError(f"match mode {mode!r} needs binary codes: export the bundle with --hash-bits")
            return self._binary_neighbours(queries, want, rerank=(mode == "binary"))
        if mode == "exact":
            sims = queries @ self.descriptors.T
            sims[:, self.deleted] = -np.inf
            ids = np.argsort(-sims, axis=1)[:, :want]
            return ids, np.take_along_axis(sims, ids, axis=1)
        try:
            ids, dist = self.hnsw.knn_query(queries, k=want, num_threads=1)
        except RuntimeError:
            # hnswlib raises when fewer than k items are reachable (deletions, tiny graphs)
            return self._neighbours(queries, want, "exact")
        return ids.astype(np.int64), 1.0 - dist

    def _binary_neighbours(self, queries: np.ndarray, want: int, rerank: bool):
        all_ids, all_scores = [], []
        for q in queries:
            dist = self.binary.hamming(q).astype(np.float64)
            dist[self.deleted] = np.inf
            short = min(len(dist), max(want, BINARY_SHORTLIST) if rerank else want)
            ids = np.argpartition(dist, short - 1)[:short]
            if rerank:
                scores = self.descriptors[ids] @ q
                scores[self.deleted[ids]] = -np.inf
            else:  # cosine estimate from the Hamming distance
                scores = np.cos(np.pi * dist[ids] / self.binary.bits)
            order = np.argsort(-scores)[:want]
            all_ids.append(ids[order])
            all_scores.append(scores[order])
        return all_ids, all_scores

    def _aggregate(self, ids, scores, k: int) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for i, s in zip(ids, scores):
            if i < 0 or self.deleted[i] or not np.isfinite(s):
                continue
            inst = self.instances[i]
            if inst not in best:
                best[inst] = float(s)
        return sorted(best.items(), key=lambda kv: -kv[1])[:k]

    def similarities(self, queries: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of queries to every live reference row (deleted = -inf)."""
        with self.lock.read():
            sims = _l2(np.atleast_2d(queries)) @ self.descriptors.T
            sims[:, self.deleted] = -np.inf
            return sims

    # -- updates --------------------------------------------------------------------------
    def add(self, descriptors: np.ndarray, instance: str, sources: list[str] | None = None) -> None:
        descriptors = _l2(np.atleast_2d(descriptors))
        if descriptors.shape[1] != self.dim:
            raise SitelensError(f"descriptor dim {descriptors.shape[1]} != index dim {self.dim}")
        with self.lock.write():
            start = len(self.instances)
            needed = start + len(descriptors)
            if needed > self.hnsw.get_max_elements():
                self.hnsw.resize_index(max(needed, 2 * self.hnsw.get_max_elements()))
            self.hnsw.add_items(descriptors, np.arange(start, needed), num_threads=1)
            self.descriptors = np.concatenate([self.descriptors, descriptors])
            self.instances += [instance] * len(descriptors)
            self.sources += list(sources) if sources else [""] * len(descriptors)
            self.deleted = np.concatenate([self.deleted, np.zeros(len(descriptors), bool)])
            if self.binary is not None:
                self.binary.append(descriptors)

    def _live_rows(self, instance: str) -> list[int]:
        return [i for i, inst in enumerate(self.instances) if inst == instance and not self.deleted[i]]

    def live_rows(self, instances) -> dict[str, list[int]]:
        """Live reference rows of each given instance (safe alongside add/remove)."""
        with self.lock.read():
            return {inst: self._live_rows(inst) for inst in instances}

    def remove(self, instance: str) -> int:
        with self.lock.write():
            rows = self._live_rows(instance)
            for i in rows:
                self.hnsw.mark_deleted(i)
                self.deleted[i] = True
            return len(rows)

    # -- persistence ----------------------------------------------------------------------
    def to_members(self) -> dict[str, bytes]:
        """Bundle members; deleted rows are dropped (the graph is rebuilt if any were)."""
        with self.lock.read():
            keep = ~self.deleted
            descs = self.descriptors[keep]
            instances = [x for x, k in zip(self.instances, keep) if k]
            sources = [x for x, k in zip(self.sources, keep) if k]
            hnsw = self.hnsw if keep.all() else build_hnsw(descs, self.params)
            index_bytes = _hnsw_bytes(hnsw)
            codes = self.binary.codes[keep] if self.binary is not None else None
        labels = json.dumps({"instances": instances, "sources": sources}).encode("utf-8")
        members = {INDEX: index_bytes, REFS: npy_bytes(descs.astype(np.float16)), LABELS: labels}
        if self.binary is not None:
            members.update({CODES: npy_bytes(codes), ITQ_PROJ: npy_bytes(self.binary.proj),
                            ITQ_MEAN: npy_bytes(self.binary.mean)})
        return members

    @classmethod
    def from_members(cls, refs: np.ndarray, labels: dict, index_bytes: bytes | None,
                     params: IndexParams, source: str = "bundle", binary: BinaryCodes | None = None) -> "ReferenceIndex":
        instances = labels.get("instances")
        if not isinstance(instances, list) or len(instances) != len(refs) or refs.ndim != 2:
            raise BundleError(f"{source}: labels.json does not match refs.npy ({len(refs)} rows)")
        hnsw = None
        if index_bytes is not None:
            hnsw = _hnsw_load(index_bytes, refs.shape[1], len(refs), source)
            if hnsw.get_current_count() != len(refs):
                raise BundleError(f"{source}: index.hnsw holds {hnsw.get_current_count()} items, "
                                  f"refs.npy {len(refs)}")
        if binary is not None and len(binary.codes) != len(refs):
            raise BundleError(f"{source}: codes.npy has {len(binary.codes)} rows, refs.npy {len(refs)}")
        return cls(refs.astype(np.float32), instances, labels.get("sources"), params, hnsw, binary)

    def memory_per_reference(self) -> dict:
        """Bytes per reference for each match mode (what must sit in RAM for it)."""
        d = self.dim
        graph = 4 * 2 * self.params.M + 8  # level-0 links + label, approximately
        out = {"exact": 4 * d, "hnsw": 4 * d + graph}
        if self.binary is not None:
            out["hamming"] = self.binary.bytes_per_reference
            out["binary"] = self.binary.bytes_per_reference + 2 * d  # + float16 descriptors for re-rank
        return out


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
    # Only called on checksum-verified bytes: a corrupt hnswlib file can crash the process.
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
