"""Zips from outside, read with bounded memory and only known members: the one reader of bundles
(``runtime/bundle/format.py``) and visitor-log entries (``runtime/visitor_log.py``), both treated
as hostile input.

The central directory is checked before anything is inflated: the number of entries, duplicate
names, unknown names, required names and compression methods (stored and deflated only: others
are slower to bound); then members are inflated one at a time, never more than the size they
are allowed (``BoundedZip.read``). Every problem is a ``BundleError`` that names the file.
"""
from __future__ import annotations

import collections
import struct
import zipfile
import zlib
from typing import Callable

from runtime.errors import BundleError

ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError,
              RuntimeError, ValueError, struct.error, KeyError, OverflowError, UnicodeDecodeError, IndexError)
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def listing(names, limit: int = 10) -> str:
    """Names for an error message: escaped (no terminal control characters), at most ``limit``."""
    names = list(names)
    shown = ", ".join(ascii(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class BoundedZip:
    """``source``: a path or a binary file object; ``where``: how errors name it (the path);
    ``kind``: what it must be ("sitelens bundle", "visitor-log entry"); ``known(name)``: whether a
    member name belongs in one; ``required``: names it must hold; ``max_members``: more entries
    than this and it is not one (checked before the names are looked at).

    Not thread-safe: one reader per thread (``zipfile`` shares the file position)."""

    def __init__(self, source, where: str, kind: str, known: Callable[[str], bool], required=(),
                 max_members: int = 64):
        self.where, self.kind = where, kind
        try:
            self.zf = zipfile.ZipFile(source)
            infos = self.zf.infolist()
        except zipfile.BadZipFile as exc:
            raise BundleError(f"{where}: not a {kind} or truncated file ({exc})") from None
        except ZIP_ERRORS as exc:
            raise BundleError(f"{where}: corrupt {kind} ({type(exc).__name__}: {exc})") from None
        try:
            if len(infos) > max_members:
                raise BundleError(f"{where}: not a {kind} ({len(infos)} zip entries; a {kind} has at most "
                                  f"{max_members})")
            counts = collections.Counter(i.filename for i in infos)
            dupes = sorted(n for n, c in counts.items() if c > 1)
            if dupes:
                raise BundleError(f"{where}: corrupt {kind} (duplicate members {listing(dupes)})")
            missing = [n for n in required if n not in counts]
            if missing:
                raise BundleError(f"{where}: not a {kind} (no {', '.join(missing)})")
            unknown = sorted(n for n in counts if not known(n))
            if unknown:
                raise BundleError(f"{where}: not a {kind} (unknown members {listing(unknown)})")
            odd = sorted(i.filename for i in infos if i.compress_type not in COMPRESSIONS)
            if odd:
                raise BundleError(f"{where}: members {listing(odd)} use a compression sitelens does not read "
                                  "(only stored and deflated)")
        except BundleError:
            self.zf.close()
            raise
        self.infos = {i.filename: i for i in infos}

    def names(self) -> set[str]:
        return set(self.infos)

    def declared_total(self) -> int:
        """Bytes all members say they inflate to (what ``read`` holds each of them to)."""
        return sum(i.file_size for i in self.infos.values())

    def read(self, name: str, limit: int, declared: int | None = None) -> bytes:
        """The bytes of ``name``, refused when its header or its content exceeds ``limit`` bytes or
        differs from ``declared`` (the size a manifest lists); CRC errors name the member."""
        info = self.infos[name]
        if declared is not None and info.file_size != declared:
            raise BundleError(f"{self.where}: member {name} is corrupt or modified (the zip says {info.file_size} "
                              f"bytes, the manifest {declared})")
        if info.file_size > limit:
            raise BundleError(f"{self.where}: member {name} claims {info.file_size} bytes (limit {limit}); "
                              "refusing to inflate it")
        try:
            with self.zf.open(info) as fh:
                data = fh.read(limit + 1)
        except zipfile.BadZipFile as exc:
            raise BundleError(f"{self.where}: member {name} is corrupt ({exc})") from None
        except ZIP_ERRORS as exc:
            raise BundleError(f"{self.where}: member {name} is corrupt ({type(exc).__name__}: {exc})") from None
        if len(data) > limit or len(data) != info.file_size:
            raise BundleError(f"{self.where}: member {name} is corrupt (its content does not match its zip header)")
        return data

    def close(self) -> None:
        self.zf.close()

    def __enter__(self) -> "BoundedZip":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
