import json
import zipfile

import numpy as np
import pytest

from export.bundler import build_bundle
from export.itq import learn_itq
from export.precision import agreement, int8_nodes, to_fp16, to_int8
from runtime.bundle import format as bf
from runtime.bundle.index_members import index_members
from runtime.search.binary_codes import BinaryCodes, popcount_rows
from runtime.errors import SitelensError
from runtime.search.index import ReferenceIndex
from runtime.models.int8_products import saturates
from runtime.recognizer import Recognizer
from tests.conftest import make_site


def test_popcount_matches_python():
    x = np.random.default_rng(0).integers(0, 256, (5, 16), dtype=np.uint8)
    assert popcount_rows(x).tolist() == [sum(bin(b).count("1") for b in row) for row in x]


def test_itq_codes_preserve_neighbours():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, 128))
    x = np.concatenate([centres, centres + 0.3 * rng.normal(size=centres.shape)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    proj, mean = learn_itq(x, bits=64)
    codes = BinaryCodes(proj, mean)
    codes.append(x[:100])
    hits = np.mean([np.argmin(codes.hamming(q)) == i for i, q in enumerate(x[100:])])
    assert hits > 0.8
    with pytest.raises(SitelensError, match="bits"):
        learn_itq(x, bits=100)
    with pytest.raises(SitelensError, match="at least"):
        learn_itq(x[:, :32], bits=64)


def test_binary_modes_on_index():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 96)).astype(np.float32)
    refs = np.concatenate([centres, centres + 0.2 * rng.normal(size=centres.shape)]).astype(np.float32)
    labels = [f"i{i % 50}" for i in range(100)]
    idx = ReferenceIndex(refs, labels, binary=BinaryCodes(*learn_itq(refs / np.linalg.norm(refs, axis=1, keepdims=True), 64)))
    q = centres + 0.2 * rng.normal(size=centres.shape).astype(np.float32)
    exact = [idx.search(v, 1, "exact")[0][0] for v in q]
    rerank = [idx.search(v, 1, "binary")[0][0] for v in q]
    assert np.mean(np.array(exact) == np.array(rerank)) >= 0.95
    assert np.mean([idx.search(v, 1, "hamming")[0][0] == f"i{i}" for i, v in enumerate(q)]) > 0.6
    idx.add(centres[:1] * 3, "new")
    assert idx.search(centres[0], 1, "binary")[0][0] in ("new", "i0")
    mem = idx.memory_per_reference()
    assert mem["hamming"] == 8 and mem["exact"] == 4 * 96
    assert set(index_members(idx)[0]) >= {bf.CODES, bf.ITQ_PROJ, bf.ITQ_MEAN}


def test_fp16_model_agrees(tiny_net):
    import onnxruntime as ort

    from export.onnx_export import export_onnx
    from runtime.image.preprocess import InputSpec

    fp32 = export_onnx(tiny_net, InputSpec(size=64))
    fp16 = to_fp16(fp32)
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 80, 3), dtype=np.uint8)
    a = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    b = ort.InferenceSession(fp16, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert b.dtype == np.float32 and np.sum(a * b, axis=1).min() > 0.999
    assert len(fp16) < 0.6 * len(fp32)


def test_int8_keeps_first_conv_float_and_quantizes_activations(tiny_net, tmp_path):
    import onnx
    import onnxruntime as ort

    from export.onnx_export import export_onnx
    from runtime.image.image_io import load_image
    from runtime.image.preprocess import InputSpec
    from training.data import to_square

    fp32 = export_onnx(tiny_net, InputSpec(size=64))
    model = onnx.load_from_string(fp32)
    ops = {n.name: n.op_type for n in model.graph.node}
    names = int8_nodes(model)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert convs[0] not in names and set(convs[1:]) <= set(names)
    clips = [n for n in names if ops[n] == "Clip"]
    assert len(clips) >= len(convs) // 2 and all("/act/" in c for c in clips)  # not the padding arithmetic

    site = make_site(tmp_path / "s", n=6, refs=2)
    imgs = [to_square(load_image(p), 64) for p in sorted(site.rglob("*.jpg"))]
    # the weights a site engineer exports for this CPU: 7 bits where its u8 x s8 products saturate
    int8 = to_int8(fp32, imgs, weight_bits=7 if saturates() else 8)
    a = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"]).run(None, {"image": np.stack(imgs)})[0]
    b = ort.InferenceSession(int8, providers=["CPUExecutionProvider"]).run(None, {"image": np.stack(imgs)})[0]
    assert np.sum(a * b, axis=1).mean() > 0.95
    assert len(int8) < 0.4 * len(fp32)


def _conv_weight_range(model) -> tuple[int, int]:
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [inits[n.input[0]] for n in model.graph.node
               if n.op_type == "DequantizeLinear" and inits.get(n.input[0], np.zeros(0)).dtype == np.int8]
    assert weights
    return min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)


def test_int8_weight_bits(tiny_net, tmp_path):
    """8-bit weights use the full int8 range, 7-bit ones (x86 CPUs without VNNI) half of it; the
    model's metadata says which, for the runtime's warning (runtime/models/int8_products.py)."""
    import onnx

    from export.onnx_export import export_onnx
    from runtime.image.image_io import load_image
    from runtime.models.int8_products import WEIGHT_BITS_KEY
    from runtime.image.preprocess import InputSpec
    from training.data import to_square

    fp32 = export_onnx(tiny_net, InputSpec(size=64))
    site = make_site(tmp_path / "s", n=3, refs=1)
    imgs = [to_square(load_image(p), 64) for p in sorted(site.rglob("*.jpg"))]
    for bits, (lo, hi) in ((8, (-128, 127)), (7, (-64, 64))):
        model = onnx.load_from_string(to_int8(fp32, imgs, bits))
        low, high = _conv_weight_range(model)
        assert lo <= low and high <= hi and max(-low, high) > hi // 2  # the range is used, not exceeded
        assert {p.key: p.value for p in model.metadata_props}[WEIGHT_BITS_KEY] == str(bits)
    with pytest.raises(SitelensError, match="8 or 7 bits"):
        to_int8(fp32, imgs, 4)


def test_int8_keeps_the_whitening_head_in_float(tmp_path):
    import onnx

    from export.onnx_export import export_onnx
    from runtime.image.image_io import load_image
    from runtime.image.preprocess import InputSpec
    from training.data import to_square
    from training.network import DescriptorNet

    net = DescriptorNet(weights="pretrained", whitening_dim=32).train(False)
    fp32 = export_onnx(net, InputSpec(size=64))
    names = int8_nodes(onnx.load_from_string(fp32))
    heads = [n for n in onnx.load_from_string(fp32).graph.node if n.op_type in ("Gemm", "MatMul")]
    assert heads and not {n.name for n in heads} & set(names)
    site = make_site(tmp_path / "s", n=3, refs=1)
    int8 = onnx.load_from_string(to_int8(fp32, [to_square(load_image(p), 64) for p in sorted(site.rglob("*.jpg"))]))
    dequantized = {n.output[0] for n in int8.graph.node if n.op_type == "DequantizeLinear"}
    for n in int8.graph.node:
        if n.op_type in ("Gemm", "MatMul"):
            assert not set(n.input) & dequantized  # float weights and float input


def test_agreement_report():
    refs = np.eye(3, dtype=np.float32)
    views = refs.copy()
    rep = agreement(refs, refs, views, views[[0, 2, 1]], np.array(["a", "b", "c"]), np.array(["a", "b", "c"]))
    assert rep["top1_agreement"] == pytest.approx(1 / 3, abs=1e-3) and rep["mP@1_fp32_views"] == 1.0
    assert rep["retained"] == pytest.approx(1 / 3, abs=1e-3)


def test_int8_export_reports_and_never_ships_worse(tmp_path, tiny_net):
    site = make_site(tmp_path / "s", n=3, refs=1)
    out = build_bundle(site, tmp_path / "q.sitelens", tiny_net, size=64, progress=False, calibrate=False,
                       precision="int8", hash_bits=64)
    m = json.loads(zipfile.ZipFile(out).read(bf.MANIFEST))
    report = m["model"]["precision_report"]
    assert report["requested"] == "int8" and "int8" in report["candidates"] and report["int8_weight_bits"] == 8
    shipped = m["model"]["precision"]
    assert shipped == report["shipped"]
    int8 = report["candidates"]["int8"]
    if shipped != "int8":  # fell back: the reason is recorded
        assert int8["retained"] < report["retain"]
    else:
        assert int8["retained"] >= report["retain"] and int8["cosine_mean"] > 0.9
    assert m["codes"]["bits"] == 64
    rec = Recognizer.open(out, match="binary")
    assert rec.recognize(site / "harbour_at_dusk" / "a.jpg").best == "harbour_at_dusk"
