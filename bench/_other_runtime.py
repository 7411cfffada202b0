"""The same ONNX model through a second runtime (OpenVINO's CPU plugin, when installed: ``pip install
'sitelens[bench]'``): whether ONNX Runtime leaves speed on the table on this machine, measured
instead of argued. The ``openvino`` package is not a sitelens dependency; a device that wants
OpenVINO's speed installs the ``onnxruntime-openvino`` flavour of ONNX Runtime ('sitelens[openvino]',
``runtime/models/providers.py``), which carries its own OpenVINO libraries: in such an environment
``bench/latency.py`` times ONNX Runtime's OpenVINO and CPU providers against each other instead.

OpenVINO computes in bfloat16 by default where the CPU has it; its float32 time is the fair
comparison with ONNX Runtime's CPU provider (which has no bfloat16 convolutions on x86), and the
bfloat16 time, with its descriptors' cosine to float32, says what that hardware would add."""
from __future__ import annotations

from _common import percentiles  # first: before numpy loads (runtime/models/blas_threads.py)

import numpy as np


def openvino_runs(onnx_bytes: bytes, x: np.ndarray, threads: int, reference: np.ndarray,
                  name: str = "openvino") -> tuple[dict, dict]:
    """({name: zero-argument call}, facts) for ``onnx_bytes`` on input batch ``x`` (uint8 NHWC):
    ``<name>_fp32`` always, ``<name>_bf16`` where the CPU computes bfloat16 (for an INT8 QDQ model
    these are the precisions of the layers left in float). Facts: the version and each run's cosine
    to ``reference`` (ONNX Runtime's descriptors of ``x`` with the same model). Both empty when
    OpenVINO is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return {}, {}
    core = ov.Core()
    model = core.read_model(onnx_bytes, b"")
    precisions = ["f32"]
    if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        precisions.append("bf16")
    runs = {}
    facts = {"runtime": f"OpenVINO {ov.__version__.split('-')[0]} CPU plugin", "build": ov.__version__,
             "cosine_to_onnxruntime": {}}
    for precision in precisions:
        compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": precision})
        request = compiled.create_infer_request()
        run = f"{name}_" + ("fp32" if precision == "f32" else precision)
        runs[run] = (lambda r=request: r.infer({0: x}))
        out = np.asarray(request.infer({0: x})[0], np.float32).ravel()
        ref = reference.ravel()
        facts["cosine_to_onnxruntime"][run] = round(float(out @ ref / np.linalg.norm(out) / np.linalg.norm(ref)), 5)
    return runs, facts


def openvino_for(models: dict, x: np.ndarray, threads: int, references: dict) -> tuple[dict, dict]:
    """``openvino_runs`` for each of a bundle's models (``models``: {"fp32": bytes, "int8": bytes};
    ``references``: ONNX Runtime's descriptors of ``x`` per model), merged; runs are named
    ``openvino_<fp32|bf16>`` for the float model and ``openvino_int8_<...>`` for the INT8 one."""
    runs, facts = {}, {}
    for kind, onnx_bytes in models.items():
        more, more_facts = openvino_runs(onnx_bytes, x, threads, references[kind],
                                         "openvino" if kind == "fp32" else f"openvino_{kind}")
        if not more:
            return {}, {}
        runs.update(more)
        facts.setdefault("runtime", more_facts["runtime"])
        facts.setdefault("build", more_facts["build"])
        facts.setdefault("cosine_to_onnxruntime", {}).update(more_facts["cosine_to_onnxruntime"])
    return runs, facts


def summary(times: dict, runs: dict, facts: dict) -> dict:
    """Each OpenVINO run's percentiles and its p50 over ONNX Runtime's on the same model
    (``times``: seconds per call by name, ONNX Runtime's as ``onnxruntime`` / ``onnxruntime_int8``)."""
    mine = {n: "onnxruntime_int8" if n.startswith("openvino_int8") else "onnxruntime" for n in runs}
    return {**facts, **{n: percentiles(times[n]) for n in runs},
            "time_over_onnxruntime_p50": {n: round(float(np.median(times[n]) / np.median(times[o])), 2)
                                          for n, o in mine.items()}}
