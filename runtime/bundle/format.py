"""The `.sitelens` bundle: one zip file per site, verified before anything parses it.

Members (every one listed with sha256 and size in manifest.json, see ``runtime/bundle/manifest.py``):

- ``manifest.json``   schema version, model fingerprint, input spec, index params, thresholds, metadata
- ``signature.json``  optional Ed25519 signature of the manifest bytes (``runtime/bundle/signing.py``);
                      the only member the manifest does not list (it signs the manifest)
- ``model.onnx``      descriptor network, uint8 NHWC RGB in, L2-normalised descriptor out
- ``index.graph``     hnswlib index (inner product) over the reference descriptors, without the
                      vectors (``runtime/bundle/hnsw_file.py``; they are put back from refs.npy on open);
                      ``index.hnsw``, the whole hnswlib file, in bundles of schema 1-2
- ``refs.npy``        reference descriptors: int8 with one scale per row in ``refs_scale.npy``
                      (schema 3), or float16 (schema 1-2); ``reference_descriptors`` reads either
- ``labels.json``     instance id of each reference row (+ source file names)
- ``codes.npy``, ``itq_*.npy``   optional ITQ binary codes (``--hash-bits``)
- ``local.onnx``, ``verify_*.npy`` optional geometric verification: the local feature model
                      (XFeat) and the references' keypoints and descriptors
- ``glue.onnx``       optional learned matcher (LighterGlue) that verification calls on the
                      candidates mutual nearest neighbours could not settle

Writes are atomic and crash-safe: the zip is written to a temporary file in the same folder,
fsynced, renamed over the target and the folder fsynced; a writer killed half-way leaves the
previous bundle untouched and a temporary file that the next write to that bundle removes
(readers never look at temporary files). On open: the signature is checked first when keys
are trusted, then the manifest is validated, then every member's size and checksum, then the
members are checked against each other (row counts, shapes, the hnswlib file structure)
before ONNX Runtime, hnswlib or numpy parse a byte of them.
"""
from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import logging

import numpy as np

from runtime.bundle import signing
from runtime.errors import BundleError
from runtime.verify.local_features import STORED_DESCRIPTORS
from runtime.bundle.atomic import atomic_write, edit_lock, remove_stale_temps  # noqa: F401 (re-exported)
from runtime.bundle.members import (CODES, GLUE_MODEL, GRAPH, INDEX, ITQ_MEAN, ITQ_PROJ, LABELS, LOCAL_MODEL,
                                    MANIFEST, MAX_MANIFEST_BYTES, MAX_MEMBER_BYTES, MAX_MEMBERS,
                                    MAX_SIGNATURE_BYTES, MAX_TOTAL_BYTES, MEMBERS, MODEL, REFS, REFS_SCALE,
                                    REQUIRED_MEMBERS, SIGNATURE, VERIFY_DESC, VERIFY_KPTS, VERIFY_OFFSETS)
from runtime.bundle.hnsw_file import check_hnsw_bytes, with_vectors
from runtime.bundle.manifest import FORMAT, SCHEMA_VERSION, Manifest, MemberInfo  # noqa: F401 (re-exported)



log = logging.getLogger("sitelens")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes, name: str, source: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, struct.error, SyntaxError) as exc:
        raise BundleError(f"{source}: member {name} is not a plain numpy array ({exc})") from None


def manifest_digest(path: str | Path) -> str | None:
    """sha256 of the manifest of the bundle now at ``path`` (None when there is none): what a save
    compares with the manifest it opened, to refuse overwriting another process's edit."""
    path = Path(path)
    if not path.is_file():
        return None
    zf = _Zip(path)
    try:
        return sha256(zf.read(MANIFEST, MAX_MANIFEST_BYTES))
    finally:
        zf.close()


def _zip_members(fh, manifest_bytes: bytes, members: dict[str, bytes], signature: bytes | None) -> None:
    with zipfile.ZipFile(fh, "w") as zf:
        zf.writestr(MANIFEST, manifest_bytes, compress_type=zipfile.ZIP_DEFLATED)
        if signature is not None:
            zf.writestr(SIGNATURE, signature, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in members.items():
            kind = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
            zf.writestr(name, data, compress_type=kind)


def write_bundle(path: str | Path, manifest: Manifest, members: dict[str, bytes], signing_key=None) -> Path:
    """Write a bundle atomically; the manifest's member checksums are filled in here.
    ``signing_key`` (an Ed25519 private key or a key file path) signs the manifest."""
    missing = [m for m in REQUIRED_MEMBERS if m not in members] + ([] if {INDEX, GRAPH} & set(members) else [GRAPH])
    if missing:
        raise BundleError(f"{path}: refusing to write a bundle without {missing}")
    reserved = {MANIFEST, SIGNATURE} & set(members)
    if reserved:
        raise BundleError(f"{path}: {sorted(reserved)} cannot be written as ordinary members")
    unknown = sorted(set(members) - set(MEMBERS))
    if unknown:
        raise BundleError(f"{path}: refusing to write members a bundle does not hold: {_listing(unknown)}")
    manifest = manifest.copy()
    manifest.members = {name: MemberInfo(sha256(data), len(data)) for name, data in members.items()}
    manifest_bytes = manifest.to_bytes()
    signature = None
    if signing_key is not None:
        key = signing.load_private_key(signing_key) if isinstance(signing_key, (str, os.PathLike)) else signing_key
        signature = signing.sign_manifest(manifest_bytes, key)
    return atomic_write(path, lambda fh: _zip_members(fh, manifest_bytes, members, signature))


@dataclass
class BundleContents:
    """A verified bundle held in memory: the manifest plus the raw bytes of each member."""

    path: Path
    manifest: Manifest
    members: dict[str, bytes]
    manifest_bytes: bytes = b""
    signature_bytes: bytes | None = None
    signature: signing.SignatureInfo | None = field(default=None)
    checked: bool = False   # check_consistency passed: the hnswlib bytes need no second look

    def json(self, name: str):
        try:
            return json.loads(self.members[name].decode("utf-8"))
        except (KeyError, ValueError, RecursionError) as exc:
            raise BundleError(f"{self.path}: member {name} is missing or not JSON ({exc})") from None

    def array(self, name: str) -> np.ndarray:
        if name not in self.members:
            raise BundleError(f"{self.path}: member {name} is missing")
        return npy_load(self.members[name], name, str(self.path))


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError,
               RuntimeError, ValueError, struct.error, KeyError, OverflowError, UnicodeDecodeError, IndexError)
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _listing(names, limit: int = 10) -> str:
    """Names for an error message: escaped (no terminal control characters), at most ``limit``."""
    names = list(names)
    shown = ", ".join(ascii(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Zip:
    """A bundle's zip, read member by member with bounded memory: the central directory is
    checked first (entry count, names, compression methods), then members are inflated one at a
    time, never more than the size they are allowed (``read``)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
            infos = self.zf.infolist()
        except zipfile.BadZipFile as exc:
            raise BundleError(f"{path}: not a sitelens bundle or truncated file ({exc})") from None
        except _ZIP_ERRORS as exc:
            raise BundleError(f"{path}: corrupt bundle ({type(exc).__name__}: {exc})") from None
        try:
            if len(infos) > MAX_MEMBERS:
                raise BundleError(f"{path}: not a sitelens bundle ({len(infos)} zip entries; a bundle has at most "
                                  f"{MAX_MEMBERS})")
            counts = collections.Counter(i.filename for i in infos)
            dupes = sorted(n for n, c in counts.items() if c > 1)
            if dupes:
                raise BundleError(f"{path}: corrupt bundle (duplicate members {_listing(dupes)})")
            if MANIFEST not in counts:
                raise BundleError(f"{path}: not a sitelens bundle (no {MANIFEST})")
            unknown = sorted(set(counts) - {MANIFEST, SIGNATURE, *MEMBERS})
            if unknown:
                raise BundleError(f"{path}: not a sitelens bundle (unknown members {_listing(unknown)})")
            odd = sorted(i.filename for i in infos if i.compress_type not in _COMPRESSIONS)
            if odd:
                raise BundleError(f"{path}: members {_listing(odd)} use a compression sitelens does not read "
                                  "(only stored and deflated)")
        except BundleError:
            self.zf.close()
            raise
        self.infos = {i.filename: i for i in infos}

    def names(self) -> set[str]:
        return set(self.infos)

    def read(self, name: str, limit: int, declared: int | None = None) -> bytes:
        """The bytes of ``name``, refused when its header or its content exceeds ``limit`` bytes or
        differs from ``declared`` (the size the manifest lists); CRC errors name the member."""
        info = self.infos[name]
        if declared is not None and info.file_size != declared:
            raise BundleError(f"{self.path}: member {name} is corrupt or modified (the zip says {info.file_size} "
                              f"bytes, the manifest {declared})")
        if info.file_size > limit:
            raise BundleError(f"{self.path}: member {name} claims {info.file_size} bytes (limit {limit}); "
                              "refusing to inflate it")
        try:
            with self.zf.open(info) as fh:
                data = fh.read(limit + 1)
        except zipfile.BadZipFile as exc:
            raise BundleError(f"{self.path}: member {name} is corrupt ({exc})") from None
        except _ZIP_ERRORS as exc:
            raise BundleError(f"{self.path}: member {name} is corrupt ({type(exc).__name__}: {exc})") from None
        if len(data) > limit or len(data) != info.file_size:
            raise BundleError(f"{self.path}: member {name} is corrupt (its content does not match its zip header)")
        return data

    def close(self) -> None:
        self.zf.close()


def read_bundle(path: str | Path, trusted_keys=None, check: bool = True) -> BundleContents:
    """Open and fully verify a bundle; raise BundleError naming the file and the problem.

    ``trusted_keys``: public key files (or ``signing.TrustedKey``); when given, the bundle must be
    signed by one of them, and the signature is checked before the manifest is even parsed. An
    empty list is refused (a device that trusts no key can open nothing signed-only); ``None``
    checks no signature (a present one is reported, and logged as unchecked).
    ``check``: also check the members against each other (row counts, shapes, index structure).

    Memory is bounded before anything is trusted: only manifest.json and signature.json are
    inflated (at most ``MAX_MANIFEST_BYTES`` / ``MAX_SIGNATURE_BYTES``) before the signature check;
    then only the members the manifest lists, each at most the size it declares."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such bundle file")
    if trusted_keys is not None and not list(trusted_keys):
        raise signing.SignatureError(f"{path}: refused: an empty list of trusted keys trusts no bundle (pass "
                                     "None to open without a signature check, or the site's public key)")
    zf = _Zip(path)
    try:
        manifest_bytes = zf.read(MANIFEST, MAX_MANIFEST_BYTES)
        signature_bytes = zf.read(SIGNATURE, MAX_SIGNATURE_BYTES) if SIGNATURE in zf.names() else None
        if trusted_keys is not None:
            sig = signing.verify_manifest(manifest_bytes, signature_bytes, signing.trusted_keys(trusted_keys),
                                          str(path))
        else:
            sig = signing.describe_signature(signature_bytes, str(path))
            if sig is not None:
                log.warning("sitelens: %s is signed by key %s, but no trusted key was given: the signature was not "
                            "checked", path, sig.key_id)
        manifest = Manifest.from_bytes(manifest_bytes, str(path))
        problems = [f"{name} not listed in the manifest" for name in REQUIRED_MEMBERS if name not in manifest.members]
        if not {INDEX, GRAPH} & set(manifest.members):
            problems.append(f"neither {GRAPH} nor {INDEX} listed in the manifest")
        problems += [f"{name} listed in the manifest but missing" for name in manifest.members if name not in zf.names()]
        problems += [f"{name} present but not listed in the manifest"
                     for name in sorted(zf.names() - set(manifest.members) - {MANIFEST, SIGNATURE})]
        total = sum(info.size for info in manifest.members.values())
        if total > MAX_TOTAL_BYTES:
            problems.append(f"members total {total} bytes (limit {MAX_TOTAL_BYTES})")
        if problems:
            raise BundleError(f"{path}: failed verification: " + "; ".join(problems[:10])
                              + (f"; and {len(problems) - 10} more" if len(problems) > 10 else ""))
        raw = {}
        for name, info in manifest.members.items():
            data = zf.read(name, min(info.size, MAX_MEMBER_BYTES), declared=info.size)
            if sha256(data) != info.sha256:
                problems.append(f"{name} checksum mismatch (corrupt or modified)")
            raw[name] = data
        if problems:
            raise BundleError(f"{path}: failed verification: " + "; ".join(problems))
    finally:
        zf.close()
    contents = BundleContents(path, manifest, raw, manifest_bytes, signature_bytes, sig)
    if check:
        check_consistency(contents)
    return contents


def check_consistency(contents: BundleContents) -> None:
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
        if desc.ndim != 2 or (len(desc) and (desc.dtype != dtype or desc.shape[1] != width)):
            raise BundleError(f"{src}: verification descriptors are {desc.dtype} {desc.shape[1:]}, "
                              f"but {feature} stores {dtype} ({width},)")
        if feature == "xfeat" and LOCAL_MODEL not in contents.members:
            raise BundleError(f"{src}: verification with xfeat needs the {LOCAL_MODEL} member")
        if feature == "xfeat" and (m.verification or {}).get("glue_candidates") and GLUE_MODEL not in contents.members:
            raise BundleError(f"{src}: verification with the learned matcher needs the {GLUE_MODEL} member")
    contents.checked = True


def sign_bundle(path: str | Path, key, out: str | Path | None = None) -> tuple[Path, signing.SignatureInfo]:
    """Add (or replace) the signature of an existing bundle, after verifying its checksums.
    The manifest and members are copied byte for byte; only ``signature.json`` changes."""
    contents = read_bundle(path)
    private = signing.load_private_key(key) if isinstance(key, (str, os.PathLike)) else key
    signature = signing.sign_manifest(contents.manifest_bytes, private)
    members = {n: d for n, d in contents.members.items()}
    target = Path(out or path)
    atomic_write(target, lambda fh: _zip_members(fh, contents.manifest_bytes, members, signature))
    info = signing.describe_signature(signature, str(target))
    return target, info


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length descriptors -> (int8 rows, float32 scale per row): row i ~ q[i] * scale[i], half
    of float16's bytes; a cosine between two rows moves by about 1e-3 (the device, the index and
    calibration all use these same rounded rows)."""
    x = np.asarray(x, np.float32)
    scale = np.abs(x).max(axis=1) / 127.0 if len(x) else np.zeros(0, np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.round(x / scale[:, None]), -127, 127).astype(np.int8), scale


def reference_descriptors(contents: BundleContents) -> np.ndarray:
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


def hnsw_file(contents: BundleContents, refs: np.ndarray) -> bytes:
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
