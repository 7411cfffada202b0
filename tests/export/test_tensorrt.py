"""TensorRT (ORT's engine cache) needs an NVIDIA GPU, onnxruntime-gpu and tensorrt: without
them, a clear error and a skip."""
import pytest

from runtime.errors import DependencyError
from runtime.tensorrt_cache import cache_dir, gpu_name, require_tensorrt, tensorrt_version, warm_engine_cache


def _have_trt() -> bool:
    try:
        require_tensorrt()
    except DependencyError:
        return False
    return True


HAVE_TRT = bool(gpu_name()) and bool(tensorrt_version()) and _have_trt()


@pytest.mark.skipif(HAVE_TRT, reason="GPU with TensorRT present: the cache test below runs instead")
def test_clear_error_without_gpu(tiny_bundle):
    with pytest.raises(DependencyError, match="TensorRT|TensorrtExecutionProvider"):
        require_tensorrt()
    with pytest.raises(DependencyError):
        warm_engine_cache(tiny_bundle)


@pytest.mark.skipif(not HAVE_TRT, reason="needs an NVIDIA GPU, onnxruntime-gpu and tensorrt")
def test_engine_cache_on_gpu(bundle_copy):  # pragma: no cover - runs on GPU machines only
    folder = warm_engine_cache(bundle_copy)
    assert folder == cache_dir(bundle_copy) and any(folder.iterdir())
