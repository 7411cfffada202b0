"""``sitelens learn``: the visitor log's strongest frames become references, nothing silently."""
import json
import shutil

import pytest
from click.testing import CliRunner

from export.learn import learn
from runtime.errors import SitelensError
from runtime.recognizer import Recognizer
from runtime.visitor_log import VisitorLog, read_log
from sdk.cli import main
from tests.runtime.test_visitor_log import visitor_frames


@pytest.fixture(scope="module")
def visits(tiny_bundle, tiny_site, tmp_path_factory):
    """A visitor log written by ``sitelens recognize --log`` over the tiny site's visitor frames."""
    from tests.conftest import write_rgb

    root = tmp_path_factory.mktemp("learn")
    photos = [str(write_rgb(root / "photos" / f"{work}.jpg", frame)) for work, frame in visitor_frames(tiny_site, 7)]
    r = CliRunner().invoke(main, ["-q", "recognize", str(tiny_bundle), *photos, "--json", "--log", str(root / "log")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root / "log", [json.loads(line) for line in r.output.splitlines()]


def test_strong_frames_are_added_and_every_decision_reported(tiny_bundle, visits, tmp_path):
    log_dir, answers = visits
    entries, _ = read_log(log_dir)
    verified = [a for a in answers if a["accepted"] and a["decided_by"] == "verification"]
    assert len(entries) == len(verified) >= 3
    report = learn(tiny_bundle, log_dir, tmp_path / "new.sitelens", support_factor=1.0, progress=False)
    assert report["entries"] == len(entries)
    assert len(report["added"]) + len(report["refused"]) == len(entries) and report["added"]
    assert not report["thresholds"]["recalibrated"] and "--site" in report["thresholds"]["why"]
    old, new = Recognizer.open(tiny_bundle), Recognizer.open(tmp_path / "new.sitelens")
    added_rows = sum(len(old.rotations) for _ in report["added"])
    assert new.index.live_count == old.index.live_count + added_rows == report["rows_after"]
    assert new.thresholds.rule("hnsw") == old.thresholds.rule("hnsw")
    for a in report["added"]:   # each added frame is a reference of the work it was accepted as
        assert f"visitor:{a['entry']}" in new.index.sources and a["instance"] in new.instances


def test_the_stricter_bar_and_the_cap_refuse_with_reasons(tiny_bundle, visits, tmp_path):
    log_dir, _ = visits
    report = learn(tiny_bundle, log_dir, tmp_path / "none.sitelens", support_factor=1000.0, progress=False)
    assert not report["added"] and report["out"] is None and not (tmp_path / "none.sitelens").exists()
    assert all("geometric evidence under 1000x" in r["reason"] for r in report["refused"])
    with pytest.raises(SitelensError, match="support-factor"):
        learn(tiny_bundle, log_dir, tmp_path / "x.sitelens", support_factor=0.5)


def test_entries_of_another_site_are_refused(tiny_bundle, visits, tmp_path):
    """A log recorded with another bundle (here: its entries claim another network) adds nothing."""
    import zipfile

    log_dir, _ = visits
    other = tmp_path / "log"
    other.mkdir()
    for path in sorted(log_dir.glob("*.entry")):
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(other / path.name, "w") as dst:
            for name in src.namelist():
                data = src.read(name)
                if name == "entry.json":
                    meta = json.loads(data)
                    meta["site"]["fingerprint"] = "0" * 16
                    data = json.dumps(meta).encode()
                dst.writestr(name, data)
    report = learn(tiny_bundle, other, tmp_path / "o.sitelens", support_factor=1.0, progress=False)
    assert not report["added"] and {r["reason"] for r in report["refused"]} == {"logged by another site's bundle or network"}


def test_learn_command(tiny_bundle, visits, tmp_path):
    log_dir, _ = visits
    bundle = tmp_path / "b.sitelens"
    shutil.copy(tiny_bundle, bundle)
    r = CliRunner().invoke(main, ["-q", "learn", str(bundle), str(log_dir), "-o", str(tmp_path / "n.sitelens"),
                                  "--support-factor", "1", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["added"] and (tmp_path / "n.sitelens").exists()
    r = CliRunner().invoke(main, ["-q", "learn", str(bundle), str(log_dir), "-o", str(tmp_path / "m.sitelens"),
                                  "--support-factor", "1"])
    assert r.exit_code == 0 and "added" in r.output and "left out" in r.output and "wrote" in r.output
    r = CliRunner().invoke(main, ["-q", "learn", str(bundle), str(log_dir), "-o", str(tmp_path / "z.sitelens"),
                                  "--max-per-work", "0"])
    assert r.exit_code != 0 and "max-per-work" in r.output and "Traceback" not in r.output


def test_learn_recalibrates_on_the_site(tiny_bundle, tiny_site, visits, tmp_path):
    log_dir, _ = visits
    r = CliRunner().invoke(main, ["-q", "learn", str(tiny_bundle), str(log_dir), "-o", str(tmp_path / "n.sitelens"),
                                  "--support-factor", "1", "--site", str(tiny_site), "--calibration-views", "12",
                                  "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["thresholds"]["recalibrated"] and set(report["thresholds"]) >= {"before", "after"}
    calibration = Recognizer.open(tmp_path / "n.sitelens").thresholds.calibration["modes"]["hnsw"]["simulated"]
    assert calibration["positives"] == 12


def test_an_entry_that_other_works_photos_look_like_is_refused(tiny_bundle, visits, tmp_path):
    """When a logged frame of one work looks more like another entry's view than like its own work
    (here: its frame descriptor replaced by that view's), that view is left out, with the frame named."""
    import zipfile

    import numpy as np

    from runtime.bundle.npy import npy_bytes

    log_dir, _ = visits
    entries, _ = read_log(log_dir)
    a, b = next((a, b) for a in entries for b in entries if a.instance != b.instance)
    other = tmp_path / "log"
    other.mkdir()
    for e in entries:
        with zipfile.ZipFile(e.path) as src, zipfile.ZipFile(other / e.path.name, "w") as dst:
            for name in src.namelist():
                data = src.read(name)
                if e is a and name == "frame.npy":
                    data = npy_bytes(np.asarray(b.rows.descriptors[0], np.float32))
                dst.writestr(name, data)
    report = learn(tiny_bundle, other, tmp_path / "o.sitelens", support_factor=1.0, progress=False)
    refused = {r["entry"]: r for r in report["refused"]}
    assert b.path.name in refused and "would outrank their own work" in refused[b.path.name]["reason"]
    assert a.path.name in refused[b.path.name]["detail"]
