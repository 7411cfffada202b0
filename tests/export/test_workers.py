"""``--workers``: the build's pool of processes gives the same results as one process."""
import numpy as np
import pytest

from export.workers import Pool, run, threads_per_worker
from runtime.bundle import format as bf
from runtime.errors import SitelensError
from runtime.recognizer import Recognizer
from runtime.site import load_site


def _make_state(base):
    return {"base": base}


def _add(state, item):
    return state["base"] + item


def test_pool_keeps_the_items_order_in_and_out_of_process():
    """Two spawned workers, each with its own state from ``make_state``, give the in-process
    answers in the items' order; a generator is taken a batch at a time."""
    assert run(_add, range(5), {"base": 10}, _make_state, (10,), workers=1, progress=False) == list(range(10, 15))
    with Pool({"base": 10}, _make_state, (10,), workers=2) as pool:
        assert pool.map(_add, list(range(40)), progress=False) == list(range(10, 50))
        assert pool.map(_add, (i for i in range(7)), progress=False, batch=3) == list(range(10, 17))
    assert threads_per_worker(1) >= threads_per_worker(2) >= 1


def _finish_time(state, item):
    import time

    time.sleep(0.02)
    return time.monotonic()


def test_pool_holds_at_most_a_batch_of_items_in_flight():
    """A generator's item k is taken only once item k - batch has been answered (the bound on
    images held at once that calibration's batches rely on)."""
    import time

    taken = []

    def items():
        for k in range(12):
            taken.append(time.monotonic())
            yield k

    with Pool(None, _make_state, (0,), workers=2) as pool:
        done = pool.map(_finish_time, items(), progress=False, batch=3)
    assert len(done) == 12
    assert all(done[k - 3] <= taken[k] for k in range(3, 12))


def _threads(state, item):
    import cv2
    from threadpoolctl import threadpool_info

    return cv2.getNumThreads(), sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})


def test_workers_share_the_cores_in_blas_and_opencv_too():
    """Each worker's BLAS (numpy's matrix products) and OpenCV (RANSAC, resizing) pools hold its
    share of the cores, as its ONNX Runtime sessions do: a pool of one thread per core in every
    worker oversubscribes the machine."""
    share = threads_per_worker(2)
    with Pool(None, _make_state, (0,), workers=2) as pool:
        for opencv, blas in pool.map(_threads, list(range(4)), progress=False):
            assert opencv == share
            assert blas in ([], [share])


def test_workers_option_is_checked():
    from export.options import BuildOptions

    assert BuildOptions(workers=3).processes == 3
    assert BuildOptions(workers=0).processes >= 1   # one per core
    with pytest.raises(SitelensError, match="--workers"):
        BuildOptions(workers=-1).check()


def _samples(samples):
    return [(s.truth, s.source, repr(s.findings)) for s in samples]


def test_describe_and_calibration_samples_do_not_depend_on_workers(tiny_bundle, tiny_site):
    """References described and calibration samples scored in two processes (each rebuilding the
    models from the bundle's bytes) equal those of one process, row for row and finding for
    finding: the bundle is the same for any ``--workers``."""
    from export.calibration import gather
    from export.references import describe_references

    contents = bf.read_bundle(tiny_bundle)
    rec = Recognizer(contents, providers=["CPUExecutionProvider"])
    site = load_site(tiny_site)
    recipe = (contents.members[bf.MODEL], rec.spec, rec.verifier.params, contents.members.get(bf.LOCAL_MODEL))
    described = [describe_references(rec.embedder, site, progress=False, rotations=(0, 1), verifier=rec.verifier,
                                     workers=w, recipe=recipe) for w in (1, 2)]
    assert [str(r.path) for r in described[0].used] == [str(r.path) for r in described[1].used]
    np.testing.assert_array_equal(described[0].descriptors, described[1].descriptors)
    for row0, row1 in zip(described[0].features, described[1].features):   # keypoints, descriptors, chroma
        assert len(row0) == len(row1) == 3
        for a, b in zip(row0, row1):
            np.testing.assert_array_equal(a, b)

    small = dict(min_views=6, max_views=6, backgrounds=2, collages=1, progress=False)
    one, two = (gather(rec, site, ("exact", "hnsw"), workers=w, contents=contents, **small) for w in (1, 2))
    assert len(one.positives) == 6 and len(one.negatives) >= 6 + 2 + 1
    assert _samples(one.positives) == _samples(two.positives)
    assert _samples(one.negatives) == _samples(two.negatives)
