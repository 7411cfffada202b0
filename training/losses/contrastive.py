from __future__ import annotations

import torch
from torch import nn


class ContrastiveLoss(nn.Module):
    """Radenovic-style contrastive loss on unit descriptors: positives pulled together
    (||a-p||^2), negatives pushed beyond ``margin`` in Euclidean distance."""

    def __init__(self, margin: float = 0.7):
        super().__init__()
        self.margin = margin

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        pos = (anchor - positive).pow(2).sum(-1)
        neg_d = (anchor[:, None, :] - negatives).pow(2).sum(-1).clamp(min=1e-12).sqrt()
        neg = torch.relu(self.margin - neg_d).pow(2)
        return 0.5 * (pos.mean() + neg.mean())
