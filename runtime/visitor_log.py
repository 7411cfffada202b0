"""An opt-in log of frames the device accepted by geometric verification: the rows the work's part
of the frame would add as a reference of it (``reference_rows.image_rows``: global descriptor and
local features per quarter turn), the answer and its evidence. ``sitelens learn`` turns the
strongest entries into extra references (``export/learn.py``): real light, real glass, real angles.

Only the work is kept, never the room around it: the rows are made from the frame cropped to the
work's outline (the verified homography's projection of the reference, clipped to the frame). A
whole frame as a reference would carry its background (the same desk, wall or street in many
visitors' photos) and then match other works' and unknown objects' photos taken there. Answers
verified without an outline (3-D evidence alone) and outlines under ``MIN_CROP`` pixels a side
are not logged.

Privacy and disk: descriptors and keypoints only, never the frame itself unless ``keep_images``
(then a JPEG of the work's part of it); the folder holds at most ``max_bytes`` of entries, the
oldest deleted first; one entry per work per ``min_interval_s`` (a visitor standing before a
painting is one entry, not thirty a second).

Format: one ``*.entry`` file per frame, a zip of ``entry.json`` and plain ``.npy`` members
(``descriptors``, ``rotations``, ``kpts_<i>``, ``desc_<i>`` for row i, ``chroma_<i>`` too when the
bundle stores its keypoints' chroma; ``frame``: the whole frame's
global descriptor, as recognition searched it), written atomically (``runtime.bundle.atomic``), so
a reader sees whole entries or none. ``read_log`` treats the folder as hostile: file and member
sizes are bounded before anything is parsed, only known members are read, no pickles.

Thread safety: ``record`` may be called from several threads (one lock); ``read_log`` may run while
a device writes (it sees the entries renamed into place before it listed the folder).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.bundle.atomic import atomic_write
from runtime.bundle.npy import npy_bytes, npy_load
from runtime.bundle.zip_reader import BoundedZip
from runtime.errors import BundleError, SitelensError
from runtime.reference_rows import ImageRows

log = logging.getLogger("sitelens")

SUFFIX = ".entry"
MAX_ENTRY_BYTES = 16 << 20       # an entry is a few hundred KB (four rows of local features)
MAX_ENTRIES = 100_000
MIN_CROP = 64                    # pixels a side of the work's part of the frame worth describing
_MEMBER = re.compile(r"^(entry\.json|descriptors\.npy|rotations\.npy|frame\.npy|(kpts|desc|chroma)_[0-9]{1,2}\.npy|"
                     r"image\.jpg)$")
MAX_ENTRY_MEMBERS = 5 + 3 * 100   # what _MEMBER allows: four single members, the image, 100 rows' features


@dataclass
class LogEntry:
    """One logged frame: its rows (as ``Recognizer.add`` would make them) and the answer it got."""
    path: Path
    instance: str
    score: float
    margin: float
    evidence: dict            # the accepted work's verification evidence (``Evidence.to_dict``)
    site: dict                # the bundle that answered: site id, release, model fingerprint
    time: float               # seconds since 1970 when it was recorded
    rows: ImageRows
    frame: np.ndarray | None = None   # the whole frame's global descriptor (what a visitor's photo looks like)
    digest: str = ""                  # sha256 of the entry file, as read
    has_image: bool = False           # holds a JPEG of the work's part of the frame (``entry_image``)


def work_crop(image: np.ndarray, region) -> np.ndarray | None:
    """The part of ``image`` inside the bounding box of ``region`` (the work's outline, (x, y)
    corners in the image's pixels) clipped to the image; None without an outline, or when the
    box is under ``MIN_CROP`` pixels a side."""
    if region is None:
        return None
    pts = np.asarray(region, np.float64).reshape(-1, 2)
    if not len(pts) or not np.all(np.isfinite(pts)):
        return None
    h, w = image.shape[:2]
    x0, y0 = (int(np.clip(np.floor(v), 0, n)) for v, n in zip(pts.min(axis=0), (w, h)))
    x1, y1 = (int(np.clip(np.ceil(v), 0, n)) for v, n in zip(pts.max(axis=0), (w, h)))
    if x1 - x0 < MIN_CROP or y1 - y0 < MIN_CROP:
        return None
    return np.ascontiguousarray(image[y0:y1, x0:x1])


class VisitorLog:
    """``log.record(recognizer, image, recognition)`` after each answer; returns the entry written,
    or None (only accepted answers verified with the work's outline are logged, at most one per
    work per ``min_interval_s``)."""

    def __init__(self, folder: str | Path, max_bytes: int = 64 << 20, keep_images: bool = False,
                 min_interval_s: float = 10.0):
        if max_bytes < MAX_ENTRY_BYTES // 16:
            raise SitelensError(f"visitor log {folder}: max_bytes {max_bytes} is too small for one entry")
        self.folder = Path(folder)
        self.max_bytes, self.keep_images, self.min_interval_s = int(max_bytes), keep_images, float(min_interval_s)
        self._last: dict[str, float] = {}
        self._seq = 0
        self._lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SitelensError(f"visitor log {self.folder}: cannot create the folder ({exc.strerror})") from None

    def record(self, rec, image: np.ndarray, result, t: float | None = None) -> Path | None:
        """``t``: the frame's time in seconds (a stream's position; default: the clock), for
        ``min_interval_s``."""
        if not (result.accepted and result.verified and result.instance and result.verification):
            return None
        evidence = result.verification.get(result.instance) or {}
        crop = work_crop(image, evidence.get("region"))
        if crop is None:
            return None
        now = time.time()
        t = now if t is None else float(t)
        with self._lock:
            if t - self._last.get(result.instance, -np.inf) < self.min_interval_s:
                return None
            self._last[result.instance] = t
        rows = rec.rows_of(crop)
        m = rec.manifest
        meta = {"instance": result.instance, "score": float(result.score), "margin": float(result.margin),
                "evidence": evidence, "time": now, "crop": [int(crop.shape[1]), int(crop.shape[0])],
                "site": {"name": m.site.name, "site_id": m.site.site_id, "release": m.site.release,
                         "fingerprint": m.model.fingerprint}}
        members = {"entry.json": json.dumps(meta, sort_keys=True).encode(),
                   "descriptors.npy": npy_bytes(np.stack(rows.descriptors).astype(np.float32)),
                   "rotations.npy": npy_bytes(np.asarray(rows.rotations, np.int8)),
                   "frame.npy": npy_bytes(np.asarray(rec.embed(image), np.float32).ravel())}
        for i, row in enumerate(rows.features or []):
            members[f"kpts_{i}.npy"], members[f"desc_{i}.npy"] = npy_bytes(row[0]), npy_bytes(row[1])
            if len(row) > 2:
                members[f"chroma_{i}.npy"] = npy_bytes(row[2])
        if self.keep_images:
            import cv2

            ok, jpg = cv2.imencode(".jpg", np.ascontiguousarray(crop[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                members["image.jpg"] = jpg.tobytes()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        with self._lock:
            self._seq += 1   # names sort in the order entries were written (by this process)
            name = f"{int(now * 1000):015d}-{os.getpid()}-{self._seq:08d}{SUFFIX}"
            try:
                atomic_write(self.folder / name, lambda fh: fh.write(buf.getvalue()))
            except OSError as exc:   # a full disk must not stop recognition: the entry is dropped
                log.warning("sitelens: visitor log %s: entry not written (%s)", self.folder, exc.strerror)
                return None
            self._trim()
        return self.folder / name

    def _trim(self) -> None:
        """Oldest entries deleted until the folder's entries fit ``max_bytes``."""
        entries = sorted(self.folder.glob("*" + SUFFIX))
        sizes = [p.stat().st_size for p in entries]
        total = sum(sizes)
        for path, size in zip(entries, sizes):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


def _read_entry(path: Path) -> LogEntry:
    size = path.stat().st_size
    if size > MAX_ENTRY_BYTES:
        raise BundleError(f"{path}: {size} bytes, more than a log entry holds ({MAX_ENTRY_BYTES})")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: not a readable visitor-log entry ({exc})") from None
    if len(raw) > MAX_ENTRY_BYTES:   # grew since it was measured
        raise BundleError(f"{path}: more bytes than a log entry holds ({MAX_ENTRY_BYTES})")
    with BoundedZip(io.BytesIO(raw), str(path), "visitor-log entry", _MEMBER.match,
                    ("entry.json", "descriptors.npy"), MAX_ENTRY_MEMBERS) as z:
        if z.declared_total() > MAX_ENTRY_BYTES:
            raise BundleError(f"{path}: members larger than a log entry holds")
        names = z.names()
        data = {n: z.read(n, MAX_ENTRY_BYTES) for n in sorted(names) if n != "image.jpg"}
    try:
        meta = json.loads(data["entry.json"])
        instance, site = meta["instance"], meta.get("site") or {}
        if not isinstance(instance, str) or not isinstance(site, dict):
            raise TypeError("instance or site of the wrong type")
        score, margin, when = float(meta["score"]), float(meta["margin"]), float(meta["time"])
        evidence = meta.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise TypeError("evidence is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path}: entry.json is not a log entry ({exc})") from None
    descriptors = npy_load(data["descriptors.npy"], "descriptors.npy", str(path))
    rotations = npy_load(data["rotations.npy"], "rotations.npy", str(path)) \
        if "rotations.npy" in data else np.zeros(len(descriptors), np.int8)
    if descriptors.ndim != 2 or descriptors.dtype != np.float32 or len(rotations) != len(descriptors):
        raise BundleError(f"{path}: descriptors of shape {descriptors.shape} ({descriptors.dtype}) and "
                          f"{len(rotations)} rotations do not make rows")
    features = None
    if "kpts_0.npy" in data:
        features = []
        for i in range(len(descriptors)):
            if f"kpts_{i}.npy" not in data or f"desc_{i}.npy" not in data:
                raise BundleError(f"{path}: row {i} has no local features")
            row = tuple(npy_load(data[f"{part}_{i}.npy"], f"{part}_{i}.npy", str(path))
                        for part in ("kpts", "desc", "chroma") if f"{part}_{i}.npy" in data)
            if len(row) == 3 and (row[2].dtype != np.int8 or row[2].shape != (len(row[0]), 2)):
                raise BundleError(f"{path}: chroma_{i}.npy is {row[2].dtype} {row[2].shape}, not int8 "
                                  f"({len(row[0])}, 2)")
            features.append(row)
    frame = None
    if "frame.npy" in data:
        frame = npy_load(data["frame.npy"], "frame.npy", str(path))
        if frame.shape != (descriptors.shape[1],) or frame.dtype != np.float32:
            raise BundleError(f"{path}: frame descriptor of shape {frame.shape} ({frame.dtype}), rows of width "
                              f"{descriptors.shape[1]}")
    rows = ImageRows(list(descriptors), [int(r) for r in rotations], features)
    return LogEntry(path, instance, score, margin, evidence, site, when, rows, frame, hashlib.sha256(raw).hexdigest(),
                    "image.jpg" in names)


def entry_image(entry: LogEntry) -> bytes:
    """The JPEG of the work's part of ``entry``'s frame (logged with ``keep_images``), read again
    from its file: refused when the file is no longer the one ``read_log`` read (its sha256), when
    the member is larger than an entry holds, or when it does not decode as an image. Images are
    not kept in memory by ``read_log``: a log holds up to ``MAX_ENTRIES`` of them."""
    from runtime.image.image_io import decode_image

    if not entry.has_image:
        raise BundleError(f"{entry.path}: logged without its image (record with --log-images)")
    try:
        raw = entry.path.read_bytes() if entry.path.stat().st_size <= MAX_ENTRY_BYTES else b""
    except OSError as exc:
        raise BundleError(f"{entry.path}: not a readable visitor-log entry ({exc.strerror})") from None
    if hashlib.sha256(raw).hexdigest() != entry.digest:
        raise BundleError(f"{entry.path}: changed since the log was read")
    with BoundedZip(io.BytesIO(raw), str(entry.path), "visitor-log entry", _MEMBER.match, ("image.jpg",),
                    MAX_ENTRY_MEMBERS) as z:
        data = z.read("image.jpg", MAX_ENTRY_BYTES)
    decode_image(data, f"{entry.path}:image.jpg")   # raises ImageError naming the entry
    return data


def read_log(folder: str | Path) -> tuple[list[LogEntry], list[str]]:
    """(entries oldest first, problems): an entry that cannot be read is reported by name, never
    half used."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SitelensError(f"{folder}: no such visitor-log folder")
    paths = sorted(folder.glob("*" + SUFFIX))
    if len(paths) > MAX_ENTRIES:
        raise SitelensError(f"{folder}: {len(paths)} entries, more than a log holds ({MAX_ENTRIES})")
    entries, problems = [], []
    for path in paths:
        try:
            entries.append(_read_entry(path))
        except BundleError as exc:
            problems.append(str(exc))
    return entries, problems
