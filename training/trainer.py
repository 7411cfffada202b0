"""Per-site fine-tuning: triplet loss with per-epoch hard-negative mining on views from the
camera-view simulator, then learned whitening in closed form.

Runs on CPU or CUDA; several processes under ``torchrun`` (DDP; gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from runtime.bundle_format import atomic_write
from runtime.errors import SitelensError
from runtime.preprocess import InputSpec, resize_for_model
from runtime.site import Site, load_site

from .checkpoint import save_run
from .data import ReferenceSet, to_square
from .losses import ContrastiveLoss, InstanceCrossEntropy, TripletLoss
from .miners import mine_negatives
from .network import DescriptorNet
from .simulator import CameraViewSimulator, SimulatorConfig
from .whitening import learn_whitening

log = logging.getLogger("sitelens")
RESUME_FILE = "resume.pt"


@dataclass
class TrainConfig:
    epochs: int = 10
    size: int = 224                # network input at training (square) and in the bundle
    batch: int = 8                 # anchors per step
    negatives: int = 4             # mined negatives per anchor (at most one per instance)
    views_per_ref: int = 1         # anchors per reference and epoch
    lr: float = 1e-4
    gem_lr_mult: float = 10.0
    weight_decay: float = 1e-6
    margin: float = 0.1
    loss: str = "triplet"          # or "contrastive"
    ce_weight: float = 0.0         # instance cross-entropy regulariser (thesis eq. 3.6: 1.0)
    semihard_epochs: int = 2       # then hardest negatives
    freeze_blocks: int = 4         # lower backbone stages kept frozen; 0 = train all
    whitening: bool = True
    whitening_dim: int | None = None
    whitening_views: int = 2       # simulated views per reference for Lw (more on small sites)
    whitening_min_pairs: int = 1000  # Lw from fewer pairs than this over-fits 1280-d descriptors
    val_views: int = 1             # held-out simulated views per reference (max 300 refs)
    patience: int = 3              # early stopping on validation mP@1
    seed: int = 0
    backbone: str = "tf_efficientnet_lite0"
    weights: str = "pretrained"
    device: str = "auto"
    extra: dict = field(default_factory=dict)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


@torch.no_grad()
def describe(net: DescriptorNet, images, spec: InputSpec, device, pooled: bool = False) -> np.ndarray:
    net.train(False)
    out = []
    for img in images:
        x = torch.from_numpy(resize_for_model(img, spec)[None]).to(device)
        out.append((net.pooled(x) if pooled else net(x)).cpu().numpy()[0])
    return np.stack(out)


def _batch(images, size, device) -> torch.Tensor:
    return torch.from_numpy(np.stack([to_square(i, size) for i in images])).to(device)


def _mp1(queries: np.ndarray, qlabels: np.ndarray, pool: np.ndarray, plabels: np.ndarray) -> float:
    return float(np.mean(plabels[np.argmax(queries @ pool.T, axis=1)] == qlabels))


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


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def _dist_backend(device: torch.device) -> str:
    """NCCL needs CUDA tensors and one GPU per process; anything else (CPU training on a GPU machine,
    more processes than GPUs) goes through gloo."""
    if device.type != "cuda":
        return "gloo"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return "nccl" if local_world <= torch.cuda.device_count() else "gloo"


def _setup(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device) for this process; joins torchrun's process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = _device(cfg, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(_dist_backend(device))
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world, device


def train(site: Site | str | Path, out: str | Path, config: TrainConfig | None = None, resume: bool = True,
          progress: bool = True) -> Path:
    """Fine-tune on the site's references only and write a run folder (model.pt, config.json,
    history, curves). Deterministic for a seed on one process."""
    cfg = config or TrainConfig()
    site = site if isinstance(site, Site) else load_site(site)
    out = Path(out)
    rank, world, device = _setup(cfg)
    _seed_everything(cfg.seed + rank)
    spec = InputSpec(size=cfg.size)
    data = ReferenceSet.from_site(site, max_side=int(cfg.size * 2.5))
    n_inst = len(data.instances)
    negatives = check_negatives(n_inst, cfg.negatives, site.name)
    net = DescriptorNet(cfg.backbone, weights=cfg.weights).to(device)
    _freeze(net, cfg.freeze_blocks)
    ce = InstanceCrossEntropy(net.feature_dim, n_inst).to(device) if cfg.ce_weight > 0 else None
    loss_fn = TripletLoss(cfg.margin) if cfg.loss == "triplet" else ContrastiveLoss()
    gem_params = [net.pool.p]
    other = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("pool.")]
    groups = [{"params": other, "lr": cfg.lr}, {"params": gem_params, "lr": cfg.lr * cfg.gem_lr_mult}]
    if ce is not None:
        groups.append({"params": ce.parameters(), "lr": cfg.lr * 10})
    opt = torch.optim.Adam(groups, weight_decay=cfg.weight_decay)
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    sim = CameraViewSimulator(seed=cfg.seed * 1000 + rank)
    mild = CameraViewSimulator(SimulatorConfig.mild(), seed=cfg.seed * 1000 + 500 + rank)
    vrng = np.random.default_rng(cfg.seed + 12345)  # validation views: same on every rank and resume
    vsim = CameraViewSimulator(seed=cfg.seed + 12345)
    val_idx = vrng.choice(len(data.images), min(len(data.images), 300), replace=False)
    val_imgs = [vsim(data.images[i], vrng) for i in val_idx for _ in range(cfg.val_views)]
    val_labels = np.repeat(data.labels[val_idx], cfg.val_views)

    start_epoch, history, best = 0, [], {"val_mP@1": -1.0, "epoch": -1}
    best_state = None
    resume_path = out / RESUME_FILE
    if resume and resume_path.exists():
        resume_file = str(resume_path)
        state = torch.load(resume_file, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ce is not None and "ce" in state:
            ce.load_state_dict(state["ce"])
        start_epoch, history, best = state["epoch"], json.loads(state["history"]), json.loads(state["best"])
        best_state = state.get("best_model")
        log.info("sitelens: resuming %s after epoch %d", out, start_epoch)

    def validate() -> float:  # wherever the net is: the training device, then the CPU for whitening
        on = next(net.parameters()).device
        pool = describe(net, data.images, spec, on)
        return _mp1(describe(net, val_imgs, spec, on), val_labels, pool, data.labels)

    if start_epoch == 0:
        v0 = validate()
        history.append({"epoch": 0, "loss": None, "val_mP@1": round(v0, 4)})
        best = {"val_mP@1": v0, "epoch": 0}
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    t0 = time.time()
    stale = 0
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        erng = np.random.default_rng(cfg.seed * 7919 + epoch * 31 + rank)
        pool = describe(net, data.images, spec, device)
        anchors = np.repeat(data.shard(rank, world), cfg.views_per_ref)
        anchors = anchors[erng.permutation(len(anchors))]
        positives = np.array([erng.choice(o) if len(o := data.other_refs(i)) else i for i in anchors])
        pos_sims = np.sum(pool[anchors] * pool[positives], axis=1)
        strategy = "semihard" if epoch <= cfg.semihard_epochs else "hardest"
        negs = mine_negatives(pool[anchors], data.labels[anchors], pool, data.labels, negatives,
                              pos_sims, strategy, cfg.margin, erng)
        model.train()
        _bn_eval(net)
        losses = []
        steps = range(0, len(anchors), cfg.batch)
        bar = tqdm(steps, desc=f"epoch {epoch}/{cfg.epochs}", unit="step", disable=not progress or rank != 0)
        for s in bar:
            a_idx, p_idx, n_idx = anchors[s:s + cfg.batch], positives[s:s + cfg.batch], negs[s:s + cfg.batch]
            valid = (n_idx >= 0).all(axis=1)
            if not valid.any():
                continue
            a_idx, p_idx, n_idx = a_idx[valid], p_idx[valid], n_idx[valid]
            imgs = [sim(data.images[i], erng) for i in a_idx]
            imgs += [mild(data.images[i], erng) for i in p_idx]
            imgs += [mild(data.images[i], erng) for i in n_idx.ravel()]
            d = model(_batch(imgs, cfg.size, device))
            b = len(a_idx)
            a, p, n = d[:b], d[b:2 * b], d[2 * b:].view(b, n_idx.shape[1], -1)
            loss = loss_fn(a, p, n)
            if ce is not None:
                pooled = F.normalize(d[:2 * b], dim=-1)
                labels = torch.from_numpy(np.concatenate([data.labels[a_idx], data.labels[p_idx]])).to(device)
                loss = loss + cfg.ce_weight * ce(pooled, labels)
            opt.zero_grad()
            loss.backward()
            if ce is not None and world > 1:
                for prm in ce.parameters():
                    torch.distributed.all_reduce(prm.grad)
                    prm.grad /= world
            opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", p=f"{float(net.pool.p.detach()[0]):.2f}")
        val = validate()
        entry = {"epoch": epoch, "loss": round(float(np.mean(losses)) if losses else 0.0, 5), "val_mP@1": round(val, 4),
                 "steps": len(losses), "strategy": strategy, "gem_p": round(float(net.pool.p.detach()[0]), 4), "elapsed_s": round(time.time() - t0, 1)}
        history.append(entry)
        if rank == 0:
            log.info("sitelens: %s", json.dumps(entry))
        if val > best["val_mP@1"] + 1e-9:
            best, stale = {"val_mP@1": val, "epoch": epoch}, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        if rank == 0:
            state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                     "history": json.dumps(history), "best": json.dumps(best), "best_model": best_state}
            if ce is not None:
                state["ce"] = ce.state_dict()
            out.mkdir(parents=True, exist_ok=True)
            atomic_write(resume_path, lambda fh: torch.save(state, fh))
        if stale >= cfg.patience:
            log.info("sitelens: early stop at epoch %d (best %d)", epoch, best["epoch"])
            break

    if best_state is not None:
        net.load_state_dict(best_state)
    net = net.cpu().train(False)
    whitening_info = None
    if cfg.whitening:
        # the best weights were validated when they were saved; an old resume file may lack them
        without = best["val_mP@1"] if best_state is not None else validate()
        whitening_info = fit_whitening(net, data, spec, torch.device("cpu"), cfg)
        with_lw = validate()
        whitening_info.update({"val_mP@1_with_whitening": round(with_lw, 4), "val_mP@1_without": round(without, 4)})
        if with_lw < without:
            net.whiten = None
            whitening_info.update({"type": None, "dropped": "validation mP@1 was lower with it"})
            log.warning("sitelens: learned whitening lowered validation mP@1 (%.3f < %.3f); the model ships "
                        "without it", with_lw, without)
    if rank == 0:
        save_run(out, net, {
            "input": spec.to_dict(), "site": site.name, "epochs": len(history) - 1, "seed": cfg.seed,
            "best": best, "history": history, "whitening": whitening_info, "train_config": asdict(cfg),
            "train_seconds": round(time.time() - t0, 1), "world_size": world, "device": str(device),
        })
        plot_history(history, out / "training_curves.png")
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return out


def fit_whitening(net: DescriptorNet, data: ReferenceSet, spec: InputSpec, device, cfg: TrainConfig) -> dict:
    """Lw from references + simulated views (pairs: view-ref, ref-ref of one instance)."""
    rng = np.random.default_rng(cfg.seed + 99)
    sim = CameraViewSimulator(seed=cfg.seed + 99)
    views, src = [], []
    per_image = int(np.clip(np.ceil(cfg.whitening_min_pairs / max(len(data.images), 1)), cfg.whitening_views, 50))
    for i, img in enumerate(data.images):
        for _ in range(per_image):
            views.append(sim(img, rng))
            src.append(i)
    net.whiten = None
    x = np.concatenate([describe(net, data.images, spec, device, pooled=True),
                        describe(net, views, spec, device, pooled=True)])
    n = len(data.images)
    pairs = [(n + j, i) for j, i in enumerate(src)]
    for i in range(n):
        pairs += [(i, j) for j in data.other_refs(i) if j > i]
    dim = min(cfg.whitening_dim or net.feature_dim, net.feature_dim)
    proj, mean = learn_whitening(x, np.array(pairs), dim)
    lin = net.set_whitening_shape(dim)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(proj))
        lin.bias.copy_(torch.from_numpy(-proj @ mean))
    return {"type": "learned", "dim": dim, "pairs": len(pairs), "samples": len(x)}


def plot_history(history: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot([h["epoch"] for h in history if h["loss"] is not None],
               [h["loss"] for h in history if h["loss"] is not None], "o-")
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].plot(ep, [h["val_mP@1"] for h in history], "o-", color="C2")
    ax[1].set(title="validation mP@1 (held-out simulated views)", xlabel="epoch", ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
