"""sitelens public API: the device API (recognizer, camera stream, results, errors) re-exported
from ``runtime`` without importing torch, plus build/train/evaluate entry points that import
training/export lazily so a runtime-only install works. Apps import from here."""
from runtime import (BundleError, Candidate, DependencyError, ImageError, InputSpec, Recognition, Recognizer,
                     SiteError, SitelensError, Thresholds, __version__, load_image)
from runtime.stream import Event, RecognitionStream, open_source
from runtime.verify.geometric import Evidence

__all__ = ["Recognizer", "Recognition", "Candidate", "Evidence", "InputSpec", "Thresholds", "load_image",
           "RecognitionStream", "Event", "open_source",
           "SitelensError", "BundleError", "ImageError", "SiteError", "DependencyError", "__version__",
           "build_bundle", "evaluate", "train"]


def build_bundle(*args, **kwargs):
    """See :func:`export.bundler.build_bundle` (needs the `train` extra)."""
    from export.bundler import build_bundle as _build

    return _build(*args, **kwargs)


def evaluate(bundle, queries, match: str = "hnsw", progress: bool = True) -> dict:
    """Score a bundle on a query folder or manifest (runtime only)."""
    from runtime.evaluate import evaluate as _evaluate
    from runtime.site import load_queries

    return _evaluate(Recognizer.open(bundle, match=match), load_queries(queries), progress=progress)


def train(*args, **kwargs):
    """See :func:`training.trainer.train` (needs the `train` extra)."""
    from training.trainer import train as _train

    return _train(*args, **kwargs)
