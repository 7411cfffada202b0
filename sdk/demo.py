"""`sitelens demo`: the main job, end to end, on the embedded demo site.

Generates the site and visitor photos, bundles it with the off-the-shelf model, fine-tunes
on the site's references (never on the visitor photos), exports the trained bundle and
recognizes the visitor photos with both, printing what each found and its accuracy.
"""
from __future__ import annotations

import json
from pathlib import Path

import click


def _show(result: dict) -> None:
    for row in result["results"]:
        truth = row["truth"][0] if row["truth"] else "__unknown__"
        said = row["best"] if row["accepted"] else "unknown"
        mark = "ok  " if row["right"] else "MISS"
        click.echo(f"  {mark} {Path(row['path']).parent.name + '/' + Path(row['path']).name:<34} -> {said:<20} "
                   f"(truth {truth}; top-1 {row['best']} {row['score']:.3f}, margin {row['margin']:.3f})")


def _summary(result: dict) -> dict:
    keys = ("queries", "mP@1", "mAP", "recall@5", "accuracy", "true_accept_rate", "false_accept_rate")
    return {k: result[k] for k in keys}


def run_demo(out: Path, epochs: int = 3, size: int | None = None, verify: str = "xfeat",
             calibration_views: int | None = None, workers: int = 1) -> dict:
    """``verify``, ``calibration_views``, ``workers``: as `sitelens bundle --verify`,
    `--calibration-views` and `--workers` (1, this process only, unless the caller is ready for
    spawned workers: the CLI is)."""
    from export.bundler import build_bundle
    from runtime.evaluate import evaluate
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries

    from training.backbone_registry import DEFAULT_BACKBONE, default_size

    from .demo_site import make_demo_site

    size = size or default_size(DEFAULT_BACKBONE)
    click.echo(f"1/4 generating the demo site in {out}/site (12 artworks) and visitor photos in {out}/queries")
    site, queries = make_demo_site(out)
    qs = load_queries(queries)
    click.echo("2/4 bundling the site with the off-the-shelf model")
    off = build_bundle(site, out / "off_the_shelf.sitelens", size=size, verify=verify,
                       calibration_views=calibration_views, workers=workers)
    before = evaluate(Recognizer.open(off), qs, progress=False)
    report = {"off_the_shelf": _summary(before)}
    final, bundle = before, off
    if epochs > 0:
        from training.trainer import TrainConfig, train

        click.echo(f"3/4 fine-tuning on the site's references for {epochs} epochs (visitor photos are never seen)")
        run = train(site, out / "run", TrainConfig(epochs=epochs, size=size, patience=epochs), resume=False)
        bundle = build_bundle(site, out / "demo.sitelens", run, verify=verify, calibration_views=calibration_views,
                              workers=workers)
        final = evaluate(Recognizer.open(bundle), qs, progress=False)
        report["fine_tuned"] = _summary(final)
    click.echo(f"4/4 recognizing visitor photos with {bundle}")
    _show(final)
    click.echo(json.dumps(report, indent=2))
    click.echo(f"bundle: {bundle}   try: sitelens recognize {bundle} {out}/queries/*/*.jpg")
    return report
