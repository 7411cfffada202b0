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
    ev = verifier.evidence(turned, ["shown"], lambda names: {"shown": rows}, lambda e, i: e.support >= 15,
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


class _Counting(Steerer):
    """A steerer that counts the rows it turns."""

    def __init__(self, matrices):
        super().__init__(matrices)
        self.turned = 0

    def turn(self, rotation, kp, desc):
        self.turned += 1
        return super().turn(rotation, kp, desc)


def test_steered_rows_are_made_when_verification_reads_them(verifier, steerer):
    """The index hands turned rows out unmade; verification makes only those it matches (a
    candidate's other turns only when its best row did not verify), each once, equal to
    ``Steerer.turn`` of the upright row."""
    from runtime.search.feature_store import FeatureStore, SteeredRow
    from runtime.search.index import IndexParams, ReferenceIndex

    scene, art = planar_scene(seed=3)
    kp, desc = verifier.reference_features(art)
    counting = _Counting(steerer.matrices)
    empty = (kp[:0], desc[:0])
    store = FeatureStore.from_rows([(kp, desc), empty, empty, empty]).steered(counting)
    rng = np.random.default_rng(0)
    descs = rng.normal(size=(4, 16)).astype(np.float32)
    descs /= np.linalg.norm(descs, axis=1, keepdims=True)
    index = ReferenceIndex(descs, ["shown"] * 4, params=IndexParams(), features=store, rotations=[0, 1, 2, 3],
                           images=[0, 0, 0, 0])
    rows = index.features_of(["shown"], descs[0], 4)["shown"]
    assert rows[0].row == 0 and sum(isinstance(r, SteeredRow) for r in rows) == 3 and counting.turned == 0
    ev = verifier.evidence(scene, ["shown"], lambda names: index.features_of(names, descs[0], 4),
                           lambda e, i: e.support >= 15, cache=FrameCache())
    assert ev["shown"].support >= 40 and counting.turned == 0     # the upright row verified: none made
    turned = next(r for r in rows if r.rotation == 1)
    row, rotation, tkp, tdesc = turned
    want = steerer.turn(1, kp, desc)
    np.testing.assert_array_equal(tdesc, want[1])
    np.testing.assert_array_equal(tkp, want[0])
    assert (row, rotation) == (turned.row, 1) and counting.turned == 1
    turned.descriptors
    assert counting.turned == 1                                   # made once
    again = next(r for r in index.features_of(["shown"], descs[0], 4)["shown"] if r.rotation == 1)
    assert again is not turned and again.descriptors is tdesc and counting.turned == 1   # the store kept it
    assert not tdesc.flags.writeable                              # shared by every reader: read-only
