"""Temporal smoothing for the audio-guide: fire once per visit to a work, never flicker.

- ``recognized``: the same instance was accepted in at least ``k`` of the last ``n`` frames
  and it is not the one already announced. The same work is not re-announced within
  ``debounce_s`` seconds unless another work was recognized in between.
- ``lost``: the announced work has not been accepted in the last ``n`` frames.
- ``unknown``: at least ``k`` of the last ``n`` frames were rejected and the stream was not
  already in the unknown state (walls, labels, works not in the site).
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass


@dataclass
class Event:
    event: str              # recognized | lost | unknown
    instance: str | None
    score: float
    t: float
    frame: int
    metadata: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = round(self.score, 4)
        d["t"] = round(self.t, 3)
        return d


class DecisionLayer:
    def __init__(self, k: int = 3, n: int = 5, debounce_s: float = 10.0):
        if not 1 <= k <= n:
            raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
        self.k, self.n, self.debounce_s = k, n, debounce_s
        self.window: deque = deque(maxlen=n)
        self.state: str | None = None  # None (start), "__unknown__" or the announced instance
        self.last_fired: dict[str, float] = {}
        self.last_recognized: str | None = None

    def update(self, instance: str | None, score: float, t: float, frame: int = 0) -> list[Event]:
        """Feed one frame's decision (``instance`` None = rejected); returns events to emit."""
        self.window.append((instance, score))
        events: list[Event] = []
        counts = Counter(i for i, _ in self.window)
        announced = self.state not in (None, "__unknown__")
        if announced and counts.get(self.state, 0) == 0 and len(self.window) == self.n:
            events.append(Event("lost", self.state, 0.0, t, frame))
            self.state = None
        best, hits = max(((i, c) for i, c in counts.items() if i is not None), key=lambda x: x[1], default=(None, 0))
        if best is not None and hits >= self.k and best != self.state:
            mean = sum(s for i, s in self.window if i == best) / hits
            recent = t - self.last_fired.get(best, float("-inf")) < self.debounce_s
            if self.state not in (None, "__unknown__"):
                events.append(Event("lost", self.state, 0.0, t, frame))
            if not (recent and self.last_recognized == best):
                events.append(Event("recognized", best, mean, t, frame))
                self.last_fired[best] = t
                self.last_recognized = best
            self.state = best
        elif counts.get(None, 0) >= self.k and self.state is None:
            events.append(Event("unknown", None, 0.0, t, frame))
            self.state = "__unknown__"
        return events

    def reset(self) -> None:
        self.window.clear()
        self.state = None
