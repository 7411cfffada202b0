"""Geometric verification of the global shortlist: the query's local features against the cached
features of each candidate's references, then a geometric model (``runtime/verify/geometric.py``).

Rotations: the index holds each reference at several quarter turns (a book on a desk, a phone held
sideways), each row with the descriptor *and* the local features of the turned reference (XFeat is
not rotation invariant). The query is described once, upright. Each candidate's rows come ordered
by global similarity to the query: its best row (usually the right reference at the right turn) is
matched first for every candidate; the next ones (other turns, other references), at most
``rows_per_candidate``, only when that verified nothing. An upright painting costs one matching per
candidate, a turned book up to four. When none of the shortlist's first candidates verified, a
second look matches the next ones too (``_second_look``). When still nothing verified, the learned
matcher (LighterGlue, ``runtime/verify/glue.py``) re-matches the one or two candidates whose mutual nearest
neighbours already fit a fundamental matrix better than chance (``_glue``): it finds the
correspondences a change of viewpoint or daylight hides from descriptor distances alone (3-D
evidence), and its cost (``bench/verifiers.py``) is paid only on those frames.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import NamedTuple

import numpy as np

from runtime.errors import SitelensError
from runtime.search.feature_store import RowFeatures, SteeredRow
from runtime.verify import colour
from runtime.verify.descriptor_code import components_of
from runtime.verify.geometric import Evidence, fit_homography, rot90_points, fundamental_inliers, hull_area, outline_in_query
from runtime.verify.local_features import FEATURES, STORED_DESCRIPTORS, OpenCVFeatures, XFeatFeatures, as_float
from runtime.verify.matching import mutual_nearest_many, ratio_test

TURNED_FEATURES = ("stored", "query", "steered")  # how quarter-turned reference rows get their features
CHUNK_ROWS = 4   # reference rows matched between two looks at a frame's time budget (``Verifier.evidence``)


def _never_late(need: float = 0.0) -> bool:
    """``late`` of a frame without a time budget."""
    return False


class QueryFeatures(NamedTuple):
    """The frame's local features (at one quarter turn)."""
    keypoints: np.ndarray
    descriptors: np.ndarray
    area: float                       # of the keypoints' convex hull: what coverage is measured against
    colours: colour.ChromaField | None = None  # the frame's chroma (``runtime/verify/colour.py``), when
                                               # the bundle stores its references' keypoints' chroma


@dataclass
class FrameCache:
    """What verifying one frame has computed, kept across calls on that frame (the first
    candidates, the second look, several works in one frame, calibration's several match modes),
    so nothing is extracted or matched twice. Keyed by reference row."""
    query: dict[int, QueryFeatures] = field(default_factory=dict)   # by quarter turn of the frame
    pairs: dict[int, tuple] = field(default_factory=dict)          # mutual-nearest correspondences
    matches: dict[int, tuple] = field(default_factory=dict)        # (Evidence, (query points, reference points))
    fundamental: dict[int, int] = field(default_factory=dict)      # mutual nearest neighbours' fundamental inliers
    glue: dict[int, int] = field(default_factory=dict)             # learned matcher's fundamental inliers
    descriptor: np.ndarray | None = None   # the frame's global descriptor, for callers that score it several ways
    truncated: bool = False                # the time budget skipped a stage in the last ``evidence`` call


@dataclass
class VerifyParams:
    feature: str = "xfeat"          # xfeat (learned, ONNX) | orb | sift
    work_side: int = 640            # longer side of the working image (references and queries)
    ref_keypoints: int = 512        # per upright reference row stored in the bundle
    ref_spread: bool = False        # xfeat: references keep keypoints spread over the image (spread_order)
    turned_keypoints: int = 256     # per quarter-turned reference row
    query_keypoints: int = 1024
    min_cosine: float = 0.78        # mutual nearest neighbours (xfeat); RANSAC and calibration handle the extra outliers
    ratio: float = 0.8              # Lowe's ratio test (orb/sift)
    candidates: int = 10            # shortlist size verified per frame
    second_look: int = 20           # further shortlist candidates matched when none of the first verified
    second_look_geometry: int = 3   # of those, the ones with the most matches that get a geometric model
    second_look_half_turn: bool = True  # ... each whose best row is turned also matched with its row half a
                                        # turn from that one: the global descriptor tells a turned frame from
                                        # an upright one, not a quarter turn left from one right
    rows_per_candidate: int = 4     # reference rows (references x turns) matched per candidate, best first
    fundamental: bool = True        # 3-D fallback model for the best candidates
    fundamental_candidates: int = 3
    local_fingerprint: str | None = None  # of local.onnx (xfeat)
    glue_candidates: int = 2        # unverified candidates the learned matcher re-matches (xfeat; 0 = off)
    glue_from_fundamental: int = 24  # ... among those whose mutual nearest neighbours reach this many
                                     # fundamental-matrix inliers (random matches give about 20)
    glue_fingerprint: str | None = None   # of glue.onnx
    glue_keypoints: int = 0         # frame keypoints the learned matcher sees per candidate, those most like
                                    # the candidate's (``glue_subset``); 0 = every one. Its attention's cost
                                    # grows with them; fewer (512) cost buildings some answers on a large
                                    # site (BENCHMARKS.md), so every one is the default
    glue_layers: int = 0            # transformer layers of the learned matcher in glue.onnx, its first ones and
                                    # that layer's own assignment head; 0 = every one (LighterGlue has 6).
                                    # Set at export (``--glue-layers``); here for the record. Fewer cost
                                    # buildings answers (BENCHMARKS.md), so every one is the default
    glue_pruning: float = 0.0       # the learned matcher's point pruning (width confidence): after each layer
                                    # but the last, points its matchability head gives less than 1 - this
                                    # leave both attentions; 0 = off (bundles built before it). Set at export
                                    # (``--glue-pruning``, on: glue.PRUNING); here for the record
    turned_features: str = "stored"  # "stored": every row has its own features; "query": a quarter-turned
                                     # row shares its image's upright features and the query is turned back;
                                     # "steered": a quarter-turned row is its image's upright row turned by
                                     # the site's steerer (runtime/verify/steerer.py; xfeat only)
    descriptor_code: str = "int8"    # how the bundle stores reference descriptors (descriptor_code.py)
    colour: bool = False             # the bundle stores each reference keypoint's chroma, and each
                                     # candidate's homography inliers measure a colour gap (colour.py);
                                     # bundles built before it did not (off when absent)

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise SitelensError(f"unknown local feature {self.feature!r}; use one of {FEATURES}")
        if self.turned_features not in TURNED_FEATURES:
            raise SitelensError(f"turned_features must be one of {', '.join(TURNED_FEATURES)}, "
                                f"got {self.turned_features!r}")
        if self.turned_features == "steered" and self.feature != "xfeat":
            raise SitelensError("steered turned features apply to xfeat only")
        if components_of(self.descriptor_code) is not None and self.feature != "xfeat":
            raise SitelensError(f"descriptor code {self.descriptor_code} applies to xfeat descriptors only")

    @classmethod
    def for_feature(cls, feature: str) -> "VerifyParams":
        if feature == "xfeat":
            return cls(feature="xfeat")
        return cls(feature=feature, work_side=480, ref_keypoints=800, turned_keypoints=400, query_keypoints=800,
                   glue_candidates=0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VerifyParams":
        known = {f.name for f in fields(cls)}
        # bundles calibrated before the second look or the learned matcher keep their path
        d = {"second_look": 0, "glue_candidates": 0, "glue_keypoints": 0, "second_look_half_turn": False,
             "colour": False, **d}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def shortlist(self) -> int:
        """Global candidates verification may look at: the first ones and the second look."""
        return self.candidates + self.second_look


def empty_features(like) -> tuple[np.ndarray, np.ndarray]:
    """No keypoints, with the dtypes and widths of ``like``."""
    return like[0][:0], like[1][:0]


def make_extractor(params: VerifyParams, local_onnx: bytes | None = None, source: str = "bundle",
                   threads: int | None = None, providers: list[str] | None = None):
    if params.feature == "xfeat":
        if local_onnx is None:
            raise SitelensError(f"{source}: verification with xfeat needs local.onnx")
        return XFeatFeatures(local_onnx, params.local_fingerprint, params.work_side, params.query_keypoints,
                             threads=threads, source=f"{source}:local.onnx", providers=providers)
    return OpenCVFeatures(params.feature, params.work_side, params.query_keypoints)


def make_matcher(params: VerifyParams, glue_onnx: bytes | None = None, source: str = "bundle",
                 threads: int | None = None, providers: list[str] | None = None):
    """The learned matcher a bundle's verification uses, or None (mutual nearest neighbours only)."""
    if params.feature != "xfeat" or not params.glue_candidates:
        return None
    if glue_onnx is None:
        raise SitelensError(f"{source}: verification with the learned matcher needs glue.onnx")
    from runtime.verify.glue import LearnedMatcher

    return LearnedMatcher(glue_onnx, params.glue_fingerprint, threads=threads, source=f"{source}:glue.onnx",
                          providers=providers)



def _settled(out: dict, verified) -> bool:
    """Has a candidate of ``out`` (instance -> Evidence) passed the ``verified(evidence, instance)``
    stop test (None: no test, never settled)?"""
    return verified is not None and any(verified(e, i) for i, e in out.items())


def _above_verified(first: list[str], out: dict, verified) -> list[str]:
    """The candidates of ``first`` (the global shortlist's order) ranked above the first one that
    passed ``verified`` (none when none passed, or no test). Each candidate's best row is matched
    first; when a lower-ranked one passes on its best row, these still get their other rows
    before verification stops: the global descriptor sees colour, XFeat grey levels, and a
    look-alike (the same car model in another colour) verifying on its best row must not hide
    the photographed work, whose best row by global score was not its best view."""
    if verified is None:
        return []
    for k, inst in enumerate(first):
        if inst in out and verified(out[inst], inst):
            return list(first[:k])
    return []


class Verifier:
    """Verification of candidates for one bundle. Thread-safe (its only mutable state, the last
    learned-matcher call's duration used by time budgets, is one float written whole)."""

    def __init__(self, params: VerifyParams, extractor, matcher=None):
        self.params, self.extractor, self.matcher = params, extractor, matcher
        self._glue_seconds = 0.0

    @property
    def shared_turns(self) -> bool:
        """Turned rows share their image's upright features; the query is turned back to match them."""
        return self.params.turned_features == "query"

    def reference_features(self, img_rgb: np.ndarray, rotation: int = 0, turned: np.ndarray | None = None):
        """What the bundle stores for one reference row: the features of the reference turned by
        ``rotation`` quarter turns (fewer keypoints for turned copies); none for turned rows when
        they share the upright row's (``shared_turns``) or are made from it (``steered``).
        (keypoints, descriptors), and with ``params.colour`` the keypoints' chroma third.
        ``turned``: ``img_rgb`` already turned by ``rotation`` (a caller that embedded the turned
        copy passes it: one full-resolution copy less per row)."""
        if rotation and self.params.turned_features != "stored":
            dtype, width = STORED_DESCRIPTORS[self.params.feature]
            empty = (np.zeros((0, 2), np.float16), np.zeros((0, width), dtype))
            return (*empty, np.zeros((0, 2), np.int8)) if self.params.colour else empty
        img = turned
        if img is None:
            img = np.ascontiguousarray(np.rot90(img_rgb, rotation)) if rotation else img_rgb
        n = self.params.ref_keypoints if rotation == 0 else self.params.turned_keypoints
        if self.params.ref_spread and self.params.feature == "xfeat":
            kp, desc = self.extractor.extract(img, n, spread=True)
        else:
            kp, desc = self.extractor.extract(img, n)
        if self.params.colour:
            return kp.astype(np.float16), desc, self._chroma(img).at(kp, colour.PATCH)
        return kp.astype(np.float16), desc

    def _chroma(self, img_rgb: np.ndarray) -> colour.ChromaField:
        """The chroma of ``img_rgb``, read at points of its working image."""
        h, w = img_rgb.shape[:2]
        sx, sy = self.extractor.working_scale(h, w)
        return colour.ChromaField(img_rgb, (int(round(h * sy)), int(round(w * sx))))

    def _correspondences(self, q, descs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(query, reference) keypoint indices for each reference row's descriptors."""
        if self.params.feature == "xfeat":
            return mutual_nearest_many(q.descriptors, descs, self.params.min_cosine)
        return [ratio_test(q.descriptors, d, self.extractor.binary, self.params.ratio) for d in descs]

    def _match(self, q, rotation: int, kp, pairs, chroma=None) -> tuple[Evidence, tuple | None]:
        """Homography evidence of one reference row from its correspondences, plus the matched
        points; ``chroma``: the row's keypoints' (a colour gap is measured when the frame's is known)."""
        if len(kp) == 0:
            return Evidence(rotation=rotation), None
        qi, ri = pairs
        src, dst = q.keypoints[qi], kp[ri].astype(np.float32)
        fit = fit_homography(src, dst)
        mask = None if fit is None else fit[1]
        inliers = int(mask.sum()) if mask is not None else 0
        coverage = q_coverage = 0.0
        region = gap = None
        if inliers >= 3:
            coverage = hull_area(dst[mask]) / max(hull_area(kp.astype(np.float32)), 1.0)
            q_coverage = hull_area(src[mask]) / max(q.area, 1.0)
            corners = outline_in_query(fit[0], kp.astype(np.float32))
            region = None if corners is None else tuple(map(tuple, corners.tolist()))  # working frame, turned back
            if q.colours is not None and chroma is not None and len(chroma) == len(kp):
                half = colour.PATCH * colour.match_scale(src[mask], dst[mask])   # the same part of the work
                gap = colour.colour_gap(q.colours.at(src[mask], half), chroma[ri[mask]])
        return Evidence(len(qi), inliers, 0, rotation, coverage, q_coverage, region, gap), (src, dst)

    def query_features(self, img_rgb: np.ndarray, cache: FrameCache | None = None, rotation: int = 0) -> QueryFeatures:
        """The frame's features, turned back by ``rotation`` quarter turns (to match the upright
        features of a row of that rotation)."""
        if cache is not None and rotation in cache.query:
            return cache.query[rotation]
        img = np.ascontiguousarray(np.rot90(img_rgb, -rotation)) if rotation else img_rgb
        kp, desc = self.extractor.extract(img, self.params.query_keypoints)
        q = QueryFeatures(kp, desc, hull_area(kp), self._chroma(img) if self.params.colour else None)
        if cache is not None:
            cache.query[rotation] = q
        return q

    def _turns(self, first: list[str], feats: dict) -> tuple[set[int], set[int]]:
        """(rotations a frame is matched at first, rotations tried after them when nothing verified).
        With stored turned features: every rotation at once (its rows carry their own features).
        With shared ones each rotation costs one local-feature extraction of the frame: first
        upright and the rotation of the top candidate's best row; then, when nothing verified, the
        other two. The global descriptor's rotation is only a hint: it tells turned from upright,
        but a quarter turn left from one right, or upside down from either, much less well."""
        if not self.shared_turns:
            return {0, 1, 2, 3}, set()
        top = next((rows[0].rotation for inst in first if (rows := feats.get(inst))), 0)
        return {0, top}, {0, 1, 2, 3} - {0, top}

    def evidence(self, img_rgb: np.ndarray, candidates: list[str], features_of,
                 verified=None, all_passes: bool = False, cache: FrameCache | None = None,
                 deadline: float | None = None) -> dict[str, Evidence]:
        """Evidence per candidate instance (its best reference row); the second look's candidates
        appear only when it ran.

        ``candidates``: the global shortlist, best first; the first ``params.candidates`` are
        verified, the next ``params.second_look`` only when none of those verified (see
        ``_second_look``).
        ``features_of(instances)`` -> {instance: [RowFeatures or SteeredRow (row, rotation, keypoints,
        descriptors), ...]}, each candidate's rows best first (the first row of every candidate is matched before any second);
        asked for the second look's candidates only when it runs;
        ``verified(evidence, instance) -> bool`` skips the other rows once a candidate passes (runtime),
        except those of the candidates ranked above the first that passed (``_above_verified``);
        ``all_passes`` matches every row of the first candidates (calibration: negatives must get
        every chance); with ``verified`` too, the later stages (second look, 3-D models, learned
        matcher) still stop once a candidate passes (calibration's positives);
        ``cache``: a ``FrameCache`` kept across calls on the same image (query features, per-row results);
        ``deadline`` (a ``time.perf_counter()`` value): checked between every ``CHUNK_ROWS`` rows
        matched (the first chunk of best rows always runs), between the second look's chunks and
        before each of its geometric models, before each 3-D model, and before the learned matcher;
        a step is skipped, with all after it, when less time is left than the frame's longest
        step so far took (the learned matcher: than its last call took, if longer), so a frame
        ends near its deadline, not one step past it; the evidence found so far is returned
        (``cache.truncated`` says whether anything was). Checking only between stages let one
        stage of a 10k-row site (ten candidates' four rows each) run far past the budget. Without
        a deadline the answers are the same as with one that is never reached."""
        cache = FrameCache() if cache is None else cache
        cache.truncated = False
        shared = self.shared_turns

        def qs(rotation: int):  # the frame's features for rows of ``rotation``
            return self.query_features(img_rgb, cache, rotation if shared else 0)

        last = longest = 0.0   # when ``late`` was last asked (what came after it is one step of
                               # work), and the frame's longest step so far

        def late(need: float = 0.0) -> bool:
            """Is there no time left for the next step, which may take ``need`` seconds or as
            long as the frame's longest step so far (steps of one kind vary from row to row, and
            the next may be the slow one)? Once it said so, it says so for the rest of the frame:
            a skipped step ends the frame's verification, whatever stage asks next."""
            nonlocal last, longest
            if deadline is None:
                return False
            if cache.truncated:
                return True
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
            if now + max(need, longest) > deadline:
                cache.truncated = True
                return True
            return False

        q = qs(0)
        last = time.perf_counter()
        first, second = candidates[: self.params.candidates], candidates[self.params.candidates:]
        out = {c: Evidence() for c in first}  # second-look candidates only once looked at
        pts: dict[str, tuple] = {}
        best: dict[str, tuple] = {}  # the reference row behind each candidate's evidence
        if len(q.keypoints) == 0:
            return out
        all_feats = _rows(features_of(first))
        turns, later_turns = self._turns(first, all_feats)

        def settled() -> bool:
            return _settled(out, verified)

        # every candidate's best row first, then its next ones; then (shared turned features) the
        # rows of the later rotations, when nothing verified
        only = None   # once one passed: the candidates ranked above it, whose other rows are still matched
        for phase, allowed in ((0, turns), (1, turns), (2, later_turns)):
            if (phase and late()) or not allowed:
                break
            feats = {i: [f for f in rows if f.rotation in allowed] for i, rows in all_feats.items()}
            todo = [(inst, row_feats) for inst in first if only is None or inst in only
                    for j, row_feats in enumerate(feats.get(inst, ())[: self.params.rows_per_candidate])
                    if phase == 2 or (j == 0) == (phase == 0)]
            for start in range(0, len(todo), CHUNK_ROWS):
                if (phase or start) and late():   # phase 0's first chunk always runs
                    break
                chunk = todo[start: start + CHUNK_ROWS]
                self._match_rows(qs, [row_feats for _, row_feats in chunk], cache)
                for inst, row_feats in chunk:
                    ev, p = cache.matches[row_feats.row]
                    if ev.better_than(out[inst]):
                        out[inst], pts[inst], best[inst] = ev, p, row_feats
            if cache.truncated:
                break
            if not all_passes and settled():
                only = set(_above_verified(first, out, verified))
                if phase or not only:
                    break
            if phase == 2:
                turns = turns | later_turns
        if second and not settled() and not late():
            more = {i: [f for f in rows if f.rotation in turns] for i, rows in _rows(features_of(second)).items()}
            self._second_look(qs, second, more, out, pts, best, cache, late)
        if self.params.fundamental and not late():
            self._fundamental(out, pts, best, verified, cache, late)
            self._glue(qs, out, best, verified, cache, late)
        return {i: self._in_frame(e, img_rgb.shape[:2], shared) for i, e in out.items()}

    def _in_frame(self, ev: Evidence, shape: tuple[int, int], shared: bool) -> Evidence:
        """``ev`` with its region in the frame's own pixels (from the working image, turned back by
        the row's rotation when the frame was matched turned)."""
        if ev.region is None:
            return ev
        h, w = shape
        turns = ev.rotation % 4 if shared else 0
        th, tw = (h, w) if turns % 2 == 0 else (w, h)          # the matched (turned-back) image's size
        pts = np.float64(ev.region) / np.float64(self.extractor.working_scale(th, tw))
        if turns:
            pts = rot90_points(pts, turns, th, tw)   # the frame is np.rot90 of the matched image
        return replace(ev, region=tuple(map(tuple, pts.tolist())))

    def _match_rows(self, qs, rows, cache: FrameCache) -> None:
        """Correspondences and homography evidence of reference rows, into ``cache.matches``;
        ``qs(rotation)``: the frame's features for rows of that rotation."""
        fresh = [f for f in rows if f.row not in cache.matches]
        for f, pairs in zip(fresh, self._pairs(qs, fresh, cache)):
            cache.matches[f.row] = self._match(qs(f.rotation), f.rotation, f.keypoints, pairs, f.chroma)

    def _pairs(self, qs, rows, cache: FrameCache) -> list:
        todo = [f for f in rows if f.row not in cache.pairs]
        for rotation in sorted({f.rotation for f in todo}):
            group = [f for f in todo if f.rotation == rotation]
            for f, pairs in zip(group, self._correspondences(qs(rotation), [f.descriptors for f in group])):
                cache.pairs[f.row] = pairs
        return [cache.pairs[f.row] for f in rows]

    def _second_look(self, qs, second: list[str], feats: dict, out: dict, pts: dict, best: dict,
                     cache: FrameCache, late=_never_late) -> None:
        """When none of the first candidates verified: the next ones' best rows are matched in
        batches (cheap next to a geometric model) and the few with the most correspondences get
        the geometry. The global descriptor ranks a building seen from another corner or a detail
        in close-up beyond the first ten more often than it misses it altogether, and the local
        features still find it there; the others keep their match count (no inliers).
        ``params.second_look_half_turn``: after every candidate's best row, when that row is
        turned, its best row half a turn from it (a frame turned a quarter left looks, to the
        global descriptor, much like one turned right: on a large site turned book covers ranked
        beyond the first ten were matched at the wrong quarter turn and lost); an upright best row
        gets no upside-down partner (visitors rarely hold a camera upside down, and most frames
        are upright: they cost nothing more). A candidate keeps the row with more
        correspondences. ``late()`` is asked between batches and before each model: the
        candidates matched by then are ranked, the rest left out."""
        todo = [(inst, feats[inst][0]) for inst in second if feats.get(inst)]
        if self.params.second_look_half_turn:
            todo += [(inst, f) for inst, first in list(todo) if first.rotation
                     if (f := next((r for r in feats[inst] if r.rotation == (first.rotation + 2) % 4), None))]
        rows: dict = {}
        pairs: dict = {}
        for start in range(0, len(todo), 2 * CHUNK_ROWS):
            if start and late():
                break
            chunk = todo[start: start + 2 * CHUNK_ROWS]
            for (inst, row), p in zip(chunk, self._pairs(qs, [row for _, row in chunk], cache)):
                if inst not in pairs or len(p[0]) > len(pairs[inst][0]):
                    rows[inst], pairs[inst] = row, p
        ranked = sorted(pairs, key=lambda i: -len(pairs[i][0]))
        geometry = self.params.second_look_geometry
        for k, inst in enumerate(ranked):
            if k < geometry and not late():
                self._match_rows(qs, [rows[inst]], cache)
                out[inst], pts[inst] = cache.matches[rows[inst].row]
                best[inst] = rows[inst]
            else:
                out[inst] = Evidence(matches=len(pairs[inst][0]), rotation=rows[inst].rotation)

    def _fundamental(self, out: dict[str, Evidence], pts: dict, best: dict, verified, cache: FrameCache,
                     late=_never_late) -> None:
        """3-D fallback: fundamental-matrix inliers for the candidates with the most matches,
        unless a homography already verified one; ``late()`` is asked before each model. A row's
        count is kept in ``cache.fundamental`` (its correspondences are cached, so is its model:
        calibration scores a frame in several match modes and with works left out, whose
        candidates are mostly the same rows)."""
        if _settled(out, verified):
            return
        ranked = sorted((i for i in out if i in pts), key=lambda i: -out[i].matches)
        for inst in ranked[: self.params.fundamental_candidates]:
            row = best[inst].row
            if row not in cache.fundamental:
                if late():
                    break
                cache.fundamental[row] = fundamental_inliers(*pts[inst])
            out[inst] = replace(out[inst], fundamental=cache.fundamental[row])

    def _glue(self, qs, out: dict[str, Evidence], best: dict, verified, cache: FrameCache,
              late=_never_late) -> None:
        """Learned matcher for the ``glue_candidates`` candidates with the most fundamental-matrix
        inliers from mutual nearest neighbours (at least ``glue_from_fundamental``), unless one
        verified already. Its correspondences count as 3-D evidence only (the larger of the two
        fundamental-matrix counts); the homography evidence stays that of mutual nearest neighbours:
        LighterGlue also lines up the repeated windows of look-alike buildings, and counted as
        homography support that raised the calibrated bar (smvs_landmarks: 14.5 -> 21) more than
        it verified real photos."""
        if self.matcher is None or not self.params.glue_candidates:
            return
        if _settled(out, verified):
            return
        gate = self.params.glue_from_fundamental
        ranked = sorted((i for i in out if i in best and out[i].fundamental >= gate),
                        key=lambda i: (-out[i].fundamental, -out[i].matches))
        for inst in ranked[: self.params.glue_candidates]:
            f = best[inst]
            row, rotation, kp, desc = f.row, f.rotation, f.keypoints, f.descriptors
            if row not in cache.glue:
                if late(self._glue_seconds):
                    break
                start = time.perf_counter()
                kp = kp.astype(np.float32)
                q = qs(rotation)
                keep = glue_subset(q.descriptors, desc, self.params.glue_keypoints)
                qkp, qdesc = (q.keypoints, q.descriptors) if keep is None else (q.keypoints[keep], q.descriptors[keep])
                qi, ri = self.matcher.match(qkp, qdesc, kp, desc)
                cache.glue[row] = fundamental_inliers(qkp[qi], kp[ri])
                self._glue_seconds = time.perf_counter() - start
            out[inst] = replace(out[inst], fundamental=max(out[inst].fundamental, cache.glue[row]))


def glue_subset(q_desc: np.ndarray, r_desc: np.ndarray, n: int) -> np.ndarray | None:
    """Indices (in their order) of the ``n`` frame keypoints whose descriptors come nearest (cosine)
    to any of a reference row's, or None to keep all (``n`` 0, or no more than ``n`` of them).
    The learned matcher's attention costs grow with the keypoints it sees; one whose nearest
    reference descriptor is far is rarely matched, while the frame's strongest keypoints are often
    on what the reference does not show (people, the wall, a neighbouring work)."""
    if not n or len(q_desc) <= n or len(r_desc) == 0:
        return None
    nearest = (as_float(q_desc) @ as_float(r_desc).T).max(axis=1)
    return np.sort(np.argpartition(-nearest, n - 1)[:n])


def _rows(feats: dict) -> dict[str, list]:
    """``features_of``'s answer as rows with named fields: RowFeatures and SteeredRow as they are
    (a steered row is made only if read), plain (row, rotation, keypoints, descriptors) tuples too."""
    return {inst: [f if isinstance(f, (RowFeatures, SteeredRow)) else RowFeatures(*f) for f in rows]
            for inst, rows in feats.items()}
