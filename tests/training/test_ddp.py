"""Multi-process training through torchrun (DDP), 2 processes, tiny data: gloo on CPU everywhere,
and on CUDA where a GPU is (NCCL with one GPU per process, gloo when processes share a GPU)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import make_site
from training.distributed import dist_backend as _dist_backend

ROOT = Path(__file__).resolve().parents[2]


def _torchrun_train(tmp_path, device: str):
    site = make_site(tmp_path / "site", n=4, refs=1, seed=21)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sdk.cli", "-q",
           "train", str(site), "-o", str(run), "--epochs", "1", "--size", "64", "--batch", "2", "--negatives", "1",
           "--no-whitening", "--device", device]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and len(config["history"]) == 2
    assert config["device"].startswith("cuda" if device == "auto" else "cpu")


def test_torchrun_two_processes_cpu(tmp_path):
    """CPU training uses gloo, also on a machine that has a GPU."""
    _torchrun_train(tmp_path, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torchrun_two_processes_cuda(tmp_path):
    _torchrun_train(tmp_path, "auto")


def test_backend_follows_the_device(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert _dist_backend(torch.device("cpu")) == "gloo"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert _dist_backend(torch.device("cuda:0")) == "gloo"  # two processes, one GPU: NCCL refuses
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _dist_backend(torch.device("cuda:0")) == "nccl"
