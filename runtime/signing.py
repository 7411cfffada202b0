"""Ed25519 bundle signatures (the ``cryptography`` package; no home-made crypto).

A site signs the exact bytes of ``manifest.json``. The manifest lists the sha256 and size of
every other member, so one signature covers the whole bundle: change any member and its
checksum no longer matches; rewrite the checksum and the manifest no longer matches the
signature. The signature lives in the bundle as its own member, ``signature.json``::

    {"algorithm": "ed25519", "key_id": "<16 hex>", "signature": "<base64>", "signed": "<ISO date>"}

``key_id`` is the first 16 hex digits of the sha256 of the raw 32-byte public key; it only
picks which trusted key to try, the signature check itself decides.

Key files: the private key is PKCS#8 PEM (written with mode 0600), the public key
SubjectPublicKeyInfo PEM (``site.pub``). A device trusts one or more public keys at once
(key rotation: trust the old and the new key while bundles are re-signed).
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleError, DependencyError, SitelensError

SIGNATURE = "signature.json"
ALGORITHM = "ed25519"


class SignatureError(BundleError):
    """A bundle is unsigned, signed by a key that is not trusted, or its signature does not verify."""


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - cryptography is a base dependency
        raise DependencyError(f"bundle signatures need the cryptography package ({exc}); "
                              "pip install cryptography") from None
    return ed25519, serialization, InvalidSignature


def key_id(public_key) -> str:
    _, serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: object
    source: str


@dataclass(frozen=True)
class SignatureInfo:
    key_id: str
    signed: str | None
    verified: bool  # True only when checked against a trusted key


# -- keys -----------------------------------------------------------------------------------
def generate_keypair(private_path: str | Path, public_path: str | Path | None = None,
                     overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write a new private key (mode 0600) and its public key; returns (private, public, key id)."""
    ed25519, serialization, _ = _crypto()
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else private_path.with_suffix(".pub")
    if private_path == public_path:
        raise SitelensError(f"{private_path}: the private and public key files must differ")
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise SitelensError(f"{p}: already exists; refusing to overwrite a key (use --force)")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_path.with_name(f".{private_path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, private_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    public_path.write_bytes(public_pem)
    return private_path, public_path, key_id(key.public_key())


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SitelensError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def load_private_key(path: str | Path):
    ed25519, serialization, _ = _crypto()
    path = Path(path)
    data = _read_key_file(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SitelensError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SitelensError(f"{path}: not an Ed25519 private key (sitelens signs with Ed25519)")
    return key


def load_public_key(path: str | Path) -> TrustedKey:
    ed25519, serialization, _ = _crypto()
    path = Path(path)
    data = _read_key_file(path, "trusted key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        hint = " (this looks like a private key: give the .pub file)" if b"PRIVATE KEY" in data else ""
        raise SitelensError(f"{path}: not a PEM public key{hint} ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SitelensError(f"{path}: not an Ed25519 public key")
    return TrustedKey(key_id(key), key, str(path))


def trusted_keys(keys) -> dict[str, TrustedKey]:
    """Normalise paths / TrustedKey objects into {key id: key}."""
    out: dict[str, TrustedKey] = {}
    for k in keys or ():
        tk = k if isinstance(k, TrustedKey) else load_public_key(k)
        out[tk.key_id] = tk
    return out


# -- signatures -----------------------------------------------------------------------------
def sign_manifest(manifest_bytes: bytes, private_key) -> bytes:
    """The ``signature.json`` member for these exact manifest bytes."""
    sig = private_key.sign(manifest_bytes)
    doc = {"algorithm": ALGORITHM, "key_id": key_id(private_key.public_key()),
           "signature": base64.b64encode(sig).decode("ascii"),
           "signed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return json.dumps(doc, indent=2).encode("utf-8")


def read_signature(data: bytes, source: str) -> dict:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureError(f"{source}: {SIGNATURE} is not valid JSON ({exc})") from None
    if (not isinstance(doc, dict) or doc.get("algorithm") != ALGORITHM or not isinstance(doc.get("key_id"), str)
            or not isinstance(doc.get("signature"), str)):
        raise SignatureError(f"{source}: {SIGNATURE} is malformed (expected algorithm {ALGORITHM!r}, "
                             "key_id and signature)")
    return doc


def describe_signature(data: bytes | None, source: str) -> SignatureInfo | None:
    """What the signature member says, without checking it (for ``inspect``)."""
    if data is None:
        return None
    doc = read_signature(data, source)
    return SignatureInfo(doc["key_id"], doc.get("signed"), verified=False)


def verify_manifest(manifest_bytes: bytes, signature: bytes | None, trusted: dict[str, TrustedKey],
                    source: str) -> SignatureInfo:
    """Raise SignatureError unless ``signature`` is a valid signature of ``manifest_bytes`` by a
    trusted key. Each failure says what went wrong: unsigned, unknown key, or tampered."""
    _, _, InvalidSignature = _crypto()
    ids = ", ".join(sorted(trusted)) or "none"
    if signature is None:
        raise SignatureError(f"{source}: unsigned bundle refused (this device trusts key(s) {ids}); "
                             f"sign it with `sitelens sign {source} --key site.key`")
    doc = read_signature(signature, source)
    key = trusted.get(doc["key_id"])
    if key is None:
        raise SignatureError(f"{source}: signed by key {doc['key_id']}, which this device does not trust "
                             f"(trusted: {ids})")
    try:
        raw = base64.b64decode(doc["signature"], validate=True)
        key.public_key.verify(raw, manifest_bytes)
    except (InvalidSignature, ValueError, TypeError):
        raise SignatureError(f"{source}: signature check failed for key {doc['key_id']}: the bundle was "
                             "modified after it was signed (tampered or corrupt)") from None
    return SignatureInfo(doc["key_id"], doc.get("signed"), verified=True)
