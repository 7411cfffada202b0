"""RecognitionStream: frames -> recognizer -> decision layer -> events (iterator or callbacks).

    stream = RecognitionStream(recognizer, "0")          # camera 0
    for event in stream:                                 # blocks; stream.stop() from elsewhere
        print(event.to_dict())

    stream = RecognitionStream(recognizer, "walk.mp4", on_event=print)
    stream.start(); ...; stream.stop()                   # background thread
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

from runtime.recognizer import Recognizer
from runtime.stream.capture import FrameSource, open_source
from runtime.stream.decision import DecisionLayer, Event


def pick_work(works, shape: tuple[int, int], how: str):
    """The work to announce among several in a frame: nearest the centre, or the largest region
    (works without a region count as far and small)."""
    import numpy as np

    h, w = shape

    def centre_distance(c):
        r = c.evidence.region if c.evidence is not None else None
        return np.inf if r is None else float(np.hypot(*(np.mean(np.float64(r), axis=0) - (w / 2, h / 2))))

    def area(c):
        import cv2

        r = c.evidence.region if c.evidence is not None else None
        return 0.0 if r is None else abs(float(cv2.contourArea(np.float32(r))))

    return min(works, key=centre_distance) if how == "centre" else max(works, key=area)


class RecognitionStream:
    def __init__(self, recognizer: Recognizer, source, decision: DecisionLayer | None = None,
                 on_event: Callable[[Event], None] | None = None, on_frame: Callable | None = None,
                 realtime: bool = False, max_seconds: float | None = None, multi: str | None = None,
                 visitor_log=None, **source_kw):
        """``multi``: when a frame shows several works, announce the one nearest the frame's centre
        ("centre") or the one that fills most of it ("largest"); None: the best-supported one.
        ``visitor_log``: a ``runtime.visitor_log.VisitorLog`` that records verified answers
        (opt-in; for ``sitelens learn``)."""
        if multi not in (None, "centre", "largest"):
            raise ValueError(f"multi must be None, 'centre' or 'largest', got {multi!r}")
        self.recognizer = recognizer
        self.multi = multi
        self.visitor_log = visitor_log
        self.source: FrameSource = open_source(source, realtime=realtime, **source_kw)
        self.decision = decision or DecisionLayer()
        self.on_event, self.on_frame = on_event, on_frame
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self.busy_s = 0.0
        self.wall_s = 0.0

    def __iter__(self) -> Iterator[Event]:
        start = time.perf_counter()
        frames = iter(self.source)
        try:
            for frame in frames:
                if self._stop.is_set() or (self.max_seconds is not None and frame.t > self.max_seconds):
                    break
                t0 = time.perf_counter()
                rec = self.recognizer.recognize(frame.image, k=2, multi=self.multi is not None)
                self.busy_s += time.perf_counter() - t0
                self.frames += 1
                if self.visitor_log is not None:
                    self.visitor_log.record(self.recognizer, frame.image, rec, t=frame.t)
                if self.on_frame:
                    self.on_frame(frame, rec)
                instance, score = rec.instance, rec.score
                if self.multi and rec.works:
                    chosen = pick_work(rec.works, frame.image.shape[:2], self.multi)
                    instance, score = chosen.instance, chosen.score
                for ev in self.decision.update(instance, score, frame.t, frame.index):
                    if ev.instance:
                        ev.metadata = self.recognizer.metadata.get(ev.instance, {})
                    if self.on_event:
                        self.on_event(ev)
                    yield ev
        finally:
            self.wall_s = time.perf_counter() - start
            if hasattr(frames, "close"):
                frames.close()  # ends the source's iteration here, in the thread that read it
            self.source.close()

    def run(self) -> list[Event]:
        return list(self)

    def start(self) -> "RecognitionStream":
        self._thread = threading.Thread(target=self.run, name="sitelens-stream", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop cleanly, from any thread: the capture thread ends and the source is released (by the
        thread that reads it)."""
        self._stop.set()
        self.source.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict:
        return {"frames": self.frames, "dropped": self.source.dropped,
                "fps": round(self.frames / self.wall_s, 2) if self.wall_s else None,
                "ms_per_frame": round(1000 * self.busy_s / self.frames, 2) if self.frames else None}
