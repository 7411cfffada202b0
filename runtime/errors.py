"""Exceptions raised by sitelens. Every message names the file and the problem."""


class SitelensError(Exception):
    """Base class of every error sitelens raises on purpose."""


class ImageError(SitelensError):
    """An image could not be read or decoded."""


class SiteError(SitelensError):
    """A site folder or manifest is malformed (lists every offending path)."""


class BundleError(SitelensError):
    """A bundle is missing, corrupt, tampered with or from an incompatible version."""


class DependencyError(SitelensError):
    """An optional dependency (onnxruntime, tensorrt, torch...) is missing or misinstalled."""
