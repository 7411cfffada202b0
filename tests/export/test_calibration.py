"""Calibration: rules per match mode, within the false-accept budget, and survey photos."""
import json

import numpy as np
import pytest

from export.bundler import build_bundle
from export.calibration import (DUPLICATE_FUNDAMENTAL, DUPLICATE_SUPPORT, MIN_SUPPORT, _smallest_threshold, alike,
                                synthetic_counts)
from runtime.recognizer import Recognizer
from runtime.thresholds import MATCH_MODES, Rule, Thresholds
from tests.conftest import SMALL_SIZE, make_site, write_rgb


def test_smallest_threshold_meets_budget():
    values = np.arange(100, dtype=float)  # 0..99
    t = _smallest_threshold(values, 0.05, floor=0)
    assert np.mean(values >= t) <= 0.05 and np.mean(values >= t - 1) > 0.05
    assert _smallest_threshold(values, 0.05, floor=200) == 200
    assert _smallest_threshold(np.zeros(0), 0.01, floor=7) == 7


def test_small_sites_calibrate_on_fewer_synthetic_negatives():
    """Sites of 50 references or more: 150 walls, 150 labels, 200 cluttered scenes; fewer below,
    never under 30 / 30 / 40 (a 20-work site calibrates in seconds, not minutes)."""
    assert synthetic_counts(50) == synthetic_counts(5000) == (300, 200)
    assert synthetic_counts(20) == (120, 80) and synthetic_counts(3) == (60, 40)


def test_calibration_views_sets_the_simulated_samples(tiny_bundle):
    """``calibration_views`` (``--calibration-views``): that many simulated views, each scored with
    the whole site and with its work left out; out of range is refused before a build."""
    from export.options import BuildOptions
    from runtime.errors import SitelensError

    report = Recognizer.open(tiny_bundle).manifest.thresholds.calibration["modes"]["hnsw"]["simulated"]
    assert report["positives"] == report["negatives"] == 48   # the fixture's setting
    with pytest.raises(SitelensError, match="calibration-views"):
        BuildOptions(calibration_views=3).check()


def test_calibration_seed_is_checked_recorded_and_shown(tiny_bundle, tiny_site, tiny_net, tmp_path):
    """``calibration_seed`` (``--calibration-seed``) draws calibration's samples: the bundle records
    it (0 by default) and inspect names another; out of range is refused before a build."""
    from click.testing import CliRunner

    from export.options import BuildOptions
    from runtime.errors import SitelensError
    from sdk.cli import main

    assert Recognizer.open(tiny_bundle).manifest.thresholds.calibration["seed"] == 0
    with pytest.raises(SitelensError, match="calibration-seed"):
        BuildOptions(calibration_seed=-1).check()
    out = build_bundle(tiny_site, tmp_path / "seeded.sitelens", tiny_net, size=SMALL_SIZE, progress=False,
                       verify="none", calibration_views=12, calibration_seed=7)
    assert Recognizer.open(out).manifest.thresholds.calibration["seed"] == 7
    shown = CliRunner().invoke(main, ["inspect", str(out)])
    assert shown.exit_code == 0 and "calibration seed 7" in shown.output


def test_look_alikes_by_score_plane_or_3d_structure():
    from runtime.verify.geometric import Evidence

    assert alike(0.9, None, alike_score=0.8) and not alike(0.5, None, alike_score=0.8)
    # the same plane: many well-spread homography inliers
    assert alike(0.5, Evidence(200, int(DUPLICATE_SUPPORT) + 5, 0, 0, 0.5), 0.8)
    # the same facade from two street corners: no homography, but one 3-D scene explains the matches
    assert alike(0.5, Evidence(150, 6, DUPLICATE_FUNDAMENTAL + 10, 0, 0.05), 0.8)
    # what chance geometry gives two different buildings is not enough
    assert not alike(0.5, Evidence(150, 8, DUPLICATE_FUNDAMENTAL - 20, 0, 0.1), 0.8)


def test_a_photo_of_two_works_is_answered_rightly_by_either():
    from export.calibration import Sample

    both = Sample({}, "a", "survey", frozenset({"a", "b"}))
    assert both.right("a") and both.right("b") and not both.right("c") and not both.right(None)
    view = Sample({}, "a", "simulated")
    assert view.right("a") and not view.right("b")
    assert not Sample({}, None, "wall").right(None)


def test_rule_paths():
    from runtime.verify.geometric import Evidence

    rule = Rule(score=0.8, margin=0.05, support=20, fundamental=40)
    assert rule.verified(Evidence(50, 30, 0, 0, 0.5)) and not rule.verified(Evidence(50, 30, 0, 0, 0.02))
    assert rule.verified(Evidence(80, 5, 45, 0, 0.0))
    assert rule.global_accepts(0.85, 0.06) and not rule.global_accepts(0.85, 0.01)
    assert not Rule(0.1, 0.0, 20, None, global_path=False).global_accepts(0.99, 0.5)
    old = Thresholds.from_dict({"score": 0.7, "margin": 0.1, "target_far": 0.01})  # schema-1 bundles
    assert old.rule("hamming") == old.rule("exact") == Rule(0.7, 0.1)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, tiny_net):
    root = tmp_path_factory.mktemp("calib")
    site = make_site(root / "site", n=8, refs=1, seed=21)
    # a work catalogued twice: the copy is no unknown for the original (``LookAlikes``)
    first = sorted(p for p in site.iterdir() if p.is_dir())[0]
    (site / "zz_copy").mkdir()
    (site / "zz_copy" / "a.jpg").write_bytes((first / "a.jpg").read_bytes())
    with (site / "instances.csv").open("a") as fh:
        fh.write("zz_copy,The same work again\n")
    # a survey walk: real-ish photos of works in the site, and of things not in it
    from training.simulator import CameraViewSimulator, random_wall

    from sdk.demo_site import paint

    rng = np.random.default_rng(5)
    sim = CameraViewSimulator(seed=5)
    rows = ["path,instance,role"]
    for k, folder in enumerate(sorted(p for p in site.iterdir() if p.is_dir())[:4]):
        img = __import__("runtime.image.image_io", fromlist=["load_image"]).load_image(folder / "a.jpg")
        write_rgb(root / "survey" / f"{folder.name}.jpg", sim(img, rng))
        rows.append(f"survey/{folder.name}.jpg,{folder.name},query")
    # a photo of two works side by side, labelled with one of them: it shows the other too
    works = sorted(p for p in site.iterdir() if p.is_dir())
    load = __import__("runtime.image.image_io", fromlist=["load_image"]).load_image
    pair = [load(works[k] / "a.jpg") for k in (5, 6)]
    height = min(img.shape[0] for img in pair)
    write_rgb(root / "survey" / "two_works.jpg", np.hstack([img[:height] for img in pair]))
    rows.append(f"survey/two_works.jpg,{works[6].name},query")   # works[5] verifies the more strongly
    for k in range(3):
        write_rgb(root / "survey" / f"other_{k}.jpg", paint("shapes", 4242 + k, 200, 160))
        rows.append(f"survey/other_{k}.jpg,__unknown__,query")
    write_rgb(root / "survey" / "wall.jpg", random_wall(rng, 160, 200))
    rows.append("survey/wall.jpg,__unknown__,query")
    (root / "survey.csv").write_text("\n".join(rows) + "\n")
    # 40 simulated views (5 a reference) instead of 80: these tests read the rules' form, not their values
    return build_bundle(site, root / "c.sitelens", tiny_net, size=SMALL_SIZE, progress=False, hash_bits=64,
                        verify="orb", survey=root / "survey.csv", target_far=0.05, calibration_views=40)


def test_rules_for_every_match_mode(calibrated):
    rec = Recognizer.open(calibrated)
    th = rec.thresholds
    assert set(th.modes) == set(MATCH_MODES) and th.target_far == 0.05
    reports = th.calibration["modes"]
    for mode in MATCH_MODES:
        rule = th.rule(mode)
        assert rule.support is not None and rule.support >= MIN_SUPPORT
        assert reports[mode]["far"] <= 0.05 and reports[mode]["negatives"] > 0
        # every kind of unknown is held to the budget on its own (walls and labels apart)
        for kind in ("simulated", "wall", "label", "scene", "survey"):
            assert reports[mode][kind]["negatives"] > 0 and reports[mode][kind]["far"] <= 0.05, (mode, kind)
        walls, scenes = synthetic_counts(8)
        assert reports[mode]["wall"]["negatives"] == reports[mode]["label"]["negatives"] == walls // 2 == 30
        assert reports[mode]["scene"]["negatives"] == scenes == 40
        # the global path is kept only where it answers more views rightly than wrongly
        gain = reports[mode]["global_path"]
        assert gain["kept"] == rule.global_path and (gain["right"] > gain["wrong"]) == rule.global_path
    # hamming estimates cosines from bits: its rule is its own (a global score, if it keeps a path,
    # differs from exact search's)
    if th.rule("hamming").global_path and th.rule("exact").global_path:
        assert th.rule("hamming").score != th.rule("exact").score
    for mode in MATCH_MODES:  # each mode answers with its own rule
        r = Recognizer.open(calibrated, match=mode).recognize(np.full((120, 160, 3), 200, np.uint8))
        assert not r.accepted
    from click.testing import CliRunner

    from sdk.cli import main

    shown = CliRunner().invoke(main, ["inspect", str(calibrated)])
    kept = "kept" if th.rule("hnsw").global_path else "dropped"
    assert shown.exit_code == 0 and f"the global path {kept}: it accepts" in shown.output


def test_survey_is_used_and_reported(calibrated):
    from click.testing import CliRunner

    from sdk.cli import main

    th = Recognizer.open(calibrated).thresholds
    survey = th.calibration["modes"]["hnsw"]["survey"]
    assert survey["positives"] == 5 and survey["negatives"] == 4 + 5  # 4 unknown + 5 known with own left out
    assert survey["far"] is not None and survey["tar"] is not None
    # the survey photographs the work catalogued twice: with that work left out its copy verifies
    # as strongly as the work itself, and must be left out too, or the bar rises above real views
    assert all(th.rule(mode).support < DUPLICATE_SUPPORT for mode in MATCH_MODES)
    # ... and two works side by side, labelled with one: the other is in the photo, left out of
    # its negative and listed for the site engineer (label it a|b)
    shows = {e["photo"]: e for e in th.calibration["survey_shows"]}
    two = shows["two_works.jpg"]
    assert two["negative"] == "left out" and len(two["shows"]) == 1 and two["label"] not in two["shows"]
    assert all(th.rule(mode).support < v["support"] or th.rule(mode).fundamental < v["fundamental"]
               for v in two["shows"].values() for mode in MATCH_MODES)
    copies = [e for e in shows.values() if "zz_copy" in e["shows"]]
    assert copies and all(e["negative"] == "left out" for e in copies)
    assert set(shows) <= {"two_works.jpg"} | {e["photo"] for e in copies}
    out = CliRunner().invoke(main, ["-q", "inspect", str(calibrated)]).output
    assert "survey" in out and "TAR" in out
    assert "two_works.jpg (labelled" in out and "the photo shows it too" in out
    m = json.loads(CliRunner().invoke(main, ["-q", "inspect", str(calibrated), "--json"]).output)
    assert m["thresholds"]["calibration"]["modes"]["exact"]["survey"]["positives"] == 5


def test_an_unknown_survey_photo_that_verifies_a_work_is_kept_and_listed(calibrated, tmp_path, caplog):
    """Labelled ``__unknown__`` but verified as a work of the site: a look-alike and a wrong label
    look the same, so its negative keeps that work (the rules must refuse it) and the report
    names the photo."""
    from export.calibration import gather
    from runtime.image.image_io import load_image
    from runtime.site import Query, load_site
    from training.simulator import CameraViewSimulator

    site = load_site(calibrated.parent / "site")
    ref = site.references[3]
    write_rgb(tmp_path / "mislabelled.jpg", CameraViewSimulator(seed=9)(load_image(ref.path), np.random.default_rng(9)))
    rec = Recognizer.open(calibrated)
    with caplog.at_level("WARNING", logger="sitelens"):
        samples = gather(rec, site, ["exact"], [Query(tmp_path / "mislabelled.jpg", frozenset())], min_views=8,
                         max_views=8, backgrounds=2, collages=2, progress=False)
    assert f"mislabelled.jpg (__unknown__: {ref.instance}" in caplog.text   # what `bundle` prints
    (entry,) = samples.survey_shows
    assert entry["photo"] == "mislabelled.jpg" and entry["label"] == "__unknown__" and entry["negative"] == "kept"
    assert ref.instance in entry["shows"]
    (negative,) = [s for s in samples.negatives if s.source == "survey"]
    assert ref.instance in negative.findings["exact"].verification


def test_a_work_catalogued_twice_is_found_and_reported(calibrated):
    """The copy surfaces as a strong match for views of the original with the original left out:
    checked, found alike, left out of its negatives (the rules above stay within budget) and
    listed in the bundle's calibration report and by ``inspect``."""
    from click.testing import CliRunner

    from sdk.cli import main

    cal = Recognizer.open(calibrated).thresholds.calibration
    first = sorted(p for p in (calibrated.parent / "site").iterdir() if p.is_dir())[0].name
    # (the test network is small: some procedural paintings look alike to it by global score too)
    assert [first, "zz_copy"] in cal["look_alikes"] and cal["look_alike_pairs"] == len(cal["look_alikes"])
    out = CliRunner().invoke(main, ["-q", "inspect", str(calibrated)]).output
    assert f"{first}~zz_copy" in out


def test_suspects_are_what_a_rule_could_accept():
    """A negative's suspects: what it would be accepted as first, in each mode: the global top-1 at
    the look-alike score, the strongest homography and the strongest 3-D evidence at the floors."""
    from export.calibration import MIN_FUNDAMENTAL, suspects
    from runtime.recognizer import Findings
    from runtime.verify.geometric import Evidence

    f = Findings([("a", 0.9, 0), ("b", 0.5, 1), ("c", 0.4, 2), ("d", 0.3, 3)],
                 {"a": Evidence(), "b": Evidence(40, MIN_SUPPORT, 0, 0, 0.3), "c": Evidence(40, 5, MIN_FUNDAMENTAL),
                  "d": Evidence(40, MIN_SUPPORT - 1, MIN_FUNDAMENTAL - 1)})
    assert suspects({"hnsw": f}, alike_score=0.8) == {"a", "b", "c"}
    assert suspects({"hnsw": Findings([("a", 0.9, 0)])}, alike_score=0.95) == set()
    # below the strongest, candidates at the floors wait until it is left out (next round)
    g = Findings([("a", 0.9, 0), ("b", 0.85, 1), ("c", 0.4, 2)],
                 {"b": Evidence(40, MIN_SUPPORT + 5, 0, 0, 0.3), "c": Evidence(40, MIN_SUPPORT + 9, 0, 0, 0.3)})
    assert suspects({"hnsw": g}, alike_score=0.8) == {"a", "c"}


def test_positives_verified_beyond_any_rule_skip_the_3d_model(tiny_bundle, tiny_site):
    """A simulated view scored as a positive with a candidate at ``SURE_SUPPORT`` gets no second
    look, 3-D model or learned matcher (the device stops there too); scored as a negative it gets
    every pass."""
    from export.calibration import SURE_SUPPORT, _findings, _sure
    from runtime.image.image_io import load_image
    from runtime.verify.verifier import FrameCache

    rec = Recognizer.open(tiny_bundle)
    img = load_image(sorted(tiny_site.glob("*/a.jpg"))[0])
    full = _findings(rec, img, ("exact",), cache=FrameCache())["exact"].verification
    assert max(e.support for e in full.values()) >= SURE_SUPPORT      # a reference against itself
    assert any(e.fundamental > 0 for e in full.values())
    sure = _findings(rec, img, ("exact",), cache=FrameCache(), stop=_sure)["exact"].verification
    assert all(e.fundamental == 0 for e in sure.values())
    # the first candidates' rows are all matched; the second look's candidates are not looked at
    assert {i: e.support for i, e in sure.items()} == {i: e.support for i, e in full.items() if i in sure}



def test_relevant_negatives_are_those_that_could_set_a_rule():
    """Per kind of negative: the top of homography support (as many as the budget lets through,
    and one more), the top of 3-D evidence among the rest, and any with a right answer's global
    score; the others' look-alikes cannot move a threshold and are not looked for."""
    from export.calibration import MIN_FUNDAMENTAL, relevant
    from runtime.recognizer import Findings
    from runtime.verify.geometric import Evidence

    def neg(support=0.0, fundamental=0, score=0.3):
        inliers = int(support)
        return {"exact": Findings([("x", score, 0)], {"x": Evidence(100, inliers, fundamental, 0, 0.5)})}

    samples = [(k, "simulated", neg(support=MIN_SUPPORT + k % 5)) for k in range(300)]   # all at the floors
    samples[10] = (10, "simulated", neg(support=80))
    samples[20] = (20, "simulated", neg(support=50))
    samples[30] = (30, "simulated", neg(support=40))
    samples[40] = (40, "simulated", neg(fundamental=MIN_FUNDAMENTAL + 20))
    samples[50] = (50, "simulated", neg(score=0.95))
    samples += [(None, "wall", neg(support=90))]   # a wall leaves nothing out
    # 0.5% of 300 lets 1 through on homography: the two strongest; 0.25% lets none on 3-D: the strongest
    assert relevant(samples, ("exact",), 0.01, alike_score=0.8) == {10, 20, 40, 50}


def test_a_memo_of_answer_orders_gives_the_same_outcomes():
    """``outcome`` with a memo of answer orders, shared by rules that differ only in their global
    score and margin (as ``choose_rule``'s grid is), counts what it counts without one."""
    from export.calibration import Sample, outcome
    from runtime.recognizer import Findings
    from runtime.verify.geometric import Evidence

    rng = np.random.default_rng(3)
    works = [f"w{i}" for i in range(12)]
    samples = []
    for k in range(300):
        names = list(rng.choice(works, 5, replace=False))
        scores = np.sort(rng.uniform(0.2, 0.95, 5))[::-1]
        ev = {n: Evidence(int(rng.integers(0, 200)), int(rng.integers(0, 40)), int(rng.integers(0, 90)),
                          0, float(rng.uniform(0.1, 0.8)), colour=float(rng.uniform(0, 40)) if k % 3 else None)
              for n in names[: int(rng.integers(0, 6))]}
        truth = None if k % 4 == 0 else str(rng.choice(names[:3]))
        samples.append(Sample({"hnsw": Findings([(n, float(s), j) for j, (n, s) in enumerate(zip(names, scores))],
                                                ev or None)}, truth, "simulated"))
    memo: dict = {}
    for score in (None, 0.5, 0.7, 0.9):
        for margin in (None, 0.0, 0.05, 0.2):
            rule = Rule(score, margin, support=22.5, fundamental=60, colour=20.0)
            assert (outcome(None, rule, samples, "hnsw", memo) == outcome(None, rule, samples, "hnsw")).all()
    assert len(memo) == len(samples)


def _samples(rng, works, n, verified: bool, truth: bool, top_score: float):
    """``n`` samples (hnsw findings): the global top-1 is the truth (or a wrong work) at
    ``top_score``, the runner-up 0.3 lower; the truth verified at 40 inliers or nothing verified."""
    from export.calibration import Sample
    from runtime.recognizer import Findings
    from runtime.verify.geometric import Evidence

    out = []
    for _ in range(n):
        a, b = (str(w) for w in rng.choice(works, 2, replace=False))
        ev = {a: Evidence(120, 40, 0, 0, 0.6)} if verified else {a: Evidence(10, 4, 0, 0, 0.1)}
        out.append(Sample({"hnsw": Findings([(a, top_score, 0), (b, top_score - 0.3, 1)], ev)},
                          a if truth else None, "simulated"))
    return out


def test_a_global_path_that_adds_no_right_answers_is_dropped(tiny_bundle):
    """Where verification already answers every positive the global score would, the global path
    can only add false accepts (``global_gain``): the rule keeps verification alone and the report
    says why; where the global score answers positives verification misses, the path stays."""
    from export.calibration import SampleSet, choose_rule

    rec = Recognizer.open(tiny_bundle)
    rng = np.random.default_rng(5)
    works = [f"w{i}" for i in range(20)]
    negatives = _samples(rng, works, 300, False, False, 0.5) + _samples(rng, works, 6, False, False, 0.8)
    settled = SampleSet(_samples(rng, works, 200, True, True, 0.8), negatives)
    rule, report = choose_rule(rec, settled, "hnsw", 0.01)
    assert not rule.global_path and report["global_path"]["kept"] is False
    assert report["global_path"]["right"] <= report["global_path"]["wrong"]
    assert report["tar"] == 1.0 and report["far"] == 0.0
    # half the positives only the global score answers: the path pays and stays
    helped = SampleSet(_samples(rng, works, 100, True, True, 0.8) + _samples(rng, works, 100, False, True, 0.9),
                       negatives)
    rule, report = choose_rule(rec, helped, "hnsw", 0.01)
    assert rule.global_path and report["global_path"]["kept"] is True
    assert report["global_path"]["right"] > report["global_path"]["wrong"]
    assert report["tar"] > 0.5 and report["far"] <= 0.01


def test_the_global_path_is_kept_for_the_kinds_it_pays_on(tiny_bundle):
    """On a site calibrated with kinds of works, the global path is dropped for the kinds whose
    views it answers none of rightly: here kept for objects (answered by the global score alone),
    not for facades (verified; the path would only accept their unknown look-alikes)."""
    from export.calibration import SampleSet, choose_rule

    rec = Recognizer.open(tiny_bundle)
    rng = np.random.default_rng(7)
    objects, facades = [f"o{i}" for i in range(10)], [f"f{i}" for i in range(10)]
    kinds = {**dict.fromkeys(objects, "objects"), **dict.fromkeys(facades, "facades")}
    positives = _samples(rng, objects, 100, False, True, 0.9) + _samples(rng, facades, 100, True, True, 0.8)
    negatives = _samples(rng, objects + facades, 300, False, False, 0.5) + _samples(rng, facades, 4, False, False, 0.95)
    rule, report = choose_rule(rec, SampleSet(positives, negatives), "hnsw", 0.02, kinds)
    gain = report["global_path"]
    assert rule.global_path and rule.global_kinds == ("objects",) and gain["for_kinds"] == ["objects"]
    assert gain["kinds"]["objects"]["right"] > gain["kinds"]["objects"]["wrong"]
    assert gain["kinds"]["facades"]["right"] == 0 < gain["kinds"]["facades"]["wrong"]
    assert report["tar"] == 1.0 and report["far"] == 0.0   # the facades' unknowns are no longer accepted
