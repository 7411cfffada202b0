"""The matching benchmarks' helpers (bench/_ann.py): the intrinsic-dimension estimate that sets how
hard their synthetic descriptors are, and the generator it calibrates."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("bench_ann", Path(__file__).resolve().parents[2] / "bench" / "_ann.py")
ann = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ann)


@pytest.mark.parametrize("d", [3, 6])
def test_twonn_finds_the_dimension_of_a_sphere_in_a_wide_space(d):
    # Gaussian points of a d-dim subspace of 256-d, unit-normalised: a (d-1)-sphere
    rng = np.random.default_rng(d)
    x = rng.normal(size=(800, d)) @ rng.normal(size=(d, 256))
    assert ann.twonn_dimension(x) == pytest.approx(d - 1, abs=0.6)


def test_twonn_is_scale_free_and_skips_duplicates():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 64))
    base = ann.twonn_dimension(x)
    assert ann.twonn_dimension(7.0 * x) == pytest.approx(base)
    assert ann.twonn_dimension(np.concatenate([x, x[:10]])) == pytest.approx(base, rel=0.15)
    with pytest.raises(ValueError, match="3 distinct rows"):
        ann.twonn_dimension(np.ones((5, 8)))


def test_generator_hardness_follows_its_intrinsic_setting():
    dims = [ann.twonn_dimension(ann.synthetic_descriptors(400, 0, 256, intrinsic=i, seed=0)[0])
            for i in (8, ann.CALIBRATED_INTRINSIC, ann.STRESS_INTRINSIC)]
    assert dims[0] < dims[1] < dims[2]
    base, queries = ann.synthetic_descriptors(200, 20, 64, seed=3)
    assert base.shape == (200, 64) and queries.shape == (20, 64)
    assert np.allclose(np.linalg.norm(base, axis=1), 1, atol=1e-5)
    # not trivially separable: a query's best match is not far ahead of its second
    scores = np.sort(queries @ base.T, axis=1)
    assert np.median(scores[:, -1] - scores[:, -2]) < 0.1
