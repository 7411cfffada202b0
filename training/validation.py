"""Validation during training: mP@1 of held-out simulated views of the references (the same views
every epoch, on every rank and after a resume) against the references' current descriptors."""
from __future__ import annotations

import numpy as np

from runtime.metrics import mp1
from runtime.image.preprocess import InputSpec

from .data import ReferenceSet
from .describe import describe
from .simulator import CameraViewSimulator
from .simulator.sampler import pick, views_of

MAX_VALIDATION_REFS = 300


class Validator:
    def __init__(self, data: ReferenceSet, spec: InputSpec, views_per_ref: int, seed: int, clutter: bool):
        rng = np.random.default_rng(seed + 12345)
        sim = CameraViewSimulator(seed=seed + 12345, clutter=data.images if clutter else None)
        idx = pick(len(data.images), MAX_VALIDATION_REFS, rng, in_order=False)
        self.data, self.spec = data, spec
        self.views, source = views_of([data.images[i] for i in idx], views_per_ref, sim, rng)
        self.labels = data.labels[idx][source]

    def __call__(self, net) -> float:
        device = next(net.parameters()).device  # wherever the net is: the training device, then the CPU
        pool = describe(net, self.data.images, self.spec, device)
        return mp1(describe(net, self.views, self.spec, device), self.labels, pool, self.data.labels)
