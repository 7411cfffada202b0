"""Training settings (recorded in the run's config.json)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .backbone_registry import DEFAULT_BACKBONE, default_size

LOSSES = ("triplet", "contrastive")


@dataclass
class TrainConfig:
    epochs: int = 10
    size: int = default_size(DEFAULT_BACKBONE)  # network input at training (square) and in the bundle
    batch: int = 8                 # anchors per step
    negatives: int = 4             # mined negatives per anchor (at most one per instance)
    views_per_ref: int = 1         # anchors per reference and epoch
    lr: float = 1e-4
    gem_lr_mult: float = 10.0
    weight_decay: float = 1e-6
    margin: float = 0.1
    loss: str = "triplet"          # one of LOSSES
    reducer: str = "mean"          # or "nonzero" (average over the tuples that still violate the margin)
    ce_weight: float = 0.0         # instance cross-entropy regulariser (thesis eq. 3.6: 1.0)
    semihard_epochs: int = 2       # then hardest negatives
    freeze_blocks: int = 4         # lower backbone stages kept frozen; 0 = train all
    whitening: bool = True
    whitening_dim: int | None = None
    whitening_views: int = 2       # simulated views per reference for Lw (more on small sites)
    whitening_min_pairs: int = 1000  # Lw from fewer pairs than this over-fits 1280-d descriptors
    val_views: int = 1             # held-out simulated views per reference (max 300 refs)
    patience: int = 3              # early stopping on validation mP@1
    clutter: bool = True           # simulated surroundings and reflections made of the site's other references
    workers: int = 1               # processes simulating views while the network trains (0: in the main process)
    seed: int = 0
    backbone: str = DEFAULT_BACKBONE
    weights: str = "pretrained"
    device: str = "auto"
    extra: dict = field(default_factory=dict)
