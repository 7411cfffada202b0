"""Composable metric-learning losses over L2-normalised descriptors (dot product = cosine), one
signature for all: ``loss(embeddings, labels, tuples)`` with a reducer (see ``base.py``)."""
from .base import TupleLoss, Tuples
from .contrastive import ContrastiveLoss
from .instance_ce import InstanceCrossEntropy
from .triplet import TripletLoss

__all__ = ["TupleLoss", "Tuples", "TripletLoss", "ContrastiveLoss", "InstanceCrossEntropy"]
