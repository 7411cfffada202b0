"""The opt-in visitor log: what it records, its bounds, and entries treated as hostile."""
import json
import zipfile

import numpy as np
import pytest

from runtime.errors import SitelensError
from runtime.recognizer import Recognizer
from runtime.visitor_log import VisitorLog, read_log


def visitor_frames(site_root, seed: int = 0):
    """(work, RGB frame): each work's catalogue image on a wall, slightly turned in depth, as a
    visitor's phone sees it."""
    from training.simulator import random_wall
    from training.simulator.geometry import perspective
    from runtime.image.image_io import load_image

    rng = np.random.default_rng(seed)
    out = []
    for folder in sorted(p for p in site_root.iterdir() if p.is_dir()):
        art = perspective(rng, load_image(folder / "a.jpg"), 0.06)
        wall = random_wall(rng, 360, 480)
        h, w = min(art.shape[0], 330), min(art.shape[1], 440)
        wall[20:20 + h, 30:30 + w] = art[:h, :w]
        out.append((folder.name, wall))
    return out


@pytest.fixture(scope="module")
def recorded(tiny_bundle, tiny_site, tmp_path_factory):
    """A log of the tiny site's visitor frames, recorded as ``camera --log`` does."""
    rec = Recognizer.open(tiny_bundle)
    folder = tmp_path_factory.mktemp("visits") / "log"
    vlog = VisitorLog(folder, min_interval_s=0.0)
    answers = []
    for work, frame in visitor_frames(tiny_site):
        r = rec.recognize(frame)
        answers.append((work, frame, r, vlog.record(rec, frame, r)))
    return rec, folder, answers


def test_verified_answers_are_logged_with_their_rows(recorded):
    rec, folder, answers = recorded
    logged = [(work, r) for work, _, r, wrote in answers if wrote]
    assert len(logged) >= 3, [(w, r.instance, r.decided_by) for w, _, r, _ in answers]
    assert all(r.accepted and r.verified for _, r in logged)
    entries, problems = read_log(folder)
    assert not problems and [e.instance for e in entries] == [r.instance for _, r in logged]
    e = entries[0]
    assert len(e.rows.descriptors) == len(rec.rotations) == len(e.rows.features)
    assert e.site["fingerprint"] == rec.manifest.model.fingerprint and e.evidence["support"] > 0
    with zipfile.ZipFile(e.path) as z:   # rows of the work's part of the frame, not of the wall around it
        width, height = json.loads(z.read("entry.json"))["crop"]
    frame = next(f for w, f, r, wrote in answers if wrote == e.path)
    assert width * height < 0.9 * frame.shape[0] * frame.shape[1]
    with zipfile.ZipFile(e.path) as z:   # no frame kept unless asked
        assert "image.jpg" not in z.namelist()


def test_work_crop_is_the_outline_clipped_to_the_frame():
    from runtime.visitor_log import MIN_CROP, work_crop

    img = np.arange(200 * 300 * 3, dtype=np.uint8).reshape(200, 300, 3)
    crop = work_crop(img, [[-20, 10], [150.4, 12], [149, 250], [-3, 240]])
    assert crop.shape == (190, 151, 3) and np.array_equal(crop, img[10:200, 0:151])
    assert work_crop(img, None) is None and work_crop(img, [[0, 0], [float("nan"), 5]]) is None
    assert work_crop(img, [[0, 0], [MIN_CROP - 1, 0], [MIN_CROP - 1, 150], [0, 150]]) is None


def test_unverified_answers_and_repeats_are_not_logged(recorded, tmp_path):
    rec, _, answers = recorded
    vlog = VisitorLog(tmp_path / "log", min_interval_s=10.0)
    r = next(a[2] for a in answers if a[3])
    wall = np.full((240, 320, 3), 180, np.uint8)
    assert not vlog.record(rec, wall, rec.recognize(wall))      # unknown: nothing logged
    assert vlog.record(rec, wall, r, t=0.0)                      # a verified answer
    assert not vlog.record(rec, wall, r, t=5.0)                  # the same work 5 s later: the same visit
    assert vlog.record(rec, wall, r, t=11.0)
    assert len(list((tmp_path / "log").glob("*.entry"))) == 2


def test_the_log_keeps_to_its_disk_budget(recorded, tmp_path):
    rec, folder, answers = recorded
    one = max(p.stat().st_size for p in folder.glob("*.entry"))
    vlog = VisitorLog(tmp_path / "log", max_bytes=max(2 * one + one // 2, 1 << 20), min_interval_s=0.0)
    _, frame, r, _ = next(a for a in answers if a[3])
    for _ in range(int(vlog.max_bytes // one) + 3):
        vlog.record(rec, frame, r)
    sizes = [p.stat().st_size for p in (tmp_path / "log").glob("*.entry")]
    assert sum(sizes) <= vlog.max_bytes and len(sizes) >= 1


def test_hostile_entries_are_reported_by_name_never_used(recorded, tmp_path):
    _, folder, _ = recorded
    bad = tmp_path / "log"
    bad.mkdir()
    good = sorted(folder.glob("*.entry"))[0]
    (bad / good.name).write_bytes(good.read_bytes())
    (bad / "0001-garbage.entry").write_bytes(b"PK\x03\x04 not a zip at all")
    with zipfile.ZipFile(bad / "0002-extra.entry", "w") as z:   # an unknown member
        z.writestr("entry.json", json.dumps({"instance": "x"}))
        z.writestr("descriptors.npy", b"")
        z.writestr("payload.pkl", b"\x80\x04")
    with zipfile.ZipFile(bad / "0003-json.entry", "w") as z:   # known members, nonsense inside
        z.writestr("entry.json", "[1, 2]")
        z.writestr("descriptors.npy", b"\x93NUMPY")
    entries, problems = read_log(bad)
    assert [e.path.name for e in entries] == [good.name]
    assert len(problems) == 3 and all(".entry" in p for p in problems)
    with pytest.raises(SitelensError, match="no such visitor-log folder"):
        read_log(tmp_path / "missing")


def test_frames_are_kept_only_when_asked(recorded, tmp_path):
    rec, _, answers = recorded
    r = next(a[2] for a in answers if a[3])
    vlog = VisitorLog(tmp_path / "log", keep_images=True, min_interval_s=0.0)
    assert vlog.record(rec, np.full((120, 160, 3), 90, np.uint8), r)
    with zipfile.ZipFile(next((tmp_path / "log").glob("*.entry"))) as z:
        assert "image.jpg" in z.namelist()
