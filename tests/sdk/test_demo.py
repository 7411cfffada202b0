from click.testing import CliRunner

from runtime.recognizer import Recognizer
from sdk.cli import main
from sdk.demo_site import TITLES, make_demo_site


def test_demo_site_layout(tmp_path):
    site, queries = make_demo_site(tmp_path, queries_per_object=1)
    assert len([p for p in site.iterdir() if p.is_dir()]) == len(TITLES)
    assert (site / "instances.csv").read_text().startswith("id,title")
    assert len(list((queries / "__unknown__").glob("*.jpg"))) == 3


def test_demo_command_off_the_shelf(tmp_path):
    # ORB verification: the same path as the default, calibrated, without XFeat's and LighterGlue's cost
    # (bundles with them are built and calibrated in tests/export and tests/training); 60 simulated
    # views instead of 180: a quicker build with stricter rules
    r = CliRunner().invoke(main, ["-q", "demo", "--out", str(tmp_path / "d"), "--epochs", "0", "--size", "96",
                                  "--verify", "orb", "--calibration-views", "60"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    bundle = tmp_path / "d" / "off_the_shelf.sitelens"
    assert "off_the_shelf" in r.output and "mP@1" in r.output and bundle.exists()
    rec = Recognizer.open(bundle)
    assert rec.manifest.verification["feature"] == "orb"
    assert rec.thresholds.calibration["modes"]["hnsw"]["simulated"]["positives"] == 60
