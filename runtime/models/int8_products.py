"""Whether this CPU multiplies INT8 models exactly: the saturation of older x86 CPUs.

x86 CPUs without VNNI (before Cascade Lake / Ice Lake, Alder Lake's AVX-VNNI or AMD Zen 4)
multiply uint8 activations by int8 weights with ``vpmaddubsw``, which adds each pair of products
into a 16-bit integer that saturates: 255 x 127 x 2 = 64770 > 32767. ONNX Runtime's CPU provider
and OpenVINO's CPU plugin both take that path there, so a model with full 8-bit weights loses
accuracy on such a CPU; with 7-bit weights (``export --int8-weights 7``) the sums fit. CPUs with
VNNI or AMX (``vpdpbusd`` accumulates in 32 bits), ARM CPUs and GPUs compute 8-bit weights exactly.

The export writes the weights' bit count into the INT8 model's metadata (``WEIGHT_BITS_KEY``); the
embedder warns when an 8-bit model opens on a CPU that saturates.
"""
from __future__ import annotations

import platform
from pathlib import Path

WEIGHT_BITS_KEY = "sitelens.int8_weight_bits"
VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}  # /proc/cpuinfo's names


def is_x86(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags in /proc/cpuinfo's spelling, or None where unknown. numpy's view of
    the CPU (Windows, macOS) is used where /proc/cpuinfo is missing; it has no AVX-VNNI flag."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return None
    return {"avx512_vnni"} if features.get("AVX512VNNI") else set()


def saturates(machine: str | None = None, flags: set[str] | None = None) -> bool:
    """True on an x86 CPU whose flags show no VNNI or AMX (``machine``, ``flags``: this CPU's by
    default). False on other architectures, and where the flags cannot be read."""
    if not is_x86(machine):
        return False
    flags = cpu_flags() if flags is None else flags
    return flags is not None and not flags & VNNI_FLAGS


def warning(metadata: dict[str, str], providers: list[str], machine: str | None = None,
            flags: set[str] | None = None) -> str | None:
    """The warning for an INT8 model with 8-bit weights (``metadata``: its ONNX metadata) run on
    ``providers`` on this CPU, or None when its products are exact."""
    if metadata.get(WEIGHT_BITS_KEY) != "8" or not providers:
        return None
    if providers[0] not in ("CPUExecutionProvider", "OpenVINOExecutionProvider") or not saturates(machine, flags):
        return None
    return ("sitelens: this INT8 model has 8-bit weights, and this x86 CPU has no VNNI: its int8 products "
            "saturate and descriptors lose accuracy. Export with --int8-weights 7 for such CPUs, or use FP32.")
