import numpy as np

from training.simulator import CameraViewSimulator, SimulatorConfig, random_wall, wall_label


def test_views_are_deterministic_and_valid():
    img = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    a = [CameraViewSimulator(seed=5)(img) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    sim = CameraViewSimulator(SimulatorConfig(output_longest=256), seed=1)
    for _ in range(30):
        v = sim(img)
        assert v.dtype == np.uint8 and v.ndim == 3 and v.shape[2] == 3 and max(v.shape[:2]) <= 256
        assert min(v.shape[:2]) >= 8


def test_views_differ_from_source():
    img = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    sim = CameraViewSimulator(seed=2)
    assert any(v.shape != img.shape or np.abs(v.astype(int) - img).mean() > 5 for v in (sim(img) for _ in range(5)))


def test_backgrounds():
    rng = np.random.default_rng(0)
    assert random_wall(rng, 50, 70).shape == (50, 70, 3)
    assert wall_label(rng, 120, 160).shape == (120, 160, 3)
