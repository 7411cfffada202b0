import numpy as np

from training.simulator.sampler import pick, views_of


def test_pick_keeps_everything_in_order_without_a_draw_when_under_the_cap():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert pick(5, 10, rng) == [0, 1, 2, 3, 4]
    assert rng.bit_generator.state == state   # no draw: callers' later views do not shift


def test_pick_draws_distinct_indices_sorted_or_shuffled():
    chosen = pick(100, 10, np.random.default_rng(1))
    assert len(set(chosen)) == 10 and chosen == sorted(chosen)
    shuffled = pick(5, 10, np.random.default_rng(1), in_order=False)
    assert sorted(shuffled) == [0, 1, 2, 3, 4]


def test_views_of_labels_each_view_with_its_image_and_is_reproducible():
    images = [np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)]
    sim = lambda img, rng: img + np.uint8(rng.integers(0, 5))  # noqa: E731
    views, source = views_of(iter(images), 2, sim, np.random.default_rng(3))
    assert source.tolist() == [0, 0, 1, 1, 2, 2]
    assert all(abs(int(v[0, 0, 0]) - int(images[i][0, 0, 0])) < 5 for v, i in zip(views, source))
    again, _ = views_of(images, 2, sim, np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(views, again))
