"""ONNX export of the descriptor network, with a PyTorch parity check at two input sizes."""
from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import torch

from runtime.models.embedder import FINGERPRINT_KEY
from runtime.errors import SitelensError
from runtime.image.preprocess import InputSpec
from runtime.models.providers import import_onnxruntime

from .same_padding import fold_same_padding

log = logging.getLogger("sitelens")
OPSET = 17
PARITY_TOLERANCE = 1e-4
FOLD_TOLERANCE = 1e-6  # the same arithmetic: only float summation order may differ
INPUT_NAME, OUTPUT_NAME = "image", "descriptor"


class ParityError(SitelensError):
    """The exported graph does not reproduce PyTorch's descriptors."""


def parity_shapes(spec: InputSpec) -> list[tuple[int, int, int]]:
    """Two batch/size combinations, one square, one landscape with another batch size."""
    s = spec.size
    return [(1, s, s), (2, s + 32, int(s * 1.5) + 7)]


def to_onnx(module: torch.nn.Module, args: tuple, inputs: list[str], outputs: list[str], dynamic_axes: dict,
            meta: dict[str, str]) -> bytes:
    """``module`` traced to ONNX (TorchScript exporter, ``OPSET``, constants folded) with ``meta`` in
    its metadata properties."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, input_names=inputs, output_names=outputs, dynamic_axes=dynamic_axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    return with_metadata(buf.getvalue(), meta)


def with_metadata(onnx_bytes: bytes, meta: dict[str, str]) -> bytes:
    """The model with ``meta`` added to its metadata properties (fingerprints, descriptions)."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def export_onnx(net: torch.nn.Module, spec: InputSpec, metadata: dict | None = None,
                check: bool = True, tolerance: float = PARITY_TOLERANCE) -> bytes:
    """Serialize ``net`` (uint8 NHWC in, descriptor out; dynamic batch and H/W)."""
    net = net.train(False)  # inference mode, or BN/dropout would differ from ORT
    example = torch.randint(0, 256, (1, spec.size, spec.size, 3), dtype=torch.uint8)
    meta = {FINGERPRINT_KEY: net.fingerprint(), "sitelens.input": "uint8 NHWC RGB"}
    meta.update({f"sitelens.{k}": str(v) for k, v in (metadata or {}).items()})
    data = to_onnx(net, (example,), [INPUT_NAME], [OUTPUT_NAME],
                   {INPUT_NAME: {0: "batch", 1: "height", 2: "width"}, OUTPUT_NAME: {0: "batch"}}, meta)
    data = padding_in_convolutions(data, spec)
    if check:
        check_parity(net, data, spec, tolerance)
    return data


def padding_in_convolutions(onnx_bytes: bytes, spec: InputSpec) -> bytes:
    """The graph with run-time "same" padding folded into its convolutions (``export.same_padding``:
    fewer nodes per frame, and no float island between INT8 convolutions), if ONNX Runtime gives
    the same descriptors with it at the parity sizes and an odd-sized one; otherwise unchanged."""
    folded, count = fold_same_padding(onnx_bytes)
    if not count:
        return onnx_bytes
    ort = import_onnxruntime()
    before, after = (ort.InferenceSession(m, providers=["CPUExecutionProvider"]) for m in (onnx_bytes, folded))
    rng = np.random.default_rng(1)
    s = spec.size
    for shape in parity_shapes(spec) + [(1, s + 1, s + 3)]:
        x = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
        diff = float(np.abs(before.run(None, {INPUT_NAME: x})[0] - after.run(None, {INPUT_NAME: x})[0]).max())
        if not diff <= FOLD_TOLERANCE:
            log.warning("sitelens: folding the padding into the convolutions changed the descriptors by %.1e at "
                        "input %s; exporting the graph unfolded", diff, shape)
            return onnx_bytes
    log.info("sitelens: %d run-time paddings folded into their convolutions", count)
    return folded


def check_parity(net: torch.nn.Module, onnx_bytes: bytes, spec: InputSpec,
                 tolerance: float = PARITY_TOLERANCE) -> float:
    """Max |torch - ORT| over two input sizes; raises ParityError above ``tolerance``."""
    ort = import_onnxruntime()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in parity_shapes(spec):
        x = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
        with torch.no_grad():
            ref = net.train(False)(torch.from_numpy(x)).numpy()
        got = session.run(None, {INPUT_NAME: x})[0]
        diff = float(np.abs(ref - got).max())
        worst = max(worst, diff)
        if not diff <= tolerance:
            raise ParityError(f"ONNX export differs from PyTorch by {diff:.2e} at input {shape} "
                              f"(tolerance {tolerance:.0e}); refusing to export")
    return worst
