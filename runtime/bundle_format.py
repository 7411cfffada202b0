"""The `.sitelens` bundle: one zip file per site, verified before anything parses it.

Members (all listed with sha256 and size in manifest.json):

- ``manifest.json``   schema version, model fingerprint, input spec, index params, metadata
- ``model.onnx``      descriptor network, uint8 NHWC RGB in, L2-normalised descriptor out
- ``index.hnsw``      hnswlib index (inner product) over the reference descriptors
- ``refs.npy``        reference descriptors (float16) so the index can be rebuilt
- ``labels.json``     instance id of each reference row (+ source file names)
- optional members added by later features (``codes.npy``, ``itq.npy``, ...)

Writes are atomic (temporary file in the same folder, fsync, rename). On open, every
member's checksum is verified before ORT, hnswlib or numpy sees a byte of it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BundleError
from .version import __version__

FORMAT = "sitelens-bundle"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MODEL = "model.onnx"
INDEX = "index.hnsw"
REFS = "refs.npy"
LABELS = "labels.json"
CODES = "codes.npy"          # optional: packed ITQ codes (N x bits/8 uint8)
ITQ_PROJ = "itq_proj.npy"    # optional: ITQ projection (D x bits float32)
ITQ_MEAN = "itq_mean.npy"    # optional: ITQ centring (D float32)
VERIFY_KPTS = "verify_kpts.npy"      # optional: local feature keypoints of references
VERIFY_DESC = "verify_desc.npy"      # optional: their descriptors
VERIFY_OFFSETS = "verify_offsets.npy"  # optional: row offsets into the two above
REQUIRED_MEMBERS = (MODEL, INDEX, REFS, LABELS)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes, name: str, source: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise BundleError(f"{source}: member {name} is not a plain numpy array ({exc})") from None


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_bundle(path: str | Path, manifest: dict, members: dict[str, bytes]) -> Path:
    """Write a bundle atomically. ``manifest`` gets format, versions and checksums filled in."""
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    if missing:
        raise BundleError(f"{path}: refusing to write a bundle without {missing}")
    manifest = dict(manifest)
    manifest.update(format=FORMAT, schema_version=SCHEMA_VERSION, sitelens_version=__version__)
    manifest["members"] = {
        name: {"sha256": sha256(data), "size": len(data)} for name, data in sorted(members.items())
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8")

    def write(fh):
        with zipfile.ZipFile(fh, "w") as zf:
            zf.writestr(MANIFEST, manifest_bytes, compress_type=zipfile.ZIP_DEFLATED)
            for name, data in members.items():
                kind = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
                zf.writestr(name, data, compress_type=kind)

    return atomic_write(path, write)


@dataclass
class BundleContents:
    """A verified bundle held in memory: the manifest plus the raw bytes of each member."""

    path: Path
    manifest: dict
    members: dict[str, bytes]

    def json(self, name: str):
        try:
            return json.loads(self.members[name].decode("utf-8"))
        except (KeyError, ValueError) as exc:
            raise BundleError(f"{self.path}: member {name} is missing or not JSON ({exc})") from None

    def array(self, name: str) -> np.ndarray:
        return npy_load(self.members[name], name, str(self.path))


def read_bundle(path: str | Path) -> BundleContents:
    """Open and fully verify a bundle; raise BundleError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such bundle file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if MANIFEST not in names:
                raise BundleError(f"{path}: not a sitelens bundle (no {MANIFEST})")
            manifest_raw = zf.read(MANIFEST)
            raw = {name: zf.read(name) for name in names if name != MANIFEST}
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path}: not a sitelens bundle or truncated file ({exc})") from None
    except (zlib_error(), OSError) as exc:
        raise BundleError(f"{path}: corrupt bundle ({exc})") from None
    try:
        manifest = json.loads(manifest_raw.decode("utf-8"))
    except ValueError as exc:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: not a sitelens bundle (format is {manifest.get('format')!r})")
    schema = manifest.get("schema_version")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise BundleError(
            f"{path}: bundle schema version {schema!r} is newer than this sitelens "
            f"{__version__} supports ({SCHEMA_VERSION}); upgrade sitelens or re-export the bundle"
        )
    listed = manifest.get("members") or {}
    problems = []
    for name in REQUIRED_MEMBERS:
        if name not in listed:
            problems.append(f"{name} not listed in the manifest")
    for name, info in listed.items():
        data = raw.get(name)
        if data is None:
            problems.append(f"{name} listed in the manifest but missing")
        elif len(data) != info.get("size") or sha256(data) != info.get("sha256"):
            problems.append(f"{name} checksum mismatch (corrupt or modified)")
    for name in sorted(set(raw) - set(listed)):
        problems.append(f"{name} present but not listed in the manifest")
    if problems:
        raise BundleError(f"{path}: failed verification: " + "; ".join(problems))
    return BundleContents(path=path, manifest=manifest, members=raw)


def zlib_error():
    import zlib

    return zlib.error
