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
                      (schema 3), or float16 (schema 1-2); ``index_members.reference_descriptors`` reads either
- ``labels.json``     instance id of each reference row (+ source file names)
- ``codes.npy``, ``itq_*.npy``   optional ITQ binary codes (``--hash-bits``)
- ``local.onnx``, ``verify_*.npy`` optional geometric verification: the local feature model
                      (XFeat) and the references' keypoints and descriptors; ``verify_pca.npy``
                      (schema 4) when the descriptors are stored as a PCA code
                      (``runtime/verify/descriptor_code.py``); ``verify_steer.npy`` (schema 5)
                      when quarter-turned rows are steered from the upright ones
                      (``runtime/verify/steerer.py``); ``verify_chroma.npy`` (schema 6) when
                      each reference keypoint's chroma is stored (``runtime/verify/colour.py``)
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

import datetime as _dt
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import logging

import numpy as np

from runtime.bundle import signing
from runtime.errors import BundleError
from runtime.bundle.atomic import atomic_write, edit_lock, remove_stale_temps  # noqa: F401 (re-exported)
from runtime.bundle.members import (  # noqa: F401 (member names re-exported as bf.NAME)
                                    CODES, GLUE_MODEL, GRAPH, INDEX, ITQ_MEAN, ITQ_PROJ, LABELS, LOCAL_MODEL,
                                    MANIFEST, MAX_MANIFEST_BYTES, MAX_MEMBER_BYTES, MAX_MEMBERS,
                                    MAX_SIGNATURE_BYTES, MAX_TOTAL_BYTES, MEMBERS, MODEL, REFS, REFS_SCALE,
                                    REQUIRED_MEMBERS, SIGNATURE, VERIFY_CHROMA, VERIFY_DESC, VERIFY_KPTS,
                                    VERIFY_OFFSETS, VERIFY_PCA, VERIFY_STEER)
from runtime.bundle.npy import npy_bytes, npy_load  # noqa: F401 (re-exported)
from runtime.bundle.zip_reader import BoundedZip, listing as _listing
from runtime.bundle.manifest import FORMAT, SCHEMA_VERSION, Manifest, MemberInfo  # noqa: F401 (re-exported)
from runtime.bundle.manifest import build_time



log = logging.getLogger("sitelens")
_ZIP_EPOCH = _dt.datetime(1980, 1, 1, tzinfo=_dt.timezone.utc)   # the earliest date a zip entry holds


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_digest(path: str | Path) -> str | None:
    """sha256 of the manifest of the bundle now at ``path`` (None when there is none): what a save
    compares with the manifest it opened, to refuse overwriting another process's edit."""
    path = Path(path)
    if not path.is_file():
        return None
    zf = _open_zip(path)
    try:
        return sha256(zf.read(MANIFEST, MAX_MANIFEST_BYTES))
    finally:
        zf.close()


def _zip_members(fh, manifest_bytes: bytes, members: dict[str, bytes], signature: bytes | None) -> None:
    """Every entry is stamped with ``build_time`` (``SOURCE_DATE_EPOCH`` when set: the same
    contents then make the same file, entry timestamps included; zip cannot date before 1980)."""
    stamp = max(build_time(), _ZIP_EPOCH).timetuple()[:6]

    def put(zf, name: str, data: bytes, kind: int) -> None:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type, info.external_attr = kind, 0o600 << 16   # as ZipFile.writestr(name) sets them
        zf.writestr(info, data)

    with zipfile.ZipFile(fh, "w") as zf:
        put(zf, MANIFEST, manifest_bytes, zipfile.ZIP_DEFLATED)
        if signature is not None:
            put(zf, SIGNATURE, signature, zipfile.ZIP_DEFLATED)
        for name, data in members.items():
            put(zf, name, data, zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED)


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


_KNOWN = frozenset({MANIFEST, SIGNATURE, *MEMBERS})


def _open_zip(path: Path) -> BoundedZip:
    """A bundle's zip (``runtime/bundle/zip_reader.py``): only the members a bundle holds, a manifest."""
    return BoundedZip(path, str(path), "sitelens bundle", _KNOWN.__contains__, (MANIFEST,), MAX_MEMBERS)


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
    zf = _open_zip(path)
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
        from runtime.bundle.index_members import check_consistency

        check_consistency(contents)
    return contents


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
