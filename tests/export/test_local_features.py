"""The exported XFeat graph: shapes ONNX Runtime runs fast (parity with torch is checked at export)."""
import onnx

from export.local_features import export_xfeat


def test_xfeat_softmax_runs_over_the_last_axis():
    """A softmax over axis 1 of NCHW logits makes ONNX Runtime transpose before and after it; the
    graph permutes once and takes the softmax over the last axis (same outputs, bit for bit)."""
    model = onnx.load_from_string(export_xfeat()[0])
    axes = [a.i for n in model.graph.node if n.op_type == "Softmax" for a in n.attribute if a.name == "axis"]
    assert axes and all(a in (-1, 3) for a in axes)
