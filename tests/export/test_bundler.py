import json
import zipfile

import pytest

from export.bundler import build_bundle
from export.options import BuildOptions
from runtime.bundle import format as bf
from runtime.errors import SiteError, SitelensError
from tests.conftest import SMALL_SIZE, make_site


def test_manifest_contents(tiny_bundle):
    m = json.loads(zipfile.ZipFile(tiny_bundle).read(bf.MANIFEST))
    assert m["format"] == bf.FORMAT and m["schema_version"] == bf.SCHEMA_VERSION
    assert m["model"]["backbone"] == "tf_efficientnet_lite0" and len(m["model"]["fingerprint"]) == 64
    assert m["model"]["input"]["size"] == SMALL_SIZE and m["model"]["descriptor_dim"] == 1280
    assert m["index"]["ef"] == m["index"]["tuning"]["chosen"]["ef"] and m["index"]["count"] == 4 * 12  # four turns
    assert m["references"]["rotations"] == [0, 1, 2, 3] and m["verification"]["feature"] == "xfeat"
    assert m["instances"]["blue_rhythm"]["title"] == "Blue Rhythm"
    assert set(m["members"]) == {bf.MODEL, bf.GRAPH, bf.REFS, bf.REFS_SCALE, bf.LABELS, bf.LOCAL_MODEL, bf.GLUE_MODEL,
                                 bf.VERIFY_KPTS, bf.VERIFY_DESC, bf.VERIFY_OFFSETS, bf.VERIFY_CHROMA}
    assert m["verification"]["glue_candidates"] == 2 and len(m["verification"]["glue_fingerprint"]) == 64
    assert m["thresholds"]["target_far"] == 0.01
    assert m["site"]["site_id"] == "gallery" and m["site"]["release"] > 20260000000000 and m["site"]["expires"] is None


def test_release_options_are_checked_before_the_build(tmp_path):
    for kwargs, message in (({"expires": "next spring"}, "not an ISO date"), ({"site_id": "../x"}, "--site-id"),
                            ({"release": -1}, "--release"), ({"descriptor_code": "pca7"}, "unknown descriptor code"),
                            ({"descriptor_code": "pca16", "verify": "orb"}, "codes xfeat descriptors only")):
        with pytest.raises(SitelensError, match=message):
            build_bundle(tmp_path / "no_such_site", tmp_path / "x.sitelens", progress=False, **kwargs)


def test_unreadable_references_are_all_listed(tmp_path, tiny_net):
    site = make_site(tmp_path / "s", n=2, refs=1)
    (site / "harbour_at_dusk" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (site / "red_composition" / "empty.png").write_bytes(b"")
    out = tmp_path / "s.sitelens"
    with pytest.raises(SiteError) as err:
        build_bundle(site, out, tiny_net, size=64, progress=False, calibrate=False)
    assert "broken.jpg" in str(err.value) and "empty.png" in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_per_instance_mean_and_multiscale(tmp_path, tiny_net):
    site = make_site(tmp_path / "s", n=3, refs=2)
    with pytest.raises(SitelensError, match="one row per reference"):
        build_bundle(site, tmp_path / "m.sitelens", tiny_net, size=64, progress=False, per_instance_mean=True)
    out = build_bundle(site, tmp_path / "m.sitelens", tiny_net, size=64, progress=False, calibrate=False,
                       per_instance_mean=True, multiscale=True, verify="none", upright=True)
    m = json.loads(zipfile.ZipFile(out).read(bf.MANIFEST))
    assert m["index"]["count"] == 3 and m["references"]["per_instance_mean"] is True
    assert len(m["references"]["scales"]) == 3 and m["thresholds"] is None


def test_blank_reference_warns(tmp_path, tiny_net, caplog):
    import numpy as np

    from tests.conftest import write_rgb

    site = make_site(tmp_path / "s", n=2, refs=1)
    write_rgb(site / "plain" / "beige.jpg", np.full((100, 80, 3), (200, 190, 170), np.uint8))
    with caplog.at_level("WARNING", logger="sitelens"):
        out = build_bundle(site, tmp_path / "b.sitelens", tiny_net, size=64, progress=False, calibrate=False)
    assert any("almost no texture" in r.getMessage() and "beige.jpg" in r.getMessage() for r in caplog.records)
    assert any("no usable reference left: plain" in r.getMessage() for r in caplog.records)
    m = json.loads(zipfile.ZipFile(out).read(bf.MANIFEST))
    assert "plain" not in m["instances"] and m["index"]["count"] == 2 * 4
    kept = build_bundle(site, tmp_path / "k.sitelens", tiny_net, size=64, progress=False, calibrate=False,
                        keep_blank=True)
    assert "plain" in json.loads(zipfile.ZipFile(kept).read(bf.MANIFEST))["instances"]


def test_ref_keypoints_sets_upright_and_turned_counts():
    """--ref-keypoints N keeps N keypoints per upright reference row and at most N/2 per turned one."""
    from export.bundler import _verifier

    verifier, models = _verifier("orb", ref_keypoints=100, spread_keypoints=True)
    assert (verifier.params.ref_keypoints, verifier.params.turned_keypoints, verifier.params.ref_spread) == (100, 50, True)
    assert not models
    assert _verifier("orb", ref_keypoints=2000)[0].params.turned_keypoints == 400   # never more than the default
    for option, value in (("ref_keypoints", 8), ("glue_keypoints", 32), ("glue_layers", 7)):   # refused before the build
        with pytest.raises(SitelensError, match=f"--{option.replace('_', '-')} {value}"):
            BuildOptions(**{option: value}).check()
    BuildOptions(ref_keypoints=16, glue_keypoints=0, glue_layers=3).check()


def _poster_site(tmp_path, tiny_site):
    """The tiny site plus a textured poster (``poster_a``) that ``planar_scene`` photographs."""
    import shutil

    from tests.conftest import poster, write_rgb

    site = tmp_path / "site"
    shutil.copytree(tiny_site, site)
    write_rgb(site / "poster_a" / "a.jpg", poster(0))
    return site


def _rewritten(bundle, out, edit):
    """``bundle`` written again to ``out`` (unsigned) after ``edit(manifest, members)``."""
    c = bf.read_bundle(bundle)
    members = {n: c.members[n] for n in c.manifest.members}
    edit(c.manifest, members)
    return bf.write_bundle(out, c.manifest, members)


def test_descriptor_code_end_to_end(tmp_path, tiny_site, tiny_net):
    """--descriptor-code pca16: 16 bytes a stored keypoint, decoded on open, kept through edits,
    and a bundle whose members and manifest disagree about it is refused."""
    import numpy as np

    from runtime.recognizer import Recognizer
    from tests.conftest import planar_scene

    site = _poster_site(tmp_path, tiny_site)
    out = build_bundle(site, tmp_path / "c.sitelens", tiny_net, size=64, progress=False, calibrate=False,
                       descriptor_code="pca16")
    contents = bf.read_bundle(out)
    assert contents.manifest.verification["descriptor_code"] == "pca16"
    assert contents.array(bf.VERIFY_DESC).shape[1] == 16 and contents.array(bf.VERIFY_PCA).shape == (17, 64)
    rec = Recognizer.open(out)
    store = rec.index.features
    assert store.codec.name == "pca16" and store.descs.shape[1] == 64
    scene, _ = planar_scene(seed=0)
    r = rec.recognize(np.ascontiguousarray(np.rot90(scene, 3)))
    assert r.best == "poster_a" and r.candidates[0].evidence.support >= 40
    kept = {i: store.codes[store.offsets[k]:store.offsets[k + 1]] for k, i in enumerate(rec.index.instances)
            if i == "poster_a" and rec.index.rotations[k] == 0}
    rec.remove("blue_rhythm")
    rec.add("again", [tiny_site / "blue_rhythm" / "a.jpg"])
    rec.save()
    again = Recognizer.open(out).index
    rows = {i: k for k, i in enumerate(again.instances) if again.rotations[k] == 0}
    feats = again.features
    assert feats.codes.shape[1] == 16 and len(feats) == again.live_count
    k = rows["poster_a"]
    assert np.array_equal(feats.codes[feats.offsets[k]:feats.offsets[k + 1]], kept["poster_a"])  # same bytes


    def drop_basis(m, members):
        del members[bf.VERIFY_PCA]

    def say_int8(m, members):
        m.verification = {**m.verification, "descriptor_code": "int8"}

    def say_pca32(m, members):
        m.verification = {**m.verification, "descriptor_code": "pca32"}

    for name, edit, message in (("a", drop_basis, "needs xfeat features and the verify_pca.npy"),
                                ("b", say_int8, "verify_pca.npy in a bundle whose descriptors are not coded"),
                                ("c", say_pca32, "has 16 components, the manifest says pca32")):
        with pytest.raises(bf.BundleError, match=message):
            Recognizer.open(_rewritten(out, tmp_path / f"{name}.sitelens", edit))


def test_descriptor_code_needs_enough_descriptors(tmp_path, tiny_net, caplog):
    site = make_site(tmp_path / "s", n=2, refs=1)
    with caplog.at_level("WARNING", logger="sitelens"):
        out = build_bundle(site, tmp_path / "s.sitelens", tiny_net, size=64, progress=False, calibrate=False,
                           descriptor_code="pca16")
    assert any("too few to fit a pca16 code" in r.getMessage() for r in caplog.records)
    contents = bf.read_bundle(out)
    assert contents.manifest.verification["descriptor_code"] == "int8" and bf.VERIFY_PCA not in contents.members


def test_steered_turned_features_end_to_end(tmp_path, tiny_site, tiny_net):
    """--turned-features steered: turned rows store nothing, the site's steerer makes them at
    match time (a turned photo verifies), edits keep the steerer, and a bundle whose manifest and
    members disagree about it is refused; an upright site has nothing to steer."""
    import numpy as np

    from runtime.recognizer import Recognizer
    from tests.conftest import planar_scene

    site = _poster_site(tmp_path, tiny_site)
    out = build_bundle(site, tmp_path / "s.sitelens", tiny_net, size=64, progress=False, calibrate=False,
                       turned_features="steered")
    contents = bf.read_bundle(out)
    assert contents.manifest.verification["turned_features"] == "steered"
    matrices = contents.members[bf.VERIFY_STEER]
    assert contents.array(bf.VERIFY_STEER).shape == (3, 64, 64)
    rec = Recognizer.open(out)
    counts = np.diff(rec.index.features.offsets)
    turned = np.array(rec.index.rotations) != 0
    assert turned.any() and (counts[turned] == 0).all() and (counts[~turned] > 0).all()
    scene, _ = planar_scene(seed=0)
    r = rec.recognize(np.ascontiguousarray(np.rot90(scene, 3)))
    assert r.best == "poster_a" and r.candidates[0].evidence.support >= 40 and r.candidates[0].evidence.rotation == 3
    rec.remove("blue_rhythm")
    rec.add("again", [tiny_site / "blue_rhythm" / "a.jpg"])
    rec.save()
    again = bf.read_bundle(out)
    assert again.members[bf.VERIFY_STEER] == matrices and Recognizer.open(out).index.features.steerer is not None


    def drop_steerer(m, members):
        del members[bf.VERIFY_STEER]

    def say_stored(m, members):
        m.verification = {**m.verification, "turned_features": "stored"}

    def bad_matrices(m, members):
        from runtime.bundle.npy import npy_bytes

        members[bf.VERIFY_STEER] = npy_bytes(np.zeros((3, 64, 64), np.float32))

    for name, edit, message in (("a", drop_steerer, "turned rows are steered, but verify_steer.npy is missing"),
                                ("b", say_stored, "not steered, but verify_steer.npy is there"),
                                ("c", bad_matrices, "verify_steer.npy holds a zero matrix")):
        with pytest.raises(bf.BundleError, match=message):
            Recognizer.open(_rewritten(out, tmp_path / f"{name}.sitelens", edit))
    upright = bf.read_bundle(build_bundle(site, tmp_path / "u.sitelens", tiny_net, size=64, progress=False,
                                          calibrate=False, turned_features="steered", upright=True))
    assert upright.manifest.verification["turned_features"] == "stored" and bf.VERIFY_STEER not in upright.members


def test_colour_end_to_end(tmp_path, tiny_site, tiny_net):
    """Bundles store every reference keypoint's chroma (int8 a*, b*) by default: a frame of a
    poster verifies it, and not its twin in swapped colours (``runtime/verify/colour.py``); works
    added on the device bring theirs; a bundle whose manifest and members disagree about it is
    refused; ``colour=False`` stores none and measures nothing."""
    import numpy as np

    from runtime.recognizer import Recognizer
    from tests.conftest import planar_scene, poster, write_rgb

    site = _poster_site(tmp_path, tiny_site)
    write_rgb(site / "poster_a" / "a.jpg", poster(1))                # a print in strong colours
    write_rgb(site / "twin" / "a.jpg", np.ascontiguousarray(poster(1)[..., ::-1]))
    out = build_bundle(site, tmp_path / "c.sitelens", tiny_net, size=64, progress=False, calibrate=False)
    contents = bf.read_bundle(out)
    assert contents.manifest.verification["colour"] is True
    chroma = contents.array(bf.VERIFY_CHROMA)
    assert chroma.dtype == np.int8 and chroma.shape == (len(contents.array(bf.VERIFY_KPTS)), 2)
    rec = Recognizer.open(out)
    rule = rec.thresholds.rule()
    rec.thresholds = type(rec.thresholds)({}, type(rule)(support=15.0, global_path=False, colour=20.0))
    scene, _ = planar_scene(seed=1)
    r = rec.recognize(scene)
    ev = {c.instance: c.evidence for c in r.candidates}
    assert r.instance == "poster_a" and ev["poster_a"].colour < 20.0
    assert ev["twin"].support >= 15 and ev["twin"].colour > 20.0      # lines up, in other colours
    rec.add("again", [tiny_site / "blue_rhythm" / "a.jpg"])
    rec.save()
    again = Recognizer.open(out).index.features
    assert again.chroma is not None and len(again.chroma) == len(again.kps)

    def drop(m, members):
        del members[bf.VERIFY_CHROMA]

    def say_none(m, members):
        m.verification = {**m.verification, "colour": False}

    def bad_shape(m, members):
        from runtime.bundle.npy import npy_bytes

        members[bf.VERIFY_CHROMA] = npy_bytes(np.zeros((3, 2), np.int8))

    for name, edit, message in (("a", drop, "carry chroma, but verify_chroma.npy is missing"),
                                ("b", say_none, "carry no chroma, but verify_chroma.npy is there"),
                                ("d", bad_shape, "verify_chroma.npy must be int8")):
        with pytest.raises(bf.BundleError, match=message):
            Recognizer.open(_rewritten(out, tmp_path / f"{name}.sitelens", edit))
    plain = build_bundle(site, tmp_path / "p.sitelens", tiny_net, size=64, progress=False, calibrate=False,
                         colour=False)
    assert bf.VERIFY_CHROMA not in bf.read_bundle(plain).members
    r = Recognizer.open(plain).recognize(scene)
    assert all(c.evidence is None or c.evidence.colour is None for c in r.candidates)
