"""Fuzzing the bundle reader: random byte mutations of a whole bundle file and structural
tampering (members removed, added, renamed, duplicated, replaced, with the manifest's checksums
rewritten to match). Opening must either succeed or raise sitelens's own error; never another
exception, never a crash."""
import hashlib
import io
import json
import warnings
import zipfile

import numpy as np
import pytest

from runtime.bundle import format as bf
from runtime.errors import SitelensError
from runtime.recognizer import Recognizer
from tests.toy_bundle import make_toy_bundle, toy_image

MUTATIONS = 600


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_bundle(tmp_path_factory.mktemp("fuzz") / "toy.sitelens", n_instances=12)


def _open_and_use(path):
    """Open; if that works, recognize once. Returns 'opened' or 'refused'."""
    try:
        rec = Recognizer.open(path)
    except SitelensError:
        return "refused"
    rec.recognize(toy_image(0))
    return "opened"


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = rng.integers(0, 5)
    if kind == 0:      # flip a few random bits anywhere
        for pos in rng.integers(0, len(b), rng.integers(1, 9)):
            b[pos] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:    # overwrite a random run with random bytes
        pos = int(rng.integers(0, len(b)))
        n = int(rng.integers(1, 64))
        b[pos:pos + n] = rng.integers(0, 256, min(n, len(b) - pos), dtype=np.uint8).tobytes()
    elif kind == 2:    # truncate
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == 3:    # insert bytes
        pos = int(rng.integers(0, len(b)))
        b[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
    else:              # hit the zip central directory / end record (the last 512 bytes)
        for pos in rng.integers(max(0, len(b) - 512), len(b), rng.integers(1, 5)):
            b[pos] = int(rng.integers(0, 256))
    return bytes(b)


def test_random_byte_mutations_only_raise_sitelens_errors(toy, tmp_path):
    rng = np.random.default_rng(1234)
    data = toy.read_bytes()
    outcomes = {"opened": 0, "refused": 0}
    for i in range(MUTATIONS):
        path = tmp_path / f"m{i % 8}.sitelens"
        path.write_bytes(mutate(data, rng))
        outcomes[_open_and_use(path)] += 1
    assert sum(outcomes.values()) == MUTATIONS and outcomes["refused"] > MUTATIONS * 0.8


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path, members, fix_checksums=True, extra_entries=()):
    members = dict(members)
    if fix_checksums:  # what an attacker without the signing key can do
        manifest = json.loads(members[bf.MANIFEST])
        manifest["members"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                               for n, d in members.items() if n not in (bf.MANIFEST, bf.SIGNATURE)}
        members[bf.MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in list(members.items()) + list(extra_entries):
            zf.writestr(name, data)
    return path


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def _manifest_edit(fn):
    def edit(m):
        manifest = json.loads(m[bf.MANIFEST])
        fn(manifest)
        return {**m, bf.MANIFEST: json.dumps(manifest).encode()}
    return edit


TAMPERING = {
    "drop index": lambda m: {k: v for k, v in m.items() if k != bf.GRAPH},
    "drop model": lambda m: {k: v for k, v in m.items() if k != bf.MODEL},
    "rename refs": lambda m: {("refs2.npy" if k == bf.REFS else k): v for k, v in m.items()},
    "garbage model": lambda m: {**m, bf.MODEL: b"\x08\x01garbage" * 50},
    "truncated model": lambda m: {**m, bf.MODEL: m[bf.MODEL][: len(m[bf.MODEL]) // 2]},
    "refs fewer rows": lambda m: {**m, bf.REFS: bf.npy_bytes(np.load(io.BytesIO(m[bf.REFS]))[:-1])},
    "refs wrong dim": lambda m: {**m, bf.REFS: bf.npy_bytes(np.zeros((12, 7), np.float16))},
    "refs 3-d": lambda m: {**m, bf.REFS: bf.npy_bytes(np.zeros((12, 48, 1), np.float16))},
    "refs pickled objects": lambda m: {**m, bf.REFS: _npy(np.array([{"a": 1}] * 12, dtype=object))},
    "refs not npy": lambda m: {**m, bf.REFS: b"\x93NUMPY nonsense"},
    "labels not json": lambda m: {**m, bf.LABELS: b"{{{"},
    "labels wrong type": lambda m: {**m, bf.LABELS: json.dumps({"instances": [1] * 12}).encode()},
    "labels list": lambda m: {**m, bf.LABELS: b"[]"},
    "labels deep nesting": lambda m: {**m, bf.LABELS: b"[" * 100000 + b"]" * 100000},
    "index random": lambda m: {**m, bf.GRAPH: np.random.default_rng(0).integers(0, 256, len(m[bf.GRAPH]),
                                                                                 dtype=np.uint8).tobytes()},
    "index truncated": lambda m: {**m, bf.GRAPH: m[bf.GRAPH][:-100]},
    "index bad neighbour": lambda m: {**m, bf.GRAPH: _poke_u32(m[bf.GRAPH], 96 + 4, 10 ** 6)},
    "index bad entry point": lambda m: {**m, bf.GRAPH: _poke_u32(m[bf.GRAPH], 52, 10 ** 6)},
    "index huge count": lambda m: {**m, bf.GRAPH: _poke_u64(m[bf.GRAPH], 16, 2 ** 40)},
    "index trailing": lambda m: {**m, bf.GRAPH: m[bf.GRAPH] + b"\x00" * 8},
    "codes without projection": lambda m: {**m, bf.CODES: bf.npy_bytes(np.zeros((12, 8), np.uint8))},
    "manifest not json": lambda m: {**m, bf.MANIFEST: b"\xff\xfe not json"},
    "manifest list": lambda m: {**m, bf.MANIFEST: b"[1, 2]"},
    "manifest dim string": _manifest_edit(lambda d: d["model"].update(descriptor_dim="48")),
    "manifest dim huge": _manifest_edit(lambda d: d["model"].update(descriptor_dim=10 ** 12)),
    "manifest input size 0": _manifest_edit(lambda d: d["model"]["input"].update(size=0)),
    "manifest layout NCHW": _manifest_edit(lambda d: d["model"]["input"].update(layout="NCHW")),
    "manifest no index": _manifest_edit(lambda d: d.pop("index")),
    "manifest ef negative": _manifest_edit(lambda d: d["index"].update(ef=-5)),
    "manifest thresholds nan": _manifest_edit(lambda d: d.update(thresholds={"score": float("nan")})),
    "manifest scales bad": _manifest_edit(lambda d: d["references"].update(scales=[0])),
    "manifest instances list": _manifest_edit(lambda d: d.update(instances=[])),
    "manifest verification without members": _manifest_edit(lambda d: d.update(verification={"feature": "orb"})),
    "manifest schema bool": _manifest_edit(lambda d: d.update(schema_version=True)),
    "manifest fingerprint swapped": _manifest_edit(lambda d: d["model"].update(fingerprint="0" * 64)),
}


def _poke_u32(data, offset, value):
    b = bytearray(data)
    b[offset:offset + 4] = int(value).to_bytes(4, "little")
    return bytes(b)


def _poke_u64(data, offset, value):
    b = bytearray(data)
    b[offset:offset + 8] = int(value).to_bytes(8, "little")
    return bytes(b)


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_structural_tampering_is_refused(toy, tmp_path, name):
    members = TAMPERING[name](_members(toy))
    path = _write(tmp_path / "t.sitelens", members, fix_checksums=name not in ("manifest not json", "manifest list"))
    with pytest.raises(SitelensError) as err:
        Recognizer.open(path)
    assert str(path) in str(err.value)


def test_zip_level_tampering(toy, tmp_path):
    members = _members(toy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we write on purpose
        dup = _write(tmp_path / "dup.sitelens", members, extra_entries=[(bf.REFS, b"shadow")])
    extra = _write(tmp_path / "extra.sitelens", members, fix_checksums=False, extra_entries=[("../evil.sh", b"x")])
    no_manifest = _write(tmp_path / "nm.sitelens", {k: v for k, v in members.items() if k != bf.MANIFEST},
                         fix_checksums=False)
    for path, message in ((dup, "duplicate members"), (extra, "unknown members"), (no_manifest, "no manifest.json")):
        with pytest.raises(SitelensError, match=message):
            Recognizer.open(path)


@pytest.mark.parametrize("feature", ["sift", "xfeat", "akaze"])
def test_keypoints_relabelled_as_another_feature_are_refused(tmp_path_factory, tmp_path, feature):
    """A bundle whose cached ORB keypoints are declared as another feature's (checksums rewritten) is
    refused on open, not matched later with descriptors of the wrong kind."""
    orb = make_toy_bundle(tmp_path_factory.mktemp("orb") / "orb.sitelens", verify="orb")
    Recognizer.open(orb)  # the untouched bundle opens
    members = _manifest_edit(lambda d: d["verification"].update(feature=feature))(_members(orb))
    path = _write(tmp_path / "t.sitelens", members)
    with pytest.raises(SitelensError, match="verification") as err:
        Recognizer.open(path)
    assert str(path) in str(err.value)
