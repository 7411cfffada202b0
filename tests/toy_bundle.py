"""Small real bundles without torch, for tests that need many fast opens or recognitions
(fuzzing, concurrency, crash safety). The model is a real ONNX graph run by ONNX Runtime: the
image averaged into a 4 x 4 colour grid, centred and L2-normalised (48-d), enough to tell apart
references of different colours and layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.bundle import format as bf
from runtime.bundle.index_members import index_members
from runtime.models.embedder import FINGERPRINT_KEY, Embedder
from runtime.search.feature_store import FeatureStore
from runtime.verify.verifier import Verifier, VerifyParams, make_extractor
from runtime.search.index import ReferenceIndex
from runtime.search.index_params import IndexParams
from runtime.bundle.manifest import IndexInfo, Manifest, ModelInfo, SiteInfo
from runtime.image.preprocess import InputSpec
from runtime.thresholds import Thresholds

TOY_FINGERPRINT = "7" * 64
TOY_DIM = 48


def toy_model_bytes() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Resize", ["nchw", "", "", "sizes"], ["grid"], mode="linear", antialias=1),
        helper.make_node("Flatten", ["grid"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat", "axis1"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["flat", "mean"], ["centred"]),
        helper.make_node("LpNormalization", ["centred"], ["descriptor"], axis=1, p=2),
    ]
    inits = [helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 3, 4, 4]),
             helper.make_tensor("axis1", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(
        nodes, "toy", [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["batch", TOY_DIM])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = FINGERPRINT_KEY, TOY_FINGERPRINT
    onnx.checker.check_model(model)
    return model.SerializeToString()


def toy_image(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A blocky random picture; different seeds give clearly different descriptors."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, h // 4, axis=0), w // 4, axis=1))


def make_toy_bundle(path: str | Path, n_instances: int = 20, refs_per_instance: int = 1,
                    thresholds: Thresholds | None = None, signing_key=None, verify: str | None = None) -> Path:
    """``verify``: also cache local features ("orb"/"sift") of every reference row (upright rows only:
    toy bundles hold no quarter-turned copies)."""
    model = toy_model_bytes()
    spec = InputSpec(size=32)
    emb = Embedder(model, spec, providers=["CPUExecutionProvider"])
    instances, descs, images = [], [], []
    for i in range(n_instances):
        for r in range(refs_per_instance):
            images.append(toy_image(1000 * i + r))
            descs.append(emb.embed(images[-1]))
            instances.append(f"work_{i:04d}")
    features = None
    if verify:
        params = VerifyParams.for_feature(verify)
        verifier = Verifier(params, make_extractor(params))
        features = FeatureStore.from_rows(verifier.reference_features(img) for img in images)
    index = ReferenceIndex(np.stack(descs), instances, params=IndexParams(M=8, ef_construction=50, ef=32),
                           features=features)
    members, live = index_members(index)
    manifest = Manifest(site=SiteInfo("toy", len(live), len(instances)),
                        model=ModelInfo(TOY_FINGERPRINT, TOY_DIM, spec), index=IndexInfo(index.params, len(instances)),
                        instances={i: {"title": i.replace("_", " ")} for i in live},
                        thresholds=thresholds or Thresholds.single(score=0.5, margin=0.0, target_far=0.01),
                        verification=VerifyParams.for_feature(verify).to_dict() if verify else None)
    return bf.write_bundle(path, manifest, {bf.MODEL: model, **members}, signing_key=signing_key)


def claim_member_size(path: str | Path, name: str, size: int) -> None:
    """Rewrite both zip headers (local and central) of member ``name`` in the zip at ``path`` to claim
    ``size`` bytes uncompressed: a lying header, for tests and attacks on the bundle reader."""
    import struct
    import zipfile

    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        offset, central = zf.getinfo(name).header_offset, zf.start_dir
    data = bytearray(path.read_bytes())
    while data[central + 46:central + 46 + len(name)] != name.encode():
        n, m, k = struct.unpack_from("<3H", data, central + 28)
        central += 46 + n + m + k
    for pos in (offset + 22, central + 24):
        struct.pack_into("<I", data, pos, size)
    path.write_bytes(bytes(data))
