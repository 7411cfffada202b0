"""Training runs on disk: ``run/model.pt`` (tensors only) + ``run/config.json``.

Weights are read back with ``torch.load(weights_only=True)``; nothing in a run folder can
execute code. Resume state (optimiser, epoch) lives in ``run/resume.pt``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from runtime.bundle.format import atomic_write
from runtime.errors import SitelensError

from .backbone_registry import DEFAULT_BACKBONE
from .network import DescriptorNet

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"


def save_run(run_dir: str | Path, net: DescriptorNet, extra: dict | None = None) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": net.config(), "fingerprint": net.fingerprint(), **(extra or {})}
    atomic_write(run_dir / MODEL_FILE, lambda fh: torch.save(net.state_dict(), fh))
    atomic_write(run_dir / CONFIG_FILE, lambda fh: fh.write(json.dumps(config, indent=2).encode()))
    return run_dir


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SitelensError(f"{run_dir}: not a training run (no {CONFIG_FILE})") from None
    except ValueError as exc:
        raise SitelensError(f"{path}: not valid JSON ({exc})") from None


def load_run(run_dir: str | Path) -> tuple[DescriptorNet, dict]:
    """Rebuild the network of a run (no pretrained download: weights come from the run)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    model_cfg = config.get("model") or {}
    net = DescriptorNet(model_cfg.get("backbone", DEFAULT_BACKBONE), weights=None,
                        whitening_dim=(model_cfg.get("whitening") or {}).get("dim"))
    path = run_dir / MODEL_FILE
    try:
        weights_file = str(path)
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SitelensError(f"{run_dir}: no {MODEL_FILE}") from None
    except Exception as exc:
        raise SitelensError(f"{path}: cannot read weights ({exc})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise SitelensError(f"{path}: weights do not fit the configured network ({exc})") from None
    net.train(False)
    if config.get("fingerprint") and config["fingerprint"] != net.fingerprint():
        raise SitelensError(f"{path}: weights fingerprint differs from {CONFIG_FILE}; the run is corrupt")
    return net, config


RESUME_FILE = "resume.pt"


def save_resume(run_dir: str | Path, state: dict) -> None:
    """Per-epoch checkpoint: weights, optimiser, history, best weights so far (tensors and strings only)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / RESUME_FILE, lambda fh: torch.save(state, fh))


def load_resume(run_dir: str | Path, device) -> dict | None:
    path = Path(run_dir) / RESUME_FILE
    if not path.exists():
        return None
    try:
        resume_file = str(path)
        return torch.load(resume_file, map_location=device, weights_only=True)
    except Exception as exc:
        raise SitelensError(f"{path}: cannot read the training checkpoint ({exc}); delete it or pass --no-resume") \
            from None
