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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny site, a one-epoch training run on it, its bundle, and a visitor log with images
    (``recognize --log --log-images``) recorded by that bundle."""
    from tests.conftest import make_site, write_rgb
    from training.config import TrainConfig
    from training.trainer import train

    root = tmp_path_factory.mktemp("finetune")
    site = make_site(root / "site", n=4, refs=1, seed=31)
    run = train(site, root / "run", TrainConfig(epochs=1, size=64, batch=4, negatives=2, whitening=False),
                progress=False)
    bundle = root / "site.sitelens"
    r = CliRunner().invoke(main, ["-q", "export", str(run), "--site", str(site), "-o", str(bundle),
                                  "--calibration-views", "24"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    photos = [str(write_rgb(root / "photos" / f"{work}.jpg", frame)) for work, frame in visitor_frames(site, 8)]
    r = CliRunner().invoke(main, ["-q", "recognize", str(bundle), *photos, "--json", "--log", str(root / "log"),
                                  "--log-images"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return site, run, bundle, root / "log"


def test_finetune_trains_on_the_frames_and_builds_the_bundle_again(trained, tmp_path):
    from training.checkpoint import read_config

    site, run, bundle, log_dir = trained
    entries, _ = read_log(log_dir)
    assert entries and all(e.has_image for e in entries)
    out = tmp_path / "new.sitelens"
    r = CliRunner().invoke(main, ["-q", "learn", str(bundle), str(log_dir), "-o", str(out), "--site", str(site),
                                  "--support-factor", "1", "--finetune", str(run), "--finetune-epochs", "1",
                                  "--calibration-views", "24", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    ft = report["finetune"]
    assert report["added"] and ft["frames"] == len(report["added"]) and ft["run"] == str(tmp_path / "new.run")
    assert report["thresholds"]["recalibrated"] and report["out"] == str(out)
    config = read_config(ft["run"])
    assert config["finetuned_from"]["run"] == str(run) and config["train_config"]["size"] == 64
    old, new = Recognizer.open(bundle), Recognizer.open(out)
    assert new.manifest.model.fingerprint == config["fingerprint"] == ft["fingerprint_after"]
    # built as the old bundle was (the same site id, turns, local features), with the frames as references
    assert new.manifest.site.site_id == old.manifest.site.site_id and new.rotations == old.rotations
    assert new.manifest.verification["feature"] == old.manifest.verification["feature"]
    assert new.instances == old.instances and new.manifest.instances == old.manifest.instances
    for a in report["added"]:
        source = f"visitor-{a['entry'].removesuffix('.entry')}.jpg"
        assert source in new.index.sources and (tmp_path / "new.run" / "visitor_frames" / source).exists()
    assert new.index.live_count == report["rows_after"] == old.index.live_count + len(report["added"]) * len(old.rotations)
    r = CliRunner().invoke(main, ["-q", "learn", str(bundle), str(log_dir), "-o", str(out), "--site", str(site),
                                  "--finetune", str(run), "--support-factor", "1"])
    assert r.exit_code != 0 and "holds a training run already" in r.output and "Traceback" not in r.output


def test_finetune_needs_the_site_its_run_and_the_frames_images(trained, tmp_path):
    site, run, bundle, log_dir = trained
    r = CliRunner().invoke(main, ["-q", "learn", str(bundle), str(log_dir), "-o", str(tmp_path / "x.sitelens"),
                                  "--finetune", str(run)])
    assert r.exit_code != 0 and "--finetune needs --site" in r.output and "Traceback" not in r.output
    import shutil

    other = shutil.copytree(run, tmp_path / "other_run")   # a run of another network
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "fingerprint": "0" * 64}))
    with pytest.raises(SitelensError, match="not the run"):
        learn(bundle, log_dir, tmp_path / "w.sitelens", site=site, finetune=other)
    photos = sorted(str(p) for p in (log_dir.parent / "photos").glob("*.jpg"))
    r = CliRunner().invoke(main, ["-q", "recognize", str(bundle), *photos, "--log", str(tmp_path / "log")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = learn(bundle, tmp_path / "log", tmp_path / "y.sitelens", site=site, support_factor=1.0, finetune=run,
                   progress=False)
    assert report["entries"] and not report["added"] and report["out"] is None and report["finetune"] is None
    assert all("logged without its image" in r["reason"] for r in report["refused"])


def test_an_entry_changed_after_reading_gives_no_image(trained, tmp_path):
    import shutil

    from runtime.errors import BundleError
    from runtime.visitor_log import entry_image

    _, _, _, log_dir = trained
    copy = tmp_path / "log"
    shutil.copytree(log_dir, copy)
    entry = read_log(copy)[0][0]
    assert entry_image(entry)[:2] == b"\xff\xd8"
    entry.path.write_bytes(entry.path.read_bytes() + b"\0")
    with pytest.raises(BundleError, match="changed since"):
        entry_image(entry)
