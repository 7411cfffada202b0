"""Pictures of a training run: loss and validation mP@1 per epoch."""
from __future__ import annotations

from pathlib import Path


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
