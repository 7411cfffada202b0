from __future__ import annotations

import torch

from .base import TupleLoss, Tuples


class ContrastiveLoss(TupleLoss):
    """Radenovic-style contrastive loss on unit descriptors: positives pulled together
    (||a-p||^2), negatives pushed beyond ``margin`` in Euclidean distance; one value per pair."""

    def __init__(self, margin: float = 0.7, reducer=None):
        super().__init__(reducer)
        self.margin = margin

    def per_element(self, embeddings: torch.Tensor, labels: torch.Tensor, tuples: Tuples) -> torch.Tensor:
        a, p, n = embeddings[tuples.anchors], embeddings[tuples.positives], embeddings[tuples.negatives]
        pos = 0.5 * (a - p).pow(2).sum(-1)
        neg_d = (a[:, None, :] - n).pow(2).sum(-1).clamp(min=1e-12).sqrt()
        neg = 0.5 * torch.relu(self.margin - neg_d).pow(2)
        return torch.cat([pos, neg.flatten()])
