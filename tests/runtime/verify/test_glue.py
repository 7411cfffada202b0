"""The learned matcher (LighterGlue, ONNX) on a synthetic planar scene, and its place in verification."""
import numpy as np
import pytest

from export.glue_export import export_lighterglue
from export.local_features import export_xfeat
from runtime.errors import BundleError, SitelensError
from runtime.verify.geometric import fundamental_inliers
from runtime.verify.glue import PRUNING, LearnedMatcher, normalized
from runtime.verify.verifier import Verifier, VerifyParams, glue_subset, make_extractor, make_matcher
from tests.conftest import planar_scene, poster


@pytest.fixture(scope="module")
def verifier():
    params = VerifyParams()
    local, params.local_fingerprint = export_xfeat()
    glue, params.glue_fingerprint = export_lighterglue()
    return Verifier(params, make_extractor(params, local), make_matcher(params, glue))


def test_normalized_centres_keypoints_on_their_extent():
    kp = np.float32([[10, 20], [410, 20], [10, 220], [410, 220]])
    n = normalized(kp)
    assert np.allclose(n.min(axis=0), [-1, -0.5]) and np.allclose(n.max(axis=0), [1, 0.5])
    assert normalized(np.zeros((0, 2))).shape == (0, 2)


@pytest.mark.parametrize("pruning", [None, PRUNING], ids=["every point", "point pruning"])
def test_matcher_finds_the_true_pair_and_not_the_wrong_one(verifier, pruning):
    """Either graph (older bundles' scores every point; pruning's returns the points it kept, which
    ``match`` maps back to the caller's indices)."""
    matcher = LearnedMatcher(*export_lighterglue(pruning=pruning))
    scene, art = planar_scene()
    q = verifier.query_features(scene)
    found = {}
    for name, img in (("shown", art), ("other", poster(100))):
        kp, desc = verifier.reference_features(img)
        qi, ri = matcher.match(q[0], q[1], kp.astype(np.float32), desc)
        assert len(np.unique(ri)) == len(ri) and len(np.unique(qi)) == len(qi)  # one-to-one
        assert ri.max(initial=0) < len(kp) and qi.max(initial=0) < len(q[0])
        found[name] = fundamental_inliers(q[0][qi], kp[ri].astype(np.float32))
    assert found["shown"] >= 150 and found["other"] < found["shown"] / 4  # F is weak evidence: calibrated
    none = matcher.match(q[0], q[1], np.zeros((0, 2), np.float32), np.zeros((0, 64), np.int8))
    assert len(none[0]) == len(none[1]) == 0


def test_verification_calls_the_matcher_only_for_unverified_promising_candidates(verifier):
    scene, art = planar_scene()
    refs = {"shown": art, "other": poster(100)}
    feats = {n: [(k, 0, *verifier.reference_features(img))] for k, (n, img) in enumerate(refs.items())}

    def features_of(names):
        return {n: feats[n] for n in names}

    calls = []
    real = verifier.matcher.match
    verifier.matcher.match = lambda *a: calls.append(1) or real(*a)
    try:
        verifier.evidence(scene, list(refs), features_of, verified=lambda e, i: e.support >= 15)
        assert calls == []                                  # the homography verified: no learned matching
        verifier.params.glue_candidates = 1                 # the most promising candidate only
        ev = verifier.evidence(scene, list(refs), features_of, verified=lambda e, i: False)
        assert len(calls) == 1
        assert ev["shown"].fundamental >= 150 and ev["other"].fundamental < ev["shown"].fundamental / 4
        verifier.params.glue_from_fundamental = 10 ** 6     # none past the gate
        verifier.evidence(scene, list(refs), features_of, verified=lambda e, i: False)
        assert len(calls) == 1
    finally:
        verifier.matcher.match = real
        verifier.params.glue_candidates, verifier.params.glue_from_fundamental = 2, 24


def test_glue_subset_keeps_the_frame_keypoints_nearest_the_reference():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, 64)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    near = ref[:10] + 0.05 * rng.normal(size=(10, 64)).astype(np.float32)    # copies of reference keypoints
    far = rng.normal(size=(30, 64)).astype(np.float32)
    frame = np.concatenate([far[:15], near, far[15:]])
    frame = np.clip(np.round(127 * frame / np.linalg.norm(frame, axis=1, keepdims=True)), -127, 127).astype(np.int8)
    keep = glue_subset(frame, np.round(127 * ref).astype(np.int8), 10)
    assert keep.tolist() == list(range(15, 25))                 # the near ones, in the frame's order
    assert glue_subset(frame, ref, 0) is None and glue_subset(frame, ref, 40) is None   # all of them
    assert glue_subset(frame, ref[:0], 10) is None


def test_the_matcher_sees_at_most_glue_keypoints_and_still_verifies_in_3d(verifier):
    scene, art = planar_scene()
    kp, desc = verifier.reference_features(art)
    feats = {"shown": [(0, 0, kp, desc)]}
    seen = []
    real = verifier.matcher.match
    verifier.matcher.match = lambda qk, qd, rk, rd: seen.append(len(qk)) or real(qk, qd, rk, rd)
    try:
        verifier.params.glue_keypoints = 256
        ev = verifier.evidence(scene, ["shown"], lambda names: {n: feats[n] for n in names},
                               verified=lambda e, i: False)
    finally:
        verifier.matcher.match = real
        verifier.params.glue_keypoints = VerifyParams.glue_keypoints
    assert len(verifier.query_features(scene).keypoints) > 256 and seen == [256]
    assert ev["shown"].fundamental >= 100


def test_matcher_needs_its_model_and_checks_its_fingerprint():
    params = VerifyParams()
    with pytest.raises(SitelensError, match="needs glue.onnx"):
        make_matcher(params, None)
    assert make_matcher(VerifyParams.for_feature("orb"), None) is None
    assert make_matcher(VerifyParams.from_dict({"feature": "xfeat"}), None) is None  # older bundles: no matcher
    glue, _ = export_lighterglue()
    with pytest.raises(BundleError, match="fingerprint mismatch"):
        LearnedMatcher(glue, "0" * 64)
