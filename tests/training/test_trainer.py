"""Tiny end-to-end: train -> export -> recognize, on generated data (CPU, seconds)."""
import json

import pytest

from click.testing import CliRunner

from runtime.recognizer import Recognizer
from sdk.cli import main
from tests.conftest import make_site


def test_train_export_recognize(tmp_path):
    site = make_site(tmp_path / "site", n=4, refs=2, seed=11)
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["-q", "train", str(site), "-o", str(run), "--epochs", "2", "--size", "64",
                                  "--batch", "4", "--negatives", "2", "--whitening-dim", "32"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["whitening"]["dim"] == 32 and config["input"]["size"] == 64
    lw = config["whitening"]  # small site: more simulated views, so Lw sees enough pairs; kept only if it helps
    assert lw["pairs"] >= 400 and lw["val_mP@1_with_whitening"] >= lw["val_mP@1_without"]
    assert len(config["history"]) == 3 and (run / "training_curves.png").stat().st_size > 0
    assert (run / "resume.pt").exists()
    out = tmp_path / "site.sitelens"
    r = CliRunner().invoke(main, ["-q", "export", str(run), "--site", str(site), "-o", str(out),
                                  "--calibration-views", "40"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rec = Recognizer.open(out)
    assert rec.manifest.model.details["trained"] is True and rec.embedder.dim == 32
    hits = [rec.recognize(site / inst / "a.jpg").best == inst for inst in rec.instances]
    assert sum(hits) >= 3


def test_resume_continues_where_it_stopped(tmp_path):
    from training.trainer import TrainConfig, train

    site = make_site(tmp_path / "site", n=3, refs=1, seed=5)
    cfg = TrainConfig(epochs=1, size=64, batch=3, negatives=1, whitening=False)
    train(site, tmp_path / "run", cfg, progress=False)
    cfg.epochs = 2
    train(site, tmp_path / "run", cfg, progress=False)
    history = json.loads((tmp_path / "run" / "config.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]


def test_same_seed_same_model(tmp_path):
    from training.checkpoint import read_config
    from training.trainer import TrainConfig, train

    site = make_site(tmp_path / "site", n=3, refs=1, seed=9)
    cfg = TrainConfig(epochs=1, size=64, batch=3, negatives=1, whitening=True, whitening_dim=16, seed=4)
    a = read_config(train(site, tmp_path / "a", cfg, progress=False))["fingerprint"]
    b = read_config(train(site, tmp_path / "b", cfg, progress=False))["fingerprint"]
    assert a == b


def test_small_sites_adapt_or_refuse_negatives(tmp_path, caplog):
    from runtime.errors import SitelensError
    from training.trainer import TrainConfig, check_negatives, train

    assert check_negatives(10, 4, "s") == 4
    with caplog.at_level("WARNING", logger="sitelens"):
        assert check_negatives(3, 4, "s") == 2
    assert any("at most 2 negatives" in r.getMessage() for r in caplog.records)
    with pytest.raises(SitelensError, match="at least 2 instances"):
        check_negatives(1, 4, "s")
    site = make_site(tmp_path / "site", n=2, refs=1, seed=5)
    cfg = TrainConfig(epochs=1, size=64, batch=2, negatives=4, whitening=False)
    history = json.loads((train(site, tmp_path / "run", cfg, progress=False) / "config.json").read_text())["history"]
    assert history[1]["loss"] is not None and history[1]["steps"] > 0


def test_views_simulated_in_workers_give_the_same_model(tmp_path):
    from training.checkpoint import read_config
    from training.trainer import TrainConfig, train

    site = make_site(tmp_path / "site", n=3, refs=1, seed=9)
    base = dict(epochs=1, size=64, batch=3, negatives=1, whitening=False, seed=2)
    a = read_config(train(site, tmp_path / "a", TrainConfig(**base, workers=0), progress=False))["fingerprint"]
    b = read_config(train(site, tmp_path / "b", TrainConfig(**base, workers=1), progress=False))["fingerprint"]
    assert a == b
