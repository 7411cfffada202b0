"""Local features (keypoints + descriptors) of reference rows, stored flat with row offsets.

Row ``i``'s keypoints are ``kps[offsets[i]:offsets[i + 1]]``. The store is row-aligned with the
reference index and only ever changed under the index's write lock (see ``runtime/search/index.py``);
``append`` builds new arrays instead of mutating the old ones, so a reader holding views of
earlier rows is never disturbed.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

TURNED_CACHE_ROWS = 512   # quarter-turned rows a steered store keeps once made (about 34 KB each at 512
                          # keypoints: under 20 MB); a camera's next frames and calibration's other views of
                          # a work match the same candidates' turned rows again


class RowFeatures:
    """One reference row's local features, as the verifier gets them (``ReferenceIndex.features_of``).
    Unpacks as (row, rotation, keypoints, descriptors); ``chroma`` is read by name."""

    __slots__ = ("row", "rotation", "keypoints", "descriptors", "chroma")

    def __init__(self, row: int, rotation: int, keypoints: np.ndarray, descriptors: np.ndarray,
                 chroma: np.ndarray | None = None):
        self.row, self.rotation = row, rotation                # index row, quarter turns of its image
        self.keypoints, self.descriptors = keypoints, descriptors
        self.chroma = chroma   # int8 (a*, b*) per keypoint, when the bundle stores it (runtime/verify/colour.py)

    def __iter__(self):
        return iter((self.row, self.rotation, self.keypoints, self.descriptors))


class TurnedCache:
    """The last ``size`` quarter-turned rows a store's steerer made, by (upright row, quarter turns),
    least recently read out first. Safe from any thread: one lock guards the dict, and a row is made
    outside it, so two threads asking for one row at once may both make it (the same arrays). The
    arrays handed out are read-only: every reader shares them."""

    def __init__(self, size: int = TURNED_CACHE_ROWS):
        self.size = int(size)
        self._rows: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key, make):
        """The row cached under ``key``, else ``make()``'s (kept, the oldest dropped past ``size``)."""
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
                return row
        row = make()
        for a in row:
            a.setflags(write=False)
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
        return row


class SteeredRow:
    """A quarter-turned row made from its image's upright row by a ``Steerer``, when first read:
    verification reads the features of few of the rows it is given (a candidate's other turns only
    when its best row did not verify), so the others are never made. Unpacks and reads like
    ``RowFeatures``; the upright arrays it holds are never changed (``FeatureStore`` builds new
    arrays instead), so it may be read outside the index's lock, from any thread (two threads
    reading it first make the same arrays)."""

    __slots__ = ("row", "rotation", "chroma", "_upright", "_steerer", "_turned", "_cache", "_key")

    def __init__(self, row: int, rotation: int, upright: tuple[np.ndarray, np.ndarray], steerer,
                 chroma: np.ndarray | None = None, cache: TurnedCache | None = None, key=None):
        self.row, self.rotation = row, rotation
        self._upright, self._steerer, self._turned = upright, steerer, None
        self._cache, self._key = cache, key   # the store's TurnedCache and this row's key in it, if any
        self.chroma = chroma   # the upright row's: steering keeps the keypoints and their order

    def _made(self) -> tuple[np.ndarray, np.ndarray]:
        if self._turned is None:
            def make():
                return self._steerer.turn(self.rotation, *self._upright)
            self._turned = make() if self._cache is None else self._cache.get(self._key, make)
        return self._turned

    @property
    def keypoints(self) -> np.ndarray:
        return self._made()[0]

    @property
    def descriptors(self) -> np.ndarray:
        return self._made()[1]

    def __iter__(self):
        return iter((self.row, self.rotation, self.keypoints, self.descriptors))


class FeatureStore:
    """``codec``: the site's ``DescriptorCode`` when the bundle stores descriptors coded, else None.
    Then ``codes`` holds what the bundle stores (int8, K a keypoint) and ``descs`` their decoding,
    which is what matching uses; rows added later are encoded with the same codec, and rows are
    selected by their codes, so no descriptor is ever re-encoded from its own decoding.
    ``steerer``: the site's ``Steerer`` when quarter-turned rows are not stored but made from their
    image's upright row at match time (``ReferenceIndex.features_of``), else None. Every store made
    from this one (appended, selected, coded) keeps both, so a bundle written again keeps them.
    A steered store keeps the turned rows last made in ``turned`` (a ``TurnedCache``; each store its
    own, since row numbers change from one store to the next).
    ``chroma``: int8 (a*, b*) per keypoint (``runtime/verify/colour.py``), or None when the bundle
    stores none; rows added to a store with chroma must bring theirs."""

    def __init__(self, kps: np.ndarray, descs: np.ndarray, offsets: np.ndarray, codec=None,
                 codes: np.ndarray | None = None, steerer=None, chroma: np.ndarray | None = None):
        self.kps, self.descs, self.offsets = kps, descs, np.asarray(offsets, np.int64)
        self.codec, self.codes, self.steerer, self.chroma = codec, codes, steerer, chroma
        self.turned = TurnedCache() if steerer is not None else None
        if codec is not None and (codes is None or len(codes) != len(descs)):
            raise ValueError("a coded feature store needs one code per descriptor")
        if chroma is not None and len(chroma) != len(kps):
            raise ValueError("a feature store with chroma needs one per keypoint")

    @classmethod
    def from_rows(cls, rows, like: "FeatureStore | None" = None, codec=None) -> "FeatureStore":
        """``rows``: (keypoints, descriptors as extracted[, chroma]) per reference row; coded with
        ``codec`` (or ``like``'s) when there is one. The store has chroma when every row brings it
        (``like``'s store: when it has)."""
        rows = list(rows)
        codec = codec if codec is not None else (like.codec if like is not None else None)
        kps = ([like.kps[:0]] if like is not None else []) + [np.asarray(r[0]) for r in rows]
        descs = ([like.descs[:0]] if like is not None else []) + [np.asarray(r[1]) for r in rows]
        with_chroma = like.chroma is not None if like is not None else bool(rows) and all(len(r) > 2 for r in rows)
        if with_chroma and not all(len(r) > 2 for r in rows):
            raise ValueError("rows added to a feature store with chroma must bring their chroma")
        chroma = np.concatenate([np.zeros((0, 2), np.int8)] + [np.asarray(r[2], np.int8) for r in rows]) \
            if with_chroma else None
        offsets = np.zeros(len(rows) + 1, np.int64)
        offsets[1:] = np.cumsum([len(r[0]) for r in rows])
        kps = np.concatenate(kps) if kps else np.zeros((0, 2), np.float32)
        descs = np.concatenate(descs) if descs else np.zeros((0, 0), np.float32)
        steerer = like.steerer if like is not None else None
        if codec is None:
            return cls(kps, descs, offsets, steerer=steerer, chroma=chroma)
        codes = codec.encode(descs) if len(descs) else np.zeros((0, codec.components), np.int8)
        return cls(kps, codec.decode(codes), offsets, codec, codes, steerer, chroma)

    def coded(self, codec) -> "FeatureStore":
        """This store's rows with their descriptors encoded by ``codec`` (a store not yet coded)."""
        if self.codec is not None:
            raise ValueError("the feature store is already coded")
        codes = codec.encode(self.descs)
        return FeatureStore(self.kps, codec.decode(codes), self.offsets, codec, codes, self.steerer, self.chroma)

    def steered(self, steerer) -> "FeatureStore":
        """This store with quarter-turned rows made by ``steerer`` (the rows themselves unchanged)."""
        return FeatureStore(self.kps, self.descs, self.offsets, self.codec, self.codes, steerer, self.chroma)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.kps[a:b], self.descs[a:b]

    def row_chroma(self, i: int) -> np.ndarray | None:
        """Row ``i``'s keypoints' chroma, or None when the store has none."""
        return None if self.chroma is None else self.chroma[self.offsets[i]:self.offsets[i + 1]]

    def appended(self, rows) -> "FeatureStore":
        """A new store with ``rows`` added at the end (this one is left as it was)."""
        extra = FeatureStore.from_rows(rows, like=self)
        codes = None if self.codec is None else np.concatenate([self.codes, extra.codes])
        chroma = None if self.chroma is None else np.concatenate([self.chroma, extra.chroma])
        return FeatureStore(np.concatenate([self.kps, extra.kps]), np.concatenate([self.descs, extra.descs]),
                            np.concatenate([self.offsets, self.offsets[-1] + extra.offsets[1:]]), self.codec, codes,
                            self.steerer, chroma)

    def select(self, rows) -> "FeatureStore":
        """A new store of ``rows`` (in that order)."""
        rows = np.asarray(list(rows), np.int64)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        offsets = np.zeros(len(rows) + 1, np.int64)
        offsets[1:] = np.cumsum(ends - starts)
        take = (np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]) if len(rows)
                else np.zeros(0, np.int64))
        codes = None if self.codec is None else self.codes[take]
        chroma = None if self.chroma is None else self.chroma[take]
        return FeatureStore(self.kps[take], self.descs[take], offsets, self.codec, codes, self.steerer, chroma)
