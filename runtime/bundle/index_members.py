"""The search index (rows, graph, labels, binary codes) and the references' local features as
bundle members, and back. The one place that knows which member holds which part of a row, so
``runtime/search`` stays free of the bundle format: writing them (``index_members``), reading them
(``reference_descriptors``, ``hnsw_file``, ``features_from_contents``, ``index_from_members``) and
the checks that they agree with each other and with the manifest (``check_consistency``, run by
``format.read_bundle`` before hnswlib or numpy parse a byte of them).

Thread safety: ``index_members`` takes a consistent snapshot through ``ReferenceIndex.compacted``
(shared lock), so it is safe alongside searches and serialised against ``add``/``remove``.
"""
from __future__ import annotations

import json
import os
import re
import tempfile

import hnswlib
import numpy as np

from runtime.bundle.hnsw_file import check_hnsw_bytes, strip_vectors, with_vectors
from runtime.bundle.npy import npy_bytes
from runtime.bundle.members import (CODES, GLUE_MODEL, GRAPH, INDEX, ITQ_MEAN, ITQ_PROJ, LABELS, LOCAL_MODEL, REFS,
                                    REFS_SCALE, VERIFY_CHROMA, VERIFY_DESC, VERIFY_KPTS, VERIFY_OFFSETS,
                                    VERIFY_PCA, VERIFY_STEER)
from runtime.errors import BundleError, SitelensError
from runtime.search.binary_codes import BinaryCodes
from runtime.search.feature_store import FeatureStore
from runtime.search.index import ReferenceIndex
from runtime.search.index_params import IndexParams
from runtime.verify.descriptor_code import DescriptorCode, components_of
from runtime.verify.local_features import STORED_DESCRIPTORS
from runtime.verify.steerer import Steerer

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def feature_members(store: FeatureStore) -> dict[str, bytes]:
    """The store's members: a coded store writes its codes and the basis that decodes them, a
    steered one its steerer, one with chroma its chroma."""
    steer = {} if store.steerer is None else {VERIFY_STEER: npy_bytes(store.steerer.matrices)}
    if store.chroma is not None:
        steer[VERIFY_CHROMA] = npy_bytes(np.ascontiguousarray(store.chroma, np.int8))
    if store.codec is None:
        return {VERIFY_KPTS: npy_bytes(store.kps), VERIFY_DESC: npy_bytes(store.descs),
                VERIFY_OFFSETS: npy_bytes(store.offsets), **steer}
    return {VERIFY_KPTS: npy_bytes(store.kps), VERIFY_DESC: npy_bytes(store.codes),
            VERIFY_OFFSETS: npy_bytes(store.offsets), VERIFY_PCA: npy_bytes(store.codec.basis), **steer}


def features_from_contents(contents) -> FeatureStore:
    """The references' local features of a checked bundle, coded descriptors decoded."""
    kps, descs, offsets = (contents.array(n) for n in (VERIFY_KPTS, VERIFY_DESC, VERIFY_OFFSETS))
    steerer = (Steerer.from_array(contents.array(VERIFY_STEER), str(contents.path))
               if VERIFY_STEER in contents.members else None)
    chroma = contents.array(VERIFY_CHROMA) if VERIFY_CHROMA in contents.members else None
    if VERIFY_PCA not in contents.members:
        return FeatureStore(kps, descs, offsets, steerer=steerer, chroma=chroma)
    codec = DescriptorCode.from_array(contents.array(VERIFY_PCA), str(contents.path))
    return FeatureStore(kps, codec.decode(descs), offsets, codec, descs, steerer, chroma)


def index_members(index: ReferenceIndex) -> tuple[dict[str, bytes], list[str]]:
    """A consistent snapshot of every live row as bundle members, plus the live instances.
    Deleted rows are dropped (the graph is rebuilt if any were)."""
    live = index.compacted()
    labels = {"instances": live.instances, "sources": live.sources, "rotations": live.rotations,
              "images": live.images}
    if any(live.digests):
        labels["digests"] = live.digests
    refs, scale = quantize_rows(live.descriptors)
    members = {GRAPH: strip_vectors(_hnsw_bytes(live.hnsw), live.dim), REFS: npy_bytes(refs),
               REFS_SCALE: npy_bytes(scale), LABELS: json.dumps(labels).encode("utf-8")}
    if live.binary is not None:
        members.update({CODES: npy_bytes(live.binary.codes), ITQ_PROJ: npy_bytes(live.binary.proj),
                        ITQ_MEAN: npy_bytes(live.binary.mean)})
    if live.features is not None:
        members.update(feature_members(live.features))
    return members, live.live_instances()


def index_from_members(refs: np.ndarray, labels: dict, index_bytes: bytes | None, params: IndexParams,
                       source: str = "bundle", binary: BinaryCodes | None = None,
                       features: FeatureStore | None = None, checked: bool = False) -> ReferenceIndex:
    """Rebuild the index from members; every count is checked against refs.npy before hnswlib
    reads a byte (a malformed hnswlib file can crash the process). ``checked``: the bytes come
    from a bundle that ``check_consistency`` passed, so the hnswlib structure is not walked again."""
    instances = labels.get("instances") if isinstance(labels, dict) else None
    if not isinstance(instances, list) or len(instances) != len(refs) or refs.ndim != 2:
        raise BundleError(f"{source}: labels.json does not match refs.npy ({len(refs)} rows)")
    hnsw = None
    if index_bytes is not None:
        if not checked:
            check_hnsw_bytes(index_bytes, refs.shape[1], len(refs), source)
        hnsw = _hnsw_load(index_bytes, refs.shape[1], len(refs), source)
    if binary is not None and len(binary.codes) != len(refs):
        raise BundleError(f"{source}: codes.npy has {len(binary.codes)} rows, refs.npy {len(refs)}")
    if features is not None and len(features) != len(refs):
        raise BundleError(f"{source}: local features cover {len(features)} rows, refs.npy {len(refs)}")
    return ReferenceIndex(refs.astype(np.float32), instances, labels.get("sources"), params, hnsw, binary, features,
                          labels.get("rotations"), labels.get("images"), labels.get("digests"))


def _hnsw_bytes(index: hnswlib.Index) -> bytes:
    fd, tmp = tempfile.mkstemp(suffix=".hnsw")
    os.close(fd)
    try:
        index.save_index(tmp)
        with open(tmp, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(tmp)


def _hnsw_load(data: bytes, dim: int, count: int, source: str) -> hnswlib.Index:
    # Only called on bytes that passed check_hnsw_bytes: a malformed hnswlib file can crash the process.
    fd, tmp = tempfile.mkstemp(suffix=".hnsw")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        index = hnswlib.Index(space="ip", dim=dim)
        try:
            index.load_index(tmp, max_elements=max(count, 1))
        except RuntimeError as exc:
            raise BundleError(f"{source}: cannot load index.hnsw ({exc})") from None
        return index
    finally:
        os.unlink(tmp)


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length descriptors -> (int8 rows, float32 scale per row): row i ~ q[i] * scale[i], half
    of float16's bytes; a cosine between two rows moves by about 1e-3 (the device, the index and
    calibration all use these same rounded rows)."""
    x = np.asarray(x, np.float32)
    scale = np.abs(x).max(axis=1) / 127.0 if len(x) else np.zeros(0, np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.round(x / scale[:, None]), -127, 127).astype(np.int8), scale


def reference_descriptors(contents) -> np.ndarray:
    """The reference descriptors as float32 (int8 x scale, or float16 in older bundles); raises
    BundleError when refs.npy (and its scale) are not of a known form."""
    src = str(contents.path)
    refs = contents.array(REFS)
    if refs.ndim != 2:
        raise BundleError(f"{src}: refs.npy must be a 2-D array, got {refs.dtype} {refs.shape}")
    if refs.dtype == np.int8:
        scale = contents.array(REFS_SCALE)
        if scale.shape != (len(refs),) or scale.dtype.kind != "f" or not np.all(np.isfinite(scale) & (scale > 0)):
            raise BundleError(f"{src}: refs_scale.npy must hold one positive scale per refs.npy row ({len(refs)})")
        return refs.astype(np.float32) * scale.astype(np.float32)[:, None]
    if refs.dtype.kind != "f" or REFS_SCALE in contents.members:
        raise BundleError(f"{src}: refs.npy must be int8 with refs_scale.npy, or float, got {refs.dtype}")
    return refs.astype(np.float32)


def hnsw_file(contents, refs: np.ndarray) -> bytes:
    """The hnswlib file of a checked bundle: ``index.hnsw`` as stored (schema 1-2), or
    ``index.graph`` with the vectors of ``refs`` put back (schema 3). The graph is checked here
    unless ``check_consistency`` already did."""
    if INDEX in contents.members:
        return contents.members[INDEX]
    if GRAPH not in contents.members:
        raise BundleError(f"{contents.path}: neither {GRAPH} nor {INDEX} in the bundle")
    if not contents.checked:
        check_hnsw_bytes(contents.members[GRAPH], refs.shape[1], len(refs), str(contents.path), vectors=False)
    return with_vectors(contents.members[GRAPH], refs)


def check_consistency(contents) -> None:
    """Members must agree with each other and with the manifest; raise BundleError otherwise."""
    src, m = str(contents.path), contents.manifest
    refs = reference_descriptors(contents)
    rows, dim = refs.shape
    if dim != m.model.descriptor_dim:
        raise BundleError(f"{src}: refs.npy has {dim}-d descriptors, the manifest says {m.model.descriptor_dim}")
    if rows != m.index.count:
        raise BundleError(f"{src}: refs.npy has {rows} rows, the manifest's index count is {m.index.count}")
    labels = contents.json(LABELS)
    instances = labels.get("instances") if isinstance(labels, dict) else None
    if not isinstance(instances, list) or len(instances) != rows or not all(isinstance(i, str) for i in instances):
        raise BundleError(f"{src}: labels.json must list one instance id (string) per refs.npy row ({rows})")
    sources = labels.get("sources")
    if sources is not None and (not isinstance(sources, list) or len(sources) != rows):
        raise BundleError(f"{src}: labels.json sources must have one entry per refs.npy row ({rows})")
    rotations = labels.get("rotations")
    if rotations is not None and (not isinstance(rotations, list) or len(rotations) != rows or not all(
            isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= 3 for r in rotations)):
        raise BundleError(f"{src}: labels.json rotations must be one quarter-turn count (0-3) per refs.npy row")
    images = labels.get("images")
    if images is not None and (not isinstance(images, list) or len(images) != rows or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in images)):
        raise BundleError(f"{src}: labels.json images must be one image id (integer >= 0) per refs.npy row")
    digests = labels.get("digests")
    if digests is not None and (not isinstance(digests, list) or len(digests) != rows or not all(
            isinstance(d, str) and (d == "" or _SHA256.match(d)) for d in digests)):
        raise BundleError(f"{src}: labels.json digests must be one sha256 (hex, or empty) per refs.npy row")
    if not np.isfinite(refs).all():
        raise BundleError(f"{src}: refs.npy holds non-finite values")
    if INDEX in contents.members:
        check_hnsw_bytes(contents.members[INDEX], dim, rows, src)
    else:
        check_hnsw_bytes(contents.members[GRAPH], dim, rows, src, vectors=False)
    if CODES in contents.members or m.codes:
        codes, proj, mean = contents.array(CODES), contents.array(ITQ_PROJ), contents.array(ITQ_MEAN)
        bits = proj.shape[1] if proj.ndim == 2 else -1
        if (codes.ndim != 2 or codes.dtype != np.uint8 or len(codes) != rows or proj.shape[0] != dim
                or bits <= 0 or bits % 64 or codes.shape[1] != bits // 8 or mean.shape != (dim,)):
            raise BundleError(f"{src}: binary codes do not fit the references (codes {codes.shape}, "
                              f"projection {proj.shape}, mean {mean.shape}, {rows} rows of {dim})")
    if VERIFY_OFFSETS in contents.members or m.verification:
        offsets, kpts, desc = (contents.array(n) for n in (VERIFY_OFFSETS, VERIFY_KPTS, VERIFY_DESC))
        if (offsets.ndim != 1 or len(offsets) != rows + 1 or offsets.dtype.kind not in "iu" or offsets[0] != 0
                or np.any(np.diff(offsets) < 0) or offsets[-1] != len(kpts) or len(kpts) != len(desc)
                or kpts.ndim != 2 or kpts.shape[1] != 2):
            raise BundleError(f"{src}: verification keypoints do not fit the references "
                              f"({len(offsets)} offsets for {rows} rows, {len(kpts)} keypoints, {len(desc)} descriptors)")
        feature = (m.verification or {}).get("feature")
        if feature not in STORED_DESCRIPTORS:
            raise BundleError(f"{src}: verification keypoints without a known local feature ({feature!r}; "
                              f"sitelens knows {', '.join(STORED_DESCRIPTORS)})")
        dtype, width = STORED_DESCRIPTORS[feature]
        width = _coded_width(contents, feature) or width
        if desc.ndim != 2 or (len(desc) and (desc.dtype != dtype or desc.shape[1] != width)):
            raise BundleError(f"{src}: verification descriptors are {desc.dtype} {desc.shape[1:]}, "
                              f"but the manifest says {feature} stores {dtype} ({width},)")
        steered = (m.verification or {}).get("turned_features") == "steered"
        if steered != (VERIFY_STEER in contents.members):
            raise BundleError(f"{src}: the manifest says turned rows are "
                              f"{'steered' if steered else 'not steered'}, but {VERIFY_STEER} is "
                              f"{'missing' if steered else 'there'}")
        if steered:
            Steerer.from_array(contents.array(VERIFY_STEER), src)
        coloured = bool((m.verification or {}).get("colour"))
        if coloured != (VERIFY_CHROMA in contents.members):
            raise BundleError(f"{src}: the manifest says reference keypoints "
                              f"{'carry' if coloured else 'carry no'} chroma, but {VERIFY_CHROMA} is "
                              f"{'missing' if coloured else 'there'}")
        if coloured:
            chroma = contents.array(VERIFY_CHROMA)
            if chroma.dtype != np.int8 or chroma.shape != (len(kpts), 2):
                raise BundleError(f"{src}: {VERIFY_CHROMA} must be int8 ({len(kpts)}, 2), one (a*, b*) per "
                                  f"keypoint; got {chroma.dtype} {chroma.shape}")
        if feature == "xfeat" and LOCAL_MODEL not in contents.members:
            raise BundleError(f"{src}: verification with xfeat needs the {LOCAL_MODEL} member")
        if feature == "xfeat" and (m.verification or {}).get("glue_candidates") and GLUE_MODEL not in contents.members:
            raise BundleError(f"{src}: verification with the learned matcher needs the {GLUE_MODEL} member")
    elif any(n in contents.members for n in (VERIFY_PCA, VERIFY_STEER, VERIFY_CHROMA)):
        raise BundleError(f"{src}: {VERIFY_PCA}, {VERIFY_STEER} or {VERIFY_CHROMA} without verification keypoints")
    contents.checked = True


def _coded_width(contents, feature: str) -> int | None:
    """K when the manifest says the descriptors are stored as a pcaK code (and its basis is
    there and well formed), None when stored as extracted; BundleError when they disagree."""
    src = str(contents.path)
    name = contents.manifest.verification.get("descriptor_code", "int8")
    try:
        components = components_of(name)
    except SitelensError:
        raise BundleError(f"{src}: unknown descriptor code {name!r} in the manifest's verification") from None
    if components is None:
        if VERIFY_PCA in contents.members:
            raise BundleError(f"{src}: {VERIFY_PCA} in a bundle whose descriptors are not coded")
        return None
    if feature != "xfeat" or VERIFY_PCA not in contents.members:
        raise BundleError(f"{src}: descriptor code {name} needs xfeat features and the {VERIFY_PCA} member")
    codec = DescriptorCode.from_array(contents.array(VERIFY_PCA), src)
    if codec.components != components:
        raise BundleError(f"{src}: {VERIFY_PCA} has {codec.components} components, the manifest says {name}")
    return components
