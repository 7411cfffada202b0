"""FP16 and INT8 variants of the exported model, checked against FP32 on the site's images.

INT8: ONNX Runtime static quantization, QDQ format, per-channel int8 weights, calibrated on
the site's references and simulated visitor views. FP16: float16 weights and activations
with uint8 input / float32 output kept. Both are measured against FP32 (descriptor cosine,
top-1 instance agreement on simulated views); below the agreement floor the export falls
back to the next safer precision and says so, instead of shipping a worse model silently.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from runtime.embedder import Embedder
from runtime.errors import SitelensError
from runtime.preprocess import InputSpec
from training.data import to_square

log = logging.getLogger("sitelens")
PRECISIONS = ("fp32", "fp16", "int8")
AGREEMENT_FLOOR = 0.99  # top-1 agreement with FP32 needed to ship a reduced precision


def _copy_metadata(src: bytes, dst: bytes) -> bytes:
    import onnx

    a, b = onnx.load_from_string(src), onnx.load_from_string(dst)
    have = {p.key for p in b.metadata_props}
    for p in a.metadata_props:
        if p.key not in have:
            e = b.metadata_props.add()
            e.key, e.value = p.key, p.value
    return b.SerializeToString()


def to_fp16(onnx_bytes: bytes) -> bytes:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load_from_string(onnx_bytes), keep_io_types=True,
                                     disable_shape_infer=True)
    return _copy_metadata(onnx_bytes, model.SerializeToString())


def to_int8(onnx_bytes: bytes, calibration: list[np.ndarray]) -> bytes:
    """Static QDQ quantization; ``calibration``: preprocessed uint8 HxWx3 images."""
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
        quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        op_types_to_quantize=["Conv", "Gemm", "MatMul"],
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        return _copy_metadata(onnx_bytes, Path(dst).read_bytes())


def agreement(ref_fp32: np.ndarray, ref_low: np.ndarray, view_fp32: np.ndarray, view_low: np.ndarray,
              labels: np.ndarray, view_labels: np.ndarray) -> dict:
    """Cosine of descriptors and top-1 agreement of view -> reference matching."""
    cos = np.sum(np.concatenate([ref_fp32, view_fp32]) * np.concatenate([ref_low, view_low]), axis=1)
    top_fp32 = labels[np.argmax(view_fp32 @ ref_fp32.T, axis=1)]
    top_low = labels[np.argmax(view_low @ ref_low.T, axis=1)]
    return {"top1_agreement": round(float(np.mean(top_fp32 == top_low)), 4),
            "cosine_mean": round(float(cos.mean()), 5), "cosine_min": round(float(cos.min()), 5),
            "mP@1_fp32_views": round(float(np.mean(top_fp32 == view_labels)), 4),
            "mP@1_low_views": round(float(np.mean(top_low == view_labels)), 4), "samples": int(len(view_labels))}


def reduce_precision(onnx_fp32: bytes, precision: str, spec: InputSpec, refs: list[np.ndarray], labels: np.ndarray,
                     views: list[np.ndarray], view_labels: np.ndarray, floor: float = AGREEMENT_FLOOR):
    """Returns (onnx bytes, precision actually shipped, report). ``refs``/``views``: RGB images."""
    if precision not in PRECISIONS:
        raise SitelensError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return onnx_fp32, "fp32", None
    base = Embedder(onnx_fp32, spec, providers=["CPUExecutionProvider"])
    ref32, view32 = base.embed_many(refs), base.embed_many(views)
    report = {"requested": precision, "floor": floor, "candidates": {}}
    for candidate in (("int8", "fp16") if precision == "int8" else ("fp16",)):
        if candidate == "int8":
            # one shape for all: histogram calibrators stack activations across samples
            calib = [to_square(i, spec.size) for i in (refs + views)[:256]]
            data = to_int8(onnx_fp32, calib)
        else:
            data = to_fp16(onnx_fp32)
        low = Embedder(data, spec, providers=["CPUExecutionProvider"])
        agree = agreement(ref32, low.embed_many(refs), view32, low.embed_many(views), labels, view_labels)
        report["candidates"][candidate] = agree
        if agree["top1_agreement"] >= floor:
            report["shipped"] = candidate
            if candidate != precision:
                log.warning("sitelens: %s fell below %.2f top-1 agreement with FP32; shipping %s instead",
                            precision, floor, candidate)
            return data, candidate, report
        log.warning("sitelens: %s agreement with FP32 is %.3f (< %.2f): not shipping it",
                    candidate, agree["top1_agreement"], floor)
    report["shipped"] = "fp32"
    log.warning("sitelens: no reduced precision met the agreement floor; shipping fp32")
    return onnx_fp32, "fp32", report
