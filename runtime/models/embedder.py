"""Running the descriptor network with ONNX Runtime.

Thread safety: ``embed`` may be called from several threads at once (ONNX Runtime's
``InferenceSession.run`` is thread-safe); the session is created once and never mutated.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from runtime.models import int8_products
from runtime.image.image_io import ImageLike, load_image
from runtime.image.preprocess import InputSpec, resize_for_model
from runtime.models.providers import choose_providers, import_onnxruntime, open_session

log = logging.getLogger("sitelens")

FINGERPRINT_KEY = "sitelens.fingerprint"


class Embedder:
    """Image -> L2-normalised descriptor, using an ONNX model that takes uint8 NHWC RGB."""

    def __init__(self, model: bytes | str, spec: InputSpec, providers: list[str] | None = None,
                 threads: int | None = None, source: str = "model.onnx", provider_options: dict | None = None):
        ort = import_onnxruntime()
        self.spec = spec
        wanted = choose_providers(providers)
        # a provider the caller asked for by name fails loudly; one chosen for it falls back to the CPU
        self.session = open_session(model, source, wanted, provider_options, threads, fallback=not providers)
        self.providers = self.session.get_providers()
        log.info("sitelens: ONNX Runtime %s using %s (pid %d)", ort.__version__,
                 ", ".join(self.providers), os.getpid())
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        saturating = int8_products.warning(self.metadata, self.providers)
        if saturating:
            log.warning(saturating)
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    @property
    def fingerprint(self) -> str | None:
        return self.metadata.get(FINGERPRINT_KEY)

    def prepare(self, image: ImageLike, scale: float = 1.0) -> np.ndarray:
        return resize_for_model(load_image(image), self.spec, scale)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a uint8 N x H x W x 3 batch; returns float32 N x D."""
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def embed(self, image: ImageLike, scales: tuple[float, ...] = (1.0,), gem_p: float = 1.0) -> np.ndarray:
        """Descriptor of one image (D,). Several scales are combined by a generalized mean
        (power ``gem_p``) and re-normalised."""
        img = load_image(image)
        if len(scales) == 1:
            return self.run(resize_for_model(img, self.spec, scales[0])[None])[0]
        descs = np.stack([self.run(resize_for_model(img, self.spec, s)[None])[0] for s in scales])
        return combine_scales(descs, gem_p)

    def embed_many(self, images, scales=(1.0,), gem_p: float = 1.0, progress: str | None = None) -> np.ndarray:
        from tqdm import tqdm

        items = list(images)
        out = np.zeros((len(items), self.dim), np.float32)
        for i, img in enumerate(tqdm(items, desc=progress, disable=progress is None, unit="img")):
            out[i] = self.embed(img, scales, gem_p)
        return out


def combine_scales(descs: np.ndarray, p: float = 1.0) -> np.ndarray:
    """Generalized mean over scales of (S, D) descriptors, then L2 (sign-preserving power)."""
    if p == 1.0:
        v = descs.mean(axis=0)
    else:
        v = np.sign(descs) * np.abs(descs) ** p
        v = v.mean(axis=0)
        v = np.sign(v) * np.abs(v) ** (1.0 / p)
    return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)
