"""Training tuples: per epoch, each anchor reference gets a positive (another reference of its
instance, or itself) and mined negatives; each step's images are simulated visitor views of them.

Views are simulated in DataLoader worker processes while the network trains on the previous step
(``workers``), with one random generator per step, so a run is the same with or without workers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import ReferenceSet, to_square
from .miners import mine_negatives
from .simulator import CameraViewSimulator, SimulatorConfig


@dataclass
class EpochPlan:
    anchors: np.ndarray     # (A,) reference indices
    positives: np.ndarray   # (A,)
    negatives: np.ndarray   # (A, K), -1 where fewer than K other instances exist
    strategy: str


def plan_epoch(pool: np.ndarray, data: ReferenceSet, anchors: np.ndarray, negatives: int, strategy: str,
               margin: float, rng: np.random.Generator) -> EpochPlan:
    """Positives and mined negatives for this epoch's anchors, from the references' current descriptors."""
    anchors = anchors[rng.permutation(len(anchors))]
    positives = np.array([rng.choice(o) if len(o := data.other_refs(i)) else i for i in anchors])
    pos_sims = np.sum(pool[anchors] * pool[positives], axis=1)
    negs = mine_negatives(pool[anchors], data.labels[anchors], pool, data.labels, negatives, pos_sims, strategy,
                          margin, rng)
    keep = (negs >= 0).all(axis=1)
    return EpochPlan(anchors[keep], positives[keep], negs[keep], strategy)


class StepViews(torch.utils.data.Dataset):
    """Item ``s``: the uint8 batch of step ``s`` (B anchor views, B positive views, B x K negative views)."""

    def __init__(self, data: ReferenceSet, plan: EpochPlan, batch: int, size: int, seed: int, clutter: bool):
        self.data, self.plan, self.batch, self.size, self.seed = data, plan, batch, size, seed
        others = data.images if clutter else None
        self.sim = CameraViewSimulator(clutter=others)
        self.mild = CameraViewSimulator(SimulatorConfig.mild())

    def __len__(self) -> int:
        return (len(self.plan.anchors) + self.batch - 1) // self.batch

    def __getitem__(self, step: int):
        rng = np.random.default_rng([self.seed, step])
        s = slice(step * self.batch, (step + 1) * self.batch)
        a, p, n = self.plan.anchors[s], self.plan.positives[s], self.plan.negatives[s]
        imgs = [self.sim(self.data.images[i], rng) for i in a]
        imgs += [self.mild(self.data.images[i], rng) for i in p]
        imgs += [self.mild(self.data.images[i], rng) for i in n.ravel()]
        x = torch.from_numpy(np.stack([to_square(img, self.size) for img in imgs]))
        labels = torch.from_numpy(np.concatenate([self.data.labels[a], self.data.labels[p],
                                                  self.data.labels[n.ravel()]]))
        return x, labels, len(a)


def step_loader(views: StepViews, workers: int):
    """Steps in order; simulated ``workers`` steps ahead in other processes (0: in this one)."""
    return torch.utils.data.DataLoader(views, batch_size=None, shuffle=False, num_workers=max(0, workers),
                                       prefetch_factor=2 if workers > 0 else None,
                                       persistent_workers=False)
