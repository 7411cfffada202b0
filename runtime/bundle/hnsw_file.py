"""Structural check of an hnswlib index file before hnswlib parses it, and its vector-less form.

hnswlib trusts its input: a crafted or truncated file (even one whose checksum was rewritten
to match) can make ``load_index`` or a later search read out of bounds and crash the process.
This module parses the file layout of hnswlib 0.8 (``HierarchicalNSW::saveIndex``) with numpy and
refuses anything inconsistent: header fields, total length, every neighbour id, list counts,
levels and labels. Only files that pass are handed to hnswlib.

A bundle stores the graph without its vectors (``strip_vectors``: the same file with each
element's float32 vector cut out, ``index.graph``): the vectors are the rows of ``refs.npy``
already, and at four bytes a dimension they were most of the file. ``with_vectors`` puts them
back (from ``refs.npy``) before hnswlib loads the file; both layouts pass the same check.
"""
from __future__ import annotations

import struct

import numpy as np

from runtime.errors import BundleError

# offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset, offsetData (size_t),
# maxlevel (int), enterpoint_node (uint32), maxM, maxM0, M (size_t), mult (double), ef_construction (size_t)
_HEADER = struct.Struct("<6Q i I 3Q d Q")
_LINKSIZE = struct.Struct("<I")
MAX_LEVEL = 64


def check_hnsw_bytes(data: bytes, dim: int, count: int, source: str = "index.hnsw", vectors: bool = True) -> dict:
    """Raise BundleError unless ``data`` is a well-formed inner-product hnswlib index of ``count``
    float32 vectors of ``dim`` dimensions labelled 0..count-1 (``vectors=False``: the same graph
    with the vectors cut out, see ``strip_vectors``). Returns the header fields."""
    member = "index.hnsw" if vectors else "index.graph"

    def bad(problem: str):
        raise BundleError(f"{source}: {member} is malformed ({problem})")

    if len(data) < _HEADER.size:
        bad(f"{len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    (off0, max_el, cur, per_el, label_off, data_off, maxlevel, enter, max_m, max_m0, m, mult,
     ef_c) = _HEADER.unpack_from(data, 0)
    if cur != count:
        bad(f"holds {cur} items, refs.npy has {count}")
    if off0 != 0 or not 2 <= m <= 10000 or max_m != m or max_m0 != 2 * m:
        bad(f"unexpected graph parameters (M={m}, maxM={max_m}, maxM0={max_m0}, offset={off0})")
    links0 = max_m0 * 4 + 4
    if data_off != links0 or label_off != links0 + 4 * dim or per_el != links0 + 4 * dim + 8:
        bad(f"element layout does not fit {dim}-dimensional float32 vectors")
    if max_el < cur or not 0 <= maxlevel < MAX_LEVEL or not np.isfinite(mult) or ef_c < 1:
        bad(f"header out of range (max_elements={max_el}, maxlevel={maxlevel}, mult={mult})")
    if cur and enter >= cur:
        bad(f"entry point {enter} is not one of the {cur} items")
    stride = per_el if vectors else per_el - 4 * dim     # bytes per element as stored
    label_at = label_off if vectors else data_off
    pos = _HEADER.size
    level0_end = pos + cur * stride
    if len(data) < level0_end:
        bad("truncated level-0 data")
    if cur:
        block = np.frombuffer(data, np.uint8, count=cur * stride, offset=pos).reshape(cur, stride)
        sizes = block[:, 0:2].copy().view(np.uint16)[:, 0]
        if int(sizes.max()) > max_m0:
            bad("a level-0 neighbour list is longer than maxM0")
        ids = block[:, 4:links0].copy().view(np.uint32)
        used = np.arange(max_m0)[None, :] < sizes[:, None]
        if used.any() and int(ids[used].max()) >= cur:
            bad("a level-0 neighbour id points outside the index")
        if vectors and not np.isfinite(block[:, data_off:label_off].copy().view(np.float32)).all():
            bad("non-finite vector values")
        labels = block[:, label_at:label_at + 8].copy().view(np.uint64)[:, 0]
        if not np.array_equal(np.sort(labels), np.arange(cur, dtype=np.uint64)):
            bad("labels are not 0..count-1")
    pos = level0_end
    links_up = max_m * 4 + 4
    top_seen = 0
    enter_level = 0
    for i in range(cur):
        if pos + 4 > len(data):
            bad("truncated upper-level link lists")
        (size,) = _LINKSIZE.unpack_from(data, pos)
        pos += 4
        if size == 0:
            continue
        if size % links_up or size // links_up > maxlevel:
            bad(f"item {i} has an upper-level list of {size} bytes")
        if pos + size > len(data):
            bad("truncated upper-level link lists")
        levels = size // links_up
        lists = np.frombuffer(data, np.uint32, count=size // 4, offset=pos).reshape(levels, max_m + 1)
        counts = lists[:, 0] & 0xFFFF
        if int(counts.max()) > max_m:
            bad(f"item {i} has an upper-level neighbour list longer than M")
        used = np.arange(max_m)[None, :] < counts[:, None]
        if used.any() and int(lists[:, 1:][used].max()) >= cur:
            bad(f"item {i} has an upper-level neighbour id outside the index")
        top_seen = max(top_seen, levels)
        if i == enter:
            enter_level = levels
        pos += size
    if pos != len(data):
        bad(f"{len(data) - pos} unexpected trailing bytes")
    if cur and (top_seen != maxlevel or enter_level != maxlevel):
        bad(f"levels disagree with the header (maxlevel {maxlevel}, highest list {top_seen}, entry point {enter_level})")
    return {"M": m, "ef_construction": ef_c, "count": cur, "max_elements": max_el}


def _layout(data: bytes, dim: int) -> tuple[int, int, int, int]:
    """(element count, bytes per element with its vector, vector offset, header size) of a file
    that passed ``check_hnsw_bytes`` (either layout)."""
    off0, max_el, cur, per_el, label_off, data_off, *_ = _HEADER.unpack_from(data, 0)
    return cur, per_el, data_off, _HEADER.size


def strip_vectors(data: bytes, dim: int) -> bytes:
    """An hnswlib file (from ``Index.save_index``) without its vectors: each level-0 element keeps
    its links and label; header and upper-level lists are unchanged."""
    cur, per_el, data_off, head = _layout(data, dim)
    block = np.frombuffer(data, np.uint8, count=cur * per_el, offset=head).reshape(cur, per_el)
    kept = np.concatenate([block[:, :data_off], block[:, data_off + 4 * dim:]], axis=1)
    return data[:head] + kept.tobytes() + data[head + cur * per_el:]


def with_vectors(graph: bytes, vectors: np.ndarray) -> bytes:
    """The hnswlib file of a stripped ``graph`` (checked with ``vectors=False``) with ``vectors``
    (count x dim, cast to float32) put back in element order: labels are 0..count-1 and element
    ``i``'s vector is the row its label names."""
    vectors = np.ascontiguousarray(vectors, np.float32)
    count, dim = vectors.shape
    cur, per_el, data_off, head = _layout(graph, dim)
    stride = per_el - 4 * dim
    stored = np.frombuffer(graph, np.uint8, count=cur * stride, offset=head).reshape(cur, stride)
    labels = stored[:, data_off:data_off + 8].copy().view(np.uint64)[:, 0].astype(np.int64)
    block = np.empty((cur, per_el), np.uint8)
    block[:, :data_off] = stored[:, :data_off]
    block[:, data_off:data_off + 4 * dim] = vectors[labels].view(np.uint8)
    block[:, data_off + 4 * dim:] = stored[:, data_off:]
    return graph[:head] + block.tobytes() + graph[head + cur * stride:]
