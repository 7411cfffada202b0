import pytest
import torch

from runtime.errors import SitelensError
from training.backbones import create_backbone, list_backbones, read_weights_file


def test_packaged_lite0_weights_are_imagenet(tiny_net):
    # Pretrained BN statistics are far from the init values (mean 0, var 1).
    bn = tiny_net.backbone.bn1
    assert bn.running_var.mean() != pytest.approx(1.0, abs=1e-3)
    assert tiny_net.cfg.mean == (0.5, 0.5, 0.5) and tiny_net.feature_dim == 1280
    assert "tf_efficientnet_lite0" in list_backbones()


def test_weights_file_roundtrip_and_errors(tmp_path, tiny_net):
    path = tmp_path / "w.pth"
    torch.save(tiny_net.backbone.state_dict(), path)
    assert len(read_weights_file(path)) == len(tiny_net.backbone.state_dict())
    with pytest.raises(SitelensError, match="no such weights"):
        read_weights_file(tmp_path / "missing.pth")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(SitelensError, match="not a loadable"):
        read_weights_file(tmp_path / "bad.pth")
    with pytest.raises(SitelensError, match="no packaged weights"):
        create_backbone("resnet18", weights="pretrained")


def test_defaults_come_from_the_registry():
    from training.backbone_registry import DEFAULT_BACKBONE, REGISTRY, default_size
    from training.config import TrainConfig

    assert TrainConfig().backbone == DEFAULT_BACKBONE and TrainConfig().size == REGISTRY[DEFAULT_BACKBONE].default_size
    assert default_size("tf_efficientnet_lite2") == 260
    assert default_size("some_timm_model") == default_size(DEFAULT_BACKBONE)  # unknown: the default's size
