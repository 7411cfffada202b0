"""sitelens device runtime: onnxruntime + hnswlib + numpy + OpenCV, never torch."""
from runtime.models.blas_threads import quiet_blas_threads

BLAS_QUIET = quiet_blas_threads()  # before anything below loads numpy (see blas_threads.py)

from runtime.errors import BundleError, DependencyError, ImageError, SiteError, SitelensError
from runtime.image.image_io import load_image
from runtime.image.preprocess import InputSpec, resize_for_model
from runtime.recognizer import Candidate, Recognition, Recognizer
from runtime.thresholds import Thresholds
from runtime.version import __version__

__all__ = [
    "Recognizer", "Recognition", "Candidate", "InputSpec", "Thresholds", "load_image",
    "resize_for_model", "SitelensError", "BundleError", "ImageError", "SiteError",
    "DependencyError", "__version__",
]
