"""How much arithmetic a network's forward pass is, and how fast this machine does arithmetic: the
ceiling against which a network time (and a speed-up target) can be judged."""
from __future__ import annotations

from _common import timed  # first: before numpy loads (runtime/models/blas_threads.py)

import numpy as np


def forward_gflop(net, x) -> float:
    """Floating-point operations (2 per multiply-add) of one forward pass of a torch module on input
    ``x``, counted over its convolutions and linear layers (what dominates a CNN; activations,
    pooling and normalisation add a few percent)."""
    import torch

    total = [0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total[0] += 2 * output.numel() * k
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return total[0] / 1e9


def matmul_gflops(n: int = 1024, repeat: int = 7, backend: str = "numpy") -> float:
    """This machine's float32 matrix-product rate, median of ``repeat`` n x n products with all the
    library's threads: numpy's BLAS or torch's (``backend``). The better of the two is near the best
    a dense float32 kernel gets from these cores."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    if backend == "torch":
        import torch

        a, b = torch.from_numpy(a), torch.from_numpy(b)
    return 2 * n ** 3 / float(np.median(timed(lambda: a @ b, repeat, warmup=1))) / 1e9
