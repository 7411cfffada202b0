"""Learned whitening after fine-tuning: fit Lw on references and simulated views, fold it into the
network as its last linear layer, and keep it only if it does not lower validation mP@1."""
from __future__ import annotations

import logging

import numpy as np
import torch

from runtime.image.preprocess import InputSpec

from .config import TrainConfig
from .data import ReferenceSet
from .describe import describe
from .simulator import CameraViewSimulator
from .simulator.sampler import views_of
from .whitening import learn_whitening

log = logging.getLogger("sitelens")


def fit_whitening(net, data: ReferenceSet, spec: InputSpec, device, cfg: TrainConfig) -> dict:
    """Lw from references + simulated views (pairs: view-ref, ref-ref of one instance)."""
    rng = np.random.default_rng(cfg.seed + 99)
    sim = CameraViewSimulator(seed=cfg.seed + 99, clutter=data.images if cfg.clutter else None)
    per_image = int(np.clip(np.ceil(cfg.whitening_min_pairs / max(len(data.images), 1)), cfg.whitening_views, 50))
    views, src = views_of(data.images, per_image, sim, rng)
    net.whiten = None
    x = np.concatenate([describe(net, data.images, spec, device, pooled=True),
                        describe(net, views, spec, device, pooled=True)])
    n = len(data.images)
    pairs = [(n + j, i) for j, i in enumerate(src)]
    for i in range(n):
        pairs += [(i, j) for j in data.other_refs(i) if j > i]
    dim = min(cfg.whitening_dim or net.feature_dim, net.feature_dim)
    proj, mean = learn_whitening(x, np.array(pairs), dim)
    lin = net.set_whitening_shape(dim)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(proj))
        lin.bias.copy_(torch.from_numpy(-proj @ mean))
    return {"type": "learned", "dim": dim, "pairs": len(pairs), "samples": len(x)}


def whiten_if_better(net, data: ReferenceSet, spec: InputSpec, cfg: TrainConfig, validate, without: float) -> dict:
    """Fit Lw; drop it (with a warning) when validation mP@1 is lower with it than ``without``."""
    info = fit_whitening(net, data, spec, torch.device("cpu"), cfg)
    with_lw = validate(net)
    info.update({"val_mP@1_with_whitening": round(with_lw, 4), "val_mP@1_without": round(without, 4)})
    if with_lw < without:
        net.whiten = None
        info.update({"type": None, "dropped": "validation mP@1 was lower with it"})
        log.warning("sitelens: learned whitening lowered validation mP@1 (%.3f < %.3f); the model ships "
                    "without it", with_lw, without)
    return info
