from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceCrossEntropy(nn.Module):
    """Cross-entropy over the site's instances as a regulariser (Kohl 2017, eq. 3.6): a
    cosine classifier on the descriptor, so it shapes the same embedding space."""

    def __init__(self, dim: int, num_instances: int, scale: float = 16.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_instances, dim) * 0.01)
        self.scale = scale

    def forward(self, descriptors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.scale * descriptors @ F.normalize(self.weight, dim=1).T
        return F.cross_entropy(logits, labels)
