"""Area downscale in row bands on several threads: the same pixels as one OpenCV call."""
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from runtime.image.area_resize import area_resize, exact_cuts
from runtime.image.preprocess import InputSpec, resize_for_model


def _photo_like(h, w, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, channels) if channels else (h, w), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 1.5)  # texture at every scale, not just noise


@pytest.mark.parametrize("shape,size", [
    ((720, 1280), (224, 398)),    # a 16:9 camera frame to the network input: one exact cut
    ((1080, 1920), (224, 398)),
    ((1280, 720), (398, 224)),    # portrait
    ((960, 1280), (224, 299)),    # 4:3
    ((733, 1301), (224, 397)),    # odd sizes: no exact cut, one call
])
@pytest.mark.parametrize("channels", [3, 0])
def test_same_pixels_as_one_opencv_call(shape, size, channels):
    img = _photo_like(*shape, channels=channels, seed=shape[0])
    want = cv2.resize(img, size[::-1], interpolation=cv2.INTER_AREA)
    for parts in (2, 3, 4):
        got = area_resize(img, size, parts=parts)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got, want), (shape, size, parts, int(np.abs(got.astype(int) - want).max()))


def test_exact_cuts_fall_on_whole_input_rows():
    assert exact_cuts(720, 224, 2) == [112]
    assert exact_cuts(1080, 224, 2) == [112]
    assert exact_cuts(733, 224, 2) == []  # gcd 1: no output row boundary lands on an input row
    for h, th, parts in [(720, 224, 4), (960, 224, 3), (1280, 398, 2)]:
        cuts = exact_cuts(h, th, parts)
        assert all(0 < r < th and r * h % th == 0 for r in cuts) and cuts == sorted(set(cuts))


def test_resize_for_model_uses_it_and_keeps_its_output():
    img = _photo_like(720, 1280)
    spec = InputSpec(size=224)
    assert np.array_equal(resize_for_model(img, spec), cv2.resize(img, (398, 224), interpolation=cv2.INTER_AREA))


def test_many_threads_at_once_get_their_own_results():
    imgs = [_photo_like(720, 1280, seed=s) for s in range(4)]
    want = [cv2.resize(i, (398, 224), interpolation=cv2.INTER_AREA) for i in imgs]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda k: area_resize(imgs[k % 4], (224, 398), parts=2), range(32)))
    assert all(np.array_equal(g, want[k % 4]) for k, g in enumerate(got))


def test_a_forked_child_gets_its_own_pool():
    import multiprocessing as mp

    img = _photo_like(720, 1280)
    area_resize(img, (224, 398), parts=2)  # the parent's pool exists before the fork
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(area_resize, (img, (224, 398)), {"parts": 2}).get(timeout=60)
    assert np.array_equal(got, cv2.resize(img, (398, 224), interpolation=cv2.INTER_AREA))
