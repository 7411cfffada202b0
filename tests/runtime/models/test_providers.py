"""Execution providers: the flavour check, the options sitelens gives OpenVINO, and (where
``onnxruntime-openvino`` is installed) the OpenVINO provider against ONNX Runtime's CPU provider on
real models: the same descriptors, float32 and INT8, from several threads at once."""
import threading

import numpy as np
import pytest

from runtime.models import providers
from runtime.models.embedder import Embedder
from runtime.errors import DependencyError
from runtime.image.preprocess import InputSpec

OPENVINO = "OpenVINOExecutionProvider"


def test_two_flavours_are_refused_naming_both(monkeypatch):
    installed = {"onnxruntime": "1.32.0", "onnxruntime-openvino": "1.24.1"}

    def version(dist):
        if dist not in installed:
            raise providers.metadata.PackageNotFoundError(dist)
        return installed[dist]

    monkeypatch.setattr(providers.metadata, "version", version)
    with pytest.raises(DependencyError, match="onnxruntime and onnxruntime-openvino.*exactly one"):
        providers.import_onnxruntime()


def test_openvino_gets_cpu_float32_and_the_thread_count():
    expected = {"device_type": "CPU", "precision": "FP32", "num_of_threads": "2"}
    assert providers.provider_defaults(2)[OPENVINO] == expected
    assert "num_of_threads" not in providers.provider_defaults()[OPENVINO]
    assert providers.PREFERENCE.index(OPENVINO) < providers.PREFERENCE.index("CPUExecutionProvider")


def _conv_model() -> bytes:
    """uint8 NHWC image -> two 3x3 convolutions with ReLU6, global mean, L2 (a real small CNN)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.2, (32, 16, 3, 3)).astype(np.float32), "w2")
    lo, hi = numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")
    scale = numpy_helper.from_array(np.float32(1 / 64), "scale")
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["nchw", "scale"], ["x"]),
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["a2"]),
        helper.make_node("GlobalAveragePool", ["a2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("LpNormalization", ["flat"], ["descriptor"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn", [helper.make_tensor_value_info("image", TensorProto.UINT8, ["b", "h", "w", 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["b", 32])], [w1, w2, lo, hi, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (64, 80 + 8 * (i % 3), 3), dtype=np.uint8) for i in range(n)]


needs_openvino = pytest.mark.skipif(
    OPENVINO not in providers.import_onnxruntime().get_available_providers(),
    reason="onnxruntime-openvino is not installed (pip install 'sitelens[openvino]')")


@needs_openvino
def test_openvino_is_chosen_and_describes_like_the_cpu_provider():
    spec = InputSpec(size=64)
    model = _conv_model()
    default = Embedder(model, spec, threads=2)
    cpu = Embedder(model, spec, providers=["CPUExecutionProvider"], threads=2)
    assert default.providers[0] == OPENVINO
    for img in _images(6):  # three widths: the model's shapes are dynamic
        np.testing.assert_allclose(default.embed(img), cpu.embed(img), atol=2e-5)


@needs_openvino
def test_openvino_int8_model_keeps_the_cpu_providers_descriptors(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    spec = InputSpec(size=64)
    (tmp_path / "f.onnx").write_bytes(_conv_model())
    calib = iter([{"image": img[None, :, :80]} for img in _images(16, seed=1)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(calib, None)

    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    op_types_to_quantize=["Conv"])
    model = (tmp_path / "q.onnx").read_bytes()
    ov, cpu = Embedder(model, spec, threads=2), Embedder(model, spec, providers=["CPUExecutionProvider"])
    assert ov.providers[0] == OPENVINO
    for img in _images(4, seed=2):
        assert float(ov.embed(img) @ cpu.embed(img)) > 0.995


@needs_openvino
def test_openvino_session_runs_from_several_threads():
    spec = InputSpec(size=64)
    emb = Embedder(_conv_model(), spec, threads=2)
    images = _images(8, seed=3)
    expected = [emb.embed(img) for img in images]
    errors = []

    def worker(k):
        try:
            for r in range(20):
                i = (k + r) % len(images)
                np.testing.assert_allclose(emb.embed(images[i]), expected[i], atol=1e-6)
        except Exception as exc:  # noqa: BLE001 - any error fails the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


@needs_openvino
def test_helper_models_run_on_openvino_with_the_same_outputs():
    model = _conv_model()
    session, _ = providers.helper_session(model, "local.onnx", "sitelens.local_fingerprint", None, threads=2)
    cpu = providers.open_session(model, "local.onnx", ["CPUExecutionProvider"], threads=2)
    assert session.get_providers()[0] == OPENVINO
    for img in _images(3, seed=4):
        feed = {"image": img[None]}
        np.testing.assert_allclose(session.run(None, feed)[0], cpu.run(None, feed)[0], atol=2e-5)


def test_a_model_no_provider_loads_names_its_source():
    from runtime.errors import BundleError

    with pytest.raises(BundleError, match="glue.onnx: ONNX Runtime cannot load the model"):
        providers.helper_session(b"not a model", "glue.onnx", "k", None)


@needs_openvino
def test_a_recognizer_asked_for_the_cpu_provider_keeps_its_helpers_there(tmp_path):
    from runtime.recognizer import Recognizer
    from tests.toy_bundle import make_toy_bundle, toy_image

    path = make_toy_bundle(tmp_path / "s.sitelens", n_instances=4, verify="orb")
    ov = Recognizer.open(path, providers=providers.NAMED["openvino"])
    cpu = Recognizer.open(path, providers=["CPUExecutionProvider"])
    assert ov.providers[0] == OPENVINO and cpu.providers == ["CPUExecutionProvider"]
    assert Recognizer.open(path).providers[0] == OPENVINO  # chosen without asking
    assert ov.recognize(toy_image(0)).instance == cpu.recognize(toy_image(0)).instance == "work_0000"


@needs_openvino
def test_helper_sessions_follow_a_requested_cpu_provider():
    session, _ = providers.helper_session(_conv_model(), "local.onnx", "k", None, providers=["CPUExecutionProvider"])
    assert session.get_providers() == ["CPUExecutionProvider"]
