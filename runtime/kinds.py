"""Registries of the kinds sitelens knows, one definition each: CLI choices, manifest validation,
calibration and the benches iterate these instead of typing the names again. Local-feature kinds
live with their extractors (``runtime/verify/local_features.py``: ``FEATURES``, ``STORED_DESCRIPTORS``),
execution providers with their chooser (``runtime/models/providers.py``: ``NAMED``)."""

MATCH_MODES = ("hnsw", "exact", "binary", "hamming")   # how the shortlist is searched
BINARY_MATCH_MODES = ("binary", "hamming")             # need ITQ codes in the bundle (--hash-bits)
PRECISIONS = ("fp32", "fp16", "int8")                  # of the exported network
