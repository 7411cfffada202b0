"""Where training runs: the device, and the process group under ``torchrun`` (DDP; gloo on CPU,
NCCL on GPUs)."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str, local_rank: int) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def dist_backend(device: torch.device) -> str:
    """NCCL needs CUDA tensors and one GPU per process; anything else (CPU training on a GPU machine,
    more processes than GPUs) goes through gloo."""
    if device.type != "cuda":
        return "gloo"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return "nccl" if local_world <= torch.cuda.device_count() else "gloo"


def setup(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) for this process; joins torchrun's process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(dist_backend(device))
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world, device


def teardown(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
