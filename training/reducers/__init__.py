"""Reducers: how per-tuple losses become one number (as in pytorch-metric-learning)."""
from .reducers import AvgNonZeroReducer, MeanReducer, Reducer

__all__ = ["Reducer", "MeanReducer", "AvgNonZeroReducer"]
