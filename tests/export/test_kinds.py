"""Kinds of works and a homography-support bar per kind (``export/kinds.py``)."""
import numpy as np

from export.calibration import MIN_SUPPORT, Sample
from export.kinds import MAX_KINDS, kinds_of, number_of_kinds, support_bars
from runtime.recognizer import Findings
from runtime.verify.geometric import Evidence


def test_kinds_group_works_by_their_mean_descriptor():
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:2]      # two kinds far apart
    rows, names = [], []
    for kind in range(2):
        for w in range(5):
            for _ in range(3):                    # three rows a work (turns, several references)
                v = centres[kind] + 0.05 * rng.normal(size=8)
                rows.append(v / np.linalg.norm(v))
                names.append(f"{'ab'[kind]}{w}")
    kinds = kinds_of(np.stack(rows), names, 2)
    assert len(set(kinds.values())) == 2
    assert len({kinds[f"a{w}"] for w in range(5)}) == 1 and len({kinds[f"b{w}"] for w in range(5)}) == 1
    assert kinds_of(np.stack(rows), names, 2) == kinds          # deterministic
    assert set(kinds_of(np.stack(rows)[:3], names[:3], 4).values()) == {"k0"}   # one work: one kind


def _negative(source, **support_by_instance):
    ev = {i: Evidence(matches=2 * n, inliers=n, coverage=1.0) for i, n in support_by_instance.items()}
    return Sample({"hnsw": Findings([(i, 0.5, 0) for i in ev], ev)}, None, source)


def test_each_kind_gets_the_bar_its_own_negatives_set():
    """Look-alike objects verify unknowns at 40 inliers; buildings' unknowns reach 15 at most: the
    objects' bar stays above their negatives, the buildings' falls to what theirs need."""
    kind_of = {"obj1": "objects", "obj2": "objects", "bldg1": "buildings", "bldg2": "buildings"}
    negatives = ([_negative("simulated", obj1=40, bldg1=10) for _ in range(3)]
                 + [_negative("simulated", bldg2=15)] + [_negative("simulated") for _ in range(196)]
                 + [_negative("wall", bldg1=13)])
    bars = support_bars(negatives, kind_of, target_far=0.01)
    assert bars["objects"] > 40 and 15 < bars["buildings"] < 40
    one = support_bars(negatives, {i: "site" for i in kind_of}, target_far=0.01)["site"]
    assert one > 40                               # one bar for both: the objects' one
    assert support_bars([], kind_of, 0.01) == {"buildings": MIN_SUPPORT, "objects": MIN_SUPPORT}


def test_a_small_site_keeps_one_bar_and_a_large_one_gets_several():
    assert number_of_kinds(200, 0.01) == 1          # each kind's share must still allow one unknown view
    assert number_of_kinds(400, 0.01) == 2 and number_of_kinds(800, 0.01) == 4
    assert number_of_kinds(100_000, 0.01) == MAX_KINDS and number_of_kinds(0, 0.01) == 1


def test_the_rule_holds_each_kind_to_its_bar_within_the_budget(tiny_bundle):
    """choose_rule with kinds: the objects' look-alikes no longer set the buildings' bar, a photo of
    a building that verifies at 20 is accepted, and the negatives stay within the budget."""
    from export.calibration import SampleSet, choose_rule
    from runtime.recognizer import Recognizer

    rec = Recognizer.open(tiny_bundle)   # a real verifier; the samples below are made by hand
    kind_of = {"obj1": "objects", "obj2": "objects", "bldg1": "buildings", "bldg2": "buildings"}
    negatives = ([_negative("simulated", obj1=40, bldg1=10) for _ in range(3)]
                 + [_negative("simulated", bldg2=15)] + [_negative("simulated") for _ in range(196)])
    building = _negative("simulated", bldg1=20)
    samples = SampleSet([Sample(building.findings, "bldg1", "simulated")], negatives)
    one, _ = choose_rule(rec, samples, "hnsw", 0.01)
    rule, report = choose_rule(rec, samples, "hnsw", 0.01, kind_of)
    assert one.kind_support is None and one.support > 40 and report["far"] <= 0.01
    assert rule.support == one.support and rule.kind_support == support_bars(negatives, kind_of, 0.01)
    assert not one.verified(building.findings["hnsw"].verification["bldg1"], "bldg1")
    assert rule.verified(building.findings["hnsw"].verification["bldg1"], "bldg1") and report["tar"] == 1.0
    # one kind only: nothing to split
    assert choose_rule(rec, samples, "hnsw", 0.01, {i: "k0" for i in kind_of})[0].kind_support is None
