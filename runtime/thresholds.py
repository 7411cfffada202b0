"""Open-set decision: accept the top-1 instance only if its score and margin clear thresholds."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Thresholds:
    """``score``: minimum cosine of the best reference; ``margin``: minimum gap between the
    best instance and the best *other* instance. ``None`` disables a test."""

    score: float | None = None
    margin: float | None = None
    target_far: float | None = None  # false-accept rate the thresholds were calibrated for

    def accepts(self, score: float, margin: float) -> bool:
        if self.score is not None and score < self.score:
            return False
        if self.margin is not None and margin < self.margin:
            return False
        return True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Thresholds":
        d = d or {}
        return cls(score=d.get("score"), margin=d.get("margin"), target_far=d.get("target_far"))
