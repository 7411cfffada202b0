"""The global path of the decision rule and local geometry (runtime/thresholds.py)."""
from runtime.geometric import Evidence
from runtime.recognizer import Findings
from runtime.thresholds import AGREE_INLIERS, JUDGE_MATCHES, Rule, geometry_contradicts


def test_geometry_that_could_judge_and_found_nothing_refuses_the_global_answer():
    rule = Rule(score=0.7, margin=0.0, support=20, fundamental=40)
    # many tentative matches, no model explains them: contradicted, even at a high score
    contradicted = Evidence(matches=JUDGE_MATCHES + 20, inliers=AGREE_INLIERS - 3)
    assert geometry_contradicts(contradicted)
    assert not rule.global_accepts(0.95, 0.2, contradicted)
    # too few matches to judge (little texture, a tiny image): the global descriptor decides
    textureless = Evidence(matches=JUDGE_MATCHES - 10, inliers=4)
    assert not geometry_contradicts(textureless) and rule.global_accepts(0.95, 0.2, textureless)
    # some agreement below the verification threshold (a colour twin, a small object): allowed
    agreeing = Evidence(matches=120, inliers=AGREE_INLIERS + 10)
    assert not geometry_contradicts(agreeing) and rule.global_accepts(0.95, 0.2, agreeing)
    # a 3-D object: the fundamental matrix agrees where no homography does
    solid = Evidence(matches=90, inliers=5, fundamental=45)
    assert not geometry_contradicts(solid)
    # without verification nothing changes
    assert not geometry_contradicts(None) and rule.global_accepts(0.95, 0.2)


def test_findings_give_the_top_candidates_evidence():
    ev = {"a": Evidence(matches=40, inliers=3), "b": Evidence(matches=200, inliers=90, coverage=0.5)}
    assert Findings([("a", 0.9, 0), ("b", 0.8, 1)], ev).top_evidence() is ev["a"]
    assert Findings([("a", 0.9, 0)]).top_evidence() is None
    assert Findings([]).top_evidence() is None
