import json

import numpy as np
from click.testing import CliRunner

from sdk.cli import main
from tests.conftest import write_rgb
from training.simulator import wall_label


def test_eval_report_html_with_failures_and_roc(tiny_bundle, tiny_site, tmp_path):
    queries = tmp_path / "q"
    for inst in ("blue_rhythm", "the_orchard"):
        (queries / inst).mkdir(parents=True)
        (queries / inst / "x.jpg").write_bytes((tiny_site / inst / "a.jpg").read_bytes())
    # a deliberate failure: a wrong label
    (queries / "harbour_at_dusk").mkdir()
    (queries / "harbour_at_dusk" / "wrong.jpg").write_bytes((tiny_site / "red_composition" / "a.jpg").read_bytes())
    write_rgb(queries / "__unknown__" / "label.jpg", wall_label(np.random.default_rng(0), 200, 260))
    out = tmp_path / "r" / "report.html"
    r = CliRunner().invoke(main, ["-q", "eval", str(tiny_bundle), str(queries), "--json", "--report", str(out),
                                  "--site", str(tiny_site)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["queries"] == 4 and summary["unknown"] == 1
    failures = round((1 - summary["accuracy"]) * summary["queries"])   # the wrong label, and any other miss
    assert failures >= 1 and f"Failures ({failures})" in out.read_text()
    assert (tmp_path / "r" / "report_failures.png").stat().st_size > 1000
    assert (tmp_path / "r" / "report_scores.png").stat().st_size > 1000
