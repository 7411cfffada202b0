"""Numpy arrays as bundle members: written and read as plain ``.npy`` bytes, never pickles."""
from __future__ import annotations

import io
import struct

import numpy as np

from runtime.errors import BundleError


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes, name: str, source: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, struct.error, SyntaxError) as exc:
        raise BundleError(f"{source}: member {name} is not a plain numpy array ({exc})") from None
