"""sitelens device runtime: onnxruntime + hnswlib + numpy + OpenCV, never torch."""
from .errors import BundleError, DependencyError, ImageError, SiteError, SitelensError
from .image_io import load_image
from .preprocess import InputSpec, resize_for_model
from .recognizer import Candidate, Recognition, Recognizer
from .thresholds import Thresholds
from .version import __version__

__all__ = [
    "Recognizer", "Recognition", "Candidate", "InputSpec", "Thresholds", "load_image",
    "resize_for_model", "SitelensError", "BundleError", "ImageError", "SiteError",
    "DependencyError", "__version__",
]
