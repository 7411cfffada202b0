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


def test_lettering_pixels_do_not_depend_on_the_opencv_release():
    """Labels and test posters are drawn from the simulator's own stroke font (cv2.putText's glyphs
    changed between OpenCV 5.0 and 5.1). These digests were taken with OpenCV 4.13, 5.0 and 5.1
    alike; a release that rasterises anti-aliased polylines differently fails here."""
    import hashlib

    from tests.conftest import poster
    from training.simulator.lettering import draw_text, text_width

    img = np.zeros((60, 320, 3), np.uint8)
    draw_text(img, "GALLERY night 7", (5, 40), 18, (255, 200, 100), 2)
    width = text_width("GALLERY night 7", 18)
    assert abs(width - 88 * 3) < 1e-9                     # 15 advances of 6 units, less the last gap
    assert img[:, 5:8].any() and img[:, int(5 + width) - 3:int(5 + width)].any()  # drawn from end to end
    assert not img[:, int(5 + width) + 3:].any() and not img[41 + 2:].any()  # and nowhere else
    digest = hashlib.sha256(img.tobytes() + poster(0).tobytes() + wall_label(np.random.default_rng(0), 120, 160)
                            .tobytes()).hexdigest()[:16]
    assert digest == DIGEST_LETTERING, digest


DIGEST_LETTERING = "7e65745fe58b0149"
