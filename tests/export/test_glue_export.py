"""LighterGlue exported to ONNX: the rewritten fixed-depth module agrees with kornia's LightGlue and
ONNX Runtime agrees with it."""
import onnx

from export.glue_export import GlueScores, check_parity, export_lighterglue
from runtime.verify.glue import GLUE_FINGERPRINT_KEY


def test_export_agrees_with_kornia_and_carries_its_fingerprint():
    data, fingerprint = export_lighterglue()
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert meta[GLUE_FINGERPRINT_KEY] == fingerprint and len(fingerprint) == 64
    # checked once at export; again here with other lengths (dynamic axes), one side larger
    assert check_parity(GlueScores().train(False), data, sizes=((17, 90), (256, 40))) < 1e-2


def test_a_shallower_matcher_uses_its_last_layer_head_and_has_its_own_fingerprint():
    """--glue-layers: the first layers and that layer's assignment head; ONNX Runtime agrees with
    the module, and the fingerprint tells it from the full matcher (whose fingerprint is unchanged)."""
    import numpy as np
    import pytest
    import torch

    from export.glue_export import _example, _inputs
    from runtime.errors import SitelensError

    full_data, full = export_lighterglue()
    data, fingerprint = export_lighterglue(layers=3)
    assert fingerprint != full and GlueScores(layers=6).fingerprint() == full
    module = GlueScores(layers=3).train(False)
    assert check_parity(module, data, sizes=((33, 70),)) < 1e-2
    x = _inputs(*_example(50, 60, seed=3))
    with torch.no_grad():
        assert not np.allclose(module(*x).numpy(), GlueScores().train(False)(*x).numpy(), atol=1e-3)
    with pytest.raises(SitelensError, match="6 layers"):
        GlueScores(layers=7)


def test_point_pruning_keeps_what_kornia_keeps_and_has_its_own_fingerprint():
    """--glue-pruning: the graph drops, after each layer but the last, the points kornia's LightGlue
    drops at the same width confidence (checked at export, and again here at other lengths), and
    returns their indices; unrelated features lose most points; the fingerprint is its own."""
    import numpy as np
    import onnxruntime as ort
    import pytest

    from export.glue_export import _example, _inputs
    from runtime.errors import SitelensError
    from runtime.verify.glue import INPUTS, PRUNING

    _, full = export_lighterglue()
    data, fingerprint = export_lighterglue(pruning=PRUNING)
    assert fingerprint not in (full, export_lighterglue(layers=3)[1])
    module = GlueScores(pruning=PRUNING).train(False)
    assert module.fingerprint() == fingerprint
    assert check_parity(module, data, sizes=((120, 90), (48, 300))) < 1e-2
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["scores", "keep0", "keep1"]
    scores, keep0, keep1 = session.run(None, dict(zip(INPUTS, (t.numpy() for t in _inputs(*_example(200, 150))))))
    assert scores.shape == (1, len(keep0), len(keep1)) and len(keep0) < 200 / 2 and len(keep1) < 150 / 2
    assert np.all(np.diff(keep0) > 0) and keep0.max(initial=0) < 200        # input indices, in order
    with pytest.raises(SitelensError, match="width confidence"):
        GlueScores(pruning=1.0)
