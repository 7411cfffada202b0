import json
import zipfile

import pytest

from export.bundler import build_bundle
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
                                 bf.VERIFY_KPTS, bf.VERIFY_DESC, bf.VERIFY_OFFSETS}
    assert m["verification"]["glue_candidates"] == 2 and len(m["verification"]["glue_fingerprint"]) == 64
    assert m["thresholds"]["target_far"] == 0.01
    assert m["site"]["site_id"] == "gallery" and m["site"]["release"] > 20260000000000 and m["site"]["expires"] is None


def test_release_options_are_checked_before_the_build(tmp_path):
    for kwargs, message in (({"expires": "next spring"}, "not an ISO date"), ({"site_id": "../x"}, "--site-id"),
                            ({"release": -1}, "--release")):
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
    with pytest.raises(SitelensError, match="--ref-keypoints 8"):
        _verifier("orb", ref_keypoints=8)
