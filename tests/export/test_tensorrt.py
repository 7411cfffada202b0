"""TensorRT (ORT's engine cache) needs an NVIDIA GPU, onnxruntime-gpu and tensorrt: without
them, a clear error and a skip."""
import pytest

from runtime.errors import DependencyError
from export.tensorrt_warm import warm_engine_cache
from runtime.models.tensorrt_cache import cache_dir, gpu_name, require_tensorrt, tensorrt_version


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


def test_engine_files_sitelens_did_not_build_are_removed(tmp_path, caplog):
    """The engine cache is outside the signature: files whose sha256 was not recorded when
    sitelens built them (or changed since) are removed before the provider may load them."""
    from runtime.models.tensorrt_cache import SUMS, check_engines, record_engines

    folder = tmp_path / "cache"
    folder.mkdir()
    assert check_engines(folder)                                  # empty: nothing to check
    (folder / "model_ctx.engine").write_bytes(b"engine built here")
    (folder / "timing.cache").write_bytes(b"timings")
    record_engines(folder)
    assert check_engines(folder) and (folder / "model_ctx.engine").exists()
    (folder / "model_ctx.engine").write_bytes(b"someone else's engine")
    with caplog.at_level("WARNING", logger="sitelens"):
        assert not check_engines(folder)
    assert not any(folder.iterdir()) and any("did not build" in r.getMessage() for r in caplog.records)
    (folder / "planted.engine").write_bytes(b"x")                 # no list at all: not ours either
    assert not check_engines(folder) and not (folder / "planted.engine").exists()
    record_engines(folder)
    (folder / "extra.engine").write_bytes(b"x")                   # unlisted beside listed ones
    assert not check_engines(folder) and not (folder / SUMS).exists()
