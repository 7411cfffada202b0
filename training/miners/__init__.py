"""Negative mining from a pool of descriptors, re-done every epoch."""
from .hard_negatives import mine_negatives

__all__ = ["mine_negatives"]
