"""Tentative correspondences: the batched mutual-nearest matcher gives exactly what matching each
reference on its own gives (empty references, ties and the cosine floor included); the ratio test
keeps one correspondence per reference keypoint."""
import numpy as np

from runtime.verify.local_features import quantize
from runtime.verify.matching import mutual_nearest, mutual_nearest_many, ratio_test


def _unit(rng, n, dim=64):
    x = rng.normal(size=(n, dim))
    return quantize(x / np.linalg.norm(x, axis=1, keepdims=True))


def test_batched_mutual_nearest_equals_one_reference_at_a_time():
    rng = np.random.default_rng(0)
    q = _unit(rng, 600)
    refs = [_unit(rng, 300), _unit(rng, 0), _unit(rng, 128), _unit(rng, 2), _unit(rng, 300)]
    refs[0][:80] = q[:80]            # true correspondences
    refs[2][10:40] = q[100:130]
    refs[4][:50] = refs[0][:50]      # a second reference sharing keypoints with the first
    refs[4][50:52] = q[300]          # a tie: two reference keypoints equal to one query keypoint
    for floor in (0.5, 0.78, 0.99):
        batched = mutual_nearest_many(q, refs, floor)
        assert len(batched) == len(refs)
        for r, (qi, ri) in zip(refs, batched):
            eq, er = mutual_nearest(q, r, floor)
            assert np.array_equal(qi, eq) and np.array_equal(ri, er)
    qi, ri = mutual_nearest_many(q, refs, 0.78)[0]
    assert len(qi) == 80 and np.array_equal(qi, ri)


def test_batched_mutual_nearest_without_keypoints():
    rng = np.random.default_rng(1)
    none = _unit(rng, 0)
    assert [len(p[0]) for p in mutual_nearest_many(none, [_unit(rng, 5)])] == [0]
    assert [len(p[0]) for p in mutual_nearest_many(_unit(rng, 5), [none, none])] == [0, 0]
    assert mutual_nearest_many(_unit(rng, 5), []) == []


def test_blocks_of_references_do_not_change_the_correspondences(monkeypatch):
    """Shortlists larger than one block are multiplied block by block: any grouping gives the same
    pairs as one reference at a time."""
    import runtime.verify.matching as matching

    rng = np.random.default_rng(2)
    q = _unit(rng, 1024)
    refs = [_unit(rng, n) for n in (512, 256, 512, 0, 256, 512, 700, 3)]
    for r in refs:
        if len(r) > 40:
            r[:40] = q[rng.integers(0, len(q), 40)]
    expected = [mutual_nearest(q, r, 0.78) for r in refs]
    for block in (1, 300, 2048, 10**6):
        monkeypatch.setattr(matching, "BLOCK_ROWS", block)
        got = matching.mutual_nearest_many(q, refs, 0.78)
        assert all(np.array_equal(g[0], e[0]) and np.array_equal(g[1], e[1]) for g, e in zip(got, expected))
    assert sum(len(e[0]) for e in expected) >= 200


def test_ratio_test_counts_each_reference_keypoint_once():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 128)).astype(np.float32) * 10
    noise = np.float32([[0.5], [0.1], [0.3], [0.1], [0.1]])  # the second of the three on reference 3 is closest
    query = ref[[3, 3, 3, 7, 9]] + rng.normal(size=(5, 128)).astype(np.float32) * noise
    qi, ri = ratio_test(query, ref, binary=False)
    assert sorted(ri.tolist()) == [3, 7, 9]      # three query points passed against reference 3: one kept
    assert qi[ri.tolist().index(3)] == 1         # the closest of them
    binary = rng.integers(0, 256, size=(40, 32), dtype=np.uint8)
    qi, ri = ratio_test(binary[[5, 5, 6]], binary, binary=True)
    assert sorted(ri.tolist()) == [5, 6] and len(qi) == 2
