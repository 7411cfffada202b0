"""Per-site fine-tuning: triplet loss with per-epoch hard-negative mining on views from the
camera-view simulator, then learned whitening in closed form.

The stages, each in its own module: ``distributed`` (device, DDP), ``tuples`` (mining and the
simulated views of each step, in worker processes), ``validation`` (held-out views), ``checkpoint``
(resume state, the run folder), ``whitening_fit`` (Lw and its guard), ``plots``. Runs on CPU or
CUDA; several processes under ``torchrun`` (DDP; gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from runtime.errors import SitelensError
from runtime.image.preprocess import InputSpec
from runtime.site import Site, load_site

from . import distributed
from .checkpoint import RESUME_FILE, load_resume, save_resume, save_run  # noqa: F401 (RESUME_FILE re-exported)
from .config import TrainConfig
from .data import ReferenceSet
from .describe import describe
from .losses import ContrastiveLoss, InstanceCrossEntropy, TripletLoss, Tuples
from .network import DescriptorNet
from .plots import plot_history
from .reducers import AvgNonZeroReducer, MeanReducer
from .tuples import StepViews, plan_epoch, step_loader
from .validation import Validator
from .whitening_fit import fit_whitening, whiten_if_better  # noqa: F401 (fit_whitening re-exported)

log = logging.getLogger("sitelens")
_dist_backend = distributed.dist_backend  # kept for callers of the earlier name


def check_negatives(n_instances: int, wanted: int, site: str) -> int:
    """Negatives per anchor come from other instances, at most one each: a site needs 2+ instances,
    and fewer than ``wanted`` + 1 instances means fewer negatives (said, not silently zero steps)."""
    if n_instances < 2:
        raise SitelensError(f"{site}: fine-tuning needs at least 2 instances (has {n_instances}); "
                            "bundle it off the shelf instead (sitelens bundle)")
    if wanted < 1:
        raise SitelensError(f"--negatives must be at least 1, got {wanted}")
    if n_instances < wanted + 1:
        log.warning("sitelens: %s has %d instances, so at most %d negatives per anchor (asked for %d); "
                    "using %d", site, n_instances, n_instances - 1, wanted, n_instances - 1)
        return n_instances - 1
    return wanted


def _freeze(net: DescriptorNet, blocks: int) -> None:
    bb = net.backbone
    if blocks <= 0:
        return
    for mod in (bb.conv_stem, bb.bn1):
        for p in mod.parameters():
            p.requires_grad_(False)
    for blk in list(bb.blocks)[:blocks]:
        for p in blk.parameters():
            p.requires_grad_(False)


def _bn_eval(net: torch.nn.Module) -> None:
    """Small batches: keep BatchNorm statistics fixed (ImageNet ones)."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.train(False)


def _losses(cfg: TrainConfig, net: DescriptorNet, n_inst: int, device):
    reducer = AvgNonZeroReducer() if cfg.reducer == "nonzero" else MeanReducer()
    main = TripletLoss(cfg.margin, reducer) if cfg.loss == "triplet" else ContrastiveLoss(reducer=reducer)
    ce = InstanceCrossEntropy(net.feature_dim, n_inst).to(device) if cfg.ce_weight > 0 else None
    return main, ce


def _optimizer(cfg: TrainConfig, net: DescriptorNet, ce) -> torch.optim.Optimizer:
    other = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("pool.")]
    groups = [{"params": other, "lr": cfg.lr}, {"params": [net.pool.p], "lr": cfg.lr * cfg.gem_lr_mult}]
    if ce is not None:
        groups.append({"params": ce.parameters(), "lr": cfg.lr * 10})
    return torch.optim.Adam(groups, weight_decay=cfg.weight_decay)


def _snapshot(net) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@dataclass
class Run:
    """What every epoch of one training run works with: the network (``model`` is it, or its DDP
    wrapper), the losses and optimiser, the site's references and this process's place among the
    ``world`` processes."""

    model: torch.nn.Module
    net: DescriptorNet
    loss_fn: torch.nn.Module
    ce: torch.nn.Module | None
    opt: torch.optim.Optimizer
    data: ReferenceSet
    spec: InputSpec
    cfg: TrainConfig
    negatives: int
    rank: int
    world: int
    device: torch.device
    progress: bool


def train(site: Site | str | Path, out: str | Path, config: TrainConfig | None = None, resume: bool = True,
          progress: bool = True, init: dict | None = None, extra: dict | None = None) -> Path:
    """Fine-tune on the site's references only and write a run folder (model.pt, config.json,
    history, curves). Deterministic for a seed on one process. ``init``: start from these weights
    (a ``DescriptorNet`` state_dict without whitening, see ``training.finetune``) instead of
    ``config.weights``; ``extra``: more fields for the run's config.json."""
    cfg = config or TrainConfig()
    site = site if isinstance(site, Site) else load_site(site)
    out = Path(out)
    rank, world, device = distributed.setup(cfg.device)
    distributed.seed_everything(cfg.seed + rank)
    spec = InputSpec(size=cfg.size)
    data = ReferenceSet.from_site(site, max_side=int(cfg.size * 2.5))
    n_inst = len(data.instances)
    negatives = check_negatives(n_inst, cfg.negatives, site.name)
    net = DescriptorNet(cfg.backbone, weights=cfg.weights if init is None else None)
    if init is not None:
        try:
            net.load_state_dict(init)
        except RuntimeError as exc:
            raise SitelensError(f"the starting weights do not fit a {cfg.backbone} network ({exc})") from None
    net = net.to(device)
    _freeze(net, cfg.freeze_blocks)
    loss_fn, ce = _losses(cfg, net, n_inst, device)
    opt = _optimizer(cfg, net, ce)
    model = net if world == 1 else torch.nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None)
    validate = Validator(data, spec, cfg.val_views, cfg.seed, cfg.clutter)
    run = Run(model, net, loss_fn, ce, opt, data, spec, cfg, negatives, rank, world, device, progress)

    history, best, best_state, start_epoch = [], {"val_mP@1": -1.0, "epoch": -1}, None, 0
    state = load_resume(out, device) if resume else None
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ce is not None and "ce" in state:
            ce.load_state_dict(state["ce"])
        start_epoch, history, best = state["epoch"], json.loads(state["history"]), json.loads(state["best"])
        best_state = state.get("best_model")
        log.info("sitelens: resuming %s after epoch %d", out, start_epoch)
    if start_epoch == 0:
        v0 = validate(net)
        history = [{"epoch": 0, "loss": None, "val_mP@1": round(v0, 4)}]
        best, best_state = {"val_mP@1": v0, "epoch": 0}, _snapshot(net)

    t0, stale = time.time(), 0
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        strategy = "semihard" if epoch <= cfg.semihard_epochs else "hardest"
        losses = run_epoch(run, epoch, strategy)
        val = validate(net)
        entry = {"epoch": epoch, "loss": round(float(np.mean(losses)) if losses else 0.0, 5),
                 "val_mP@1": round(val, 4), "steps": len(losses), "strategy": strategy,
                 "gem_p": round(float(net.pool.p.detach()[0]), 4), "elapsed_s": round(time.time() - t0, 1)}
        history.append(entry)
        if rank == 0:
            log.info("sitelens: %s", json.dumps(entry))
        if val > best["val_mP@1"] + 1e-9:
            best, best_state, stale = {"val_mP@1": val, "epoch": epoch}, _snapshot(net), 0
        else:
            stale += 1
        if rank == 0:
            state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                     "history": json.dumps(history), "best": json.dumps(best), "best_model": best_state}
            if ce is not None:
                state["ce"] = ce.state_dict()
            save_resume(out, state)
        if stale >= cfg.patience:
            log.info("sitelens: early stop at epoch %d (best %d)", epoch, best["epoch"])
            break

    if best_state is not None:
        net.load_state_dict(best_state)
    net = net.cpu().train(False)
    whitening_info = None
    if cfg.whitening:
        # the best weights were validated when they were saved; an old resume file may lack them
        without = best["val_mP@1"] if best_state is not None else validate(net)
        whitening_info = whiten_if_better(net, data, spec, cfg, validate, without)
    if rank == 0:
        save_run(out, net, {
            "input": spec.to_dict(), "site": site.name, "epochs": len(history) - 1, "seed": cfg.seed,
            "best": best, "history": history, "whitening": whitening_info, "train_config": asdict(cfg),
            "train_seconds": round(time.time() - t0, 1), "world_size": world, "device": str(device),
            **(extra or {}),
        })
        plot_history(history, out / "training_curves.png")
    distributed.teardown(world)
    return out


def run_epoch(run: Run, epoch: int, strategy: str) -> list[float]:
    """Mine this epoch's tuples from the references' current descriptors, then one optimiser step
    per batch of simulated views. Returns the loss of every step."""
    model, net, loss_fn, ce, opt, data, spec, cfg = (run.model, run.net, run.loss_fn, run.ce, run.opt, run.data,
                                                     run.spec, run.cfg)
    negatives, rank, world, device, progress = run.negatives, run.rank, run.world, run.device, run.progress
    rng = np.random.default_rng(cfg.seed * 7919 + epoch * 31 + rank)
    pool = describe(net, data.images, spec, device)
    anchors = np.repeat(data.shard(rank, world), cfg.views_per_ref)
    plan = plan_epoch(pool, data, anchors, negatives, strategy, cfg.margin, rng)
    views = StepViews(data, plan, cfg.batch, cfg.size, cfg.seed * 7919 + epoch * 31 + rank, cfg.clutter)
    model.train()
    _bn_eval(net)
    losses = []
    bar = tqdm(step_loader(views, cfg.workers), total=len(views), desc=f"epoch {epoch}/{cfg.epochs}", unit="step",
               disable=not progress or rank != 0)
    for x, labels, b in bar:
        d = model(x.to(device))
        labels = labels.to(device)
        tuples = Tuples.stacked(int(b), plan.negatives.shape[1], device)
        loss = loss_fn(d, labels, tuples)
        if ce is not None:
            loss = loss + cfg.ce_weight * ce(d, labels, tuples)
        opt.zero_grad()
        loss.backward()
        if ce is not None and world > 1:
            for prm in ce.parameters():
                torch.distributed.all_reduce(prm.grad)
                prm.grad /= world
        opt.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses):.4f}", p=f"{float(net.pool.p.detach()[0]):.2f}")
    return losses
