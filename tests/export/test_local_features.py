"""The exported XFeat graph: shapes ONNX Runtime runs fast (parity with torch is checked at export)."""
import onnx

from export.local_features import export_xfeat


def test_xfeat_softmax_runs_over_the_last_axis():
    """A softmax over axis 1 of NCHW logits makes ONNX Runtime transpose before and after it; the
    graph permutes once and takes the softmax over the last axis (same outputs, bit for bit)."""
    model = onnx.load_from_string(export_xfeat()[0])
    axes = [a.i for n in model.graph.node if n.op_type == "Softmax" for a in n.attribute if a.name == "axis"]
    assert axes and all(a in (-1, 3) for a in axes)


def test_spread_order_covers_the_image_before_taking_seconds():
    """A reference that keeps few keypoints keeps the strongest of every grid cell first, not
    only those of its most contrasted corner."""
    import numpy as np

    from runtime.verify.local_features import SPREAD_CELLS, spread_order

    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 60, (400, 2))                     # strong, all in one corner
    elsewhere = rng.uniform(0, 640, (200, 2))                 # weaker, everywhere
    kp = np.concatenate([corner, elsewhere]).astype(np.float32)
    score = np.concatenate([rng.uniform(0.6, 1, 400), rng.uniform(0, 0.5, 200)])
    order = spread_order(kp, score, (640, 640))
    assert sorted(order) == list(range(600))                  # a permutation
    cells = lambda idx: {(int(y * SPREAD_CELLS // 640), int(x * SPREAD_CELLS // 640)) for x, y in kp[idx]}  # noqa: E731
    assert len(cells(order[:64])) > 4 * len(cells(np.argsort(-score)[:64]))
    first = order[: len(cells(order))]                        # the first round: one per cell, the strongest
    assert len(cells(first)) == len(first)
