"""sitelens public API. Training/export are imported lazily so a runtime-only install works."""
from runtime import (BundleError, ImageError, InputSpec, Recognition, Recognizer, SiteError,
                     SitelensError, __version__, load_image)

__all__ = ["Recognizer", "Recognition", "InputSpec", "load_image", "SitelensError", "BundleError",
           "ImageError", "SiteError", "__version__", "build_bundle", "evaluate", "train"]


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
