import numpy as np

from export.calibration import choose_thresholds


def test_threshold_meets_target_far():
    rng = np.random.default_rng(0)
    pos_s, pos_m = rng.normal(0.8, 0.05, 500), rng.uniform(0.05, 0.3, 500)
    neg_s, neg_m = rng.normal(0.6, 0.05, 1000), rng.uniform(0.0, 0.1, 1000)
    t = choose_thresholds(pos_s, pos_m, np.ones(500, bool), neg_s, neg_m, target_far=0.01)
    far = np.mean((neg_s >= t["score"]) & (neg_m >= t["margin"]))
    assert far <= 0.01 and t["far"] == round(far, 4)
    assert t["tar"] > 0.9


def test_wrong_positives_do_not_count():
    t = choose_thresholds([0.9, 0.9], [0.2, 0.2], [True, False], [0.1], [0.0], 0.01)
    assert t["tar"] == 0.5
