"""``training.finetune``: a run trained further on a changed site, starting from its own network."""
import json

import pytest

from runtime.errors import SitelensError
from tests.conftest import make_site
from training.checkpoint import load_run, read_config
from training.config import TrainConfig
from training.finetune import finetune, run_config
from training.trainer import train


def test_continues_from_the_run_and_refits_whitening(tmp_path):
    site_root = make_site(tmp_path / "site", n=3, refs=1, seed=21)
    cfg = TrainConfig(epochs=1, size=64, batch=3, negatives=1, whitening=True, whitening_dim=16, seed=2)
    run = train(site_root, tmp_path / "run", cfg, progress=False)
    from runtime.site import load_site

    out = finetune(run, load_site(site_root), tmp_path / "more", epochs=1, progress=False)
    config = read_config(out)
    assert config["finetuned_from"] == {"run": str(run), "fingerprint": read_config(run)["fingerprint"]}
    assert config["train_config"]["epochs"] == 1 and config["train_config"]["size"] == 64
    assert config["train_config"]["whitening_dim"] == 16 and config["input"]["size"] == 64
    # epoch 0 of the new run is the old network without its whitening: validation starts where the
    # old run's best (validated before whitening) was
    assert config["history"][0]["epoch"] == 0 and len(config["history"]) == 2
    assert config["history"][0]["val_mP@1"] == pytest.approx(read_config(run)["best"]["val_mP@1"], abs=1e-4)
    old, _ = load_run(run)
    new, _ = load_run(out)
    assert new.whiten is not None and new.output_dim == 16   # refitted on the fine-tuned network
    if config["best"]["epoch"] == 0:   # training did not beat the start: the backbone is the old one
        assert all((old.state_dict()[k] == v).all() for k, v in new.state_dict().items() if not k.startswith("whiten"))
    with pytest.raises(SitelensError, match="its own folder"):
        finetune(run, load_site(site_root), run, epochs=1)
    with pytest.raises(SitelensError, match="at least 1"):
        finetune(run, load_site(site_root), tmp_path / "none", epochs=0)


def test_run_config_reads_what_the_run_recorded():
    cfg = run_config({"train_config": {"epochs": 7, "size": 96, "lr": 3e-5, "from_a_later_version": 1}})
    assert (cfg.epochs, cfg.size, cfg.lr) == (7, 96, 3e-5)
    old = run_config({"model": {"backbone": "tf_efficientnet_lite0"}, "input": {"size": 200}})
    assert old.size == 200 and old.backbone == "tf_efficientnet_lite0" and old.epochs == TrainConfig.epochs
    json.dumps(old.__dict__)   # a plain recipe


def test_starting_weights_of_another_network_are_refused(tmp_path):
    site_root = make_site(tmp_path / "site", n=3, refs=1, seed=22)
    with pytest.raises(SitelensError, match="do not fit"):
        train(site_root, tmp_path / "x", TrainConfig(epochs=1, size=64, batch=3, negatives=1, whitening=False),
              progress=False, init={"pool.p": __import__("torch").ones(1)})
