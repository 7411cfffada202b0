"""Exact int8 descriptor products: the ONNX Runtime graph and numpy give the same whole numbers,
so mutual nearest neighbours (ties included) are the same on every device."""
import numpy as np
import pytest

from runtime.verify import descriptor_products as dp
from runtime.verify.local_features import quantize
from runtime.verify.matching import mutual_nearest, mutual_nearest_many


def test_the_stored_graph_is_the_one_onnx_helper_makes():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["r", "qt", "zero"], ["s"])], "int8_products",
        [helper.make_tensor_value_info("r", TensorProto.UINT8, ["n", "d"]),
         helper.make_tensor_value_info("qt", TensorProto.INT8, ["d", "m"])],
        [helper.make_tensor_value_info("s", TensorProto.INT32, ["n", "m"])],
        [helper.make_tensor("zero", TensorProto.UINT8, [], [128])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="sitelens")
    model.ir_version = 7
    assert model.SerializeToString() == dp.MODEL
    onnx.checker.check_model(onnx.load_from_string(dp.MODEL))


@pytest.fixture(params=["this CPU's way", "numpy"])
def way(request, monkeypatch):
    if request.param == "numpy":
        monkeypatch.setattr(dp, "_session", False)
    return request.param


def test_products_are_exact_whole_numbers_either_way(way):
    rng = np.random.default_rng(1)
    r = rng.integers(-127, 128, (700, 64)).astype(np.int8)
    q = rng.integers(-127, 128, (300, 64)).astype(np.int8)
    r[:3], q[:2] = 127, -127                      # the extremes: 64 x 127 x 127 in magnitude
    got = dp.products(r, dp.query_operand(q))
    assert got.shape == (700, 300)
    assert np.array_equal(got.astype(np.int64), r.astype(np.int64) @ q.astype(np.int64).T)
    with pytest.raises(TypeError, match="int8"):
        dp.query_operand(q.astype(np.float32))


def test_a_saturating_cpu_multiplies_with_numpy(monkeypatch):
    import runtime.models.int8_products as cpu

    monkeypatch.setattr(dp, "_session", None)
    monkeypatch.setattr(cpu, "saturates", lambda *a, **k: True)
    assert dp._integer_session() is False
    r = np.int8([[1, 2], [3, 4]])
    assert np.array_equal(dp.products(r, dp.query_operand(np.int8([[5, 6]]))), [[17], [39]])


def test_mutual_nearest_ties_go_to_the_first_keypoint_either_way(way):
    """Query keypoints with equal products to a reference keypoint (XFeat gives such ties on about
    one reference row in a hundred): the first one is matched, in the batched matcher and the
    one-pair definition alike."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 64))
    q = quantize(x / np.linalg.norm(x, axis=1, keepdims=True))
    q[250] = q[40]                                  # the same descriptor twice in the frame
    r = q[[40, 7, 99]].copy()
    (qi, ri), = mutual_nearest_many(q, [r], 0.78)
    assert list(zip(qi, ri)) == [(7, 1), (40, 0), (99, 2)]
    eq, er = mutual_nearest(q, r, 0.78)
    assert np.array_equal(qi, eq) and np.array_equal(ri, er)
