"""Frame sources: a camera index, a video file, an RTSP/HTTP URL, or any iterator of frames.

Live sources (cameras, URLs) are read by a capture thread that keeps only the newest frame,
so a slow recognizer never accumulates latency, and that reconnects with exponential
backoff when the stream drops. Files are read frame by frame by default (every frame,
deterministic); ``realtime=True`` paces a file at its own fps and drops stale frames, as a
live camera would. Every frame carries ``t``: seconds since the stream started (from the
frame's position for files, from the clock for live sources).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from runtime.errors import SitelensError
from runtime.image.image_io import to_rgb_uint8

log = logging.getLogger("sitelens")


@dataclass
class Frame:
    image: np.ndarray  # RGB uint8
    t: float           # seconds since the stream started
    index: int         # frame number in the source (gaps = dropped frames)


class FrameSource:
    """Iterate over ``Frame`` objects; ``close()`` stops any capture thread."""

    dropped = 0

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class IterableSource(FrameSource):
    """Frames from any iterable of RGB arrays (t = index / fps) or (t, array) pairs."""

    def __init__(self, frames: Iterable, fps: float = 30.0):
        self.frames, self.fps = frames, fps
        self._stop = threading.Event()

    def __iter__(self):
        for i, item in enumerate(self.frames):
            if self._stop.is_set():
                return
            t, img = item if isinstance(item, tuple) else (i / self.fps, item)
            yield Frame(to_rgb_uint8(img), float(t), i)

    def close(self):
        self._stop.set()


class FileSource(FrameSource):
    """A video file read frame by frame. The capture is released by the thread that reads it (when
    its iteration ends), or by ``close`` when nobody is reading: releasing it from another thread
    while that one is inside ``read()`` crashes OpenCV's decoder."""

    def __init__(self, path: str, realtime: bool = False):
        self.path = path
        self.cap = cv2.VideoCapture(path)
        if not self.cap.isOpened():
            raise SitelensError(f"{path}: cannot open video (missing file or unsupported codec)")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.realtime = realtime
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reading = False
        self._released = False

    def __iter__(self):
        with self._lock:
            if self._released or self._reading:
                return
            self._reading = True
        try:
            index, start = 0, time.monotonic()
            while not self._stop.is_set():
                if self.realtime:  # skip frames the consumer was too slow for, as a live camera would
                    due = int((time.monotonic() - start) * self.fps)
                    while index < due and not self._stop.is_set() and self.cap.grab():
                        index += 1
                        self.dropped += 1
                ok, bgr = self.cap.read()
                if not ok:
                    return
                yield Frame(to_rgb_uint8(bgr, self.path, bgr=True), index / self.fps, index)
                index += 1
        finally:
            with self._lock:
                self._reading = False
                self._release()

    def _release(self):  # with self._lock held
        if not self._released:
            self._released = True
            self.cap.release()

    def close(self):
        """Stop reading; safe from any thread (the reader releases the capture when it stops)."""
        self._stop.set()
        with self._lock:
            if not self._reading:
                self._release()


class LiveSource(FrameSource):
    """A camera or network stream read by a thread that always keeps the newest frame."""

    WARN_EVERY = 10.0  # seconds between two warnings about the same failing source

    def __init__(self, source, backoff: tuple[float, float] = (0.5, 8.0), max_retries: int | None = None,
                 open_fn=cv2.VideoCapture):
        self.source, self.backoff, self.max_retries, self.open_fn = source, backoff, max_retries, open_fn
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._stop = threading.Event()
        self._failed: str | None = None
        self._start = time.monotonic()
        self._warned, self._held = -float("inf"), 0
        self._thread = threading.Thread(target=self._run, name=f"sitelens-capture-{source}", daemon=True)
        self._thread.start()

    def _open(self):
        cap = self.open_fn(self.source)
        return cap if cap is not None and cap.isOpened() else None

    def _run(self):
        """Open, read, and on any failure (cannot open, or opens but delivers no frame: a server
        that accepts and drops) wait ``delay`` before trying again, doubling it up to
        ``backoff[1]``; the delay resets only once a frame arrives."""
        delay, retries, index, cap = self.backoff[0], 0, 0, None
        while not self._stop.is_set():
            if cap is None:
                cap = self._open()
                if cap is None:
                    if not self._retry(retries := retries + 1, f"unavailable; reconnecting in {delay:.1f} s"):
                        return
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
            ok, bgr = cap.read()
            if not ok:
                cap.release()
                cap = None
                if not self._retry(retries := retries + 1, f"dropped; reconnecting in {delay:.1f} s"):
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            if retries:
                log.warning("sitelens: %s reconnected", self.source)
            delay, retries = self.backoff[0], 0
            frame = Frame(to_rgb_uint8(bgr, str(self.source), bgr=True), time.monotonic() - self._start, index)
            index += 1
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1  # the consumer never saw the previous one
                self._latest = frame
                self._cond.notify_all()
        if cap is not None:
            cap.release()

    def _retry(self, retries: int, what: str) -> bool:
        """Log the failure (at most one warning per ``WARN_EVERY`` seconds, with a count of the ones
        held back); False (and the stream fails) once ``max_retries`` is exceeded."""
        if self.max_retries is not None and retries > self.max_retries:
            self._fail(f"{self.source}: cannot open camera/stream after {retries - 1} retries")
            return False
        now = time.monotonic()
        if now - self._warned >= self.WARN_EVERY:
            held = f" ({self._held} similar warnings held back)" if self._held else ""
            log.warning("sitelens: %s %s%s", self.source, what, held)
            self._warned, self._held = now, 0
        else:
            self._held += 1
        return True

    def _fail(self, message: str):
        with self._cond:
            self._failed = message
            self._cond.notify_all()

    def __iter__(self):
        while not self._stop.is_set():
            with self._cond:
                while self._latest is None and self._failed is None and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._failed:
                    raise SitelensError(self._failed)
                frame, self._latest = self._latest, None
            if frame is not None:
                yield frame

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)


def open_source(source, realtime: bool = False, fps: float = 30.0, **live_kw) -> FrameSource:
    """``0``/``"0"`` = camera index; an existing path = video file; a URL = network stream;
    anything iterable = frames."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return LiveSource(int(source), **live_kw)
    if isinstance(source, (str, Path)):
        text = str(source)
        if "://" in text:
            return LiveSource(text, **live_kw)
        if not Path(text).exists():
            raise SitelensError(f"{text}: no such video file")
        return FileSource(text, realtime=realtime)
    return IterableSource(source, fps)
