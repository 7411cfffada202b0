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

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import bundle_format as bf
from .binary_codes import BinaryCodes
from .embedder import Embedder
from .errors import BundleError, SitelensError
from .feature_store import FeatureStore
from .geometric import VerifyParams, best_inliers, local_features
from .image_io import ImageLike, load_image
from .index import ReferenceIndex
from .manifest import Manifest
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
        self.manifest: Manifest = contents.manifest
        self.signature = contents.signature
        self._members = dict(contents.members)
        model = self.manifest.model
        self.spec = model.input
        self.scales = self.manifest.scales
        self.embedder = Embedder(contents.members[bf.MODEL], self.spec, providers, threads,
                                 source=f"{self.path}:{bf.MODEL}", provider_options=self._trt_options(providers))
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
        self.verify_params = None
        features = None
        if self.manifest.verification:
            features = FeatureStore.from_members(contents)
            if verify:
                self.verify_params = VerifyParams.from_dict(self.manifest.verification)
        self.index = ReferenceIndex.from_members(
            contents.array(bf.REFS), contents.json(bf.LABELS), contents.members[bf.INDEX],
            self.manifest.index.params, source=str(self.path), binary=binary, features=features)
        self.metadata: dict[str, dict] = dict(self.manifest.instances)
        self.thresholds = self.manifest.thresholds or Thresholds()
        self.match = match
        self._edit_lock = threading.Lock()   # add/remove/save-snapshot: one at a time
        self._save_lock = threading.Lock()   # file writes: one at a time

    def _trt_options(self, providers) -> dict | None:
        """Engine cache beside the bundle when ORT's TensorRT provider will be used."""
        from .providers import choose_providers
        from .tensorrt_cache import provider_options

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
             threads: int | None = None, verify: bool = True, trusted_keys=None) -> "Recognizer":
        """Open and verify a ``.sitelens`` bundle (signature, checksums, members, then the model).

        ``trusted_keys``: public key files (``site.pub``) or ``signing.TrustedKey`` objects; when
        given, unsigned bundles, bundles signed by another key and tampered bundles are refused.
        ``verify=False`` skips geometric verification even if the bundle carries features."""
        return cls(bf.read_bundle(path, trusted_keys=trusted_keys), providers=providers, match=match,
                   threads=threads, verify=verify)

    # -- recognition ----------------------------------------------------------------------
    @property
    def instances(self) -> list[str]:
        return self.index.live_instances()

    @property
    def providers(self) -> list[str]:
        return self.embedder.providers

    @property
    def verifier(self) -> VerifyParams | None:
        """Geometric verification parameters, or None when it is off."""
        return self.verify_params

    def embed(self, image: ImageLike) -> np.ndarray:
        """L2-normalised descriptor of an image (path, encoded bytes or RGB array)."""
        return self.embedder.embed(image)

    def recognize(self, image: ImageLike, k: int = 5) -> Recognition:
        """Best instance, score, margin, acceptance and top-``k`` candidates for one image."""
        return self.analyze(image, k)[0]

    def analyze(self, image: ImageLike, k: int = 5) -> tuple[Recognition, np.ndarray]:
        """``recognize`` that also returns the image's descriptor (for evaluation and tools)."""
        if self.verify_params is None:
            desc = self.embed(image)
            return self.decide(desc, k), desc
        img = load_image(image)
        desc = self.embedder.embed(img)
        return self.verify(img, self.decide(desc, max(k, self.verify_params.candidates)), k), desc

    def verify(self, img, rec: Recognition, k: int = 5) -> Recognition:
        """Confirm or re-rank an ambiguous answer with local features + RANSAC."""
        p = self.verify_params
        th = self.thresholds.score
        ambiguous = rec.margin < p.ambiguous_margin or (
            not rec.accepted and th is not None and rec.score >= th - p.near_threshold)
        if not ambiguous or not rec.candidates:
            return replace(rec, candidates=rec.candidates[:k])
        names = [c.instance for c in rec.candidates[:p.candidates]]
        inliers = best_inliers(img, self.index.features_of(names), p)
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
        if not isinstance(instance_id, str) or not instance_id.strip():
            raise SitelensError(f"add: instance id must be a non-empty string, got {instance_id!r}")
        sources = [str(Path(i).name) if isinstance(i, (str, Path)) else "" for i in images]
        rgb = [load_image(i) for i in images]
        descs = np.stack([self.embedder.embed(img, self.scales) for img in rgb])
        features = None
        if self.index.features is not None:
            params = VerifyParams.from_dict(self.manifest.verification)
            features = [local_features(img, params) for img in rgb]
        with self._edit_lock:
            self.index.add(descs, instance_id, sources, features)
            if metadata is not None or instance_id not in self.metadata:
                self.metadata[instance_id] = dict(metadata or {})
        return len(images)

    def remove(self, instance_id: str) -> int:
        with self._edit_lock:
            removed = self.index.remove(instance_id)
            if not removed:
                raise SitelensError(f"remove({instance_id!r}): no such instance in {self.path}")
            self.metadata.pop(instance_id, None)
        return removed

    def save(self, path: str | Path | None = None, signing_key=None) -> Path:
        """Write the (updated) bundle atomically, to ``path`` or over the opened file.

        A bundle that was signed comes out unsigned unless ``signing_key`` (a private key file or
        object) is given: the edit changed what the signature covered. A warning says so."""
        target = Path(path or self.path)
        with self._save_lock:
            with self._edit_lock:
                members, live = self.index.to_members()
                rows = self.index.live_count  # stable: every edit holds _edit_lock
                metadata = {i: dict(self.metadata.get(i, {})) for i in live}
            manifest = self.manifest.copy()
            manifest.instances = metadata
            manifest.site.num_instances = len(live)
            manifest.site.num_references = manifest.index.count = rows
            out = dict(self._members)
            out.update(members)
            if self.signature is not None and signing_key is None:
                log.warning("sitelens: %s was signed by key %s; %s is written UNSIGNED (pass a signing key to "
                            "re-sign it; devices that trust that key will refuse it until then)",
                            self.path, self.signature.key_id, target)
            return bf.write_bundle(target, manifest, out, signing_key=signing_key)

