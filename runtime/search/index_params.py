"""HNSW parameters stored in the bundle (hnswlib does not save ``ef``: the manifest does)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexParams:
    M: int = 16
    ef_construction: int = 200
    ef: int = 64

    def to_dict(self) -> dict:
        return {"type": "hnsw", "space": "ip", "M": self.M, "ef_construction": self.ef_construction, "ef": self.ef}

    @classmethod
    def from_dict(cls, d: dict) -> "IndexParams":
        return cls(M=int(d.get("M", 16)), ef_construction=int(d.get("ef_construction", 200)), ef=int(d.get("ef", 64)))
