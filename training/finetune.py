"""Continue a training run on a site that changed (``sitelens learn --finetune RUN``): the run's
network is the start, its training settings the recipe, the site as it is now the data.

The run's learned whitening is not carried over: it was fitted to the old network's descriptors,
and ``train`` fits it again (and keeps it only if validation says so) once the network changed.
The new run's config.json says what it started from (``finetuned_from``: the run's folder and
fingerprint)."""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from runtime.errors import SitelensError
from runtime.site import Site

from .checkpoint import load_run
from .config import TrainConfig


def run_config(config: dict) -> TrainConfig:
    """The ``TrainConfig`` a run was trained with (its config.json's ``train_config``; fields this
    version does not know are dropped, missing ones take their defaults; a run without one gets
    its backbone and input size and the defaults)."""
    known = {f.name for f in fields(TrainConfig)}
    recorded = config.get("train_config")
    if isinstance(recorded, dict):
        return TrainConfig(**{k: v for k, v in recorded.items() if k in known})
    model, spec = config.get("model") or {}, config.get("input") or {}
    cfg = TrainConfig()
    return replace(cfg, backbone=model.get("backbone", cfg.backbone), size=int(spec.get("size", cfg.size)))


def finetune(run: str | Path, site: Site, out: str | Path, epochs: int = 3, progress: bool = True,
             **changes) -> Path:
    """Train ``run``'s network ``epochs`` more epochs on ``site`` and write the new run to ``out``
    (which must not be ``run``: the old run stays as it was). ``changes``: ``TrainConfig`` fields
    to set (e.g. ``workers``, ``device``)."""
    from .trainer import train

    run, out = Path(run), Path(out)
    if out.resolve() == run.resolve():
        raise SitelensError(f"{out}: the fine-tuned run needs its own folder (not the run it starts from)")
    if epochs < 1:
        raise SitelensError(f"fine-tuning for {epochs} epochs: at least 1")
    net, config = load_run(run)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("whiten.")}
    cfg = replace(run_config(config), epochs=int(epochs), **changes)
    return train(site, out, cfg, resume=False, progress=progress, init=state,
                 extra={"finetuned_from": {"run": str(run), "fingerprint": config.get("fingerprint")}})
