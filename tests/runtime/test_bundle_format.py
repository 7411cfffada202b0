import json
import zipfile

import numpy as np
import pytest

from runtime import bundle_format as bf
from runtime.errors import BundleError

MEMBERS = {bf.MODEL: b"onnx", bf.INDEX: b"hnsw", bf.REFS: bf.npy_bytes(np.zeros((2, 4), np.float16)),
           bf.LABELS: b'{"instances": ["a", "b"]}'}


def test_roundtrip(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", {"site": {"name": "s"}}, MEMBERS)
    contents = bf.read_bundle(path)
    assert contents.manifest["schema_version"] == bf.SCHEMA_VERSION
    assert contents.members[bf.MODEL] == b"onnx"
    assert contents.array(bf.REFS).shape == (2, 4)
    assert not list(tmp_path.glob(".*tmp"))


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, change(name, data))


def test_tampered_member_is_rejected(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", {}, MEMBERS)
    bad = tmp_path / "bad.sitelens"
    _rewrite(path, bad, lambda n, d: b"evil" if n == bf.INDEX else d)
    with pytest.raises(BundleError, match="index.hnsw checksum mismatch") as err:
        bf.read_bundle(bad)
    assert str(bad) in str(err.value)


def test_newer_schema_and_garbage(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", {}, MEMBERS)
    newer = tmp_path / "newer.sitelens"

    def bump(name, data):
        if name != bf.MANIFEST:
            return data
        m = json.loads(data)
        m["schema_version"] = 99
        return json.dumps(m).encode()

    _rewrite(path, newer, bump)
    with pytest.raises(BundleError, match="newer than this sitelens"):
        bf.read_bundle(newer)
    junk = tmp_path / "junk.sitelens"
    junk.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BundleError, match="not a sitelens bundle"):
        bf.read_bundle(junk)
    half = tmp_path / "half.sitelens"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleError):
        bf.read_bundle(half)
    with pytest.raises(BundleError, match="no such bundle"):
        bf.read_bundle(tmp_path / "none.sitelens")


def test_unlisted_member_rejected(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", {}, MEMBERS)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("extra.bin", b"x")
    with pytest.raises(BundleError, match="not listed"):
        bf.read_bundle(path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", {}, MEMBERS)
    before = path.read_bytes()

    def boom(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        bf.atomic_write(path, boom)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.sitelens"]
    with pytest.raises(BundleError, match="without"):
        bf.write_bundle(tmp_path / "x.sitelens", {}, {bf.MODEL: b""})
