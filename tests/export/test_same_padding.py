"""Run-time "same" padding folded into the convolutions (export/same_padding.py)."""
import logging

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from timm.layers import Conv2dSame

from export.onnx_export import padding_in_convolutions, to_onnx
from export.same_padding import fold_same_padding
from runtime.image.preprocess import InputSpec

SHAPES = [(1, 32, 32), (1, 33, 47), (2, 31, 30)]


class Strided(torch.nn.Module):
    """A TensorFlow-style strided block: 'same' padding computed from the input's size at run time."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = Conv2dSame(3, 8, 3, stride=2)
        self.b = Conv2dSame(8, 8, 5, stride=2, groups=8)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.permute(0, 3, 1, 2).float() / 255.0))).mean(dim=(2, 3))


class Symmetric(torch.nn.Module):
    """Padding computed at run time that is *not* the 'same' rule (one pixel on every side)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2).float()
        p = x.shape[-1] // x.shape[-1]  # 1, traced as arithmetic on the shape
        return self.conv(torch.nn.functional.pad(x, [p, p, p, p])).mean(dim=(2, 3))


def _onnx(module) -> bytes:
    example = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8)
    return to_onnx(module.eval(), (example,), ["image"], ["descriptor"],
                   {"image": {0: "b", 1: "h", 2: "w"}, "descriptor": {0: "b"}}, {})


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def _ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


def test_same_padding_folds_into_the_convolutions_and_gives_the_same_output():
    module = Strided()
    model = _onnx(module)
    folded, count = fold_same_padding(model)
    assert count == 2 and "Pad" in _ops(model) and "Pad" not in _ops(folded)
    assert len(_ops(folded)) < len(_ops(model)) // 2  # the shape arithmetic went with the pads
    convs = [n for n in onnx.load_from_string(folded).graph.node if n.op_type == "Conv"]
    assert all(helper.get_attribute_value(a) == b"SAME_UPPER" for n in convs for a in n.attribute
               if a.name == "auto_pad") and len(convs) == 2
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        x = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        with torch.no_grad():
            torch_out = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(_run(folded, x), _run(model, x), atol=1e-6)
        np.testing.assert_allclose(_run(folded, x), torch_out, atol=1e-5)
    assert padding_in_convolutions(model, InputSpec(size=32)) == folded


def test_other_paddings_are_left_alone(caplog):
    # fixed amounts, a non-zero value, or a second consumer: not the run-time 'same' rule
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 3, 3], np.ones(9, np.float32))
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 0, 0, 0, 0, 1, 1])
    fixed = helper.make_graph([helper.make_node("Pad", ["x", "pads"], ["p"]),
                               helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2])],
                              "fixed", [x], [y], [w, pads])
    model = helper.make_model(fixed).SerializeToString()
    assert fold_same_padding(model) == (model, 0)
    # the padding arithmetic is run-time but gives one pixel on every side: folding would change the
    # output, so the export keeps the graph as it was and says so
    symmetric = _onnx(Symmetric())
    assert fold_same_padding(symmetric)[1] == 1
    with caplog.at_level(logging.WARNING, logger="sitelens"):
        assert padding_in_convolutions(symmetric, InputSpec(size=32)) == symmetric
    assert "unfolded" in caplog.text
