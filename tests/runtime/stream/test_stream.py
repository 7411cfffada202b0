"""Streams over real OpenCV video files written by the test."""
import json
import threading
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from runtime.errors import SitelensError
from runtime.image.image_io import load_image
from runtime.recognizer import Recognizer
from runtime.stream import DecisionLayer, RecognitionStream
from runtime.stream.capture import LiveSource
from sdk.cli import main
from training.simulator import random_wall

FPS = 10.0


def _walkthrough(path, tiny_site, plan):
    """plan: [(instance or None, seconds)] -> MJPG AVI at 10 fps, 320x240."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (320, 240))
    assert writer.isOpened()
    wall = random_wall(rng, 240, 320)
    for inst, secs in plan:
        art = cv2.resize(load_image(tiny_site / inst / "a.jpg"), (320, 240)) if inst else wall
        for _ in range(int(secs * FPS)):
            shake = np.float32([[1, 0, rng.normal(0, 2)], [0, 1, rng.normal(0, 2)]])
            frame = cv2.warpAffine(art, shake, (320, 240), borderMode=cv2.BORDER_REPLICATE)
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory, tiny_site):
    plan = [(None, 1.0), ("blue_rhythm", 1.5), (None, 1.0), ("the_orchard", 1.5)]
    return _walkthrough(tmp_path_factory.mktemp("video") / "walk.avi", tiny_site, plan)


def test_file_stream_events_and_times(tiny_bundle, video):
    rec = Recognizer.open(tiny_bundle)
    seen = []
    stream = RecognitionStream(rec, str(video), DecisionLayer(k=3, n=5), on_event=seen.append)
    events = [e.to_dict() for e in stream]
    assert [e.instance for e in seen] == [e["instance"] for e in events]
    kinds = [(e["event"], e["instance"]) for e in events]
    assert kinds == [("unknown", None), ("recognized", "blue_rhythm"), ("lost", "blue_rhythm"),
                     ("unknown", None), ("recognized", "the_orchard")]
    first = events[1]
    assert 1.0 <= first["t"] <= 1.5 and first["metadata"]["title"] == "Blue Rhythm"
    assert stream.stats()["frames"] == 50


def test_camera_cli_prints_json_lines(tiny_bundle, video, tmp_path):
    """... and with ``--log``, verified answers go to the visitor log, one per work per visit
    (10 s of stream time), without the frames."""
    from runtime.visitor_log import read_log

    r = CliRunner().invoke(main, ["-q", "camera", str(tiny_bundle), "--source", str(video), "--stats",
                                  "--log", str(tmp_path / "log")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.strip().splitlines()]
    assert {"event", "instance", "score", "t"} <= set(lines[0])
    assert [x["event"] for x in lines][-1] == "stats"
    assert any(x["event"] == "recognized" and x["instance"] == "the_orchard" for x in lines)
    entries, problems = read_log(tmp_path / "log")
    works = [e.instance for e in entries]
    assert not problems and "the_orchard" in works and len(works) == len(set(works))


def test_iterator_source_and_stop(tiny_bundle, tiny_site):
    rec = Recognizer.open(tiny_bundle)
    art = load_image(tiny_site / "red_composition" / "a.jpg")

    def frames():
        while True:
            yield art

    stream = RecognitionStream(rec, frames(), DecisionLayer(k=2, n=3), fps=5.0)
    it = iter(stream)
    ev = next(it)
    assert ev.event == "recognized" and ev.instance == "red_composition" and ev.t == pytest.approx(0.2)
    stream.stop()


def test_realtime_file_drops_stale_frames(tiny_bundle, video):
    rec = Recognizer.open(tiny_bundle)
    stream = RecognitionStream(rec, str(video), realtime=True)
    slow = lambda frame, r: time.sleep(0.25)  # noqa: E731 - a recognizer slower than the camera
    stream.on_frame = slow
    stream.run()
    s = stream.stats()
    assert s["dropped"] > 0 and s["frames"] + s["dropped"] <= 51


def test_live_source_reconnects_with_backoff(video, caplog):
    """A real OpenCV capture of a file: its end is a dropped stream, re-opened with backoff."""
    opens = []

    def open_real(source):
        opens.append(source)
        return cv2.VideoCapture(source)

    src = LiveSource(str(video), backoff=(0.01, 0.05), open_fn=open_real)
    got = 0
    for frame in src:
        got += 1
        assert frame.image.shape == (240, 320, 3)
        if len(opens) >= 2 and got >= 3:
            break
        time.sleep(0.002)
    src.close()
    assert len(opens) >= 2
    assert any("dropped; reconnecting" in r.message for r in caplog.records)


def test_live_source_gives_up_with_clear_error():
    src = LiveSource("/nonexistent/cam.avi", backoff=(0.01, 0.02), max_retries=2)
    with pytest.raises(SitelensError, match="cam.avi: cannot open"):
        next(iter(src))
    src.close()
    with pytest.raises(SitelensError, match="no such video"):
        RecognitionStream(None, "/nonexistent/video.mp4")


STOP_CYCLES = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from runtime.recognizer import Recognizer
from runtime.stream import RecognitionStream
from runtime.stream.capture import FileSource
rec = Recognizer.open(sys.argv[2])
for i in range(300):
    if i % 2:
        stream = RecognitionStream(rec, sys.argv[3]).start()
        time.sleep(0.001 * (i % 7))
        stream.stop()
    else:                       # the bare source: a reader thread, closed from this one
        src = FileSource(sys.argv[3])
        reader = threading.Thread(target=lambda: [None for _ in src])
        reader.start()
        time.sleep(0.001 * (i % 5))
        src.close()
        reader.join(5)
print("ok")
"""


def test_start_stop_cycles_on_a_video_file_do_not_crash(tmp_path):
    """Stopping a stream (or closing a file source) while its reader is inside cap.read() must not
    release the capture under it: 300 cycles in a child process, which must exit cleanly."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.toy_bundle import make_toy_bundle, toy_image

    bundle = make_toy_bundle(tmp_path / "toy.sitelens", n_instances=3)
    path = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (160, 120))
    for k in range(20):
        writer.write(cv2.resize(toy_image(k % 3), (160, 120)))
    writer.release()
    root = Path(__file__).resolve().parents[3]
    r = subprocess.run([sys.executable, "-c", STOP_CYCLES, str(root), str(bundle), str(path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])


def test_a_source_that_opens_but_never_delivers_backs_off(tmp_path, caplog):
    """A real capture that opens and reads nothing (an AVI with no frames: a server that accepts
    and drops) is retried with growing delays, not a million times a second, and warned about
    once per interval."""
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (160, 120)).release()
    opens = []

    def open_real(source):
        opens.append(time.monotonic())
        return cv2.VideoCapture(source)

    with caplog.at_level("WARNING", logger="sitelens"):
        src = LiveSource(str(empty), backoff=(0.05, 0.2), open_fn=open_real)
        time.sleep(1.2)
        src.close()
    assert 3 <= len(opens) <= 12                       # 0.05, 0.1, 0.2, 0.2, ... s apart
    assert np.diff(opens).max() > 0.15
    warnings = [r for r in caplog.records if "dropped; reconnecting" in r.getMessage()]
    assert 1 <= len(warnings) <= 2
