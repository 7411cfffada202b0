"""TensorRT needs an NVIDIA GPU and the tensorrt package: without them, a clear error and a skip."""
import pytest

from runtime.errors import DependencyError
from runtime.tensorrt_cache import cache_key, gpu_name, tensorrt_version

HAVE_TRT = bool(gpu_name()) and bool(tensorrt_version())


@pytest.mark.skipif(HAVE_TRT, reason="GPU with TensorRT present: the build test below runs instead")
def test_clear_error_without_gpu(tiny_bundle):
    from export.tensorrt_engine import build_engine

    with pytest.raises(DependencyError, match="TensorRT needs an NVIDIA GPU"):
        cache_key()
    with pytest.raises(DependencyError):
        build_engine(tiny_bundle)


@pytest.mark.skipif(not HAVE_TRT, reason="needs an NVIDIA GPU and tensorrt")
def test_engine_build_on_gpu(tiny_bundle):  # pragma: no cover - runs on GPU machines only
    from export.tensorrt_engine import build_engine

    engine = build_engine(tiny_bundle)
    assert engine.stat().st_size > 0 and cache_key() in engine.name
