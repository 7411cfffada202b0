"""FP16 and INT8 variants of the exported model, checked against FP32 on the site's images.

INT8: ONNX Runtime static quantization, QDQ format, per-channel int8 weights, calibrated on
the site's references and simulated visitor views (mixed precision: see ``int8_nodes``).
FP16: float16 weights and activations with uint8 input / float32 output kept. Both are
measured against FP32 on the site's own simulated visitor views (descriptor cosine, top-1
agreement, mP@1 at both precisions). A reduced precision ships only if it keeps at least
``RETAIN`` (99%) of FP32's mP@1 on those views; otherwise the export falls back to the next
safer precision and says so, instead of shipping a worse model silently.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from runtime.models.embedder import Embedder
from runtime.errors import SitelensError
from runtime.kinds import PRECISIONS
from runtime.metrics import precision_at_1
from runtime.models.int8_products import WEIGHT_BITS_KEY
from runtime.image.preprocess import InputSpec
from training.data import to_square

log = logging.getLogger("sitelens")
WEIGHT_BITS = (8, 7)  # INT8 weights: full range, or 7 bits for x86 CPUs without VNNI
RETAIN = 0.99  # share of FP32's mP@1 (site's simulated views) a reduced precision must keep


def _copy_metadata(src: bytes, dst: bytes, extra: dict[str, str] | None = None) -> bytes:
    """``dst`` with ``src``'s metadata properties that it lacks, and ``extra`` ones, added."""
    import onnx

    a, b = onnx.load_from_string(src), onnx.load_from_string(dst)
    have = {p.key for p in b.metadata_props}
    props = [(p.key, p.value) for p in a.metadata_props if p.key not in have] + list((extra or {}).items())
    for key, value in props:
        e = b.metadata_props.add()
        e.key, e.value = key, value
    return b.SerializeToString()


def to_fp16(onnx_bytes: bytes) -> bytes:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load_from_string(onnx_bytes), keep_io_types=True,
                                     disable_shape_infer=True)
    return _copy_metadata(onnx_bytes, model.SerializeToString())


QUANT_OPS = ("Conv",)          # the backbone; the head (learned whitening: Gemm/MatMul) stays in float
FUSED_ACTIVATIONS = ("Clip", "Relu")


def int8_nodes(model) -> list[str]:
    """Names of the nodes to quantize (mixed precision).

    Every Conv except the first, which sees the raw normalised pixels and costs little (3 input
    channels), plus the Clip/Relu activation right after each quantized layer: its
    output is then quantized on the post-activation range (ReLU6: [0, 6]) instead of the much wider
    pre-activation range. Clip/Div/Add nodes of the dynamic "same" padding arithmetic are not
    touched (they never consume a layer's output). The learned whitening (the final Gemm) stays in
    float: it is one small matrix product, and quantizing it adds its own rounding to the backbone's
    noise that it already amplifies.

    Tried and not adopted (``bench/export_report.py`` measures the choice that ships): the
    depthwise convolutions kept in float make the network slower, from the (de)quantization and
    layout changes around each; the first Conv quantized too is barely faster and lowers the
    descriptors' cosine to FP32; the last convolution (conv_head, before GeM) kept in float gains
    nothing in cosine or mP@1 and is slower on OpenVINO.
    """
    nodes = model.graph.node
    first_conv = next((n.name for n in nodes if n.op_type == "Conv"), None)
    layers = {n.name for n in nodes if n.op_type in QUANT_OPS and n.name != first_conv}
    produced_by = {o: n.name for n in nodes for o in n.output}
    return [n.name for n in nodes if n.name in layers
            or (n.op_type in FUSED_ACTIVATIONS and produced_by.get(n.input[0]) in layers)]


def to_int8(onnx_bytes: bytes, calibration: list[np.ndarray], weight_bits: int = 8) -> bytes:
    """Static QDQ quantization; ``calibration``: preprocessed uint8 HxWx3 images.

    Per-channel int8 weights, ``weight_bits`` 8 (full range) or 7 (``reduce_range``). x86 CPUs
    without VNNI multiply u8 x s8 with 16-bit saturation (``runtime/models/int8_products.py``): there 7-bit
    weights are the safe choice; on CPUs with VNNI or AMX, ARM CPUs and GPUs the products are
    exact and the eighth bit counts (closer descriptors to FP32 at the same speed;
    ``bench/export_report.py``, BENCHMARKS.md).
    The bit count goes into the model's metadata, so that the runtime can warn where 8-bit weights
    saturate. MinMax ranges per tensor for activations; see ``int8_nodes`` for what stays in float.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            img = next(self.items, None)
            return None if img is None else {"image": img[None]}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (os.path.join(tmp, n) for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        Path(src).write_bytes(onnx_bytes)
        try:
            quant_pre_process(src, pre, skip_symbolic_shape=True)
        except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation only
            log.warning("sitelens: quantization pre-processing skipped (%s)", exc)
            pre = src
        if weight_bits not in WEIGHT_BITS:
            raise SitelensError(f"INT8 weights take 8 or 7 bits, got {weight_bits!r}")
        nodes = int8_nodes(onnx.load(pre))
        quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=weight_bits == 7,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        op_types_to_quantize=list(QUANT_OPS + FUSED_ACTIVATIONS), nodes_to_quantize=nodes,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        return _copy_metadata(onnx_bytes, Path(dst).read_bytes(), {WEIGHT_BITS_KEY: str(weight_bits)})


def agreement(ref_fp32: np.ndarray, ref_low: np.ndarray, view_fp32: np.ndarray, view_low: np.ndarray,
              labels: np.ndarray, view_labels: np.ndarray) -> dict:
    """Cosine of descriptors, top-1 agreement of view -> reference matching, and the share of
    FP32's mP@1 that the reduced model keeps (``retained``)."""
    cos = np.sum(np.concatenate([ref_fp32, view_fp32]) * np.concatenate([ref_low, view_low]), axis=1)
    top_fp32 = labels[np.argmax(view_fp32 @ ref_fp32.T, axis=1)]
    top_low = labels[np.argmax(view_low @ ref_low.T, axis=1)]
    mp1_fp32, mp1_low = precision_at_1(top_fp32, view_labels), precision_at_1(top_low, view_labels)
    return {"top1_agreement": round(float(np.mean(top_fp32 == top_low)), 4),
            "cosine_mean": round(float(cos.mean()), 5), "cosine_min": round(float(cos.min()), 5),
            "mP@1_fp32_views": round(mp1_fp32, 4), "mP@1_low_views": round(mp1_low, 4),
            "retained": round(mp1_low / mp1_fp32, 4) if mp1_fp32 > 0 else 1.0, "samples": int(len(view_labels))}


def reduce_precision(onnx_fp32: bytes, precision: str, spec: InputSpec, refs: list[np.ndarray], labels: np.ndarray,
                     views: list[np.ndarray], view_labels: np.ndarray, retain: float = RETAIN,
                     int8_weight_bits: int = 8):
    """Returns (onnx bytes, precision actually shipped, report). ``refs``/``views``: RGB images.
    The INT8 candidate is measured on this machine's CPU: exported on an x86 CPU without VNNI,
    8-bit weights saturate here (``to_int8``) and may fall back where the device would keep them."""
    if precision not in PRECISIONS:
        raise SitelensError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return onnx_fp32, "fp32", None
    base = Embedder(onnx_fp32, spec, providers=["CPUExecutionProvider"])
    ref32, view32 = base.embed_many(refs), base.embed_many(views)
    report = {"requested": precision, "retain": retain,
              "criterion": f"mP@1 on simulated visitor views >= {retain:g} x FP32", "candidates": {}}
    for candidate in (("int8", "fp16") if precision == "int8" else ("fp16",)):
        if candidate == "int8":
            # one shape for all: histogram calibrators stack activations across samples
            calib = [to_square(i, spec.size) for i in (refs + views)[:256]]
            data = to_int8(onnx_fp32, calib, int8_weight_bits)
            report["int8_weight_bits"] = int8_weight_bits
        else:
            data = to_fp16(onnx_fp32)
        low = Embedder(data, spec, providers=["CPUExecutionProvider"])
        agree = agreement(ref32, low.embed_many(refs), view32, low.embed_many(views), labels, view_labels)
        report["candidates"][candidate] = agree
        if agree["retained"] >= retain:
            report["shipped"] = candidate
            if candidate != precision:
                log.warning("sitelens: %s kept less than %.0f%% of FP32's mP@1; shipping %s instead",
                            precision, 100 * retain, candidate)
            return data, candidate, report
        log.warning("sitelens: %s keeps %.1f%% of FP32's mP@1 on simulated views (< %.0f%%): not shipping it",
                    candidate, 100 * agree["retained"], 100 * retain)
    report["shipped"] = "fp32"
    log.warning("sitelens: no reduced precision kept %.0f%% of FP32's mP@1; shipping fp32", 100 * retain)
    return onnx_fp32, "fp32", report
