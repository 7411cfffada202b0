from __future__ import annotations

import torch


class Reducer:
    """``reducer(losses)``: a tensor of per-tuple (or per-sample) losses -> a scalar."""

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class MeanReducer(Reducer):
    """Mean over every element (satisfied tuples count as zeros)."""

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:
        return losses.mean() if losses.numel() else losses.sum()


class AvgNonZeroReducer(Reducer):
    """Mean over the elements that still violate their margin (hard tuples keep their weight as
    training makes most tuples easy)."""

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:
        active = losses > 0
        return losses[active].mean() if active.any() else losses.sum() * 0.0
