"""Describing images with the torch network during training (mining pools, validation, whitening),
in batches of equal-shaped inputs."""
from __future__ import annotations

import numpy as np
import torch

from runtime.image.preprocess import InputSpec, resize_for_model


@torch.no_grad()
def describe(net, images, spec: InputSpec, device, pooled: bool = False, batch: int = 16) -> np.ndarray:
    """Descriptors of RGB images resized as the device does (aspect kept), batched by shape."""
    was_training = net.training
    net.train(False)
    prepared = [resize_for_model(img, spec) for img in images]
    out = [None] * len(prepared)
    by_shape: dict = {}
    for i, x in enumerate(prepared):
        by_shape.setdefault(x.shape, []).append(i)
    for idx in by_shape.values():
        for s in range(0, len(idx), batch):
            chunk = idx[s:s + batch]
            x = torch.from_numpy(np.stack([prepared[i] for i in chunk])).to(device)
            d = (net.pooled(x) if pooled else net(x)).cpu().numpy()
            for i, row in zip(chunk, d):
                out[i] = row
    net.train(was_training)
    return np.stack(out) if out else np.zeros((0, net.output_dim), np.float32)
