"""Kinds of works and a homography-support bar per kind (``export/kinds.py``)."""
import numpy as np

from export.calibration import MIN_SUPPORT, Sample
from export.kinds import kinds_of, support_bars
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
