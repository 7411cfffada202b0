"""Ed25519 bundle signatures (the ``cryptography`` package; no home-made crypto).

A site signs the exact bytes of ``manifest.json``. The manifest lists the sha256 and size of
every other member, so one signature covers the whole bundle: change any member and its
checksum no longer matches; rewrite the checksum and the manifest no longer matches the
signature. The signature lives in the bundle as its own member, ``signature.json``::

    {"algorithm": "ed25519", "version": 2, "key_id": "<16 hex>", "signed": "<ISO date>",
     "signature": "<base64>"}

Everything shown as signed is signed: version 2 signs ``b"sitelens-signature-2\0" + signed +
b"\0" + manifest bytes``, so the date cannot be edited either. Version-1 signatures (the
manifest bytes alone) still verify; their date is reported as not signed (None).

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

from runtime.errors import BundleError, DependencyError, SitelensError

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
                     overwrite: bool = False, passphrase: bytes | None = None) -> tuple[Path, Path, str]:
    """Write a new private key (mode 0600; encrypted with ``passphrase`` when given) and its public
    key; returns (private, public, key id). Both files appear whole or not at all: each is written
    to a new temporary file (O_EXCL, O_NOFOLLOW) and linked into place, without overwriting an
    existing key unless ``overwrite`` (a key another process wrote meanwhile is not clobbered)."""
    ed25519, serialization, _ = _crypto()
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else private_path.with_suffix(".pub")
    if private_path == public_path:
        raise SitelensError(f"{private_path}: the private and public key files must differ")
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise SitelensError(f"{p}: already exists; refusing to overwrite a key (use --force)")
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
            _place(_exclusive_temp(path, data, mode), path, overwrite)
            written.append(path)
    except BaseException:
        for path in written:  # the pair or nothing
            path.unlink(missing_ok=True)
        raise
    return private_path, public_path, key_id(key.public_key())


def _exclusive_temp(path: Path, data: bytes, mode: int) -> Path:
    """``data`` in a new file beside ``path`` (created with O_EXCL and O_NOFOLLOW: never an existing
    file or a planted link), fsynced, with ``mode``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(16):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 16 collisions of 48 random bits
        raise SitelensError(f"{path}: cannot create a temporary file beside it")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _place(tmp: Path, path: Path, overwrite: bool) -> None:
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists, atomically: no check-then-write race
    except FileExistsError:
        raise SitelensError(f"{path}: already exists; refusing to overwrite a key (use --force)") from None
    finally:
        tmp.unlink(missing_ok=True)


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SitelensError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


PASSPHRASE_ENV = "SITELENS_KEY_PASSPHRASE"  # the passphrase of an encrypted private key


def load_private_key(path: str | Path, passphrase: bytes | None = None):
    """An Ed25519 private key from a PEM file; an encrypted one needs ``passphrase`` (default: the
    ``SITELENS_KEY_PASSPHRASE`` environment variable)."""
    ed25519, serialization, _ = _crypto()
    path = Path(path)
    data = _read_key_file(path, "signing key")
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode("utf-8")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if b"ENCRYPTED" in data and not passphrase:
            raise SitelensError(f"{path}: the key is encrypted; set {PASSPHRASE_ENV} to its passphrase") from None
        raise SitelensError(f"{path}: not a PEM private key, or a passphrase for an unencrypted one") from None
    except ValueError as exc:
        hint = "wrong passphrase, or " if passphrase else ""
        raise SitelensError(f"{path}: cannot read the private key ({hint}not a PEM private key: {exc})") from None
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
def _signed_bytes(manifest_bytes: bytes, signed: str) -> bytes:
    """What a version-2 signature covers: the date it shows and the manifest."""
    return b"sitelens-signature-2\0" + signed.encode("utf-8") + b"\0" + manifest_bytes


def sign_manifest(manifest_bytes: bytes, private_key) -> bytes:
    """The ``signature.json`` member for these exact manifest bytes, signed now."""
    signed = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    sig = private_key.sign(_signed_bytes(manifest_bytes, signed))
    doc = {"algorithm": ALGORITHM, "version": 2, "key_id": key_id(private_key.public_key()), "signed": signed,
           "signature": base64.b64encode(sig).decode("ascii")}
    return json.dumps(doc, indent=2).encode("utf-8")


def read_signature(data: bytes, source: str) -> dict:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"{source}: {SIGNATURE} is not valid JSON ({type(exc).__name__})") from None
    if (not isinstance(doc, dict) or doc.get("algorithm") != ALGORITHM or not isinstance(doc.get("key_id"), str)
            or not isinstance(doc.get("signature"), str) or doc.get("version", 1) not in (1, 2)
            or (doc.get("version") == 2 and not isinstance(doc.get("signed"), str))):
        raise SignatureError(f"{source}: {SIGNATURE} is malformed (expected algorithm {ALGORITHM!r}, version 1 or 2, "
                             "key_id, signed and signature)")
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
    v2 = doc.get("version") == 2
    try:
        raw = base64.b64decode(doc["signature"], validate=True)
        key.public_key.verify(raw, _signed_bytes(manifest_bytes, doc["signed"]) if v2 else manifest_bytes)
    except (InvalidSignature, ValueError, TypeError):
        raise SignatureError(f"{source}: signature check failed for key {doc['key_id']}: the bundle was "
                             "modified after it was signed (tampered or corrupt)") from None
    return SignatureInfo(doc["key_id"], doc["signed"] if v2 else None, verified=True)
