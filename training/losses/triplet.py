from __future__ import annotations

import torch
from torch import nn


class TripletLoss(nn.Module):
    """max(0, margin - a.p + a.n) on unit descriptors (margin 0.1 on dot products, as in
    Kohl 2017). ``negatives``: (B, K, D); the loss is averaged over all B*K triplets."""

    def __init__(self, margin: float = 0.1):
        super().__init__()
        self.margin = margin

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        ap = (anchor * positive).sum(-1, keepdim=True)            # B x 1
        an = torch.einsum("bd,bkd->bk", anchor, negatives)         # B x K
        return torch.relu(self.margin - ap + an).mean()
