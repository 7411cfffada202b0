"""The PCA code of stored XFeat descriptors: parsing its name, fitting, encoding, and refusing a
malformed basis from a bundle."""
import numpy as np
import pytest

from runtime.errors import BundleError, SitelensError
from runtime.verify.descriptor_code import DescriptorCode, components_of
from runtime.verify.local_features import dequantize, quantize


def site_like_descriptors(n: int = 4000, rank: int = 20, seed: int = 0) -> np.ndarray:
    """Unit 64-d descriptors that mostly live in a ``rank``-dimensional subspace, as int8."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(64, rank)))[0].T
    x = rng.normal(size=(n, rank)) @ basis + 0.05 * rng.normal(size=(n, 64))
    return quantize(x / np.linalg.norm(x, axis=1, keepdims=True))


def test_names():
    assert components_of("int8") is None and components_of("pca32") == 32 and components_of("pca8") == 8
    for bad in ("pca7", "pca64", "pca", "bits4", "PCA32", "pca032x", ""):
        with pytest.raises(SitelensError, match="descriptor code"):
            components_of(bad)


def test_round_trip_keeps_descriptors_close():
    stored = site_like_descriptors()
    code = DescriptorCode.fit(stored, 32)
    codes = code.encode(stored)
    assert codes.dtype == np.int8 and codes.shape == (len(stored), 32) and code.name == "pca32"
    back = code.decode(codes)
    assert back.dtype == np.int8 and back.shape == stored.shape
    cosine = np.sum(dequantize(back) * dequantize(stored), axis=1)
    assert np.median(cosine) > 0.98 and cosine.min() > 0.9
    assert np.array_equal(code.decode(codes[:0]), np.zeros((0, 64), np.int8))


def test_fit_needs_descriptors():
    with pytest.raises(SitelensError, match="at least"):
        DescriptorCode.fit(site_like_descriptors(n=10), 32)
    with pytest.raises(SitelensError, match="8 to 63"):
        DescriptorCode.fit(site_like_descriptors(), 64)


def test_a_bundles_basis_is_checked():
    basis = DescriptorCode.fit(site_like_descriptors(), 16).basis
    assert DescriptorCode.from_array(basis, "b.sitelens").components == 16
    zero = basis.copy()
    zero[3] = 0
    nan = basis.copy()
    nan[0, 0] = np.nan
    for bad in (basis.astype(np.float64), basis[:, :32], basis[:5], np.vstack([basis] * 5), nan, zero,
                basis.astype(">f4")):
        with pytest.raises(BundleError, match="b.sitelens: verify_pca.npy"):
            DescriptorCode.from_array(bad, "b.sitelens")


def test_chunks_give_the_same_bytes(monkeypatch):
    import runtime.verify.descriptor_code as dc

    stored = site_like_descriptors(n=1000)
    code = DescriptorCode.fit(stored, 24)
    whole_codes, whole = code.encode(stored), code.decode(code.encode(stored))
    monkeypatch.setattr(dc, "CHUNK", 7)
    assert np.array_equal(code.encode(stored), whole_codes) and np.array_equal(code.decode(whole_codes), whole)
