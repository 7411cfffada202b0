import json
import threading
import zipfile

import cv2
import numpy as np
import pytest

from runtime.bundle import format as bf
from runtime.bundle.index_members import reference_descriptors
from runtime.errors import BundleError
from runtime.recognizer import Recognizer


def test_recognizes_path_bytes_and_array(tiny_bundle, tiny_site):
    rec = Recognizer.open(tiny_bundle)
    path = tiny_site / "blue_rhythm" / "a.jpg"
    r = rec.recognize(path)
    assert r.best == "blue_rhythm" and r.score > 0.9
    assert r.candidates[0].metadata["title"] == "Blue Rhythm"
    assert rec.recognize(path.read_bytes()).best == "blue_rhythm"
    rgb = cv2.imread(str(path))[:, :, ::-1]
    assert rec.recognize(rgb).best == "blue_rhythm"
    d = rec.embed(rgb)
    assert d.shape == (rec.embedder.dim,) and abs(np.linalg.norm(d) - 1) < 1e-4
    assert rec.providers[-1] == "CPUExecutionProvider"


def test_concurrent_recognize(tiny_bundle, tiny_site):
    rec = Recognizer.open(tiny_bundle)
    paths = sorted(tiny_site.glob("*/a.jpg"))
    expected = {p: rec.recognize(p).best for p in paths}
    errors = []

    def worker():
        try:
            for p in paths * 2:
                assert rec.recognize(p).best == expected[p]
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors


def test_add_remove_save_while_recognizing(bundle_copy, tiny_site, tmp_path):
    rec = Recognizer.open(bundle_copy)
    new_img = tiny_site / "red_composition" / "a.jpg"
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            try:
                rec.recognize(new_img)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    rec.remove("red_composition")
    rec.add("red_again", [new_img], {"title": "Red, again"})
    stop.set()
    t.join()
    assert not errors
    assert rec.recognize(new_img).best == "red_again"
    rec.save()
    again = Recognizer.open(bundle_copy)
    assert "red_composition" not in again.instances
    r = again.recognize(new_img)
    assert r.best == "red_again" and r.candidates[0].metadata == {"title": "Red, again"}


def test_kinds_of_works_follow_adds_removes_and_saves(bundle_copy, tiny_site):
    """A bundle with a support bar per kind of work: a new work joins the kind it is nearest (here
    a copy of a work of kind k1), a removed one leaves the map, and the map is saved with the bundle."""
    from dataclasses import replace

    from runtime.thresholds import Thresholds

    rec = Recognizer.open(bundle_copy)
    names = sorted(rec.instances)
    kinds = {i: ("k1" if i == "red_composition" else "k0") for i in names}
    old = rec.thresholds
    rules = {m: replace(r, kind_support={"k0": 500.0, "k1": 12.0}) for m, r in old.modes.items()}
    rec.manifest.thresholds = rec.thresholds = Thresholds(rules, rules["hnsw"], old.target_far, old.calibration, kinds)
    gone, kept = [i for i in names if i != "red_composition"][:2]
    rec.add("red_again", [tiny_site / "red_composition" / "a.jpg"])
    rec.remove(gone)
    assert rec.thresholds.kinds["red_again"] == "k1" and len(rec.thresholds.kinds) == len(names)
    rec.save()
    again = Recognizer.open(bundle_copy)
    assert again.thresholds.kinds == rec.thresholds.kinds
    assert again.thresholds.rule("hnsw").support_for("red_again") == 12.0
    assert again.thresholds.rule("hnsw").support_for(kept) == 500.0 and gone not in again.thresholds.kinds


def _rewrite_manifest(src, dst, change):
    contents = bf.read_bundle(src)
    manifest = contents.manifest.copy()
    change(manifest)
    bf.write_bundle(dst, manifest, contents.members)


def test_fingerprint_mismatch_is_a_clear_error(tiny_bundle, tmp_path):
    bad = tmp_path / "bad.sitelens"
    _rewrite_manifest(tiny_bundle, bad, lambda m: setattr(m.model, "fingerprint", "0" * 64))
    with pytest.raises(BundleError, match="fingerprint mismatch") as err:
        Recognizer.open(bad)
    assert str(bad) in str(err.value)


def test_corrupt_index_never_reaches_hnswlib(tiny_bundle, tmp_path):
    """A graph with a neighbour id out of range, whose checksum an attacker rewrote to match: only
    the structural check stands between it and hnswlib (which would read out of bounds)."""
    import hashlib
    import struct

    bad = tmp_path / "corrupt.sitelens"
    with zipfile.ZipFile(tiny_bundle) as zin:
        members = {name: zin.read(name) for name in zin.namelist()}
    graph = bytearray(members[bf.GRAPH])
    struct.pack_into("<I", graph, 96 + 4, 10 ** 6)          # the first element's first neighbour
    members[bf.GRAPH] = bytes(graph)
    manifest = json.loads(members[bf.MANIFEST])
    manifest["members"][bf.GRAPH] = {"sha256": hashlib.sha256(graph).hexdigest(), "size": len(graph)}
    members[bf.MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(bad, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    with pytest.raises(BundleError, match="index.graph is malformed .a level-0 neighbour id points outside"):
        Recognizer.open(bad)


def test_thresholds_reject_unknown(tiny_bundle):
    rec = Recognizer.open(tiny_bundle)
    manifest = json.loads(zipfile.ZipFile(tiny_bundle).read(bf.MANIFEST))
    hnsw = manifest["thresholds"]["modes"]["hnsw"]
    assert hnsw["score"] is not None or hnsw["global_path"] is False   # calibrated, whichever path it kept
    wall = np.full((200, 260, 3), 180, np.uint8)
    r = rec.recognize(wall)
    assert not r.accepted and r.instance is None and r.best is not None


def test_schema_2_bundles_with_the_whole_hnsw_file_still_open(tiny_bundle, tmp_path):
    """Schema 3 stores the graph without its vectors (index.graph, a fraction of index.hnsw's
    bytes); bundles written before it carry hnswlib's whole file and still open, answer the same,
    and are written as schema 3 by the next save."""
    from runtime.bundle.hnsw_file import with_vectors

    new = bf.read_bundle(tiny_bundle)
    refs = reference_descriptors(new).astype(np.float16)          # schema 2 stored float16 rows ...
    assert len(new.members[bf.GRAPH]) < 0.2 * refs.shape[1] * 4 * len(refs)
    members = {k: v for k, v in new.members.items() if k not in (bf.GRAPH, bf.REFS_SCALE)}
    members[bf.REFS] = bf.npy_bytes(refs)
    members[bf.INDEX] = with_vectors(new.members[bf.GRAPH], refs)   # ... and hnswlib's whole file
    old = bf.write_bundle(tmp_path / "old.sitelens", new.manifest, members)
    patched = tmp_path / "old2.sitelens"
    with zipfile.ZipFile(old) as zin, zipfile.ZipFile(patched, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == bf.MANIFEST:
                data = json.dumps({**json.loads(data), "schema_version": 2}).encode()
            zout.writestr(name, data)
    rec, ref = Recognizer.open(patched), Recognizer.open(tiny_bundle)
    assert rec.manifest.schema_version == 2
    img = np.random.default_rng(1).integers(0, 255, (120, 160, 3), np.uint8)
    a, b = rec.recognize(img), ref.recognize(img)
    assert [c.instance for c in a.candidates] == [c.instance for c in b.candidates]
    assert np.allclose([c.score for c in a.candidates], [c.score for c in b.candidates], atol=5e-3)
    rec.save()
    again = bf.read_bundle(patched)
    assert again.manifest.schema_version == bf.SCHEMA_VERSION == 7
    assert bf.GRAPH in again.members and bf.INDEX not in again.members and bf.REFS_SCALE in again.members


def test_time_budget_bounds_verification_and_says_so(tiny_bundle):
    """A spent budget skips verification's later stages (the answer rests on what was found) and
    says so; without a budget every stage runs and the answer is the same on any machine."""
    wall = np.random.default_rng(5).integers(90, 110, (240, 320, 3), np.uint8)
    full = Recognizer.open(tiny_bundle).recognize(wall)
    assert not full.truncated and full.to_dict()["truncated"] is False
    rushed = Recognizer.open(tiny_bundle, budget_ms=0.001).recognize(wall)
    assert rushed.truncated and not rushed.accepted
    generous = Recognizer.open(tiny_bundle, budget_ms=60_000).recognize(wall)
    assert not generous.truncated and generous.candidates == full.candidates


def test_once_the_budget_says_late_no_later_stage_starts(tiny_bundle, monkeypatch):
    """A chunk skipped because the next one would end past the deadline (not yet reached) ends the
    frame's verification: the second look, the 3-D models and the learned matcher do not start.
    The clock advances only while rows are matched (one unit a chunk), so each look is exact."""
    import types

    from runtime.verify import verifier as v

    rec = Recognizer.open(tiny_bundle)
    ver = rec.verifier
    clock = [0.0]
    monkeypatch.setattr(v, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    matched, later = ver._match_rows, []

    def match_rows(*a, **k):
        clock[0] += 1.0
        return matched(*a, **k)

    monkeypatch.setattr(ver, "_match_rows", match_rows)
    for stage in ("_second_look", "_fundamental", "_glue"):
        monkeypatch.setattr(ver, stage, lambda *a, _s=stage, **k: later.append(_s))
    wall = np.random.default_rng(5).integers(90, 110, (240, 320, 3), np.uint8)
    cache = v.FrameCache()
    # one chunk (1 unit) done at 1.0; the next would end at 2.0, past the deadline 1.5
    rec.findings(wall, rec.embedder.embed(wall), all_passes=True, cache=cache, deadline=1.5)
    assert cache.truncated and clock[0] == 1.0 and later == []
    cache = v.FrameCache()
    clock[0] = 0.0
    rec.findings(wall, rec.embedder.embed(wall), all_passes=True, cache=cache, deadline=1e9)
    assert not cache.truncated and "_fundamental" in later and clock[0] > 1.0


def test_a_spent_budget_stops_verification_between_chunks_of_rows(tiny_bundle):
    """The budget is looked at between every few rows matched, not only between stages: a frame
    whose deadline has passed matches the first chunk of best rows and no more."""
    from runtime.verify.verifier import CHUNK_ROWS, FrameCache

    rec = Recognizer.open(tiny_bundle)
    wall = np.random.default_rng(5).integers(90, 110, (240, 320, 3), np.uint8)
    desc = rec.embedder.embed(wall)
    full, rushed = FrameCache(), FrameCache()
    rec.findings(wall, desc, all_passes=True, cache=full)
    f = rec.findings(wall, desc, all_passes=True, cache=rushed, deadline=0.0)
    assert len(full.matches) > CHUNK_ROWS and not full.truncated
    assert f.truncated and len(rushed.matches) == CHUNK_ROWS
