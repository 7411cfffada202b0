"""Describing a site's reference images with the exported model (ONNX Runtime), so the
bundle's descriptors are exactly what the device computes."""
from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from runtime.embedder import Embedder
import logging

from runtime.errors import ImageError, SiteError
from runtime.image_io import load_image
from runtime.site import Site

log = logging.getLogger("sitelens")
BLANK_STD = 6.0  # pixel standard deviation under which a reference is "a plain wall"
MULTI_SCALES = (1.0, 1 / math.sqrt(2), math.sqrt(2))


def describe_references(embedder: Embedder, site: Site, scales=(1.0,), gem_p: float = 1.0,
                        per_instance_mean: bool = False, progress: bool = True):
    """Returns (descriptors, instances, sources). Unreadable images are all reported at once."""
    descs, instances, sources, bad, blank = [], [], [], [], []
    for ref in tqdm(site.references, desc="describe references", unit="img", disable=not progress):
        try:
            img = load_image(ref.path)
        except ImageError as exc:
            bad.append(str(exc))
            continue
        if float(img.reshape(-1, 3).std(axis=0).max()) < BLANK_STD:  # per channel: colour alone is no texture
            blank.append(str(ref.path))
        descs.append(embedder.embed(img, scales, gem_p))
        instances.append(ref.instance)
        sources.append(str(ref.path.name))
    if blank:
        log.warning("sitelens: %d reference(s) have almost no texture and will match plain walls; check them: %s",
                    len(blank), ", ".join(blank[:10]))
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
    return descs, instances, sources
