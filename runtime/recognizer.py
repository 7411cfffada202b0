"""The device-side entry point: open a bundle, recognize images.

Thread safety, per method and pairwise (as hnswlib's README states it):

- ``recognize`` / ``analyze`` / ``recognize_many`` / ``embed`` vs each other: safe from many
  threads at once (ONNX Runtime sessions are thread-safe; the index is read under a shared lock).
- ``recognize`` vs ``add`` / ``remove``: safe. An edit takes the index's exclusive lock for the
  moment it changes rows (descriptors and keypoints are computed before, outside any lock), so a
  recognition sees the site before or after the edit, never half of it.
- ``add`` vs ``add`` / ``remove``: safe, serialised; rows, labels, codes and keypoints stay aligned.
- ``add`` / ``remove`` vs ``save``: safe. ``save`` snapshots rows and metadata in one critical
  section, then writes the file outside it; the bundle holds the state before or after each edit.
- ``save`` vs ``save``: serialised; each write is atomic (temporary file, fsync, rename).
- a ``RecognitionStream`` vs ``add``/``remove``/``save``: the stream only calls ``recognize``, so as above.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from runtime.bundle import format as bf
from runtime.bundle.index_members import (features_from_contents, hnsw_file, index_from_members, index_members,
                                          reference_descriptors)
from runtime.search.binary_codes import BinaryCodes
from runtime.models.embedder import Embedder
from runtime.errors import BundleError, SitelensError
from runtime.verify.geometric import Evidence, polygon_iou
from runtime.image.image_io import ImageLike, file_digest, is_blank, load_image
from runtime.bundle.manifest import Manifest, new_release
from runtime.metrics import score_margin
from runtime.reference_rows import ImageRows, image_rows
from runtime.thresholds import Thresholds
from runtime.work_kinds import nearest_kind, work_means
from runtime.verify.verifier import FrameCache, Verifier, VerifyParams, make_extractor, make_matcher

log = logging.getLogger("sitelens")


@dataclass(frozen=True)
class Candidate:
    instance: str
    score: float
    metadata: dict = field(default_factory=dict)
    evidence: Evidence | None = None   # geometric verification, when it ran for this candidate


@dataclass(frozen=True)
class Recognition:
    """Answer for one image. ``instance`` is None when the image was rejected as unknown;
    ``best`` is the top-ranked candidate either way (re-ranked by verification when it ran).
    ``decided_by``: "verification" (enough geometric evidence), "global" (descriptor score and
    margin) or None (rejected)."""

    instance: str | None
    accepted: bool
    score: float
    margin: float
    best: str | None
    metadata: dict
    candidates: list[Candidate]
    decided_by: str | None = None
    verification: dict | None = None  # {instance: evidence dict} when geometric verification ran
    confidence: float = 0.0  # ranks answers across frames (see ``Recognizer.decide``); not a probability
    truncated: bool = False  # the frame's time budget ended verification early (``Recognizer.budget_ms``)
    works: list | None = None  # recognize(multi=True): every work that verified, strongest first (Candidate)

    @property
    def verified(self) -> bool:
        return self.decided_by == "verification"

    def to_dict(self) -> dict:
        return {
            "instance": self.instance, "accepted": self.accepted, "score": round(self.score, 6),
            "margin": round(self.margin, 6), "best": self.best, "decided_by": self.decided_by,
            "confidence": round(self.confidence, 6), "truncated": self.truncated,
            **({"works": [{"instance": c.instance, "score": round(c.score, 6), "metadata": c.metadata,
                           "support": round(c.evidence.support, 2), "region": c.evidence.to_dict().get("region")}
                          for c in self.works]} if self.works is not None else {}),
            "metadata": self.metadata, "verification": self.verification,
            "candidates": [{"instance": c.instance, "score": round(c.score, 6)} for c in self.candidates],
        }


@dataclass
class Findings:
    """Raw evidence for one image, before any threshold: the global shortlist (instance, cosine,
    best row) and, when verification ran, the geometric evidence per shortlisted instance."""

    hits: list
    verification: dict | None = None
    truncated: bool = False   # a time budget skipped verification stages

    def score_margin(self, instance: str | None = None) -> tuple[float, float]:
        """Global score of ``instance`` (default: top-1) and its margin over the best other."""
        if not self.hits:
            return 0.0, 0.0
        scores = {h[0]: h[1] for h in self.hits}
        inst = instance if instance in scores else self.hits[0][0]
        return score_margin([scores[inst]] + sorted((s for i, s in scores.items() if i != inst), reverse=True))

    def top_evidence(self):
        """Geometric evidence of the global top-1 (None without verification)."""
        return (self.verification or {}).get(self.hits[0][0]) if self.hits else None


SAME_REGION = 0.5  # IoU above which two verified works' regions are one object in the frame
MAX_WORKS = 4      # works recognize(multi=True) looks for in one frame
MIN_STRIP = 0.2    # a part of the frame looked at again covers at least this share of it (and 96 px a side)


def wide_halves(shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The two halves along the long side of a frame at least 1.5 times as long as it is high (or
    high as wide): where a whole-frame pass found nothing, each may hold a work of its own."""
    h, w = shape
    if w >= 1.5 * h:
        return [(0, 0, w // 2, h), (w // 2, 0, w, h)]
    if h >= 1.5 * w:
        return [(0, 0, w, h // 2), (0, h // 2, w, h)]
    return []


def free_strip(shape: tuple[int, int], regions: list) -> tuple[int, int, int, int] | None:
    """The largest band of the frame (left, right, above or below) outside the bounding boxes of
    ``regions``, as (x0, y0, x1, y1); None when none covers ``MIN_STRIP`` of the frame."""
    h, w = shape
    if not regions:
        return None
    pts = np.concatenate([np.float64(r) for r in regions])
    left, top = np.clip(pts.min(axis=0), 0, [w, h]).astype(int)
    right, bottom = np.clip(pts.max(axis=0), 0, [w, h]).astype(int)
    bands = [(0, 0, left, h), (right, 0, w, h), (0, 0, w, top), (0, bottom, w, h)]
    ok = [b for b in bands if b[2] - b[0] >= 96 and b[3] - b[1] >= 96
          and (b[2] - b[0]) * (b[3] - b[1]) >= MIN_STRIP * h * w]
    return max(ok, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if ok else None


TIE_SHARE = 0.75  # verified candidates with this share of the best support count as a tie
# Unverified candidates are ranked by global cosine + GEOMETRY_WEIGHT x the share of its verification
# threshold their geometry reached (Rule.strength, 0..1). A building seen from another street corner
# rarely passes the 3-D test, yet its partial evidence still points at the right one more often than
# the global descriptor alone (checked on the four dev sets over a range of weights around this one).
GEOMETRY_WEIGHT = 0.2


def ranked(findings: Findings, rule) -> tuple[list[str], str | None]:
    """The shortlist's instances in answer order under ``rule`` and what accepts the first one
    ("verification", "global" or None: rejected); ``findings`` has at least one hit. Verified
    candidates come first, then the rest by global score lifted by partial geometry. The one
    owner of the answer: ``Recognizer.decide`` wraps it, calibration counts its outcomes."""
    order, verified = answer_order(findings, rule)
    return order, decided_by(findings, rule, order, verified)


def answer_order(findings: Findings, rule) -> tuple[list[str], bool]:
    """``ranked``'s order and whether verification accepts its first instance. Depends on the
    rule's verification bars only (support, 3-D, kinds, colour), not on its global score and
    margin: calibration orders each sample once for a grid of those (``decided_by``)."""
    hits, ev = findings.hits, findings.verification
    order = [h[0] for h in hits]
    first = order[0]

    def verifies(i: str) -> bool:
        # the colour test (Rule.colour) holds for every candidate but the global top-1: the global
        # descriptor sees colour too, and when it still ranks a work first its colours differ for
        # another reason (a catalogue image of another printing, a faded scan); ranked below
        # another work, a match in other colours is a look-alike
        return rule.verified(ev[i], i, colour=i != first)

    if ev:
        verified = [i for i in order if i in ev and verifies(i)]
        if verified:
            # geometry ranks, but when several fit about equally well (the same shape in two
            # colours, XFeat sees grey levels) the global descriptor decides among them
            top = max(ev[i].support for i in verified)
            verified.sort(key=lambda i: (ev[i].support < TIE_SHARE * top, order.index(i)))
        scores = {h[0]: h[1] for h in hits}
        rest = sorted((i for i in order if i not in verified),
                      key=lambda i: -(scores[i] + GEOMETRY_WEIGHT * rule.strength(ev.get(i), i)))
        order = verified + rest
    best = order[0]
    return order, bool(ev) and best in ev and verifies(best)


def decided_by(findings: Findings, rule, order: list[str], verified: bool) -> str | None:
    """What accepts ``order[0]`` (``answer_order``'s answer under ``rule``): "verification",
    "global" (the global top-1 on the rule's score and margin, unless geometry contradicts it) or
    None."""
    if verified:
        return "verification"
    best = order[0]
    if best == findings.hits[0][0] and rule.global_accepts(*findings.score_margin(best), findings.top_evidence(),
                                                           best):
        return "global"
    return None


class Recognizer:
    def __init__(self, contents: bf.BundleContents, providers: list[str] | None = None,
                 match: str = "hnsw", threads: int | None = None, verify: bool = True,
                 budget_ms: float | None = None):
        self.path = contents.path
        self.manifest: Manifest = contents.manifest
        self.signature = contents.signature
        self._signed = (contents.manifest_bytes, contents.signature_bytes)  # to check before re-signing
        self._on_disk = bf.sha256(contents.manifest_bytes) if contents.manifest_bytes else None  # see save()
        self._members = dict(contents.members)
        model = self.manifest.model
        self.spec = model.input
        self.scales = self.manifest.scales
        self.rotations = tuple(int(r) for r in self.manifest.references.get("rotations", [0]))
        trt = self._trt_options(providers)
        self.embedder = Embedder(contents.members[bf.MODEL], self.spec, providers, threads,
                                 source=f"{self.path}:{bf.MODEL}", provider_options=trt)
        if trt is not None:  # the engine is built (or loaded) by a first run; its files are then recorded
            from runtime.models.tensorrt_cache import record_engines

            self.embedder.embed(np.zeros((self.spec.size, self.spec.size, 3), np.uint8))
            record_engines(trt["TensorrtExecutionProvider"]["trt_engine_cache_path"])
        if self.embedder.fingerprint != model.fingerprint:
            raise BundleError(
                f"{self.path}: model fingerprint mismatch: manifest says {model.fingerprint!r}, "
                f"model.onnx says {self.embedder.fingerprint!r} (references were described with "
                "another model; re-export the bundle)")
        if model.descriptor_dim != self.embedder.dim:
            raise BundleError(f"{self.path}: manifest descriptor_dim {model.descriptor_dim} != model output "
                              f"{self.embedder.dim}")
        binary = None
        if bf.CODES in contents.members:
            binary = BinaryCodes(contents.array(bf.ITQ_PROJ), contents.array(bf.ITQ_MEAN), contents.array(bf.CODES))
        features, self.verifier = None, None
        if self.manifest.verification:
            features = features_from_contents(contents)
            params = VerifyParams.from_dict(self.manifest.verification)
            extractor = make_extractor(params, contents.members.get(bf.LOCAL_MODEL), str(self.path), threads, providers)
            # the learned matcher only matches; without verification it is not loaded (added references
            # are still described with the extractor, so that the index keeps their features)
            matcher = make_matcher(params, contents.members.get(bf.GLUE_MODEL), str(self.path), threads, providers) \
                if verify else None
            self._feature_maker = Verifier(params, extractor, matcher)  # describes added references, even with verify=False
            if verify:
                self.verifier = self._feature_maker
        refs = reference_descriptors(contents)
        self.index = index_from_members(
            refs, contents.json(bf.LABELS), hnsw_file(contents, refs), self.manifest.index.params,
            source=str(self.path), binary=binary, features=features, checked=contents.checked)
        self.metadata: dict[str, dict] = dict(self.manifest.instances)
        self.thresholds = self.manifest.thresholds or Thresholds()
        self.match = match
        # per-frame time budget of recognize() (None: every stage runs, the same answer on any machine)
        self.budget_ms = budget_ms
        # what a frame must keep when a large JPEG is decoded at a reduced scale: the network's
        # shorter side (at its largest scale) and the local features' working side
        self.decode_need = (int(np.ceil(self.spec.size * max(self.scales))),
                            self.verifier.params.work_side if self.verifier else 0)
        self._edit_lock = threading.Lock()   # add/remove/save-snapshot: one at a time
        self._save_lock = threading.Lock()   # file writes: one at a time

    def _check_before_resigning(self, signing_key) -> None:
        from runtime.bundle import signing

        if self.signature is not None and self.signature.verified:
            return
        key = signing.load_private_key(signing_key) if isinstance(signing_key, (str, Path)) else signing_key
        public = key.public_key()
        mine = signing.TrustedKey(signing.key_id(public), public, "the signing key")
        manifest_bytes, signature_bytes = self._signed
        if signature_bytes is None:
            raise signing.SignatureError(
                f"{self.path}: refusing to sign an edit of an unsigned bundle: nothing vouches for what it held "
                "(check it, then `sitelens sign` it; or open it with a trusted key)")
        try:
            signing.verify_manifest(manifest_bytes, signature_bytes, {mine.key_id: mine}, str(self.path))
        except signing.SignatureError as exc:
            raise signing.SignatureError(f"{exc}; refusing to re-sign it with key {mine.key_id} (that would vouch for "
                                         "contents this key never signed)") from None

    def _trt_options(self, providers) -> dict | None:
        """Engine cache beside the bundle when ORT's TensorRT provider will be used."""
        from runtime.models.providers import choose_providers
        from runtime.models.tensorrt_cache import provider_options

        if "TensorrtExecutionProvider" not in choose_providers(providers):
            return None
        try:
            opts = provider_options(self.path, self.manifest.model.precision, self.spec.size)
        except SitelensError as exc:
            log.warning("sitelens: TensorRT provider present but unusable (%s)", exc)
            return None
        return {"TensorrtExecutionProvider": opts}

    @classmethod
    def open(cls, path: str | Path, providers: list[str] | None = None, match: str = "hnsw",
             threads: int | None = None, verify: bool = True, trusted_keys=None, site_id: str | None = None,
             min_release: int | None = None, budget_ms: float | None = None) -> "Recognizer":
        """Open and verify a ``.sitelens`` bundle (signature, checksums, members, then the models).

        ``trusted_keys``: public key files (``site.pub``) or ``signing.TrustedKey`` objects; when
        given, unsigned bundles, bundles signed by another key and tampered bundles are refused.
        ``site_id``: refuse a bundle made for another site; ``min_release``: refuse a release older
        than this (an app stores ``manifest.site.release`` of the bundle it last accepted and passes
        it here, so an older signed bundle cannot be put back). A bundle past its ``expires`` date is
        always refused. Without ``trusted_keys`` these fields could have been edited: use them together.
        ``budget_ms``: time budget of one ``recognize`` call, decoding included: verification (other
        rows, the second look, the 3-D models, the learned matcher) stops, looking every few rows
        (``Verifier.evidence``), once it is spent or too little is left for the next step, and the
        answer rests on the evidence found so far (``Recognition.truncated``); it
        bounds the slow frames' tail on a device. None (default): every stage runs, so the same frame
        gets the same answer on any machine (evaluation, calibration).
        ``verify=False`` skips geometric verification even if the bundle carries features (its learned
        matcher is then not loaded; its local-feature model is, to describe references added later)."""
        contents = bf.read_bundle(path, trusted_keys=trusted_keys)
        contents.manifest.site.check(str(path), site_id, min_release)
        return cls(contents, providers=providers, match=match, threads=threads, verify=verify, budget_ms=budget_ms)

    # -- recognition ----------------------------------------------------------------------
    @property
    def instances(self) -> list[str]:
        return self.index.live_instances()

    @property
    def providers(self) -> list[str]:
        return self.embedder.providers

    def embed(self, image: ImageLike) -> np.ndarray:
        """L2-normalised descriptor of an image (path, encoded bytes or RGB array)."""
        return self.embedder.embed(image)

    def recognize(self, image: ImageLike, k: int = 5, multi: bool = False) -> Recognition:
        """Best instance, score, margin, acceptance and top-``k`` candidates for one image.
        ``multi``: also every work that verifies (``Recognition.works``: a wall with two or three
        paintings), each with its region in the frame; verification then looks at all the
        shortlist's candidates instead of stopping at the first that verifies."""
        return self.analyze(image, k, multi=multi)[0]

    def recognize_many(self, images, k: int = 5) -> list[Recognition]:
        return [self.recognize(img, k) for img in images]

    def analyze(self, image: ImageLike, k: int = 5, mode: str | None = None,
                multi: bool = False) -> tuple[Recognition, np.ndarray]:
        """``recognize`` that also returns the image's descriptor (for evaluation and tools)."""
        deadline = None if self.budget_ms is None else time.perf_counter() + self.budget_ms / 1000.0
        img = load_image(image, self.decode_need)
        desc = self.embedder.embed(img)
        mode = mode or self.match
        stop = None if multi else self.thresholds.rule(mode).verified
        findings = self.findings(img, desc, mode, k, stop=stop, deadline=deadline)
        result = self.decide(findings, mode, k, multi=multi)
        if multi:
            result = replace(result, works=self._more_works(img, result.works or [], mode, deadline))
        return result, desc

    def findings(self, img: np.ndarray, desc: np.ndarray, mode: str | None = None, k: int = 5,
                 exclude=None, stop=None, all_passes: bool = False, cache: FrameCache | None = None,
                 deadline: float | None = None) -> Findings:
        """Global shortlist and geometric evidence for one image, before any threshold.
        ``exclude``: instances to leave out; ``stop``: evidence test that ends the rotation passes;
        ``cache``: kept across calls on the same image (calibration scores each view several ways)."""
        mode = mode or self.match
        want = max(k, 2, self.verifier.params.shortlist if self.verifier else 0)
        hits = self.index.search_rows(desc, want, mode, exclude)[0]
        if self.verifier is None or not hits:
            return Findings(hits)
        names = [h[0] for h in hits[: self.verifier.params.shortlist]]
        rows = self.verifier.params.rows_per_candidate

        shared = self.verifier.shared_turns

        def features_of(instances):
            return self.index.features_of(instances, desc, rows, shared)

        cache = FrameCache() if cache is None else cache
        evidence = self.verifier.evidence(img, names, features_of, stop, all_passes, cache, deadline)
        return Findings(hits, evidence, cache.truncated)

    def decide(self, findings: Findings, mode: str | None = None, k: int = 5, rule=None,
               multi: bool = False) -> Recognition:
        """Apply the bundle's rule for ``mode`` (or ``rule``) to raw findings; ``multi``: list every
        verified work too (``works``)."""
        rule = rule or self.thresholds.rule(mode or self.match)
        hits, ev = findings.hits, findings.verification
        if not hits:
            return Recognition(None, False, 0.0, 0.0, None, {}, [])
        order, decided_by = ranked(findings, rule)
        best = order[0]
        score, margin = findings.score_margin(best)
        accepted = decided_by is not None
        # accepted answers above rejected ones; then the share of the verification bar reached and
        # the cosine, half each (GAP ranks every answer of an evaluation by it)
        confidence = float(accepted) + 0.5 * rule.strength((ev or {}).get(best), best) + 0.5 * max(score, 0.0)
        scores = {h[0]: h[1] for h in hits}
        cands = [Candidate(i, scores[i], self.metadata.get(i, {}), ev.get(i) if ev else None) for i in order[:k]]
        works = self._works(findings, rule) if multi else None
        return Recognition(best if accepted else None, accepted, score, margin, best,
                           self.metadata.get(best, {}) if accepted else {}, cands, decided_by,
                           {i: e.to_dict() for i, e in ev.items()} if ev else None, confidence, findings.truncated,
                           works)

    def _more_works(self, img: np.ndarray, works: list[Candidate], mode: str, deadline) -> list[Candidate]:
        """Works the whole frame's pass missed: the part of the frame outside the works found so far
        (``free_strip``) is recognized on its own, as a visitor's closer photo of it would be (its own
        shortlist, its local features at full working resolution), until no new work verifies there
        or ``MAX_WORKS`` are found. In a wide photo of two paintings the second one gets only a
        fraction of the frame's keypoints and a shortlist made for the first."""
        rule = self.thresholds.rule(mode)
        works = list(works)
        halves = [] if works else wide_halves(img.shape[:2])  # nothing found: a wide frame's two halves
        while len(works) < MAX_WORKS and (deadline is None or time.perf_counter() < deadline):
            if halves:
                strip = halves.pop(0)
            else:
                strip = free_strip(img.shape[:2], [w.evidence.region for w in works if w.evidence.region is not None])
            if strip is None:
                break
            x0, y0, x1, y1 = strip
            part = np.ascontiguousarray(img[y0:y1, x0:x1])
            found = self.findings(part, self.embedder.embed(part), mode, 5, exclude={w.instance for w in works},
                                  deadline=deadline, stop=rule.verified)
            new = [w for w in self._works(found, rule) if w.evidence.region is not None]
            if not new:
                if halves:
                    continue
                break
            best = new[0]
            region = tuple((x + x0, y + y0) for x, y in best.evidence.region)
            works.append(replace(best, evidence=replace(best.evidence, region=region)))
        return works

    def _works(self, findings: Findings, rule) -> list[Candidate]:
        """Every candidate that verified, strongest support first; one whose region mostly covers a
        stronger one's (``SAME_REGION``) is the same object matched twice (a look-alike) and left out."""
        ev = findings.verification or {}
        scores = {h[0]: h[1] for h in findings.hits}
        verified = sorted((i for i in ev if rule.verified(ev[i], i)), key=lambda i: (-ev[i].support, -ev[i].fundamental))
        kept: list[str] = []
        for inst in verified:
            region = ev[inst].region
            if region is not None and any(ev[k].region is not None and polygon_iou(region, ev[k].region) > SAME_REGION
                                          for k in kept):
                continue
            kept.append(inst)
        return [Candidate(i, scores.get(i, 0.0), self.metadata.get(i, {}), ev[i]) for i in kept]

    # -- incremental updates ---------------------------------------------------------------
    def add(self, instance_id: str, images, metadata: dict | None = None) -> int:
        """Add references for an instance (new or existing) without retraining; returns how many
        images were added. Images with almost no texture (``image_io.is_blank``) are left out with
        a warning, as the bundler leaves them out: they would match every plain wall."""
        images = list(images)
        if not images:
            raise SitelensError(f"add({instance_id!r}): no images given")
        if not isinstance(instance_id, str) or not instance_id.strip():
            raise SitelensError(f"add: instance id must be a non-empty string, got {instance_id!r}")
        names = [str(Path(i).name) if isinstance(i, (str, Path)) else "" for i in images]
        digests = [file_digest(i) if isinstance(i, (str, Path)) else
                   hashlib.sha256(i).hexdigest() if isinstance(i, (bytes, bytearray)) else "" for i in images]
        rows = [self.rows_of(load_image(i), keep_blank=False) for i in images]
        blank = [k for k, r in enumerate(rows) if r is None]
        if blank:
            log.warning("sitelens: add(%r): %d image(s) with almost no texture left out (they would match plain "
                        "walls): %s", instance_id, len(blank), ", ".join(names[k] or f"#{k}" for k in blank))
            if len(blank) == len(rows):
                raise SitelensError(f"add({instance_id!r}): no usable image (all have almost no texture)")
            keep = [k for k in range(len(rows)) if k not in set(blank)]
            rows, names, digests = [rows[k] for k in keep], [names[k] for k in keep], [digests[k] for k in keep]
        return self.add_rows(instance_id, rows, names, digests, metadata)

    def rows_of(self, img: np.ndarray, keep_blank: bool = True) -> ImageRows | None:
        """The index rows a decoded RGB image would add as a reference (``image_rows`` with this
        bundle's quarter turns, scales and local features); None for a blank image unless ``keep_blank``."""
        maker = self._feature_maker if self.index.features is not None else None
        return image_rows(img, self.embedder, self.rotations, self.scales, feature_maker=maker, keep_blank=keep_blank)

    def add_rows(self, instance_id: str, rows: list[ImageRows], names: list[str], digests: list[str],
                 metadata: dict | None = None) -> int:
        """Add reference images already described (``rows_of``, or a visitor-log entry's rows) to
        ``instance_id``; ``names``/``digests``: each image's source name and sha256. Returns how
        many images were added. A new work in a bundle with kinds of works (``Thresholds.kinds``)
        gets the kind whose works its mean descriptor is nearest (``work_kinds.nearest_kind``):
        its support bar is that kind's, as if it had been there at calibration."""
        with_features = self.index.features is not None
        if with_features and any(r.features is None or len(r.features) != len(r.descriptors) for r in rows):
            raise SitelensError(f"add({instance_id!r}): rows without local features for a bundle that verifies")
        if with_features and (self.index.features.chroma is not None) != all(
                len(f) > 2 for r in rows for f in r.features):
            raise SitelensError(f"add({instance_id!r}): rows described by a bundle that "
                                f"{'does not store' if self.index.features.chroma is not None else 'stores'} "
                                f"keypoint chroma; describe the images with this bundle")
        descs, sources, rotations, features, image_ids, row_digests = [], [], [], [], [], []
        for k, (r, name) in enumerate(zip(rows, names)):
            n = len(r.descriptors)
            descs += r.descriptors
            rotations += r.rotations
            features += r.features or []
            sources += [name] * n
            image_ids += [k] * n
            row_digests += [digests[k]] * n
        with self._edit_lock:
            self.index.add(np.stack(descs), instance_id, sources, features if with_features else None,
                           rotations, image_ids, row_digests)
            kinds = self.thresholds.kinds
            if kinds and instance_id not in kinds:  # a new work is held to the bar of the kind it is nearest
                instances, means = work_means(self.index.descriptors, self.index.instances, ~self.index.deleted)
                mine = means[instances.index(instance_id)]
                self.thresholds.assign_kind(instance_id, nearest_kind(mine, instances, means, kinds))
            if metadata is not None or instance_id not in self.metadata:
                self.metadata[instance_id] = dict(metadata or {})
        return len(rows)

    def remove(self, instance_id: str) -> int:
        with self._edit_lock:
            removed = self.index.remove(instance_id)
            if not removed:
                raise SitelensError(f"remove({instance_id!r}): no such instance in {self.path}")
            self.metadata.pop(instance_id, None)
            self.thresholds.assign_kind(instance_id, None)
        return removed

    def save(self, path: str | Path | None = None, signing_key=None) -> Path:
        """Write the (updated) bundle atomically, to ``path`` or over the opened file.

        A bundle that was signed comes out unsigned unless ``signing_key`` (a private key file or
        object) is given: the edit changed what the signature covered. A warning says so.
        ``signing_key`` re-signs only what someone vouched for: the bundle's own signature must have
        been verified on open (``trusted_keys``) or verify now against that key's public half;
        an unsigned or foreign-signed bundle is refused (sign a checked bundle with ``sign_bundle``).

        Between processes: the write holds ``bundle_format.edit_lock`` on the target, and a save over
        the opened file is refused when the file changed since it was opened (another process saved
        an edit meanwhile; its edit would be lost): reopen and retry."""
        target = Path(path or self.path)
        if signing_key is not None:
            self._check_before_resigning(signing_key)
        with self._save_lock, bf.edit_lock(target):
            if target == Path(self.path) and self._on_disk is not None and bf.manifest_digest(target) != self._on_disk:
                raise BundleError(f"{target}: changed on disk since it was opened (another process saved an edit?); "
                                  "not overwriting it: reopen the bundle and retry the edit")
            with self._edit_lock:
                members, live = index_members(self.index)
                rows = self.index.live_count  # stable: every edit holds _edit_lock
                metadata = {i: dict(self.metadata.get(i, {})) for i in live}
            manifest = self.manifest.copy()
            manifest.instances = metadata
            manifest.site.release = max(manifest.site.release + 1, new_release())  # an edit is a new release
            manifest.site.num_instances = len(live)
            manifest.site.num_references = manifest.index.count = rows
            out = dict(self._members)
            out.pop(bf.INDEX, None)  # a schema-2 bundle is written as schema 3 (index.graph)
            out.update(members)
            if self.signature is not None and signing_key is None:
                log.warning("sitelens: %s was signed by key %s; %s is written UNSIGNED (pass a signing key to "
                            "re-sign it; devices that trust that key will refuse it until then)",
                            self.path, self.signature.key_id, target)
            written = bf.write_bundle(target, manifest, out, signing_key=signing_key)
            if target == Path(self.path):
                self._on_disk = bf.manifest_digest(target)
            return written

