"""The one owner of sitelens's numbers (runtime/metrics.py) and eval's summary of them."""
import pytest

from runtime.evaluate import summarize
from runtime.metrics import global_average_precision


def test_gap_ranks_every_answer_by_confidence():
    # three known queries and one unknown; answers ranked by confidence: right, wrong (the unknown), right, wrong
    conf, right = [0.9, 0.8, 0.7, 0.1], [True, False, True, False]
    assert global_average_precision(conf, right, known=3) == pytest.approx((1 / 1 + 2 / 3) / 3)
    # the same answers, the sure wrong one ranked last: higher GAP
    assert global_average_precision([0.9, 0.05, 0.7, 0.1], right, known=3) == pytest.approx((1 + 1) / 3)
    assert global_average_precision([1.0, 0.5], [True, True], known=2) == 1.0
    assert global_average_precision([], [], known=0) == 0.0


def _row(truth, best, accepted, confidence):
    row = {"truth": truth, "best": best, "accepted": accepted, "confidence": confidence, "ap": 1.0,
           "recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0}
    if truth:
        row["correct"] = best in truth
    row["right"] = accepted and best in truth if truth else not accepted
    return row


def test_summary_tells_wrong_accepts_from_false_accepts():
    rows = [_row(["a"], "a", True, 1.9), _row(["b"], "c", True, 1.8),     # right; wrong work accepted
            _row(["d"], "e", False, 0.4), _row([], "a", True, 1.5),      # wrong, rejected; unknown accepted
            _row([], "b", False, 0.3)]
    out = summarize(rows)
    assert out["true_accept_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert out["wrong_accept_rate"] == pytest.approx(1 / 3, abs=1e-4)   # b shown, c announced
    assert out["false_accept_rate"] == 0.5
    assert out["GAP"] == pytest.approx(1 / 3, abs=1e-4)                 # one right answer, ranked first
    only_unknown = summarize([_row([], "a", False, 0.2)])
    assert only_unknown["wrong_accept_rate"] is None and only_unknown["GAP"] is None


def test_accept_rates_split_right_wrong_and_unknown_accepts():
    from runtime.metrics import accept_rates

    rates = accept_rates([True, True, False, True], [True, False, False, True], [False, True])
    assert rates == {"true_accept_rate": 0.5, "wrong_accept_rate": 0.25, "false_accept_rate": 0.5}
    assert accept_rates([True], [True], [])["false_accept_rate"] is None
    assert accept_rates([], [], [True]) == {"true_accept_rate": None, "wrong_accept_rate": None,
                                            "false_accept_rate": 1.0}
