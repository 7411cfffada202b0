"""bench/survey.py's bookkeeping: the two folds hold every query photo out once, and the pooled
figures are photos summed over the folds, not an average of rates."""
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def survey():
    sys.path.insert(0, str(BENCH))   # the bench scripts import their helpers by bare name
    try:
        import survey
        yield survey
    finally:
        sys.path.remove(str(BENCH))


def test_halves_hold_every_query_photo_out_once_known_and_unknown_alike(survey):
    rows = [(f"q/{k}.jpg", "__unknown__" if k % 4 == 0 else f"w{k % 7}", "query") for k in range(41)]
    rows += [(f"r/{k}.jpg", f"w{k}", "ref") for k in range(7)]
    first, held = survey.halves(rows)
    queries = [r for r in rows if r[2] == "query"]
    assert sorted(first + held) == sorted(queries) and not set(first) & set(held)
    for unknown in (False, True):
        a = sum((r[1] == "__unknown__") == unknown for r in first)
        b = sum((r[1] == "__unknown__") == unknown for r in held)
        assert abs(a - b) <= 1


def test_pooled_sums_photos_over_folds(survey):
    folds = [{"defaults": {"known": 40, "unknown": 10, "mP@1": 0.875, "true_accept_rate": 0.8,
                           "wrong_accept_rate": 0.025, "false_accept_rate": 0.1}},
             {"defaults": {"known": 41, "unknown": 0, "mP@1": 41 / 41, "true_accept_rate": 40 / 41,
                           "wrong_accept_rate": 0.0, "false_accept_rate": None}}]
    p = survey.pooled(folds, "defaults")
    assert (p["known"], p["unknown"], p["top1"], p["right"], p["wrong_work"], p["unknown_accepted"]) == (81, 10, 76, 72, 1, 1)
    assert p["true_accept_rate"] == round(72 / 81, 4) and p["false_accept_rate"] == 0.1
    assert survey.pooled([{"defaults": {"known": 0, "unknown": 0}}], "defaults")["false_accept_rate"] is None
