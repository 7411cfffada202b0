"""Geometric verification with learned (XFeat, ONNX) and classical (ORB, SIFT) local features."""
import numpy as np
import pytest

from export.bundler import build_bundle
from export.local_features import export_xfeat
from runtime.search.feature_store import FeatureStore
from runtime.verify.geometric import Evidence, sane_homography
from runtime.image.image_io import load_image
from runtime.recognizer import Recognizer
from runtime.verify.verifier import FrameCache, Verifier, VerifyParams, make_extractor
from tests.conftest import planar_scene, poster


def _verifier(feature: str) -> Verifier:
    params = VerifyParams.for_feature(feature)
    local = None
    if feature == "xfeat":
        local, params.local_fingerprint = export_xfeat()
    return Verifier(params, make_extractor(params, local))


def _evidence(verifier: Verifier, query, refs: dict) -> dict[str, Evidence]:
    feats = {name: [(k, 0, *verifier.reference_features(img))] for k, (name, img) in enumerate(refs.items())}
    return verifier.evidence(query, list(refs), lambda names: {n: feats[n] for n in names})


@pytest.mark.parametrize("feature", ["xfeat", "orb", "sift"])
def test_true_pair_verified_wrong_pair_rejected(feature):
    verifier = _verifier(feature)
    scene, art = planar_scene()
    ev = _evidence(verifier, scene, {"shown": art, "other": poster(100)})
    assert ev["shown"].inliers >= 40 and ev["shown"].coverage > 0.3 and ev["shown"].support >= 40
    assert ev["other"].support < 15


def test_second_look_verifies_a_candidate_beyond_the_first_ones():
    verifier = _verifier("xfeat")
    verifier.params.candidates, verifier.params.second_look, verifier.params.second_look_geometry = 2, 3, 1
    scene, art = planar_scene()
    refs = {"a": poster(100), "b": poster(101), "c": poster(102), "shown": art, "d": poster(103)}
    feats = {name: [(k, 0, *verifier.reference_features(img))] for k, (name, img) in enumerate(refs.items())}

    def features_of(names):
        return {n: feats[n] for n in names}

    def passes(e, instance=None):
        return e.support >= 15

    ev = verifier.evidence(scene, list(refs), features_of, passes)
    assert ev["shown"].support >= 40                                   # ranked 4th globally, found anyway
    assert ev["c"].inliers == ev["d"].inliers == 0 and ev["c"].matches < ev["shown"].matches  # matched, no model
    verifier.params.second_look = 0
    assert verifier.evidence(scene, list(refs)[:2], features_of, passes)["a"].support < 15
    first = ["shown", "a", "b", "c", "d"]                              # verified among the first: no second look
    verifier.params.second_look = 3
    ev = verifier.evidence(scene, first, features_of, passes)
    assert ev["shown"].support >= 40 and set(ev) == set(first[:2])


def test_second_look_also_matches_a_turned_candidate_half_a_turn_from_its_best_row():
    """A sideways frame whose work ranks beyond the first candidates, and whose best row (by the
    global descriptor) is turned the wrong way: the row half a turn from it verifies."""
    verifier = _verifier("xfeat")
    verifier.params.candidates, verifier.params.second_look, verifier.params.second_look_geometry = 2, 3, 1
    scene, art = planar_scene()
    frame = np.ascontiguousarray(np.rot90(scene, 1))
    refs = {"a": poster(100), "b": poster(101), "c": poster(102), "d": poster(103)}
    feats = {name: [(k, 1, *verifier.reference_features(np.ascontiguousarray(np.rot90(img, 1))))]
             for k, (name, img) in enumerate(refs.items())}
    wrong, right = (verifier.reference_features(np.ascontiguousarray(np.rot90(art, t))) for t in (3, 1))
    feats["shown"] = [(10, 3, *wrong), (11, 1, *right)]    # best row first: the wrong quarter turn

    def features_of(names):
        return {n: feats[n] for n in names}

    def passes(e, instance=None):
        return e.support >= 15

    order = ["a", "b", "c", "shown", "d"]
    verifier.params.second_look_half_turn = False
    assert verifier.evidence(frame, order, features_of, passes)["shown"].support < 15
    verifier.params.second_look_half_turn = True
    ev = verifier.evidence(frame, order, features_of, passes)
    assert ev["shown"].support >= 40 and ev["shown"].rotation == 1


def test_a_lower_candidate_verifying_does_not_hide_one_ranked_above_it():
    """The photographed work ranks first globally but its best row is a view the frame does not
    show; a look-alike below it (the same print in other colours: XFeat sees grey levels) verifies
    on its best row. The first candidate still gets its other rows before verification stops; a
    first candidate that verifies on its best row stops it at once."""
    verifier = _verifier("xfeat")
    scene, art = planar_scene()
    look = np.ascontiguousarray(art[..., ::-1])               # channels swapped: the same shapes
    feats = {"shown": [(0, 0, *verifier.reference_features(poster(100))), (1, 0, *verifier.reference_features(art))],
             "look": [(2, 0, *verifier.reference_features(look)), (3, 0, *verifier.reference_features(poster(101)))]}

    def features_of(names):
        return {n: feats[n] for n in names}

    def passes(e, instance=None):
        return e.support >= 15

    ev = verifier.evidence(scene, ["shown", "look"], features_of, passes)
    assert ev["look"].support >= 15 and ev["shown"].support >= 40      # its second row was matched
    cache = FrameCache()
    ev = verifier.evidence(scene, ["look", "shown"], features_of, passes, cache=cache)
    assert ev["look"].support >= 15 and set(cache.matches) == {0, 2}    # best rows only: the first passed


def test_bundles_calibrated_before_the_second_look_keep_their_path():
    old = VerifyParams.from_dict({"feature": "xfeat", "candidates": 10})
    assert old.second_look == 0 and old.shortlist == 10
    assert old.glue_keypoints == 0          # calibrated with the learned matcher seeing every keypoint
    assert not old.second_look_half_turn    # calibrated with one row per second-look candidate
    new = VerifyParams.from_dict(VerifyParams().to_dict())
    assert new.second_look == 20 and new.shortlist == 30 and new.second_look_half_turn
    assert VerifyParams.from_dict({**VerifyParams().to_dict(), "glue_keypoints": 512}).glue_keypoints == 512


def test_xfeat_onnx_is_deterministic_and_fingerprinted(tiny_site):
    data, fingerprint = export_xfeat()
    assert len(fingerprint) == 64 and export_xfeat()[1] == fingerprint  # one export per process
    verifier = _verifier("xfeat")
    img = load_image(tiny_site / "the_orchard" / "a.jpg")
    kp, desc = verifier.reference_features(img)
    kp2, desc2 = verifier.reference_features(img)
    assert len(kp) > 50 and desc.dtype == np.int8 and desc.shape[1] == 64
    np.testing.assert_array_equal(desc, desc2)
    turned_kp, turned_desc = verifier.reference_features(img, rotation=1)
    assert 0 < len(turned_kp) <= verifier.params.turned_keypoints
    given_kp, given_desc = verifier.reference_features(img, 1, turned=np.ascontiguousarray(np.rot90(img, 1)))
    np.testing.assert_array_equal(given_kp, turned_kp)   # a caller's turned copy: the same row
    np.testing.assert_array_equal(given_desc, turned_desc)
    verifier.params.turned_features = "query"
    turned_kp, _ = verifier.reference_features(img, rotation=1)
    assert len(turned_kp) == 0                      # turned rows share the upright row's features


@pytest.mark.parametrize("turned_features", ["query", "stored"])
def test_turned_query_is_verified(turned_features):
    """A photo turned by a quarter turn verifies against the row of that turn: with shared turned
    features the frame is turned back and matched with the upright features (one more
    extraction), with stored ones against the turned copy's own features."""
    verifier = _verifier("xfeat")
    verifier.params.turned_features = turned_features
    scene, art = planar_scene(seed=3)
    turned = np.ascontiguousarray(np.rot90(scene, 1))
    upright = verifier.reference_features(art)
    rows = [(r, r, *(verifier.reference_features(art, r) if turned_features == "stored" else upright))
            for r in (1, 0, 2, 3)]                  # the index lists the best-matching (turned) row first
    upright_only = verifier.evidence(turned, ["shown"], lambda names: {"shown": [rows[1]]})
    cache = FrameCache()
    ev = verifier.evidence(turned, ["shown"], lambda names: {"shown": rows}, lambda e, i: e.support >= 15, cache=cache)
    assert ev["shown"].support >= 40 and ev["shown"].rotation == 1 and upright_only["shown"].support < 15
    assert len(cache.query) == (2 if turned_features == "query" else 1)   # upright, and the turn it verified at
    if turned_features == "query":   # the top row a quarter turn the wrong way: the other turns are tried next
        wrong_way = [(3, 3, *upright), (0, 0, *upright), (1, 1, *upright)]
        ev = verifier.evidence(turned, ["shown"], lambda names: {"shown": wrong_way}, lambda e, i: e.support >= 15)
        assert ev["shown"].support >= 40 and ev["shown"].rotation == 1


def test_a_rows_3d_model_is_fitted_once_per_frame():
    """Scoring a frame again with the same FrameCache (calibration: another match mode, or its
    work left out) reuses each row's fundamental-matrix count: the evidence equals a fresh call's."""
    verifier = _verifier("xfeat")
    scene, art = planar_scene(seed=5)
    feats = {"shown": [(0, 0, *verifier.reference_features(art))],
             "other": [(1, 0, *verifier.reference_features(poster(102)))]}

    def features_of(names):
        return {n: feats[n] for n in names}

    def never(e, instance=None):   # nothing verifies: every candidate gets its 3-D model
        return False

    cache = FrameCache()
    first = verifier.evidence(scene, ["shown", "other"], features_of, never, cache=cache)
    assert set(cache.fundamental) == {0, 1} and first["shown"].fundamental > 0
    again = verifier.evidence(scene, ["other", "shown"], features_of, never, cache=cache)
    fresh = verifier.evidence(scene, ["other", "shown"], features_of, never, cache=FrameCache())
    assert again == fresh and again["shown"].fundamental == cache.fundamental[0]


def test_insane_homographies():
    assert sane_homography(np.eye(3))
    assert not sane_homography(np.diag([-1.0, 1.0, 1.0]))        # mirrored
    assert not sane_homography(np.diag([1e-3, 1e-3, 1.0]))       # collapses the object
    assert not sane_homography(np.array([[1, 0, 0], [0, 1, 0], [0.02, 0, 1.0]]))  # extreme perspective
    assert not sane_homography(None)


def test_bundle_with_xfeat_verification_survives_updates(tmp_path, tiny_site, tiny_net):
    from tests.conftest import write_rgb

    site = tmp_path / "site"
    import shutil

    shutil.copytree(tiny_site, site)                  # the session's site stays as it is
    write_rgb(site / "poster_a" / "a.jpg", poster(0))
    out = build_bundle(site, tmp_path / "v.sitelens", tiny_net, size=64, progress=False, calibrate=False)
    rec = Recognizer.open(out)
    assert isinstance(rec.index.features, FeatureStore) and rec.verifier.params.feature == "xfeat"
    assert len(rec.index.features) == rec.index.live_count == 4 * 13  # four turns of each of 13 images
    scene, _ = planar_scene(seed=0)
    r = rec.recognize(np.ascontiguousarray(np.rot90(scene, 3)))
    assert r.best == "poster_a" and r.candidates[0].evidence.support >= 40
    rec.remove("blue_rhythm")
    rec.add("again", [tiny_site / "blue_rhythm" / "a.jpg"])
    rec.save()
    again = Recognizer.open(out)
    assert again.index.features.offsets[-1] == len(again.index.features.kps)
    assert len(again.index.features) == again.index.live_count == 4 * (13 - 2 + 1)  # blue_rhythm had 2 images
    assert sorted(set(again.index.rotations)) == [0, 1, 2, 3]
    plain = Recognizer.open(out, verify=False)
    assert plain.verifier is None and plain._feature_maker.matcher is None  # the learned matcher is not loaded
    plain.add("third", [tiny_site / "blue_rhythm" / "a.jpg"])              # added rows still get features
    assert len(plain.index.features) == plain.index.live_count


def test_fundamental_counts_each_reference_point_once():
    """Query points that all land on a few reference points fit a fundamental matrix whose epipole
    sits there; they are no 3-D evidence."""
    from runtime.verify.geometric import fundamental_inliers

    rng = np.random.default_rng(0)
    src = rng.uniform(0, 640, (120, 2)).astype(np.float32)
    few = rng.uniform(0, 640, (12, 2)).astype(np.float32)
    dst = few[rng.integers(0, len(few), len(src))]
    assert fundamental_inliers(src, dst) < 12


def test_geometric_models_do_not_depend_on_the_opencv_release():
    """Every USAC parameter is explicit and seeded (runtime/geometric.usac_params): the same
    correspondences give the same inliers on every call and every OpenCV release the bundles'
    thresholds were calibrated with. The digest was taken with OpenCV 4.13, 5.0 and 5.1 alike; a
    release whose USAC internals differ fails here (then: re-measure, re-calibrate, re-pin)."""
    import hashlib

    import cv2

    from runtime.verify.geometric import fit_homography, fundamental_inliers

    rng = np.random.default_rng(1)
    digest = hashlib.sha256()
    for _ in range(60):
        n = int(rng.integers(10, 300))
        good = int(rng.integers(4, n))
        src = rng.uniform(0, 640, (n, 2)).astype(np.float32)
        h = np.array([[1 + rng.normal(0, 0.1), rng.normal(0, 0.1), rng.normal(0, 50)],
                      [rng.normal(0, 0.1), 1 + rng.normal(0, 0.1), rng.normal(0, 50)],
                      [rng.normal(0, 1e-4), rng.normal(0, 1e-4), 1.0]])
        dst = cv2.perspectiveTransform(src[None].astype(np.float64), h)[0] + rng.normal(0, 1.5, (n, 2))
        dst[good:] = rng.uniform(0, 640, (n - good, 2))
        dst = dst.astype(np.float32)
        fit = fit_homography(src, dst)
        again = fit_homography(src, dst)
        assert (fit is None) == (again is None) and (fit is None or np.array_equal(fit[1], again[1]))
        digest.update(b"-" if fit is None else np.packbits(fit[1]).tobytes())
        digest.update(str(fundamental_inliers(src, dst)).encode())
    assert digest.hexdigest()[:16] == DIGEST_USAC, digest.hexdigest()[:16]


DIGEST_USAC = "1f1f64699c77e37a"


def test_rows_compared_by_support_only_beyond_chance():
    """Of two rows of one candidate, homography support ranks them only where it is more than
    random correspondences give (``CHANCE_INLIERS``); below, the row with more correspondences is
    kept (the 3-D test looks at the candidates with the most)."""
    from runtime.verify.geometric import CHANCE_INLIERS

    chance_turned = Evidence(matches=30, inliers=CHANCE_INLIERS - 3, coverage=0.3)   # support 5
    many_upright = Evidence(matches=108, inliers=CHANCE_INLIERS - 1, coverage=0.05)   # support below 5
    assert chance_turned.support > many_upright.support
    assert many_upright.better_than(chance_turned) and not chance_turned.better_than(many_upright)
    plane = Evidence(matches=40, inliers=CHANCE_INLIERS + 1, coverage=0.3)
    assert plane.better_than(many_upright) and not many_upright.better_than(plane)
    assert Evidence(matches=30, fundamental=60).better_than(Evidence(matches=90, fundamental=40))
    assert plane.telling_support == plane.support and chance_turned.telling_support == 0.0
