"""Describing a site's reference images with the exported model (ONNX Runtime), so the
bundle's descriptors are exactly what the device computes."""
from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from runtime.embedder import Embedder
from runtime.errors import ImageError, SiteError
from runtime.site import Site

MULTI_SCALES = (1.0, 1 / math.sqrt(2), math.sqrt(2))


def describe_references(embedder: Embedder, site: Site, scales=(1.0,), gem_p: float = 1.0,
                        per_instance_mean: bool = False, progress: bool = True):
    """Returns (descriptors, instances, sources). Unreadable images are all reported at once."""
    descs, instances, sources, bad = [], [], [], []
    for ref in tqdm(site.references, desc="describe references", unit="img", disable=not progress):
        try:
            descs.append(embedder.embed(ref.path, scales, gem_p))
        except ImageError as exc:
            bad.append(str(exc))
            continue
        instances.append(ref.instance)
        sources.append(str(ref.path.name))
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
