import numpy as np

from runtime.image.preprocess import InputSpec, resize_for_model


def test_shorter_side_and_aspect_cap():
    spec = InputSpec(size=224, max_aspect=2.0)
    assert spec.target_shape(480, 640) == (224, 299)
    assert spec.target_shape(100, 1000) == (45, 448)  # capped: longer side <= 2 * 224
    assert spec.target_shape(224, 224, scale=2 ** 0.5) == (317, 317)
    out = resize_for_model(np.zeros((480, 640, 3), np.uint8), spec)
    assert out.shape == (224, 299, 3) and out.dtype == np.uint8


def test_roundtrip_dict():
    spec = InputSpec(size=160, max_aspect=1.5)
    assert InputSpec.from_dict(spec.to_dict()) == spec
