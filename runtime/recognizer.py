"""The device-side entry point: open a bundle, recognize images.

Thread safety: ``recognize``, ``recognize_many`` and ``embed`` are safe from many threads at
once. ``add``/``remove`` may run while other threads recognize (the index takes a
reader-writer lock). ``save`` is safe alongside recognition.
"""
from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import bundle_format as bf
from .binary_codes import BinaryCodes
from .embedder import Embedder
from .errors import BundleError, SitelensError
from .geometric import ReferenceFeatures, VerifyParams
from .image_io import ImageLike, load_image
from .index import IndexParams, ReferenceIndex
from .preprocess import InputSpec
from .thresholds import Thresholds

log = logging.getLogger("sitelens")


@dataclass(frozen=True)
class Candidate:
    instance: str
    score: float
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Recognition:
    """Answer for one image. ``instance`` is None when the image was rejected as unknown;
    ``best`` is the top-1 candidate's id either way."""

    instance: str | None
    accepted: bool
    score: float
    margin: float
    best: str | None
    metadata: dict
    candidates: list[Candidate]
    verified: dict | None = None  # {"instance": inliers, ...} when geometric verification ran

    def to_dict(self) -> dict:
        return {"verified": self.verified,
            "instance": self.instance, "accepted": self.accepted, "score": round(self.score, 6),
            "margin": round(self.margin, 6), "best": self.best, "metadata": self.metadata,
            "candidates": [{"instance": c.instance, "score": round(c.score, 6)} for c in self.candidates],
        }


class Recognizer:
    def __init__(self, contents: bf.BundleContents, providers: list[str] | None = None,
                 match: str = "hnsw", threads: int | None = None, verify: bool = True):
        self.path = contents.path
        self.manifest = contents.manifest
        self._members = dict(contents.members)
        model_info = self.manifest.get("model") or {}
        self.spec = InputSpec.from_dict(model_info.get("input") or {})
        self.scales = tuple(self.manifest.get("references", {}).get("scales", [1.0]))
        self.embedder = Embedder(contents.members[bf.MODEL], self.spec, providers, threads,
                                 source=f"{self.path}:{bf.MODEL}", provider_options=self._trt_options(providers))
        fingerprint = model_info.get("fingerprint")
        if self.embedder.fingerprint != fingerprint:
            raise BundleError(
                f"{self.path}: model fingerprint mismatch: manifest says {fingerprint!r}, "
                f"model.onnx says {self.embedder.fingerprint!r} (references were described with "
                "another model; re-export the bundle)")
        dim = model_info.get("descriptor_dim")
        if dim != self.embedder.dim:
            raise BundleError(f"{self.path}: manifest descriptor_dim {dim} != model output {self.embedder.dim}")
        params = IndexParams.from_dict(self.manifest.get("index") or {})
        binary = None
        if bf.CODES in contents.members:
            binary = BinaryCodes(contents.array(bf.ITQ_PROJ), contents.array(bf.ITQ_MEAN), contents.array(bf.CODES))
        self.index = ReferenceIndex.from_members(
            contents.array(bf.REFS), contents.json(bf.LABELS), contents.members[bf.INDEX], params,
            source=str(self.path), binary=binary)
        if self.index.dim != dim:
            raise BundleError(f"{self.path}: refs.npy has dim {self.index.dim}, model {dim}")
        self.metadata: dict[str, dict] = dict(self.manifest.get("instances") or {})
        self.thresholds = Thresholds.from_dict(self.manifest.get("thresholds"))
        self.match = match
        self.verifier = None
        vinfo = self.manifest.get("verification")
        if vinfo and verify:
            self.verifier = ReferenceFeatures.from_members(VerifyParams.from_dict(vinfo), contents)
        self._save_lock = threading.Lock()

    def _trt_options(self, providers) -> dict | None:
        """Engine cache beside the bundle when ORT's TensorRT provider will be used."""
        from .providers import choose_providers
        from .tensorrt_cache import provider_options

        if "TensorrtExecutionProvider" not in choose_providers(providers):
            return None
        try:
            opts = provider_options(self.path, self.manifest["model"].get("precision", "fp32"), self.spec.size)
        except SitelensError as exc:
            log.warning("sitelens: TensorRT provider present but unusable (%s)", exc)
            return None
        return {"TensorrtExecutionProvider": opts}

    @classmethod
    def open(cls, path: str | Path, providers: list[str] | None = None, match: str = "hnsw",
             threads: int | None = None, verify: bool = True) -> "Recognizer":
        """Open and verify a ``.sitelens`` bundle (checksums first, then the model).
        ``verify=False`` skips geometric verification even if the bundle carries features."""
        return cls(bf.read_bundle(path), providers=providers, match=match, threads=threads, verify=verify)

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

    def recognize(self, image: ImageLike, k: int = 5) -> Recognition:
        """Best instance, score, margin, acceptance and top-``k`` candidates for one image."""
        return self.analyze(image, k)[0]

    def analyze(self, image: ImageLike, k: int = 5) -> tuple[Recognition, np.ndarray]:
        """``recognize`` that also returns the image's descriptor (for evaluation and tools)."""
        if self.verifier is None:
            desc = self.embed(image)
            return self.decide(desc, k), desc
        img = load_image(image)
        desc = self.embedder.embed(img)
        return self.verify(img, self.decide(desc, max(k, self.verifier.params.candidates)), k), desc

    def verify(self, img, rec: Recognition, k: int = 5) -> Recognition:
        """Confirm or re-rank an ambiguous answer with local features + RANSAC."""
        p = self.verifier.params
        th = self.thresholds.score
        ambiguous = rec.margin < p.ambiguous_margin or (
            not rec.accepted and th is not None and rec.score >= th - p.near_threshold)
        if not ambiguous or not rec.candidates:
            return replace(rec, candidates=rec.candidates[:k])
        names = [c.instance for c in rec.candidates[:p.candidates]]
        inliers = self.verifier.best_inliers(img, self.index.live_rows(names))
        best = max(names, key=lambda n: inliers[n])
        if inliers[best] < p.min_inliers:
            return replace(rec, candidates=rec.candidates[:k], verified=inliers)
        cands = sorted(rec.candidates, key=lambda c: (c.instance != best, -c.score))[:k]
        score = next(c.score for c in rec.candidates if c.instance == best)
        return Recognition(best, True, score, rec.margin, best, self.metadata.get(best, {}), cands, inliers)

    def recognize_many(self, images, k: int = 5) -> list[Recognition]:
        return [self.recognize(img, k) for img in images]

    def decide(self, descriptor: np.ndarray, k: int = 5) -> Recognition:
        hits = self.index.search(descriptor, max(k, 2), self.match)
        if not hits:
            return Recognition(None, False, 0.0, 0.0, None, {}, [])
        best, score = hits[0]
        margin = score - hits[1][1] if len(hits) > 1 else score
        accepted = self.thresholds.accepts(score, margin)
        cands = [Candidate(i, s, self.metadata.get(i, {})) for i, s in hits[:k]]
        return Recognition(best if accepted else None, accepted, score, margin, best,
                           self.metadata.get(best, {}) if accepted else {}, cands)

    # -- incremental updates ---------------------------------------------------------------
    def add(self, instance_id: str, images, metadata: dict | None = None) -> int:
        """Add references for an instance (new or existing) without retraining."""
        images = list(images)
        if not images:
            raise SitelensError(f"add({instance_id!r}): no images given")
        sources = [str(Path(i).name) if isinstance(i, (str, Path)) else "" for i in images]
        rgb = [load_image(i) for i in images]
        descs = np.stack([self.embedder.embed(img, self.scales) for img in rgb])
        if self.verifier is not None:  # before index.add, so new rows always have features
            self.verifier.append(rgb)
        self.index.add(descs, instance_id, sources)
        if metadata is not None or instance_id not in self.metadata:
            self.metadata[instance_id] = dict(metadata or {})
        return len(images)

    def remove(self, instance_id: str) -> int:
        removed = self.index.remove(instance_id)
        if not removed:
            raise SitelensError(f"remove({instance_id!r}): no such instance in {self.path}")
        self.metadata.pop(instance_id, None)
        return removed

    def save(self, path: str | Path | None = None) -> Path:
        """Write the (updated) bundle atomically, to ``path`` or over the opened file."""
        with self._save_lock:
            members = dict(self._members)
            members.update(self.index.to_members())
            if self.verifier is not None:
                members.update(self.verifier.to_members(np.flatnonzero(~self.index.deleted)))
            manifest = copy.deepcopy(self.manifest)
            manifest.pop("members", None)
            live = self.index.live_instances()
            manifest["instances"] = {i: self.metadata.get(i, {}) for i in live}
            manifest.setdefault("site", {}).update(num_instances=len(live),
                                                   num_references=self.index.live_count)
            manifest.setdefault("index", {})["count"] = self.index.live_count
            return bf.write_bundle(path or self.path, manifest, members)
