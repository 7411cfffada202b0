import numpy as np
import pytest

from export.bundler import build_bundle
from runtime.feature_store import FeatureStore
from runtime.geometric import VerifyParams, count_inliers, local_features
from runtime.image_io import load_image
from runtime.recognizer import Recognizer
from training.simulator.geometry import perspective


@pytest.mark.parametrize("feature", ["orb", "sift"])
def test_inliers_separate_same_from_other(tiny_site, feature):
    params = VerifyParams(feature=feature)
    a = load_image(tiny_site / "harbour_at_dusk" / "a.jpg")
    b = load_image(tiny_site / "blue_rhythm" / "a.jpg")
    view = perspective(np.random.default_rng(0), a, 0.1)
    qk, qd = local_features(view, params)
    same = count_inliers(qk, qd, *local_features(a, params), params)
    other = count_inliers(qk, qd, *local_features(b, params), params)
    assert same >= params.min_inliers > other


def test_bundle_with_verification_confirms_and_survives_updates(tmp_path, tiny_site, tiny_net):
    out = build_bundle(tiny_site, tmp_path / "v.sitelens", tiny_net, size=64, progress=False, verify="orb")
    rec = Recognizer.open(out)
    assert isinstance(rec.index.features, FeatureStore) and rec.verifier is not None
    rec.verify_params.ambiguous_margin = 2.0  # verify every answer
    img = perspective(np.random.default_rng(1), load_image(tiny_site / "the_orchard" / "a.jpg"), 0.08)
    r = rec.recognize(img)
    assert r.verified is not None and r.best == "the_orchard" and r.accepted
    assert r.verified["the_orchard"] >= rec.verify_params.min_inliers
    rec.remove("blue_rhythm")
    rec.add("again", [tiny_site / "blue_rhythm" / "a.jpg"])
    rec.save()
    again = Recognizer.open(out)
    assert again.index.features.offsets[-1] == len(again.index.features.kps)
    assert len(again.index.features) == again.index.live_count
    assert Recognizer.open(out, verify=False).verifier is None
