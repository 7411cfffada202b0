"""Validation during training: mP@1 of held-out simulated views of the references (the same views
every epoch, on every rank and after a resume) against the references' current descriptors."""
from __future__ import annotations

import numpy as np

from runtime.metrics import mp1
from runtime.preprocess import InputSpec

from .data import ReferenceSet
from .describe import describe
from .simulator import CameraViewSimulator

MAX_VALIDATION_REFS = 300


class Validator:
    def __init__(self, data: ReferenceSet, spec: InputSpec, views_per_ref: int, seed: int, clutter: bool):
        rng = np.random.default_rng(seed + 12345)
        sim = CameraViewSimulator(seed=seed + 12345, clutter=data.images if clutter else None)
        idx = rng.choice(len(data.images), min(len(data.images), MAX_VALIDATION_REFS), replace=False)
        self.data, self.spec = data, spec
        self.views = [sim(data.images[i], rng) for i in idx for _ in range(views_per_ref)]
        self.labels = np.repeat(data.labels[idx], views_per_ref)

    def __call__(self, net) -> float:
        device = next(net.parameters()).device  # wherever the net is: the training device, then the CPU
        pool = describe(net, self.data.images, self.spec, device)
        return mp1(describe(net, self.views, self.spec, device), self.labels, pool, self.data.labels)
