"""Building a TensorRT engine from the bundle's ONNX with the tensorrt Python API.

The engine (FP16, or INT8 from the QDQ model) gets an optimization profile covering the
bundle's input sizes and is written beside the bundle as
``<bundle>.<gpu>__trt<version>.engine`` (an engine only runs on that GPU model and
TensorRT version; the portable bundle stays GPU-agnostic).
"""
from __future__ import annotations

from pathlib import Path

from runtime.bundle_format import MODEL, atomic_write, read_bundle
from runtime.errors import DependencyError, SitelensError
from runtime.preprocess import InputSpec
from runtime.tensorrt_cache import cache_key


def build_engine(bundle: str | Path, max_batch: int = 8, workspace_gb: float = 2.0) -> Path:
    key = cache_key()  # clear error without a GPU or tensorrt
    import tensorrt as trt

    contents = read_bundle(bundle)
    model = contents.manifest["model"]
    spec = InputSpec.from_dict(model["input"])
    precision = model.get("precision", "fp32")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(contents.members[MODEL]):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SitelensError(f"{bundle}: TensorRT cannot parse model.onnx ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ("fp16", "int8") and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8" and hasattr(trt.BuilderFlag, "INT8"):
        config.set_flag(trt.BuilderFlag.INT8)  # explicit quantization: scales come from the QDQ nodes
    profile = builder.create_optimization_profile()
    s = spec.size
    profile.set_shape("image", (1, s // 2, s // 2, 3), (1, s, s, 3), (max_batch, 2 * s, 2 * s, 3))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise SitelensError(f"{bundle}: TensorRT engine build failed (see the TensorRT log above)")
    out = Path(f"{bundle}.{key}.engine")
    atomic_write(out, lambda fh: fh.write(bytes(engine)))
    return out


def require_tensorrt() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise DependencyError("tensorrt is not installed; install 'sitelens[gpu]' on a machine with an NVIDIA GPU") from None
