from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import TupleLoss, Tuples


class InstanceCrossEntropy(TupleLoss):
    """Cross-entropy over the site's instances as a regulariser (Kohl 2017, eq. 3.6): a cosine
    classifier on the descriptor, so it shapes the same embedding space. One value per anchor and
    positive (negatives are someone else's anchors)."""

    def __init__(self, dim: int, num_instances: int, scale: float = 16.0, reducer=None):
        super().__init__(reducer)
        self.weight = nn.Parameter(torch.randn(num_instances, dim) * 0.01)
        self.scale = scale

    def per_element(self, embeddings: torch.Tensor, labels: torch.Tensor, tuples: Tuples) -> torch.Tensor:
        rows = torch.cat([tuples.anchors, tuples.positives])
        logits = self.scale * F.normalize(embeddings[rows], dim=-1) @ F.normalize(self.weight, dim=1).T
        return F.cross_entropy(logits, labels[rows], reduction="none")
