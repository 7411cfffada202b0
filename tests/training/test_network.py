import torch

from training.checkpoint import load_run, save_run
from training.network import DescriptorNet


def test_uint8_nhwc_in_unit_descriptor_out(tiny_net):
    x = torch.randint(0, 256, (2, 64, 80, 3), dtype=torch.uint8)
    with torch.no_grad():
        d = tiny_net(x)
    assert d.shape == (2, 1280)
    assert torch.allclose(d.norm(dim=1), torch.ones(2), atol=1e-5)


def test_fingerprint_tracks_weights_and_run_roundtrip(tmp_path):
    net = DescriptorNet(weights=None, whitening_dim=64).eval()
    fp = net.fingerprint()
    assert fp == net.fingerprint()
    save_run(tmp_path / "run", net, {"input": {"size": 160}})
    again, config = load_run(tmp_path / "run")
    assert again.fingerprint() == fp and again.output_dim == 64 and config["input"]["size"] == 160
    with torch.no_grad():
        net.whiten.bias.add_(1.0)
    assert net.fingerprint() != fp
