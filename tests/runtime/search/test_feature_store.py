"""Local features stored row by row; a coded store never re-encodes what it already holds."""
import numpy as np
import pytest

from runtime.search.feature_store import FeatureStore
from runtime.verify.descriptor_code import DescriptorCode
from tests.runtime.verify.test_descriptor_code import site_like_descriptors


def _rows(descs: np.ndarray, sizes) -> list:
    out, at = [], 0
    for n in sizes:
        out.append((np.full((n, 2), at, np.float32), descs[at:at + n]))
        at += n
    return out


def test_plain_store_rows_append_and_select():
    descs = site_like_descriptors(n=60)
    store = FeatureStore.from_rows(_rows(descs, (10, 0, 20)))
    assert len(store) == 3 and store.codec is None and len(store.row(1)[0]) == 0
    more = store.appended(_rows(descs[30:], (30,)))
    assert len(more) == 4 and len(store) == 3                       # the old store is left as it was
    picked = more.select([3, 0])
    assert np.array_equal(picked.descs, np.concatenate([descs[30:], descs[:10]]))
    assert list(picked.offsets) == [0, 30, 40]
    assert len(more.select([])) == 0


def test_coded_store_keeps_its_codes():
    descs = site_like_descriptors(n=3000)
    code = DescriptorCode.fit(descs, 16)
    store = FeatureStore.from_rows(_rows(descs[:1000], (400, 600))).coded(code)
    assert store.codes.shape == (1000, 16) and store.descs.shape == (1000, 64)
    assert np.array_equal(store.descs, code.decode(store.codes))   # matching sees the decoding
    with pytest.raises(ValueError, match="already coded"):
        store.coded(code)
    more = store.appended(_rows(descs[1000:], (2000,)))              # a row added later: the site's code
    assert more.codec is code and np.array_equal(more.codes[:1000], store.codes)
    assert np.array_equal(more.codes[1000:], code.encode(descs[1000:]))
    picked = more.select([2, 0])                                     # compaction moves codes, never re-encodes
    assert np.array_equal(picked.codes, np.concatenate([more.codes[1000:], store.codes[:400]]))
    assert np.array_equal(picked.descs, code.decode(picked.codes))


def test_turned_cache_keeps_the_last_rows_read_and_each_store_its_own():
    """A steered store's ``TurnedCache``: rows made once, the least recently read dropped past its
    size, read-only arrays; a store made from it (rows renumbered) starts with an empty one."""
    from runtime.search.feature_store import FeatureStore, TurnedCache

    made = []

    def maker(key):
        def make():
            made.append(key)
            return np.full((2, 2), key, np.float32), np.full((2, 4), key, np.int8)
        return make

    cache = TurnedCache(size=2)
    a = cache.get(1, maker(1))
    assert cache.get(1, maker(1)) is a and made == [1]
    assert not a[0].flags.writeable and not a[1].flags.writeable
    cache.get(2, maker(2))
    cache.get(1, maker(1))            # 1 read last: 2 is the oldest
    cache.get(3, maker(3))
    assert len(cache) == 2 and made == [1, 2, 3]
    cache.get(1, maker(1))
    cache.get(2, maker(2))
    assert made == [1, 2, 3, 2]       # 2 had been dropped, 1 had not

    rows = [(np.zeros((3, 2), np.float32), np.zeros((3, 64), np.int8))]
    plain = FeatureStore.from_rows(rows)
    assert plain.turned is None
    steered = plain.steered(object())
    assert isinstance(steered.turned, TurnedCache)
    assert steered.appended(rows).turned is not steered.turned
