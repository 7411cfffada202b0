"""Incremental rebuilds (``bundle --update OLD``): unchanged works keep their rows, thresholds are kept."""
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from export.update import update_bundle
from runtime.bundle import format as bf
from runtime.errors import SitelensError
from runtime.recognizer import Recognizer
from sdk.cli import main
from sdk.demo_site import paint
from tests.conftest import write_rgb


def _rows(path) -> dict:
    """{(instance, digest, rotation): (descriptor, keypoints, descriptors)} of a bundle's rows."""
    c = bf.read_bundle(path)
    labels, refs = c.json(bf.LABELS), c.array(bf.REFS)
    kpts, desc, offsets = c.array(bf.VERIFY_KPTS), c.array(bf.VERIFY_DESC), c.array(bf.VERIFY_OFFSETS)
    return {(i, d, r): (refs[k], kpts[offsets[k]:offsets[k + 1]], desc[offsets[k]:offsets[k + 1]])
            for k, (i, d, r) in enumerate(zip(labels["instances"], labels["digests"], labels["rotations"]))}


@pytest.fixture()
def changed_site(tiny_site, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(tiny_site, site)
    shutil.rmtree(site / "blue_rhythm")                                          # a work leaves
    csv = site / "instances.csv"
    csv.write_text("".join(line for line in csv.read_text().splitlines(True) if "blue_rhythm" not in line))
    write_rgb(site / "the_orchard" / "b1.jpg", paint("circles", 777, 240, 192))  # a work's photo is replaced
    write_rgb(site / "new_arrival" / "a.jpg", paint("stripes", 4242, 240, 192))  # a work arrives
    write_rgb(site / "new_arrival" / "blank.jpg", np.full((120, 100, 3), 200, np.uint8))
    return site


def test_update_keeps_unchanged_rows_and_thresholds(tiny_bundle, changed_site, tmp_path, caplog):
    out = tmp_path / "new.sitelens"
    with caplog.at_level("WARNING", logger="sitelens"):
        update_bundle(changed_site, tiny_bundle, out, progress=False)
    assert any("almost no texture" in r.getMessage() and "blank.jpg" in r.getMessage() for r in caplog.records)
    old, new = _rows(tiny_bundle), _rows(out)
    unchanged = {k for k in old if k[0] not in ("blue_rhythm", "the_orchard")}
    for key in unchanged:                                # same bytes: nothing re-described
        for a, b in zip(old[key], new[key]):
            np.testing.assert_array_equal(a, b)
    instances = {k[0] for k in new}
    assert "blue_rhythm" not in instances and "new_arrival" in instances
    assert len([k for k in new if k[0] == "new_arrival"]) == 4          # one image, four turns; the blank one left out
    assert {k[1] for k in new if k[0] == "the_orchard"} != {k[1] for k in old if k[0] == "the_orchard"}
    a, b = Recognizer.open(tiny_bundle), Recognizer.open(out)
    assert b.thresholds.modes == a.thresholds.modes                      # rules kept ...
    since = b.thresholds.calibration["since_calibration"]                # ... and said to be older than the site
    assert since == {"calibrated": a.manifest.created, "updates": 1, "works_added_or_changed": 2, "works_removed": 1}
    assert b.metadata["new_arrival"] == {} and b.metadata["the_orchard"]["title"] == "The Orchard"
    r = b.recognize(changed_site / "new_arrival" / "a.jpg")
    assert r.best == "new_arrival"
    assert b.manifest.index.tuning["recall@1"] >= 0.9


def test_update_refuses_what_it_cannot_do(tiny_bundle, changed_site, tmp_path):
    from runtime.bundle.signing import generate_keypair
    from tests.toy_bundle import make_toy_bundle

    toy = make_toy_bundle(tmp_path / "toy.sitelens")           # rows without image digests
    with pytest.raises(SitelensError, match="no image digests"):
        update_bundle(changed_site, toy, tmp_path / "x.sitelens", progress=False)
    key, _, _ = generate_keypair(tmp_path / "site.key")
    with pytest.raises(SitelensError, match="unsigned.*re-signs only a bundle that this key signed"):
        update_bundle(changed_site, tiny_bundle, tmp_path / "x.sitelens", progress=False, sign=key)
    assert not (tmp_path / "x.sitelens").exists()
    r = CliRunner().invoke(main, ["-q", "bundle", str(changed_site), "-o", str(tmp_path / "y.sitelens"),
                                  "--update", str(tiny_bundle), "--precision", "int8"])
    assert r.exit_code != 0 and "drop --precision" in r.output
