"""Multi-process training through torchrun (DDP, gloo backend on CPU), 2 processes, tiny data."""
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_site

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_gloo(tmp_path):
    site = make_site(tmp_path / "site", n=4, refs=1, seed=21)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sdk.cli", "-q",
           "train", str(site), "-o", str(run), "--epochs", "1", "--size", "64", "--batch", "2", "--negatives", "1",
           "--no-whitening", "--device", "cpu"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2 and len(config["history"]) == 2
