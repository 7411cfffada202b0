"""Training data: a site's reference images held in memory, and tuples built from them."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from runtime.image.image_io import load_image
from runtime.site import Site
from training.simulator.geometry import limit_size


@dataclass
class ReferenceSet:
    images: list[np.ndarray]
    labels: np.ndarray          # int instance index per image
    instances: list[str]

    @classmethod
    def from_site(cls, site: Site, max_side: int = 640) -> "ReferenceSet":
        instances = site.instances
        lookup = {inst: i for i, inst in enumerate(instances)}
        images = [limit_size(load_image(r.path), max_side) for r in site.references]
        return cls(images, np.array([lookup[r.instance] for r in site.references]), instances)

    def shard(self, rank: int, world: int) -> np.ndarray:
        """This rank's references; every rank gets the same count (DDP needs equal steps)."""
        idx = np.arange(len(self.images))
        idx = np.concatenate([idx, idx[: (-len(idx)) % world]])
        return idx[rank::world]

    def other_refs(self, i: int) -> np.ndarray:
        same = np.flatnonzero(self.labels == self.labels[i])
        return same[same != i]


def to_square(img: np.ndarray, size: int) -> np.ndarray:
    """Training tensors share one shape per batch: resize to size x size (the aspect change
    acts as extra anisotropic scaling; at test time the aspect is preserved)."""
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR)
