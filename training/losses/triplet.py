from __future__ import annotations

import torch

from .base import TupleLoss, Tuples


class TripletLoss(TupleLoss):
    """max(0, margin - a.p + a.n) on unit descriptors (margin 0.1 on dot products, as in
    Kohl 2017), one value per (anchor, negative) pair."""

    def __init__(self, margin: float = 0.1, reducer=None):
        super().__init__(reducer)
        self.margin = margin

    def per_element(self, embeddings: torch.Tensor, labels: torch.Tensor, tuples: Tuples) -> torch.Tensor:
        a, p, n = embeddings[tuples.anchors], embeddings[tuples.positives], embeddings[tuples.negatives]
        ap = (a * p).sum(-1, keepdim=True)                 # B x 1
        an = torch.einsum("bd,bkd->bk", a, n)              # B x K
        return torch.relu(self.margin - ap + an)
