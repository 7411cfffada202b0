"""Generalized-mean (GeM) pooling with a learnable exponent, safe for ONNX export."""
from __future__ import annotations

import torch
from torch import nn


class GeM(nn.Module):
    """GeM(x) = (mean_hw x^p)^(1/p). Pools with a mean over H, W (not avg_pool2d with a traced
    kernel size), so the exported graph keeps dynamic input shapes."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()[0]):.3f}, eps={self.eps}"
