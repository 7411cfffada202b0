"""Would fewer bytes per local descriptor hold the answers? A probe before a bundle format change.

A reference's local features are most of its bytes (``bench/bundle_size.py``): 64-dimensional
XFeat descriptors stored as int8, 64 bytes a keypoint. This bench takes each open dev set's
bundle (built off the shelf with the defaults), replaces its references' stored descriptors *in
memory* by what a smaller code would give back, and scores the set's open-set manifest with the
bundle's own rules (``runtime.evaluate``, as ``sitelens eval``). The frame's descriptors are
untouched: only what the bundle would store changes.

Codes (bytes per keypoint):

- ``int8``: as stored (64), the baseline;
- ``bitsB``: every dimension quantised to B bits, one scale for the site (B * 8);
- ``pcaK``: projected on the site's own K principal components (fitted on its reference
  descriptors, as an export would), int8 per component with one scale each (K);
- ``pcaKbB``: the same with B bits per component (K * B / 8).

Reconstructions are scaled back to unit length and quantised to int8 like any stored descriptor.
The rules are the ones calibrated on int8 descriptors: a shipped code would be recalibrated on
its own evidence, so FAR here says how far the evidence moved, not what a rebuilt bundle would
accept. One run, prints JSON (``--out NAME`` also writes bench/results/).

    python bench/descriptor_codes.py [--sets ...] [--codes int8 pca32 ...] [--keep DIR] [--out descriptor_codes]

``--keep DIR``: reuse ``DIR/<set>.sitelens`` (what ``bench/bundle_size.py`` keeps as its default
variant), else build it there with ``sitelens bundle``.
"""
from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from _common import OPEN_SETS, emit  # first: before numpy loads

import numpy as np

from large_site import own_site

CODES = ("int8", "bits4", "pca32", "pca16", "pca32b4")
FIT_ROWS = 50_000   # descriptors the principal components are fitted on (a spread sample of the site's)


def parse(code: str) -> tuple[int | None, int]:
    """(principal components kept, or None for all 64 dimensions; bits a value)."""
    m = re.fullmatch(r"int8|bits(\d)|pca(\d+)(?:b(\d))?", code)
    if m is None:
        raise SystemExit(f"unknown code {code!r}: int8, bitsB, pcaK or pcaKbB")
    if m.group(2):
        return int(m.group(2)), int(m.group(3) or 8)
    return None, int(m.group(1) or 8)


def bytes_per_keypoint(code: str) -> float:
    components, bits = parse(code)
    return (components or 64) * bits / 8


def reconstructed(stored: np.ndarray, code: str) -> np.ndarray:
    """int8 descriptors (N, 64) -> what ``code`` would give back, as int8 unit-length rows."""
    from runtime.verify.local_features import dequantize, quantize

    if code == "int8" or len(stored) == 0:
        return stored
    x = dequantize(stored)
    k, bits = parse(code)
    levels = 2 ** (bits - 1) - 1
    if k is None:
        scale = np.percentile(np.abs(x), 99.9) / levels
        y = np.clip(np.round(x / scale), -levels - 1, levels) * scale
    else:
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x[:: max(1, len(x) // FIT_ROWS)] - mean, full_matrices=False)
        z = (x - mean) @ vt[:k].T
        scale = np.maximum(np.percentile(np.abs(z), 99.9, axis=0), 1e-6) / levels
        y = np.clip(np.round(z / scale), -levels - 1, levels) * scale @ vt[:k] + mean
    return quantize(y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12))


def score(bundle: Path, queries: list, code: str) -> dict:
    from runtime.evaluate import evaluate
    from runtime.recognizer import Recognizer

    rec = Recognizer.open(bundle)   # each code starts from the stored descriptors
    store = rec.index.features
    store.descs = reconstructed(store.descs, code)
    r = evaluate(rec, queries, progress=False)
    keys = ("mP@1", "true_accept_rate", "wrong_accept_rate", "false_accept_rate", "GAP", "queries")
    return {"bytes_per_keypoint": bytes_per_keypoint(code), "keypoints_per_reference_image":
            round(len(store.descs) / len(set(rec.index.images)), 1), **{k: r.get(k) for k in keys}}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(OPEN_SETS))
    ap.add_argument("--codes", nargs="+", default=list(CODES))
    ap.add_argument("--keep", help="reuse (or build) DIR/<set>.sitelens")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    from runtime.site import load_queries

    for code in args.codes:
        parse(code)
    work = Path(args.keep or tempfile.mkdtemp(prefix="descriptor_codes_"))
    result = {"sets": {}}
    for name in args.sets:
        _, manifest, bundle, _ = own_site(name, work)
        queries = load_queries(manifest)
        out = result["sets"].setdefault(name, {})
        for code in args.codes:
            out[code] = score(bundle, queries, code)
            emit(result, args, args.out, show=False)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
