"""Open-set decision: accept the top-1 instance only if its score and margin clear thresholds."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


def _number(d: dict, key: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number or null, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Thresholds:
    """``score``: minimum cosine of the best reference; ``margin``: minimum gap between the
    best instance and the best *other* instance. ``None`` disables a test."""

    score: float | None = None
    margin: float | None = None
    target_far: float | None = None  # false-accept rate the thresholds were calibrated for
    calibration: dict | None = field(default=None, compare=False)  # how they were chosen (report)

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
        if not isinstance(d, dict):
            raise ValueError(f"expected an object, got {type(d).__name__}")
        calibration = d.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise ValueError("calibration must be an object")
        return cls(score=_number(d, "score"), margin=_number(d, "margin"), target_far=_number(d, "target_far"),
                   calibration=calibration)
