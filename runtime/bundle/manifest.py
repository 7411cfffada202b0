"""The bundle manifest (``manifest.json``): one typed owner, one reader, one writer, one validator.

Every part of sitelens that reads or writes a manifest goes through :class:`Manifest`:
the bundler builds one, ``Recognizer.save`` updates one, ``inspect`` and the TensorRT code
read one. ``Manifest.from_bytes`` parses *and* validates (types, ranges, required fields),
raising :class:`BundleError` that names the file and the field; ``to_bytes`` writes the
canonical JSON. Keys this version does not know are kept (``extra``) so a bundle
round-trips through an older tool without losing them.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import BundleError
from runtime.kinds import PRECISIONS as _PRECISIONS
from runtime.search.index_params import IndexParams
from runtime.image.preprocess import InputSpec
from runtime.thresholds import Thresholds
from runtime.version import __version__

FORMAT = "sitelens-bundle"
SCHEMA_VERSION = 7       # 3: the HNSW graph is stored without its vectors (index.graph)
                         # 4: reference local descriptors may be stored coded (verify_pca.npy)
                         # 5: quarter-turned rows may be steered from the upright ones (verify_steer.npy)
                         # 6: reference keypoints may carry their chroma (verify_chroma.npy)
                         # 7: a rule may hold its global path to some kinds of works (global_kinds);
                         #    a runtime before it would ignore the key and answer every kind that way
READABLE_SCHEMAS = (1, 2, 3, 4, 5, 6, 7)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class _Check:
    """Field validation with messages naming the bundle, manifest.json and the field path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str):
        raise BundleError(f"{self.source}: manifest.json: {where}: {problem}")

    def get(self, d: dict, key: str, types, where: str, required: bool = True, default=None):
        if key not in d or d[key] is None:
            if required:
                self.fail(f"{where}.{key}" if where else key, "missing")
            return default
        value = d[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            self.fail(f"{where}.{key}" if where else key, f"expected {_names(types)}, got a boolean")
        if not isinstance(value, types):
            self.fail(f"{where}.{key}" if where else key, f"expected {_names(types)}, got {type(value).__name__}")
        return value

    def section(self, d: dict, key: str, required: bool = True) -> dict:
        return self.get(d, key, dict, "", required, {}) or {}

    def positive_int(self, d: dict, key: str, where: str, required: bool = True, default=None, lo: int = 1,
                     hi: int = 1 << 31):
        value = self.get(d, key, int, where, required, default)
        if value is not None and not lo <= value <= hi:
            self.fail(f"{where}.{key}", f"{value} is outside [{lo}, {hi}]")
        return value


def _names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


@dataclass
class MemberInfo:
    sha256: str
    size: int

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "size": self.size}


SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def build_time() -> _dt.datetime:
    """Now (UTC), or ``SOURCE_DATE_EPOCH`` when set (reproducible-builds.org's convention): the
    same inputs, seed and epoch then give a byte-identical manifest."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise BundleError(f"SOURCE_DATE_EPOCH={epoch!r}: not a number of seconds since 1970") from None
    return _dt.datetime.now(_dt.timezone.utc)


def created_stamp() -> str:
    """The manifest's ``created`` field: ``build_time`` in ISO form, to the second."""
    return build_time().isoformat(timespec="seconds")


def new_release() -> int:
    """A release number that grows with time (UTC YYYYMMDDHHMMSS of ``build_time``): every build
    and every saved edit gets a larger one than the bundle before it, without a counter to keep
    anywhere."""
    return int(build_time().strftime("%Y%m%d%H%M%S"))


def parse_expiry(text: str) -> _dt.datetime:
    """An ISO date or date-time (UTC when no zone is given)."""
    when = _dt.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


@dataclass
class SiteInfo:
    """The site a bundle is for, inside the signed manifest: ``site_id`` (which site: a device
    refuses another site's bundle, ``Recognizer.open(site_id=...)``), ``release`` (which version:
    a device refuses one older than the newest it accepted, ``min_release=``) and ``expires``
    (an ISO date after which no device opens it)."""

    name: str
    num_instances: int
    num_references: int
    site_id: str | None = None
    release: int = 0
    expires: str | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "num_instances": self.num_instances, "num_references": self.num_references}
        if self.site_id is not None:
            d.update(site_id=self.site_id, release=self.release, expires=self.expires)
        return d

    def check(self, source: str, site_id: str | None = None, min_release: int | None = None,
              now: _dt.datetime | None = None) -> None:
        """Raise BundleError when this is another site's bundle, older than ``min_release``, or expired."""
        if site_id is not None and self.site_id != site_id:
            raise BundleError(f"{source}: refused: this bundle is for site {self.site_id!r}, this device is for site "
                              f"{site_id!r}")
        if min_release is not None and self.release < min_release:
            raise BundleError(f"{source}: refused: release {self.release} is older than release {min_release}, which "
                              "this device has already accepted (a rollback)")
        if self.expires is not None and (now or _dt.datetime.now(_dt.timezone.utc)) > parse_expiry(self.expires):
            raise BundleError(f"{source}: refused: this bundle expired on {self.expires}; install a newer release")


@dataclass
class ModelInfo:
    """What the device needs to run and trust ``model.onnx``; ``details`` keeps the descriptive
    rest (backbone config, whitening, training provenance, precision report)."""

    fingerprint: str
    descriptor_dim: int
    input: InputSpec
    precision: str = "fp32"
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.details, "fingerprint": self.fingerprint, "descriptor_dim": self.descriptor_dim,
                "input": self.input.to_dict(), "precision": self.precision}


@dataclass
class IndexInfo:
    params: IndexParams
    count: int
    tuning: dict | None = None  # how ef/M were chosen at export (recall measured against exact search)

    def to_dict(self) -> dict:
        d = {**self.params.to_dict(), "count": self.count}
        if self.tuning is not None:
            d["tuning"] = self.tuning
        return d


@dataclass
class Manifest:
    site: SiteInfo
    model: ModelInfo
    index: IndexInfo
    references: dict = field(default_factory=lambda: {"scales": [1.0]})
    instances: dict[str, dict] = field(default_factory=dict)
    thresholds: Thresholds | None = None
    codes: dict | None = None
    verification: dict | None = None
    created: str | None = None
    built_with: dict[str, str] | None = None  # package -> version that built it (runtime/versions.py)
    members: dict[str, MemberInfo] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    sitelens_version: str = __version__
    extra: dict = field(default_factory=dict)

    # -- the writer -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "sitelens_version": __version__,
            "created": self.created, "site": self.site.to_dict(), "model": self.model.to_dict(),
            "index": self.index.to_dict(), "references": self.references, "instances": self.instances,
            "thresholds": self.thresholds.to_dict() if self.thresholds is not None else None,
            "codes": self.codes, "verification": self.verification,
        }
        if self.built_with is not None:
            d["built_with"] = dict(sorted(self.built_with.items()))
        d.update({k: v for k, v in self.extra.items() if k not in d})
        d["members"] = {name: info.to_dict() for name, info in sorted(self.members.items())}
        return d

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode("utf-8")

    def copy(self) -> "Manifest":
        return copy.deepcopy(self)

    @property
    def scales(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.references.get("scales", [1.0]))

    # -- the reader and validator -----------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes, source: str = "bundle") -> "Manifest":
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BundleError(f"{source}: manifest.json is not valid JSON ({exc})") from None
        return cls.from_dict(raw, source)

    @classmethod
    def from_dict(cls, raw: Any, source: str = "bundle") -> "Manifest":
        c = _Check(source)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            fmt = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise BundleError(f"{source}: not a sitelens bundle (format is {fmt!r})")
        schema = raw.get("schema_version")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema not in READABLE_SCHEMAS:
            if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA_VERSION:
                raise BundleError(f"{source}: bundle schema version {schema} is newer than this sitelens "
                                  f"{__version__} supports ({SCHEMA_VERSION}); upgrade sitelens or re-export the bundle")
            c.fail("schema_version", f"unsupported value {schema!r} (readable: {READABLE_SCHEMAS})")

        site = c.section(raw, "site")
        site_id = c.get(site, "site_id", str, "site", required=False)
        if site_id is not None and not SITE_ID.match(site_id):
            c.fail("site.site_id", "letters, digits, '.', '_' and '-', at most 128")
        expires = c.get(site, "expires", str, "site", required=False)
        if expires is not None:
            try:
                parse_expiry(expires)
            except ValueError:
                c.fail("site.expires", f"{expires!r} is not an ISO date")
        model = c.section(raw, "model")
        index = c.section(raw, "index")
        members_raw = c.section(raw, "members")
        members = {}
        for name, info in members_raw.items():
            if not isinstance(info, dict):
                c.fail(f"members.{name}", "expected an object with sha256 and size")
            digest = c.get(info, "sha256", str, f"members.{name}")
            if not _HEX64.match(digest):
                c.fail(f"members.{name}.sha256", "not a sha256 hex digest")
            members[name] = MemberInfo(digest, c.positive_int(info, "size", f"members.{name}", lo=0, hi=1 << 40))

        spec_raw = c.get(model, "input", dict, "model")
        size = c.positive_int(spec_raw, "size", "model.input", lo=16, hi=4096)
        aspect = c.get(spec_raw, "max_aspect", (int, float), "model.input", required=False, default=2.0)
        if not 1.0 <= aspect <= 16.0:
            c.fail("model.input.max_aspect", f"{aspect} is outside [1, 16]")
        for key, want in (("layout", "NHWC"), ("dtype", "uint8"), ("color", "RGB")):
            if spec_raw.get(key, want) != want:
                c.fail(f"model.input.{key}", f"this sitelens reads only {want}, got {spec_raw.get(key)!r}")
        precision = c.get(model, "precision", str, "model", required=False, default="fp32")
        if precision not in _PRECISIONS:
            c.fail("model.precision", f"{precision!r} is not one of {_PRECISIONS}")
        fingerprint = c.get(model, "fingerprint", str, "model")
        details = {k: v for k, v in model.items()
                   if k not in ("fingerprint", "descriptor_dim", "input", "precision")}
        model_info = ModelInfo(fingerprint, c.positive_int(model, "descriptor_dim", "model", hi=65536),
                               InputSpec(size=size, max_aspect=float(aspect)), precision, details)

        params = IndexParams(M=c.positive_int(index, "M", "index", required=False, default=16, lo=2, hi=512),
                             ef_construction=c.positive_int(index, "ef_construction", "index", required=False,
                                                            default=200, hi=100000),
                             ef=c.positive_int(index, "ef", "index", required=False, default=64, hi=100000))
        tuning = c.get(index, "tuning", dict, "index", required=False)
        index_info = IndexInfo(params, c.positive_int(index, "count", "index", lo=0), tuning)

        instances = c.get(raw, "instances", dict, "", required=False, default={})
        for inst, meta in instances.items():
            if not isinstance(meta, dict):
                c.fail(f"instances.{inst}", f"expected an object of metadata, got {type(meta).__name__}")
        references = c.get(raw, "references", dict, "", required=False, default={"scales": [1.0]})
        scales = references.get("scales", [1.0])
        if (not isinstance(scales, list) or not scales or
                not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0.1 <= s <= 4 for s in scales)):
            c.fail("references.scales", f"expected a list of scales in [0.1, 4], got {scales!r}")
        thresholds_raw = c.get(raw, "thresholds", dict, "", required=False)
        try:
            thresholds = Thresholds.from_dict(thresholds_raw) if thresholds_raw is not None else None
        except (TypeError, ValueError) as exc:
            c.fail("thresholds", str(exc))
        built_with = c.get(raw, "built_with", dict, "", required=False)
        if built_with is not None and not all(isinstance(k, str) and isinstance(v, str) and len(k) < 100 and len(v) < 100
                                              for k, v in built_with.items()):
            c.fail("built_with", "expected an object of package names and version strings")
        known = {"format", "schema_version", "sitelens_version", "created", "site", "model", "index", "references",
                 "instances", "thresholds", "codes", "verification", "members", "built_with"}
        return cls(
            site=SiteInfo(c.get(site, "name", str, "site"), c.positive_int(site, "num_instances", "site", lo=0),
                          c.positive_int(site, "num_references", "site", lo=0), site_id,
                          c.positive_int(site, "release", "site", required=False, default=0, lo=0, hi=(1 << 63) - 1),
                          expires),
            model=model_info, index=index_info, references=references, instances=instances,
            thresholds=thresholds, codes=c.get(raw, "codes", dict, "", required=False),
            verification=c.get(raw, "verification", dict, "", required=False),
            created=c.get(raw, "created", str, "", required=False), built_with=built_with, members=members,
            schema_version=schema,
            sitelens_version=c.get(raw, "sitelens_version", str, "", required=False, default="?"),
            extra={k: v for k, v in raw.items() if k not in known},
        )
