"""Each work's mean descriptor and the kind a new work joins (runtime/work_kinds.py)."""
import numpy as np

from runtime.work_kinds import nearest_kind, work_means


def test_work_means_average_every_row_of_a_work():
    rows = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], np.float32)
    instances, means = work_means(rows, ["b", "a", "b", "a"])
    assert instances == ["a", "b"]
    np.testing.assert_allclose(means, [[0, 2 ** -0.5, 2 ** -0.5], [2 ** -0.5, 0, 2 ** -0.5]], atol=1e-6)
    assert work_means(rows, ["b", "a", "b", "a"], keep=[True, False, True, False])[0] == ["b"]
    assert work_means(rows[:0], [])[0] == []


def test_a_new_work_joins_the_kind_it_is_nearest():
    instances = ["a1", "a2", "b1", "new"]
    means = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.2, 0.98]], np.float32)
    kinds = {"a1": "objects", "a2": "objects", "b1": "buildings"}
    assert nearest_kind(means[3], instances, means, kinds) == "buildings"
    assert nearest_kind(means[0], instances, means, kinds) == "objects"
    assert nearest_kind(means[3], instances, means, {}) is None
