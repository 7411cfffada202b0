"""Colour at keypoints: a look-alike in other colours is refused, a change of light is not."""
import numpy as np
import pytest

from export.local_features import export_xfeat
from runtime.thresholds import Rule
from runtime.verify import colour
from runtime.verify.geometric import Evidence
from runtime.verify.verifier import Verifier, VerifyParams, make_extractor
from tests.conftest import planar_scene, poster
from training.simulator.photometric import colour_cast


def _verifier(feature: str = "xfeat", with_colour: bool = True) -> Verifier:
    params = VerifyParams.for_feature(feature)
    params.colour = with_colour
    local = None
    if feature == "xfeat":
        local, params.local_fingerprint = export_xfeat()
    return Verifier(params, make_extractor(params, local))


def test_chroma_is_centred_on_grey_and_averaged_over_the_square_around_a_point():
    img = np.full((64, 64, 3), 128, np.uint8)
    img[:, 32:] = (200, 30, 30)                                   # red right half
    field = colour.ChromaField(img, (64, 64))
    pts = np.float32([[8, 8], [56, 8], [200, 200], [32, 8]])      # grey, red, outside (clipped), on the edge
    c = field.at(pts, 4)
    assert c.dtype == np.int8 and c.shape == (4, 2)
    assert np.abs(c[0]).max() <= 1                                # grey: no chroma
    assert c[1, 0] > 40 and c[2, 0] > 40                          # red: a* well above grey
    assert 0.3 * c[1, 0] < c[3, 0] < 0.7 * c[1, 0]                # on the edge: half of each
    assert colour.ChromaField(img[:, :, 0], (64, 64)).at(pts, 4).tolist() == [[0, 0]] * 4   # a grey image
    assert field.at(np.zeros((0, 2), np.float32), 4).shape == (0, 2)
    assert colour.match_scale(pts[:2] * 2, pts[:2]) == 2.0


def test_colour_gap_counts_coloured_points_only():
    grey = np.zeros((50, 2), np.int8)
    assert colour.colour_gap(grey, grey + 5) is None                    # nothing coloured: no evidence
    few = np.zeros((colour.MIN_POINTS - 1, 2), np.int8) + 30
    assert colour.colour_gap(few, few) is None
    red, green = np.tile(np.int8([[40, 20]]), (30, 1)), np.tile(np.int8([[-40, 20]]), (30, 1))
    # grey ignored; paler or more vivid is credited (at most halved), another hue is not
    assert colour.colour_gap(np.concatenate([red, grey[:20]]), np.concatenate([green, grey[:20]])) == pytest.approx(
        np.hypot(60, 10), abs=1e-3)
    assert colour.colour_gap(red // 2, red) == 0.0
    assert colour.colour_gap(np.concatenate([red, grey]), np.concatenate([green, grey])) is None  # a mostly grey work
    assert 0 < colour.colour_gap(red, red + np.int8([3, 4])) < 5.0                # part of it a paler print


def test_a_shift_of_the_light_read_from_grey_points_is_removed_up_to_a_bound():
    ref = np.concatenate([np.tile(np.int8([[40, 20]]), (30, 1)), np.zeros((20, 2), np.int8)])
    warm = ref.astype(np.int16) + np.int16([6, 8])                      # a lamp tints paint and stone alike
    assert colour.colour_gap(warm.astype(np.int8), ref) == 0.0
    painted = ref.copy()
    painted[:30] = (-40, 20)                                            # other paint, the grey parts as they were
    assert colour.colour_gap(painted, ref) > 3 * colour.GAP
    tinted = ref.astype(np.int16) + np.int16([0, 40])                   # more than a lamp does: credited in part
    assert colour.colour_gap(tinted.astype(np.int8), ref) > colour.GAP


def test_a_look_alike_in_other_colours_is_refused_and_a_colour_cast_is_not():
    verifier = _verifier()
    scene, art = planar_scene(1)                                  # a print in strong colours
    look = np.ascontiguousarray(art[..., ::-1])                   # the same print, channels swapped
    feats = {"shown": [(0, 0, *verifier.reference_features(art))],
             "look": [(1, 0, *verifier.reference_features(look))]}
    assert len(feats["shown"][0]) == 5 and feats["shown"][0][4].dtype == np.int8

    def evidence(frame):
        return verifier.evidence(frame, ["shown", "look"], lambda names: {n: feats[n] for n in names})

    rule = Rule(support=15, colour=colour.GAP)
    ev = evidence(scene)
    assert ev["shown"].support >= 40 and ev["look"].support >= 40      # XFeat sees grey levels: both line up
    assert ev["shown"].colour < colour.GAP / 2 < colour.GAP < ev["look"].colour
    assert rule.verified(ev["shown"], "shown") and not rule.verified(ev["look"], "look")
    assert rule.strength(ev["look"]) == 0 and rule.verified(ev["look"], "look", colour=False)
    assert Rule(support=15).verified(ev["look"], "look")               # a bundle without the test: as before
    rng = np.random.default_rng(0)
    for _ in range(5):                                                  # the simulator's casts: a lamp, a phone
        ev = evidence(colour_cast(rng, scene, 0.15))
        assert ev["shown"].colour is not None and ev["shown"].colour < colour.GAP
        assert rule.verified(ev["shown"], "shown")


def test_without_colour_nothing_is_measured():
    verifier = _verifier("orb", with_colour=False)
    scene, art = planar_scene()
    assert len(verifier.reference_features(art)) == 2
    ev = verifier.evidence(scene, ["shown"], lambda names: {"shown": [(0, 0, *verifier.reference_features(art))]})
    assert ev["shown"].support >= 40 and ev["shown"].colour is None and "colour" not in ev["shown"].to_dict()


def test_turned_rows_without_features_bring_empty_chroma():
    verifier = _verifier("orb")
    verifier.params.turned_features = "query"
    kp, desc, chroma = verifier.reference_features(poster(1), rotation=1)
    assert len(kp) == len(desc) == len(chroma) == 0 and chroma.dtype == np.int8


def test_rule_colour_round_trips():
    r = Rule(support=12.0, colour=20.0)
    assert Rule.from_dict(r.to_dict()) == r and "colour" not in Rule(support=12.0).to_dict()
    assert Rule.from_dict({"support": 12.0}).colour is None
    with pytest.raises(ValueError, match="colour"):
        Rule.from_dict({"colour": -1})
    assert not Rule(colour=20.0).colour_contradicts(Evidence(colour=None))


def test_the_global_top_1_is_spared_the_colour_test():
    """The global descriptor sees colour: a work it ranks first whose colours still differ (a
    catalogue image of another printing) is answered; ranked below another work, a match in
    other colours is a look-alike and is not."""
    from runtime.recognizer import Findings, ranked

    rule = Rule(support=15, global_path=False, colour=colour.GAP)
    off = Evidence(matches=60, inliers=50, coverage=0.5, colour=colour.GAP + 10)
    assert ranked(Findings([("look", 0.9), ("x", 0.5)], {"look": off, "x": Evidence()}), rule) == (["look", "x"],
                                                                                                  "verification")
    order, by = ranked(Findings([("x", 0.9), ("look", 0.8)], {"x": Evidence(), "look": off}), rule)
    assert by is None and order == ["x", "look"]
