"""The per-site reference rows: hnswlib graph (inner product), float descriptors, labels, and
the row-aligned extras (binary codes, local features for verification).

Everything that belongs to a row changes together under one reader-writer lock, so no reader
ever sees a row without its label, code or keypoints. Thread safety per method, as hnswlib's
README states it:

- ``search`` / ``search_many`` / ``similarities`` / ``rows_of`` / ``features_of``: shared lock;
  safe from many threads at once and alongside each other.
- ``add`` / ``remove``: exclusive lock; they wait for running readers and block new ones
  meanwhile (hnswlib itself is not safe for concurrent add + query). ``add`` vs ``add``: serialised,
  rows, labels, codes and keypoints stay aligned.
- ``compacted``: shared lock; a consistent snapshot of all rows (what ``runtime/bundle/index_members.py``
  writes), safe alongside searches and
  serialised against ``add``/``remove``.
"""
from __future__ import annotations

import hnswlib
import numpy as np

from runtime.search.binary_codes import BinaryCodes
from runtime.errors import SitelensError
from runtime.kinds import MATCH_MODES  # noqa: F401 (validated here, re-exported)
from runtime.search.feature_store import FeatureStore, RowFeatures, SteeredRow
from runtime.search.index_params import IndexParams
from runtime.search.rwlock import RWLock

BINARY_SHORTLIST = 100  # Hamming candidates re-ranked with float descriptors in "binary" mode


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; all-zero rows stay zero): cosine = inner product."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def build_hnsw(descriptors: np.ndarray, params: IndexParams, capacity: int | None = None,
               threads: int = 1) -> hnswlib.Index:
    """An HNSW graph of ``descriptors`` (row i has label i). One insert thread by default: hnswlib's
    parallel inserts link rows in an order that varies from run to run, so the same rows would give
    a different graph (and a different bundle) each time."""
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
                 binary: BinaryCodes | None = None, features: FeatureStore | None = None,
                 rotations: list[int] | None = None, images: list[int] | None = None,
                 digests: list[str] | None = None):
        """``rotations``: quarter turns (0-3) of the reference image each row describes (rows of
        turned copies let turned queries find their reference); ``images``: which reference image
        each row comes from (rows of one image's turned copies share it; default one image per row);
        ``digests``: sha256 of each row's image file ("" when unknown), which lets a rebuild reuse
        the rows of unchanged images (``export/update.py``)."""
        descriptors = l2_normalize(descriptors)
        if len(descriptors) != len(instances):
            raise SitelensError(f"{len(descriptors)} descriptors but {len(instances)} labels")
        if features is not None and len(features) != len(instances):
            raise SitelensError(f"{len(features)} rows of local features but {len(instances)} labels")
        self.params = params
        self.descriptors = descriptors
        self.instances = list(instances)
        self.sources = list(sources) if sources is not None else [""] * len(instances)
        self.rotations = [int(r) for r in rotations] if rotations is not None else [0] * len(instances)
        if len(self.rotations) != len(instances):
            raise SitelensError(f"{len(self.rotations)} rotations but {len(instances)} labels")
        self.images = [int(i) for i in images] if images is not None else list(range(len(instances)))
        if len(self.images) != len(instances):
            raise SitelensError(f"{len(self.images)} image ids but {len(instances)} labels")
        self.digests = list(digests) if digests is not None else [""] * len(instances)
        if len(self.digests) != len(instances):
            raise SitelensError(f"{len(self.digests)} image digests but {len(instances)} labels")
        self.deleted = np.zeros(len(instances), bool)
        self._rows: dict[str, list[int]] = {}
        for i, inst in enumerate(self.instances):
            self._rows.setdefault(inst, []).append(i)
        self.hnsw = hnsw if hnsw is not None else build_hnsw(descriptors, params)
        self.hnsw.set_ef(params.ef)  # ef is not saved by hnswlib: it lives in the manifest
        self.binary = binary
        if binary is not None and len(binary.codes) != len(instances):
            binary.codes = binary.encode(descriptors)
        self.features = features
        self.lock = RWLock()

    # -- queries (shared lock) --------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.descriptors.shape[1])

    @property
    def live_count(self) -> int:
        return int((~self.deleted).sum())

    def live_instances(self) -> list[str]:
        with self.lock.read():
            return sorted(self._rows)

    def search(self, query: np.ndarray, k: int = 5, mode: str = "hnsw") -> list[tuple[str, float]]:
        """Top-``k`` instances for one descriptor, scored by their best reference (cosine)."""
        return self.search_many(np.asarray(query)[None], k, mode)[0]

    def search_many(self, queries: np.ndarray, k: int = 5, mode: str = "hnsw") -> list[list[tuple[str, float]]]:
        return [[(inst, s) for inst, s, _ in r] for r in self.search_rows(queries, k, mode)]

    def search_rows(self, queries: np.ndarray, k: int = 5, mode: str = "hnsw",
                    exclude=None) -> list[list[tuple[str, float, int]]]:
        """Like ``search_many``, with the best-scoring reference row of each instance.
        ``exclude``: instances to leave out (calibration: "a painting not in the site")."""
        if mode not in MATCH_MODES:
            raise SitelensError(f"unknown match mode {mode!r}; choose from {MATCH_MODES}")
        queries = l2_normalize(np.atleast_2d(queries))
        exclude = frozenset(exclude or ())
        with self.lock.read():
            live = self.live_count
            if live == 0:
                return [[] for _ in queries]
            hidden = sum(len(self._rows.get(e, ())) for e in exclude)
            want = min(live, max(4 * k, 32) + hidden)
            while True:
                ids, scores = self._neighbours(queries, want, mode)
                results = [self._aggregate(i, s, k, exclude) for i, s in zip(ids, scores)]
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

    def _aggregate(self, ids, scores, k: int, exclude=frozenset()) -> list[tuple[str, float, int]]:
        best: dict[str, tuple[float, int]] = {}
        for i, s in zip(ids, scores):
            if i < 0 or self.deleted[i] or not np.isfinite(s):
                continue
            inst = self.instances[i]
            if inst not in best and inst not in exclude:
                best[inst] = (float(s), int(i))
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:k]
        return [(inst, s, row) for inst, (s, row) in ranked]

    def similarities(self, queries: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of queries to every live reference row (deleted = -inf)."""
        with self.lock.read():
            sims = l2_normalize(np.atleast_2d(queries)) @ self.descriptors.T
            sims[:, self.deleted] = -np.inf
            return sims

    def rows_of(self, instances) -> dict[str, list[int]]:
        """Live reference rows of each given instance, O(1) per instance."""
        with self.lock.read():
            return {inst: list(self._rows.get(inst, ())) for inst in instances}

    def features_of(self, instances, query: np.ndarray | None = None, limit: int | None = None,
                    shared_turns: bool = False) -> dict[str, list[RowFeatures]]:
        """The local features of the live rows of each given instance (a consistent
        snapshot); with ``query`` (a descriptor), rows most similar to it first, at most ``limit``.
        ``shared_turns``: a quarter-turned row gets the features of its image's upright row (the
        verifier turns the query back instead). When the store has a steerer (``FeatureStore``), a
        quarter-turned row gets its image's upright row's features turned by it (a ``SteeredRow``,
        turned when first read)."""
        with self.lock.read():
            if self.features is None:
                return {inst: [] for inst in instances}
            steer = self.features.steerer
            out = {}
            for inst in instances:
                rows = list(self._rows.get(inst, ()))
                upright = ({self.images[i]: i for i in rows if self.rotations[i] == 0}
                           if shared_turns or steer is not None else {})
                if query is not None and len(rows) > 1:
                    rows = [rows[i] for i in np.argsort(-(self.descriptors[rows] @ query), kind="stable")]
                feats = []
                for i in rows[:limit]:
                    own = upright.get(self.images[i], i)
                    kp, desc = self.features.row(own)
                    chroma = self.features.row_chroma(own)
                    if steer is not None and self.rotations[i]:  # made when verification reads it
                        feats.append(SteeredRow(i, self.rotations[i], (kp, desc), steer, chroma,
                                                self.features.turned, (own, int(self.rotations[i]))))
                    else:
                        feats.append(RowFeatures(i, self.rotations[i], kp, desc, chroma))
                out[inst] = feats
            return out

    # -- updates (exclusive lock) ------------------------------------------------------------
    def replace_graph(self, hnsw: hnswlib.Index, params: IndexParams) -> None:
        """Use another HNSW graph over the same rows (export-time tuning of M and ef)."""
        if hnsw.get_current_count() != len(self.instances):
            raise SitelensError(f"graph holds {hnsw.get_current_count()} items, index {len(self.instances)}")
        with self.lock.write():
            hnsw.set_ef(params.ef)
            self.hnsw, self.params = hnsw, params

    def add(self, descriptors: np.ndarray, instance: str, sources: list[str] | None = None,
            features: list | None = None, rotations: list[int] | None = None, images: list[int] | None = None,
            digests: list[str] | None = None) -> None:
        """Append rows for ``instance``; ``features`` (one (keypoints, descriptors) per row) is
        required when the index carries local features, so rows and keypoints stay aligned.
        ``images``: which of the added images each row describes (0, 1, ...; default one per row)."""
        descriptors = l2_normalize(np.atleast_2d(descriptors))
        if descriptors.shape[1] != self.dim:
            raise SitelensError(f"descriptor dim {descriptors.shape[1]} != index dim {self.dim}")
        if (self.features is not None) != (features is not None) or (
                features is not None and len(features) != len(descriptors)):
            raise SitelensError("local features must be given for every added row exactly when the index has them")
        with self.lock.write():
            start = len(self.instances)
            needed = start + len(descriptors)
            if needed > self.hnsw.get_max_elements():
                self.hnsw.resize_index(max(needed, 2 * self.hnsw.get_max_elements()))
            self.hnsw.add_items(descriptors, np.arange(start, needed), num_threads=1)
            self.descriptors = np.concatenate([self.descriptors, descriptors])
            self.instances = self.instances + [instance] * len(descriptors)
            self.sources = self.sources + (list(sources) if sources else [""] * len(descriptors))
            self.rotations = self.rotations + ([int(r) for r in rotations] if rotations else [0] * len(descriptors))
            first = max(self.images, default=-1) + 1
            local = images if images is not None else range(len(descriptors))
            self.images = self.images + [first + int(i) for i in local]
            self.digests = self.digests + (list(digests) if digests else [""] * len(descriptors))
            self.deleted = np.concatenate([self.deleted, np.zeros(len(descriptors), bool)])
            self._rows.setdefault(instance, []).extend(range(start, needed))
            if self.binary is not None:
                self.binary.append(descriptors)
            if self.features is not None:
                self.features = self.features.appended(features)

    def remove(self, instance: str) -> int:
        with self.lock.write():
            rows = self._rows.pop(instance, [])
            for i in rows:
                self.hnsw.mark_deleted(i)
            self.deleted = self.deleted.copy()
            self.deleted[rows] = True
            return len(rows)

    # -- persistence (shared lock) -----------------------------------------------------------
    def compacted(self) -> "ReferenceIndex":
        """A new index of the live rows only, in order (the graph is rebuilt if rows were removed);
        a consistent snapshot, safe alongside searches."""
        with self.lock.read():
            keep = ~self.deleted
            pick = lambda values: [x for x, k in zip(values, keep) if k]  # noqa: E731
            descs = self.descriptors[keep]
            hnsw = self.hnsw if keep.all() else build_hnsw(descs, self.params)
            binary = None
            if self.binary is not None:
                binary = BinaryCodes(self.binary.proj, self.binary.mean, self.binary.codes[keep])
            features = self.features.select(np.flatnonzero(keep)) if self.features is not None else None
            return ReferenceIndex(descs, pick(self.instances), pick(self.sources), self.params, hnsw, binary, features,
                                  pick(self.rotations), pick(self.images), pick(self.digests))

    def memory_per_reference(self) -> dict:
        """Bytes per reference for each match mode (what must sit in RAM for it)."""
        d = self.dim
        graph = 4 * 2 * self.params.M + 8  # level-0 links + label, approximately
        out = {"exact": 4 * d, "hnsw": 4 * d + graph}
        if self.binary is not None:
            out["hamming"] = self.binary.bytes_per_reference
            out["binary"] = self.binary.bytes_per_reference + 2 * d  # + float16 descriptors for re-rank
        return out
