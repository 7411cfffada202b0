"""`sitelens demo`: the main job, end to end, on the embedded demo site."""
from __future__ import annotations

import json
from pathlib import Path

import click


def run_demo(out: Path) -> dict:
    from export.bundler import build_bundle
    from runtime.evaluate import evaluate
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries

    from .demo_site import make_demo_site

    click.echo(f"1/3 generating the demo site in {out}/site (12 artworks) and visitor photos in {out}/queries")
    site, queries = make_demo_site(out)
    click.echo("2/3 bundling the site with the off-the-shelf model")
    bundle = build_bundle(site, out / "demo.sitelens")
    click.echo(f"3/3 recognizing visitor photos with {bundle}")
    rec = Recognizer.open(bundle)
    result = evaluate(rec, load_queries(queries), progress=False)
    for row in result["results"]:
        truth = row["truth"][0] if row["truth"] else "__unknown__"
        said = row["best"] if row["accepted"] else "unknown"
        mark = "ok " if row["right"] else "MISS"
        click.echo(f"  {mark} {Path(row['path']).parent.name}/{Path(row['path']).name:<22} -> {said:<20} "
                   f"(truth {truth}, best {row['best']}, score {row['score']:.3f})")
    summary = {k: v for k, v in result.items() if k != "results"}
    click.echo(json.dumps(summary, indent=2))
    return summary
