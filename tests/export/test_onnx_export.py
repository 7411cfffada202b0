import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.onnx_export import ParityError, check_parity, export_onnx
from runtime.models.embedder import FINGERPRINT_KEY
from runtime.image.preprocess import InputSpec


@pytest.fixture(scope="module")
def exported(tiny_net):
    return export_onnx(tiny_net, InputSpec(size=96), metadata={"backbone": "lite0"})


def test_dynamic_shapes_match_torch(tiny_net, exported):
    # timm's run-time "same" padding is folded into the convolutions (export/same_padding.py)
    assert "Pad" not in {n.op_type for n in onnx.load_from_string(exported).graph.node}
    sess = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for shape in [(1, 96, 96), (3, 101, 157), (2, 160, 120)]:
        x = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
        with torch.no_grad():
            ref = tiny_net(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"image": x})[0]
        assert got.shape == (shape[0], 1280)
        assert np.abs(ref - got).max() < 1e-4


def test_metadata_carries_fingerprint(tiny_net, exported):
    meta = {p.key: p.value for p in onnx.load_from_string(exported).metadata_props}
    assert meta[FINGERPRINT_KEY] == tiny_net.fingerprint()
    assert meta["sitelens.backbone"] == "lite0"


def test_parity_failure_refuses_export(tiny_net, exported):
    with pytest.raises(ParityError, match="refusing"):
        check_parity(tiny_net, exported, InputSpec(size=96), tolerance=-1.0)
