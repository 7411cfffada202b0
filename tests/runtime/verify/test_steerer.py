"""The steerer: quarter-turned XFeat rows made from the upright row (runtime/verify/steerer.py)."""
import numpy as np
import pytest

from export.local_features import export_xfeat
from runtime.errors import BundleError
from runtime.verify.local_features import as_float
from runtime.verify.steerer import Steerer, fit_pairs, fit_steerer, turned_points
from runtime.verify.verifier import FrameCache, Verifier, VerifyParams, make_extractor
from tests.conftest import planar_scene, poster


@pytest.fixture(scope="module")
def verifier():
    params = VerifyParams.for_feature("xfeat")
    local, params.local_fingerprint = export_xfeat()
    params.turned_features = "steered"
    return Verifier(params, make_extractor(params, local))


@pytest.fixture(scope="module")
def steerer(verifier):
    return fit_steerer(verifier.extractor, [poster(i) for i in range(200, 206)])


def test_turned_points_turn_within_their_extent():
    kp = np.array([[0, 0], [10, 0], [10, 4], [3, 2]], np.float32)
    once = turned_points(kp, 1)
    np.testing.assert_array_equal(once, [[0, 10], [0, 0], [4, 0], [2, 7]])   # as np.rot90 turns an image
    np.testing.assert_array_equal(turned_points(kp, 4), kp)
    np.testing.assert_array_equal(turned_points(turned_points(kp, 1), 3), kp)


def test_steered_descriptors_find_their_turned_keypoints(verifier, steerer):
    """On an image the steerer was not fitted on, the steered upright descriptor of a keypoint is
    the nearest of all to the descriptor XFeat gives that point in the turned image; unsteered,
    almost never."""
    image = poster(300)
    for k in (1, 2, 3):
        upright, turned = fit_pairs(verifier.extractor, image, k)
        assert len(upright) > 30
        raw = (turned @ upright.T).argmax(axis=1) == np.arange(len(turned))
        steered = as_float(steerer.turn(k, np.zeros((len(upright), 2), np.float32), np.round(upright * 127).astype(np.int8))[1])
        found = (turned @ steered.T).argmax(axis=1) == np.arange(len(turned))
        assert found.mean() > 0.8 and raw.mean() < 0.3, (k, found.mean(), raw.mean())


def test_turned_query_verifies_against_steered_rows(verifier, steerer):
    scene, art = planar_scene(seed=3)
    turned = np.ascontiguousarray(np.rot90(scene, 1))
    kp, desc = verifier.reference_features(art)
    assert len(verifier.reference_features(art, rotation=1)[0]) == 0       # nothing stored for turned rows
    rows = [(r, r, *steerer.turn(r, kp, desc)) for r in (1, 0, 2, 3)]
    assert rows[0][3].dtype == np.int8 and rows[0][2].shape == kp.shape
    ev = verifier.evidence(turned, ["shown"], lambda names: {"shown": rows}, lambda e: e.support >= 15,
                           cache=FrameCache())
    assert ev["shown"].support >= 40 and ev["shown"].rotation == 1
    upright_only = verifier.evidence(turned, ["shown"], lambda names: {"shown": [rows[1]]})
    assert upright_only["shown"].support < 15


def test_a_bundle_steerer_is_checked(steerer):
    assert Steerer.from_array(steerer.matrices, "s").matrices.shape == (3, 64, 64)
    for bad in (steerer.matrices[:2], steerer.matrices.astype(np.float64), np.zeros((3, 64, 64), np.float32),
                np.full((3, 64, 64), np.nan, np.float32), "not an array"):
        with pytest.raises(BundleError, match="s: verify_steer.npy"):
            Steerer.from_array(bad, "s")


def test_blank_images_cannot_fit_a_steerer(verifier):
    with pytest.raises(ValueError, match="too few keypoints"):
        fit_steerer(verifier.extractor, [np.full((200, 300, 3), 128, np.uint8)])
