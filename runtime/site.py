"""Sites and query sets: a folder per object, or a manifest CSV `path,instance,role`.

A site folder looks like::

    site/
      instances.csv          optional: id,title,artist,audio,... (any metadata columns)
      mona_lisa/ 1.jpg 2.png
      night_watch/ cat.jpg

Every problem found is collected and reported together, naming the offending paths.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import SiteError
from runtime.image.image_io import IMAGE_EXTENSIONS, is_image_file

UNKNOWN = "__unknown__"
MANIFEST_COLUMNS = ("path", "instance", "role")


@dataclass(frozen=True)
class Reference:
    path: Path
    instance: str


@dataclass(frozen=True)
class Query:
    path: Path
    instances: frozenset  # empty = must be rejected ("__unknown__")

    @property
    def is_unknown(self) -> bool:
        return not self.instances


@dataclass
class Site:
    name: str
    references: list[Reference]
    metadata: dict[str, dict] = field(default_factory=dict)

    @property
    def instances(self) -> list[str]:
        seen: dict[str, None] = {}
        for ref in self.references:
            seen.setdefault(ref.instance, None)
        return list(seen)


def _fail(source: Path, problems: list[str]) -> None:
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise SiteError(f"{source}: {len(problems)} problem(s):\n  {shown}{more}")


def _read_csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except OSError as exc:
        raise SiteError(f"{path}: cannot read ({exc.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise SiteError(f"{path}: not a valid UTF-8 CSV file ({exc})") from None
    if not header:
        raise SiteError(f"{path}: empty CSV, expected a header row")
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in rows]


def read_metadata(path: Path, known: list[str] | None = None) -> dict[str, dict]:
    """instances.csv: an `id` (or `instance`) column plus any metadata columns."""
    rows = _read_csv(path)
    key = "id" if "id" in rows[0] else "instance" if "instance" in rows[0] else None
    if key is None:
        raise SiteError(f"{path}: needs an 'id' (or 'instance') column, found {sorted(rows[0])}")
    out: dict[str, dict] = {}
    problems = []
    for line, row in enumerate(rows, start=2):
        ident = row.pop(key)
        if not ident:
            problems.append(f"line {line}: empty {key}")
        elif ident in out:
            problems.append(f"line {line}: duplicate id {ident!r}")
        elif known is not None and ident not in known:
            problems.append(f"line {line}: unknown id {ident!r} (no such object in the site)")
        else:
            out[ident] = {k: v for k, v in row.items() if k}
    _fail(path, problems)
    return out


def _read_manifest(path: Path) -> list[tuple[Path, str, str]]:
    rows = _read_csv(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in rows[0]] if rows else list(MANIFEST_COLUMNS)
    if missing:
        raise SiteError(f"{path}: manifest needs columns {','.join(MANIFEST_COLUMNS)}; missing {missing}")
    base = path.parent
    out, problems = [], []
    for line, row in enumerate(rows, start=2):
        img = base / row["path"]
        if row["role"] not in ("ref", "query"):
            problems.append(f"line {line}: role must be 'ref' or 'query', got {row['role']!r}")
        elif not row["instance"]:
            problems.append(f"line {line}: empty instance for {row['path']}")
        elif not img.is_file():
            problems.append(f"line {line}: missing image {img}")
        elif row["role"] == "ref" and (row["instance"] == UNKNOWN or "|" in row["instance"]):
            problems.append(f"line {line}: a reference cannot have instance {row['instance']!r}")
        else:
            out.append((img, row["instance"], row["role"]))
    _fail(path, problems)
    return out


def _scan_folder(root: Path) -> tuple[dict[str, list[Path]], list[str]]:
    problems, groups = [], {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            images = sorted(p for p in entry.rglob("*") if is_image_file(p))
            if not images:
                problems.append(f"{entry}: empty object folder (no {'/'.join(sorted(IMAGE_EXTENSIONS))} images)")
            groups[entry.name] = images
        elif is_image_file(entry):
            problems.append(f"{entry}: image outside an object folder (put it in <instance_id>/)")
    lowered: dict[str, str] = {}
    for name in groups:
        if name.lower() in lowered:
            problems.append(f"{root / name}: duplicate id (differs from {lowered[name.lower()]!r} only by case)")
        lowered[name.lower()] = name
    return groups, problems


def load_site(path: str | Path, metadata: str | Path | None = None) -> Site:
    """Load a site from a folder (one sub-folder per object) or a manifest CSV (its `ref` rows)."""
    path = Path(path)
    if not path.exists():
        raise SiteError(f"{path}: no such site folder or manifest")
    if path.is_file():
        refs = [Reference(p, inst) for p, inst, role in _read_manifest(path) if role == "ref"]
        if not refs:
            raise SiteError(f"{path}: manifest has no 'ref' rows")
        meta_path = Path(metadata) if metadata else None
        name = path.parent.name if path.stem.startswith("manifest") else path.stem
    else:
        groups, problems = _scan_folder(path)
        _fail(path, problems)
        if not groups:
            raise SiteError(f"{path}: no object folders found (expected <instance_id>/*.jpg)")
        refs = [Reference(p, inst) for inst, paths in groups.items() for p in paths]
        meta_path = Path(metadata) if metadata else path / "instances.csv"
        if not meta_path.exists() and metadata is None:
            meta_path = None
        name = path.name
    site = Site(name=name, references=refs)
    if meta_path is not None:
        site.metadata = read_metadata(meta_path, known=site.instances)
    return site


def load_queries(path: str | Path) -> list[Query]:
    """Queries to evaluate: a manifest's `query` rows, or a folder per instance
    (a folder named `__unknown__` holds frames that must be rejected)."""
    path = Path(path)
    if not path.exists():
        raise SiteError(f"{path}: no such query folder or manifest")
    if path.is_file():
        rows = [(p, inst) for p, inst, role in _read_manifest(path) if role == "query"]
        if not rows:
            raise SiteError(f"{path}: manifest has no 'query' rows")
    else:
        groups, problems = _scan_folder(path)
        _fail(path, problems)
        rows = [(p, inst) for inst, paths in groups.items() for p in paths]
        if not rows:
            raise SiteError(f"{path}: no query images found")
    return [
        Query(p, frozenset() if inst == UNKNOWN else frozenset(inst.split("|"))) for p, inst in rows
    ]
