"""Composable metric-learning losses over L2-normalised descriptors (dot product = cosine)."""
from .contrastive import ContrastiveLoss
from .instance_ce import InstanceCrossEntropy
from .triplet import TripletLoss

__all__ = ["TripletLoss", "ContrastiveLoss", "InstanceCrossEntropy"]
