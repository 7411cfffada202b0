"""The global path of the decision rule and local geometry (runtime/thresholds.py)."""
from runtime.verify.geometric import Evidence
from runtime.recognizer import Findings, ranked
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


def test_strength_is_the_share_of_the_verification_threshold_reached():
    rule = Rule(score=0.5, support=20, fundamental=40)
    assert rule.strength(None) == 0.0
    assert rule.strength(Evidence(matches=30, inliers=10, coverage=0.5)) == 0.5       # support 10 of 20
    assert rule.strength(Evidence(matches=90, inliers=4, fundamental=30)) == 0.75     # F 30 of 40
    assert rule.strength(Evidence(matches=300, inliers=200, coverage=1.0)) == 1.0     # capped
    assert Rule(score=0.5).strength(Evidence(matches=300, inliers=200, coverage=1.0)) == 0.0


def test_partial_geometry_ranks_unverified_candidates(tiny_bundle):
    from runtime.recognizer import GEOMETRY_WEIGHT, Recognizer

    rec = Recognizer.open(tiny_bundle)
    rule = Rule(score=0.9, margin=0.0, support=20, fundamental=40)
    hits = [("a", 0.30, 0), ("b", 0.25, 1), ("c", 0.20, 2)]
    # b's fundamental matrix reached 90% of the bar: a building from another corner
    partial = {"a": Evidence(matches=20, inliers=3), "b": Evidence(matches=80, inliers=5, fundamental=36),
               "c": Evidence()}
    assert 0.25 + GEOMETRY_WEIGHT * 0.9 > 0.30
    r = rec.decide(Findings(hits, partial), rule=rule)
    assert r.best == "b" and not r.accepted  # ranked first, but only verification or the global path accept
    assert [c.instance for c in r.candidates] == ["b", "a", "c"]
    # a verified candidate still comes first, whatever the partial evidence of the others
    verified = dict(partial, c=Evidence(matches=90, inliers=30, coverage=0.6))
    r = rec.decide(Findings(hits, verified), rule=rule)
    assert r.best == "c" and r.accepted and r.decided_by == "verification"
    # without verification the global order stands
    assert rec.decide(Findings(hits), rule=rule).best == "a"


def test_each_candidate_is_held_to_its_kind_of_work_bar():
    """Kinds of works: a building's photo verifies at its kind's bar, under the site's; a work with
    no kind, or a kind without a bar, is held to the site's."""
    from runtime.thresholds import Thresholds

    th = Thresholds({"hnsw": Rule(support=40, fundamental=60, kind_support={"buildings": 16, "objects": 42})},
                    kinds={"tower": "buildings", "vase": "objects", "odd": "nowhere"})
    rule, weak = th.rule("hnsw"), Evidence(matches=60, inliers=20, coverage=1.0)   # support 20
    assert rule.support_for("tower") == 16 and rule.support_for("vase") == 42
    assert rule.support_for("odd") == rule.support_for("new") == rule.support_for(None) == 40
    assert rule.verified(weak, "tower") and not rule.verified(weak, "vase") and not rule.verified(weak)
    assert rule.strength(weak, "tower") == 1.0 and rule.strength(weak) == 0.5
    # the answer: the building verifies even where the global ranking put the object first
    order, how = ranked(Findings([("vase", 0.8, 0), ("tower", 0.7, 1)], {"vase": weak, "tower": weak}), rule)
    assert order[0] == "tower" and how == "verification"
    # a work added later joins a kind in every mode's rule (they share the bundle's map)
    th.assign_kind("new", "buildings")
    assert rule.verified(weak, "new") and th.default.support_for("new") == th.default.support
    th.assign_kind("new", None)
    assert not rule.verified(weak, "new")


def test_kinds_of_works_survive_the_manifest_and_bad_ones_are_refused():
    import pytest

    from runtime.thresholds import Thresholds

    th = Thresholds({"hnsw": Rule(support=40, kind_support={"k0": 16.5, "k1": 42})}, Rule(support=40),
                    0.01, kinds={"a": "k0", "b": "k1"})
    back = Thresholds.from_dict(th.to_dict())
    assert back == th and back.kinds == th.kinds and back.rule("hnsw").support_for("a") == 16.5
    assert "kinds" not in Thresholds().to_dict() and "kind_support" not in Rule(support=3).to_dict()
    old = Thresholds.from_dict({"modes": {"hnsw": {"support": 30}}, "default": {"support": 30}})
    assert old.kinds == {} and old.rule("hnsw").support_for("a") == 30           # bundles before kinds
    for bad in ({"kinds": {"a": 3}}, {"kinds": ["a"]},
                {"modes": {"hnsw": {"support": 30, "kind_support": {"k0": "high"}}}},
                {"modes": {"hnsw": {"support": 30, "kind_support": {"k0": -1}}}},
                {"modes": {"hnsw": {"support": 30, "kind_support": [16]}}}):
        with pytest.raises(ValueError):
            Thresholds.from_dict(bad)


def test_the_global_path_answers_only_its_kinds_of_works():
    """``Rule.global_kinds``: the global path answers works of those kinds (and works without a
    kind), verification answers any; the list survives the manifest, a malformed one is refused."""
    import pytest

    from runtime.thresholds import Thresholds

    th = Thresholds({"hnsw": Rule(0.6, 0.0, support=20, global_kinds=("objects",))},
                    kinds={"vase": "objects", "tower": "buildings"})
    rule = th.rule("hnsw")
    assert rule.global_accepts(0.8, 0.1, None, "vase") and not rule.global_accepts(0.8, 0.1, None, "tower")
    assert rule.global_accepts(0.8, 0.1, None, "new") and rule.global_accepts(0.8, 0.1)
    order, how = ranked(Findings([("tower", 0.8, 0), ("vase", 0.3, 1)]), rule)
    assert order[0] == "tower" and how is None
    strong = Evidence(matches=60, inliers=30, coverage=1.0)
    assert ranked(Findings([("tower", 0.8, 0)], {"tower": strong}), rule)[1] == "verification"
    assert ranked(Findings([("vase", 0.8, 0), ("tower", 0.3, 1)]), rule)[1] == "global"
    back = Thresholds.from_dict(th.to_dict())
    assert back == th and back.rule("hnsw").global_kinds == ("objects",)
    assert "global_kinds" not in Rule(0.5).to_dict() and Rule.from_dict({"score": 0.5}).global_kinds is None
    for bad in ("objects", [3], {"objects": True}):
        with pytest.raises(ValueError):
            Rule.from_dict({"score": 0.5, "global_kinds": bad})
