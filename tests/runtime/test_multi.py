"""Several works in one frame: every work that verifies, with its region; eval --multi; the
camera's choice of the one to announce."""
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from runtime.recognizer import Recognizer
from runtime.stream.stream import pick_work
from runtime.thresholds import Thresholds
from sdk.cli import main
from tests.conftest import poster, write_rgb


@pytest.fixture(scope="module")
def wall_of_posters(tmp_path_factory, tiny_net):
    from export.bundler import build_bundle

    root = tmp_path_factory.mktemp("multi")
    for k in range(11, 15):   # small catalogue images: two works side by side in a frame appear at a similar scale
        write_rgb(root / "site" / f"poster_{k}" / "a.jpg", poster(k, 240, 180))
    bundle = build_bundle(root / "site", root / "posters.sitelens", tiny_net, size=64, progress=False,
                          calibrate=False, upright=True)
    rec = Recognizer.open(bundle)       # no calibration in this test: a fixed verification bar, saved with it
    rec.manifest.thresholds = Thresholds.single(support=15, fundamental=80)
    rec.save()
    wall = np.full((500, 900, 3), (205, 200, 190), np.uint8)
    for k, x0 in ((11, 60), (12, 520)):               # two posters side by side, a little smaller
        wall[60:60 + 380, x0:x0 + 285] = cv2.resize(poster(k, 240, 180), (285, 380), interpolation=cv2.INTER_LINEAR)
    frame = write_rgb(root / "queries" / "wall.jpg", wall, quality=95)
    (root / "multi.csv").write_text("path,instance,role\nqueries/wall.jpg,poster_11|poster_12,query\n")
    return bundle, frame, root / "multi.csv"


def _recognizer(bundle):
    return Recognizer.open(bundle)


def test_every_work_that_verifies_with_its_region(wall_of_posters):
    bundle, frame, _ = wall_of_posters
    rec = _recognizer(bundle)
    single = rec.recognize(frame)
    r = rec.recognize(frame, multi=True)
    assert {w.instance for w in r.works} == {"poster_11", "poster_12"}
    assert r.instance == single.instance in ("poster_11", "poster_12")       # the single answer is unchanged
    centres = {w.instance: np.mean(np.float64(w.evidence.region), axis=0) for w in r.works}
    assert 60 < centres["poster_11"][0] < 345 < 520 < centres["poster_12"][0] < 805   # each where it hangs
    assert all(60 < c[1] < 440 for c in centres.values())
    out = r.to_dict()["works"]
    assert {w["instance"] for w in out} == {"poster_11", "poster_12"} and all(len(w["region"]) == 4 for w in out)
    assert single.works is None and "works" not in single.to_dict()


def test_eval_multi_and_the_work_the_camera_announces(wall_of_posters):
    bundle, frame, manifest = wall_of_posters
    r = CliRunner().invoke(main, ["-q", "eval", str(bundle), str(manifest), "--multi", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["queries"] == 1 and out["multi_recall"] == 1.0 and out["multi_precision"] == 1.0
    rec = _recognizer(bundle)
    works = rec.recognize(frame, multi=True).works
    left = next(w for w in works if w.instance == "poster_11")
    right = next(w for w in works if w.instance == "poster_12")
    assert pick_work(works, (500, 400), "centre") is left                 # the frame's centre at x = 200
    assert pick_work(works, (500, 1400), "centre") is right               # ... at x = 700
    assert pick_work(works, (500, 900), "largest") in works


def test_parts_of_the_frame_looked_at_again():
    from runtime.recognizer import free_strip, wide_halves

    assert wide_halves((400, 1000)) == [(0, 0, 500, 400), (500, 0, 1000, 400)]
    assert wide_halves((1000, 400)) == [(0, 0, 400, 500), (0, 500, 400, 1000)]
    assert wide_halves((600, 800)) == []
    # a work on the left third: the band to its right is looked at; one filling the frame: none
    assert free_strip((400, 1000), [((20, 30), (300, 30), (300, 380), (20, 380))]) == (300, 0, 1000, 400)
    assert free_strip((400, 1000), [((0, 0), (990, 0), (990, 400), (0, 400))]) is None
    assert free_strip((400, 1000), []) is None
