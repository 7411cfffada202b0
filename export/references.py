"""Describing a site's reference images with the exported models (ONNX Runtime), so the bundle's
descriptors and keypoints are exactly what the device computes.

Each reference becomes one index row per quarter turn in ``rotations`` (``runtime/reference_rows.py``,
shared with ``Recognizer.add``); unreadable images are reported together, blank ones left out with
one warning.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from runtime.models.embedder import Embedder
from runtime.errors import ImageError, SiteError
from runtime.image.image_io import file_digest, is_blank, load_image
from runtime.reference_rows import image_rows
from runtime.site import Reference, Site

log = logging.getLogger("sitelens")
MULTI_SCALES = (1.0, 1 / math.sqrt(2), math.sqrt(2))
ALL_ROTATIONS = (0, 1, 2, 3)


@dataclass
class Described:
    descriptors: np.ndarray
    instances: list[str]
    sources: list[str]
    rotations: list[int]
    images: list[int]                # reference image of each row (its turned copies share it)
    features: list | None            # (keypoints, descriptors) per row, or None
    used: list[Reference] = field(default_factory=list)   # references that made it into the index
    digests: list[str] = field(default_factory=list)      # sha256 of each row's image file


@dataclass
class Describer:
    """What describing one reference image takes: the network, the local-feature maker and the
    rows to make. ``recipe`` rebuilds it in a worker process (``export/workers.py``)."""
    embedder: Embedder
    verifier: object | None
    rotations: tuple
    scales: tuple
    gem_p: float
    keep_blank: bool = False


def make_describer(onnx_bytes: bytes, spec, verify_params, local_onnx: bytes | None, rotations, scales, gem_p: float,
                   keep_blank: bool, threads: int | None = None) -> Describer:
    """A Describer from the models' bytes (what a worker process receives)."""
    verifier = None
    if verify_params is not None:
        from runtime.verify.verifier import Verifier, make_extractor

        verifier = Verifier(verify_params, make_extractor(verify_params, local_onnx, "build", threads))
    embedder = Embedder(onnx_bytes, spec, providers=["CPUExecutionProvider"], threads=threads)
    return Describer(embedder, verifier, tuple(rotations), tuple(scales), gem_p, keep_blank)


def _describe_one(d: Describer, ref: Reference):
    """("bad", reason) for an unreadable image; else (digest, blank, ImageRows or None: a blank
    image is not described unless ``keep_blank``)."""
    try:
        img = load_image(ref.path)
        digest = file_digest(ref.path)
    except ImageError as exc:
        return "bad", str(exc)
    blank = is_blank(img)
    if blank and not d.keep_blank:
        return digest, blank, None
    return digest, blank, image_rows(img, d.embedder, d.rotations, d.scales, d.gem_p, d.verifier, keep_blank=True)


def describe_references(embedder: Embedder, site: Site, scales=(1.0,), gem_p: float = 1.0,
                        per_instance_mean: bool = False, progress: bool = True, keep_blank: bool = False,
                        rotations=(0,), verifier=None, workers: int = 1, recipe: tuple = ()) -> Described:
    """Unreadable images are all reported at once. Textureless references (a blank or uniform
    image) identify nothing and would fire on every plain wall: they are left out with a warning
    unless ``keep_blank``. ``verifier``: also compute each reference's local features.
    ``workers`` > 1 (with ``recipe``: the network's ONNX bytes, its InputSpec, the verifier's
    VerifyParams or None and the local-feature ONNX bytes or None): that many processes, each
    describing with its own ``make_describer(*recipe, ...)``; the rows are the same."""
    from .workers import run, threads_per_worker

    describer = Describer(embedder, verifier, tuple(rotations), tuple(scales), gem_p, keep_blank)
    recipe = (*recipe, tuple(rotations), tuple(scales), gem_p, keep_blank, threads_per_worker(workers)) if recipe else ()
    results = run(_describe_one, site.references, describer, make_describer, recipe, workers if recipe else 1,
                  desc="describe references", progress=progress)
    descs, instances, sources, rots, images, feats, bad, blank, used = [], [], [], [], [], [], [], [], []
    digests = []
    for ref, result in zip(site.references, results):
        if result[0] == "bad":
            bad.append(result[1])
            continue
        digest, is_blank_image, rows = result
        if is_blank_image:   # reported together below; image_rows leaves blank images out the same way
            blank.append(str(ref.path))
            if not keep_blank:
                continue
        used.append(ref)
        n = len(rows.descriptors)
        descs += rows.descriptors
        rots += rows.rotations
        feats += rows.features or []
        instances += [ref.instance] * n
        sources += [str(ref.path.name)] * n
        images += [len(used) - 1] * n
        digests += [digest] * n
    if blank:
        action = "kept (--keep-blank)" if keep_blank else "left out of the bundle (use --keep-blank to keep them)"
        log.warning("sitelens: %d reference(s) have almost no texture and would match plain walls; %s: %s",
                    len(blank), action, ", ".join(blank[:10]))
        dropped = set(site.instances) - set(instances)
        if dropped:
            log.warning("sitelens: instance(s) with no usable reference left: %s", ", ".join(sorted(dropped)))
    if bad:
        raise SiteError(f"{site.name}: {len(bad)} unreadable reference image(s):\n  " + "\n  ".join(bad))
    if not descs:
        raise SiteError(f"{site.name}: no usable reference images")
    out = Described(np.stack(descs).astype(np.float32), instances, sources, rots, images,
                    feats if verifier is not None else None, used, digests)
    if per_instance_mean:
        out = _per_instance_mean(out)
    return out


def _per_instance_mean(d: Described) -> Described:
    """One averaged descriptor per instance and rotation (no local features: they need one row per image)."""
    keys = list(dict.fromkeys(zip(d.instances, d.rotations)))
    inst, rot = np.array(d.instances), np.array(d.rotations)
    descs = np.stack([d.descriptors[(inst == i) & (rot == r)].mean(axis=0) for i, r in keys])
    descs /= np.linalg.norm(descs, axis=1, keepdims=True)
    sources = [f"mean of {int(((inst == i) & (rot == r)).sum())}" for i, r in keys]
    return Described(descs.astype(np.float32), [k[0] for k in keys], sources, [k[1] for k in keys],
                     [list(dict.fromkeys(k[0] for k in keys)).index(k[0]) for k in keys], None, d.used)
