import json
import zipfile

import numpy as np
import pytest

from runtime.bundle import format as bf
from runtime.bundle.index_members import index_members
from runtime.errors import BundleError
from runtime.search.index import ReferenceIndex
from runtime.bundle.manifest import IndexInfo, Manifest, ModelInfo, SiteInfo
from runtime.search.index_params import IndexParams
from runtime.image.preprocess import InputSpec
from tests.toy_bundle import claim_member_size


def small_bundle_parts(rows: int = 2, dim: int = 4):
    """A real (tiny) index and a manifest that fits it; model.onnx is a stand-in."""
    x = np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32)
    members, _ = index_members(ReferenceIndex(x, [f"i{k}" for k in range(rows)]))
    manifest = Manifest(site=SiteInfo("s", rows, rows), model=ModelInfo("f" * 64, dim, InputSpec(64)),
                        index=IndexInfo(IndexParams(), rows))
    return manifest, {bf.MODEL: b"onnx", **members}


def test_roundtrip(tmp_path):
    manifest, members = small_bundle_parts()
    path = bf.write_bundle(tmp_path / "s.sitelens", manifest, members)
    contents = bf.read_bundle(path)
    assert contents.manifest.schema_version == bf.SCHEMA_VERSION
    assert contents.manifest.site.name == "s" and contents.manifest.model.input.size == 64
    assert contents.members[bf.MODEL] == b"onnx"
    assert contents.array(bf.REFS).shape == (2, 4)
    assert contents.signature is None
    assert not list(tmp_path.glob(".*tmp"))


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, change(name, data))


def test_tampered_member_is_rejected(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", *small_bundle_parts())
    bad = tmp_path / "bad.sitelens"
    _rewrite(path, bad, lambda n, d: b"evil" if n == bf.GRAPH else d)
    with pytest.raises(BundleError, match="member index.graph is corrupt or modified") as err:
        bf.read_bundle(bad)     # another size: refused before it is read
    assert str(bad) in str(err.value)
    _rewrite(path, bad, lambda n, d: bytes(len(d)) if n == bf.GRAPH else d)
    with pytest.raises(BundleError, match="index.graph checksum mismatch"):
        bf.read_bundle(bad)     # the same size, other bytes


def test_newer_schema_and_garbage(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", *small_bundle_parts())
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


@pytest.mark.parametrize("change, message", [
    (lambda m: m["model"].pop("fingerprint"), "model.fingerprint: missing"),
    (lambda m: m["model"]["input"].update(size="big"), "model.input.size: expected int"),
    (lambda m: m["index"].update(M=True), "index.M: expected int, got a boolean"),
    (lambda m: m["thresholds"]["modes"].update(hnsw={"score": "high"}), "thresholds: score must be a finite number"),
    (lambda m: m.update(instances=["a"]), "instances: expected dict"),
    (lambda m: m["members"]["refs.npy"].update(sha256="xyz"), "members.refs.npy.sha256: not a sha256"),
    (lambda m: m.update(built_with={"numpy": 2}), "built_with: expected an object of package names"),
])
def test_manifest_validator_names_the_field(tmp_path, change, message):
    manifest, members = small_bundle_parts()
    manifest.thresholds = __import__("runtime.thresholds", fromlist=["Thresholds"]).Thresholds.single(0.5, 0.0, 0.01)
    path = bf.write_bundle(tmp_path / "s.sitelens", manifest, members)

    def edit(name, data):
        if name != bf.MANIFEST:
            return data
        m = json.loads(data)
        change(m)
        return json.dumps(m).encode()

    bad = tmp_path / "bad.sitelens"
    _rewrite(path, bad, edit)
    with pytest.raises(BundleError, match="manifest.json") as err:
        bf.read_bundle(bad)
    assert message in str(err.value) and str(bad) in str(err.value)


def test_members_must_agree_with_each_other(tmp_path):
    manifest, members = small_bundle_parts(rows=3)
    ok = bf.write_bundle(tmp_path / "ok.sitelens", manifest, members)
    assert bf.read_bundle(ok).manifest.index.count == 3
    fewer_labels = dict(members, **{bf.LABELS: json.dumps({"instances": ["i0", "i1"]}).encode()})
    with pytest.raises(BundleError, match="labels.json must list one instance id"):
        bf.read_bundle(bf.write_bundle(tmp_path / "a.sitelens", manifest, fewer_labels))
    _, two_rows = small_bundle_parts(rows=2)
    with pytest.raises(BundleError, match="index.graph is malformed"):
        bf.read_bundle(bf.write_bundle(tmp_path / "b.sitelens", manifest, dict(members, **{bf.GRAPH: two_rows[bf.GRAPH]})))
    wrong_count = manifest.copy()
    wrong_count.index.count = 5
    with pytest.raises(BundleError, match="index count is 5"):
        bf.read_bundle(bf.write_bundle(tmp_path / "c.sitelens", wrong_count, members))
    codes = dict(members, **{bf.CODES: bf.npy_bytes(np.zeros((2, 8), np.uint8)),
                             bf.ITQ_PROJ: bf.npy_bytes(np.zeros((4, 64), np.float32)),
                             bf.ITQ_MEAN: bf.npy_bytes(np.zeros(4, np.float32))})
    with pytest.raises(BundleError, match="binary codes do not fit"):
        bf.read_bundle(bf.write_bundle(tmp_path / "d.sitelens", manifest, codes))
    kpts = dict(members, **{bf.VERIFY_KPTS: bf.npy_bytes(np.zeros((5, 2), np.float32)),
                            bf.VERIFY_DESC: bf.npy_bytes(np.zeros((5, 32), np.uint8)),
                            bf.VERIFY_OFFSETS: bf.npy_bytes(np.array([0, 2, 5], np.int64))})
    with pytest.raises(BundleError, match="verification keypoints do not fit"):
        bf.read_bundle(bf.write_bundle(tmp_path / "e.sitelens", manifest, kpts))
    learned = manifest.copy()
    learned.verification = {"feature": "xfeat", "glue_candidates": 2}
    no_glue = dict(members, **{bf.VERIFY_KPTS: bf.npy_bytes(np.zeros((0, 2), np.float16)),
                               bf.VERIFY_DESC: bf.npy_bytes(np.zeros((0, 64), np.int8)),
                               bf.VERIFY_OFFSETS: bf.npy_bytes(np.zeros(4, np.int64)), bf.LOCAL_MODEL: b"onnx"})
    with pytest.raises(BundleError, match="needs the glue.onnx member"):
        bf.read_bundle(bf.write_bundle(tmp_path / "f.sitelens", learned, no_glue))


def test_unlisted_and_duplicate_members_rejected(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", *small_bundle_parts())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("extra.bin", b"x")
    with pytest.raises(BundleError, match="unknown members 'extra.bin'"):
        bf.read_bundle(path)
    path = bf.write_bundle(tmp_path / "u.sitelens", *small_bundle_parts())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(bf.CODES, b"x")
    with pytest.raises(BundleError, match="codes.npy present but not listed"):
        bf.read_bundle(path)
    path = bf.write_bundle(tmp_path / "t.sitelens", *small_bundle_parts())
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as zf:
        zf.writestr(bf.REFS, b"shadow")
    with pytest.raises(BundleError, match="duplicate members"):
        bf.read_bundle(path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    manifest, members = small_bundle_parts()
    path = bf.write_bundle(tmp_path / "s.sitelens", manifest, members)
    before = path.read_bytes()

    def boom(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        bf.atomic_write(path, boom)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.sitelens"]
    with pytest.raises(BundleError, match="without"):
        bf.write_bundle(tmp_path / "x.sitelens", manifest, {bf.MODEL: b""})


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", *small_bundle_parts())
    dead = tmp_path / ".s.sitelens.999999999.abc.tmp"   # no such pid
    alive = tmp_path / f".s.sitelens.{__import__('os').getpid()}.def.tmp"
    other = tmp_path / ".other.sitelens.999999999.abc.tmp"
    for p in (dead, alive, other):
        p.write_bytes(b"half a bundle")
    bf.write_bundle(path, *small_bundle_parts())
    assert not dead.exists() and alive.exists() and other.exists()


def _bundle_with(tmp_path, name: str, entries: list) -> "Path":
    """A bundle whose zip gets ``entries`` ((name, bytes, compression) or ZipInfo, bytes) instead of
    or beside its own members, the manifest listing them as given."""
    path = bf.write_bundle(tmp_path / "base.sitelens", *small_bundle_parts())
    out = tmp_path / name
    replaced = {e[0] if isinstance(e[0], str) else e[0].filename for e in entries}
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for n in zin.namelist():
            if n not in replaced:
                zout.writestr(n, zin.read(n))
        for entry in entries:
            if isinstance(entry[0], zipfile.ZipInfo):
                zout.writestr(entry[0], entry[1])
            else:
                zout.writestr(entry[0], entry[1], compress_type=entry[2])
    return out


def _peak_bytes_refusing(path, match: str) -> int:
    """Peak Python memory while ``read_bundle`` refuses ``path`` with a message matching ``match``."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=match):
            bf.read_bundle(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_only_stored_and_deflated_members_are_inflated(tmp_path):
    """A bzip2 bomb (a few KB that inflate to hundreds of MB) is refused from the zip directory,
    before any member is inflated."""
    bomb = _bundle_with(tmp_path, "bz.sitelens", [(bf.REFS, bytes(64 << 20), zipfile.ZIP_BZIP2)])
    assert bomb.stat().st_size < 100_000
    assert _peak_bytes_refusing(bomb, "compression sitelens does not read") < 8 << 20


def test_members_are_inflated_only_to_the_size_the_manifest_declares(tmp_path):
    """A deflate bomb in place of a listed member: refused from its zip header, or, when the header
    lies about the size, after at most the declared size was inflated."""
    big = _bundle_with(tmp_path, "big.sitelens", [(bf.REFS, bytes(64 << 20), zipfile.ZIP_DEFLATED)])
    with pytest.raises(BundleError, match="refs.npy is corrupt or modified .the zip says 67108864 bytes"):
        bf.read_bundle(big)
    manifest, members = small_bundle_parts()
    lying = zipfile.ZipInfo(bf.REFS)
    lying.compress_type = zipfile.ZIP_DEFLATED
    path = _bundle_with(tmp_path, "lie.sitelens", [(lying, bytes(64 << 20))])
    claim_member_size(path, bf.REFS, len(members[bf.REFS]))  # both zip headers claim the manifest's size
    assert _peak_bytes_refusing(path, "refs.npy is corrupt") < 8 << 20


def test_many_members_are_refused_at_once_with_a_short_message(tmp_path):
    import time

    path = bf.write_bundle(tmp_path / "s.sitelens", *small_bundle_parts())
    with zipfile.ZipFile(path, "a") as zf:
        own = len(zf.namelist())
        for k in range(5000):
            zf.writestr(f"m{k}", b"")
    start = time.perf_counter()
    with pytest.raises(BundleError, match=f"{5000 + own} zip entries") as err:
        bf.read_bundle(path)
    assert time.perf_counter() - start < 2 and len(str(err.value)) < 300


def test_member_names_outside_the_format_are_refused_and_escaped(tmp_path):
    for name in ("../../x", "/etc/passwd", "model.onnx\x1b[2J"):
        path = _bundle_with(tmp_path, "n.sitelens", [(name, b"x", zipfile.ZIP_STORED)])
        with pytest.raises(BundleError, match="unknown members") as err:
            bf.read_bundle(path)
        assert "\x1b" not in str(err.value)
    manifest, members = small_bundle_parts()
    with pytest.raises(BundleError, match="members a bundle does not hold"):
        bf.write_bundle(tmp_path / "w.sitelens", manifest, {**members, "../x": b"1"})


def test_bad_crc_names_the_member(tmp_path):
    path = bf.write_bundle(tmp_path / "s.sitelens", *small_bundle_parts())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(bf.LABELS)      # deflated: a flipped byte inflates to other bytes (or fails)
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="member labels.json is corrupt"):
        bf.read_bundle(path)


def test_source_date_epoch_sets_the_build_time(monkeypatch):
    """Reproducible builds: SOURCE_DATE_EPOCH fixes ``created`` and the release number; a value
    that is not a number is refused by name."""
    from runtime.bundle.manifest import created_stamp, new_release

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    assert created_stamp() == "2026-01-01T00:00:00+00:00"
    assert new_release() == 20260101000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(BundleError, match="SOURCE_DATE_EPOCH"):
        new_release()


def test_source_date_epoch_makes_identical_files(tmp_path, monkeypatch):
    """The same contents written twice with SOURCE_DATE_EPOCH set are the same bytes: the zip
    entries carry that date, not the time of writing."""
    import time
    import zipfile

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    manifest, members = small_bundle_parts()
    a = bf.write_bundle(tmp_path / "a.sitelens", manifest, members).read_bytes()
    time.sleep(2.1)   # zip dates count in two-second steps
    b = bf.write_bundle(tmp_path / "b.sitelens", manifest, members).read_bytes()
    assert a == b
    with zipfile.ZipFile(tmp_path / "a.sitelens") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2026, 1, 1, 0, 0, 0)}
