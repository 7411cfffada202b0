"""The one signature every loss takes, as in pytorch-metric-learning:

    loss(embeddings, labels, tuples) -> scalar

``embeddings``: (N, D) unit descriptors of one batch; ``labels``: (N,) instance indices;
``tuples``: which rows form training tuples (``Tuples``: anchor, positive and K negative rows).
A loss computes one value per element (per triplet, per pair, per sample) and its ``reducer``
turns them into the scalar.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..reducers import MeanReducer, Reducer


@dataclass
class Tuples:
    anchors: torch.Tensor     # (B,) rows of the batch
    positives: torch.Tensor   # (B,)
    negatives: torch.Tensor   # (B, K)

    @classmethod
    def stacked(cls, batch: int, negatives: int, device=None) -> "Tuples":
        """The layout the trainer builds: B anchors, then B positives, then B x K negatives."""
        a = torch.arange(batch, device=device)
        return cls(a, a + batch, 2 * batch + torch.arange(batch * negatives, device=device).view(batch, negatives))


class TupleLoss(nn.Module):
    def __init__(self, reducer: Reducer | None = None):
        super().__init__()
        self.reducer = reducer or MeanReducer()

    def per_element(self, embeddings: torch.Tensor, labels: torch.Tensor, tuples: Tuples) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, tuples: Tuples) -> torch.Tensor:
        return self.reducer(self.per_element(embeddings, labels, tuples))
