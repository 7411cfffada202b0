"""Describing a site's reference images with the exported model (ONNX Runtime), so the
bundle's descriptors are exactly what the device computes."""
from __future__ import annotations

import logging
import math

import numpy as np
from tqdm import tqdm

from runtime.embedder import Embedder
from runtime.errors import ImageError, SiteError
from runtime.image_io import load_image
from runtime.site import Site

log = logging.getLogger("sitelens")
BLANK_STD = 6.0  # pixel standard deviation under which a reference is "a plain wall"
MULTI_SCALES = (1.0, 1 / math.sqrt(2), math.sqrt(2))


def describe_references(embedder: Embedder, site: Site, scales=(1.0,), gem_p: float = 1.0,
                        per_instance_mean: bool = False, progress: bool = True, keep_blank: bool = False):
    """Returns (descriptors, instances, sources, references used). Unreadable images are all reported at once.
    Textureless references (a blank or uniform image) identify nothing and would fire on every
    plain wall: they are left out with a warning unless ``keep_blank``."""
    descs, instances, sources, bad, blank, used = [], [], [], [], [], []
    for ref in tqdm(site.references, desc="describe references", unit="img", disable=not progress):
        try:
            img = load_image(ref.path)
        except ImageError as exc:
            bad.append(str(exc))
            continue
        if float(img.reshape(-1, 3).std(axis=0).max()) < BLANK_STD:  # per channel: colour alone is no texture
            blank.append(str(ref.path))
            if not keep_blank:
                continue
        descs.append(embedder.embed(img, scales, gem_p))
        used.append(ref)
        instances.append(ref.instance)
        sources.append(str(ref.path.name))
    if blank:
        action = "kept (--keep-blank)" if keep_blank else "left out of the bundle (use --keep-blank to keep them)"
        log.warning("sitelens: %d reference(s) have almost no texture and would match plain walls; %s: %s",
                    len(blank), action, ", ".join(blank[:10]))
        dropped = set(site.instances) - set(instances)
        if dropped:
            log.warning("sitelens: instance(s) with no usable reference left: %s", ", ".join(sorted(dropped)))
    if not descs:
        raise SiteError(f"{site.name}: no usable reference images")
    if bad:
        raise SiteError(f"{site.name}: {len(bad)} unreadable reference image(s):\n  " + "\n  ".join(bad))
    descs = np.stack(descs).astype(np.float32)
    if per_instance_mean:
        order = list(dict.fromkeys(instances))
        rows = np.array(instances)
        descs = np.stack([descs[rows == inst].mean(axis=0) for inst in order])
        descs /= np.linalg.norm(descs, axis=1, keepdims=True)
        sources = [f"mean of {int((rows == inst).sum())}" for inst in order]
        instances = order
    return descs, instances, sources, used
