"""The descriptor network: uint8 RGB NHWC -> normalise -> CNN -> GeM -> L2 -> (Lw) -> L2.

Normalisation lives inside the network so the exported model takes raw uint8 pixels.
"""
from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F
from torch import nn

from .backbone_registry import DEFAULT_BACKBONE
from .backbones import create_backbone
from .gem import GeM


class DescriptorNet(nn.Module):
    def __init__(self, backbone: str = DEFAULT_BACKBONE, weights="pretrained", gem_p: float = 3.0,
                 whitening_dim: int | None = None):
        super().__init__()
        self.backbone, self.cfg = create_backbone(backbone, weights)
        self.backbone_name = backbone
        self.register_buffer("mean", torch.tensor(self.cfg.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(self.cfg.std).view(1, 3, 1, 1) * 255.0)
        self.pool = GeM(gem_p)
        self.feature_dim = int(self.backbone.num_features)
        self.whiten: nn.Linear | None = None
        if whitening_dim:
            self.set_whitening_shape(whitening_dim)

    def set_whitening_shape(self, dim: int) -> nn.Linear:
        self.whiten = nn.Linear(self.feature_dim, int(dim), bias=True)
        return self.whiten

    @property
    def output_dim(self) -> int:
        return self.whiten.out_features if self.whiten is not None else self.feature_dim

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised GeM descriptor before whitening. ``x``: uint8/float N x H x W x 3."""
        x = x.permute(0, 3, 1, 2).float()
        x = (x - self.mean) / self.std
        return F.normalize(self.pool(self.backbone(x)), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.pooled(x)
        if self.whiten is not None:
            d = F.normalize(self.whiten(d), dim=-1)
        return d

    def config(self) -> dict:
        return {
            "backbone": self.backbone_name, "pooling": "gem", "gem_p": round(float(self.pool.p.detach()[0]), 6),
            "feature_dim": self.feature_dim, "descriptor_dim": self.output_dim,
            "whitening": ({"type": "learned", "dim": self.output_dim} if self.whiten is not None else None),
            "mean": list(self.cfg.mean), "std": list(self.cfg.std),
        }

    @torch.no_grad()
    def fingerprint(self) -> str:
        """sha256 over the architecture config and every weight, in a fixed order."""
        h = hashlib.sha256(json.dumps({k: v for k, v in self.config().items() if k != "gem_p"},
                                      sort_keys=True).encode())
        for key, tensor in sorted(self.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
