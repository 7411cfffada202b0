"""`sitelens` commands of a site engineer: train, bundle, export, add, remove."""
from __future__ import annotations

import os
from pathlib import Path

import click

from training.backbone_registry import DEFAULT_BACKBONE, default_size
from training.config import LOSSES, TrainConfig

from .cli_common import (build_options, build_options_from, calibration_views_option, friendly, key_option,
                         open_recognizer, trust_option, workers_option)


@click.command()
@click.argument("site", type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True)
@click.option("--size", type=int, help="Network input side (default: the backbone's).")
@click.option("--batch", type=int, default=TrainConfig.batch, show_default=True)
@click.option("--negatives", type=int, default=TrainConfig.negatives, show_default=True,
              help="Mined negatives per anchor (fewer on sites with fewer instances).")
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--loss", type=click.Choice(list(LOSSES)), default=TrainConfig.loss, show_default=True)
@click.option("--ce-weight", type=float, default=TrainConfig.ce_weight, show_default=True,
              help="Instance cross-entropy regulariser.")
@click.option("--freeze-blocks", type=int, default=TrainConfig.freeze_blocks, show_default=True,
              help="Lower backbone stages kept frozen (0 = none).")
@click.option("--whitening-dim", type=int, help="Reduce the descriptor with learned whitening (e.g. 512).")
@click.option("--no-whitening", is_flag=True)
@click.option("--backbone", default=DEFAULT_BACKBONE, show_default=True)
@click.option("--weights", default=TrainConfig.weights, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--device", default=TrainConfig.device, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over even if the run folder has a checkpoint.")
@click.option("--workers", type=int, default=TrainConfig.workers, show_default=True,
              help="Processes simulating visitor views while the network trains (0: none).")
@friendly
def train(site, out, epochs, size, batch, negatives, lr, loss, ce_weight, freeze_blocks, whitening_dim,
          no_whitening, backbone, weights, seed, device, no_resume, workers):
    """Fine-tune the descriptor network on SITE's references (never on queries)."""
    from training.trainer import train as run_training

    cfg = TrainConfig(epochs=epochs, size=size or default_size(backbone), batch=batch, negatives=negatives, lr=lr, loss=loss,
                      ce_weight=ce_weight, freeze_blocks=freeze_blocks, whitening=not no_whitening,
                      whitening_dim=whitening_dim, backbone=backbone, weights=weights, seed=seed, device=device,
                      workers=workers)
    run = run_training(site, out, cfg, resume=not no_resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, only the first process wrote the run
        click.echo(f"wrote {run} (sitelens export {run} --site {site} -o site.sitelens)")


def _wrote(path) -> None:
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@click.command()
@click.argument("site", type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Bundle to write (.sitelens).")
@click.option("--model", type=click.Path(exists=True, file_okay=False), help="Training run folder (default: off the shelf).")
@click.option("--backbone", default=DEFAULT_BACKBONE, show_default=True)
@click.option("--weights", default="pretrained", show_default=True,
              help="'pretrained' (packaged), a local weights file, or 'timm' (download; needs internet).")
@build_options
@click.option("--update", "update", type=click.Path(exists=True, dir_okay=False),
              help="Rebuild OLD.sitelens incrementally: works whose images are unchanged keep their rows, new or "
                   "changed works are described, removed ones dropped; OLD's models, settings and thresholds are "
                   "kept (a full build recalibrates). Takes no model or build option but --metadata and --sign.")
@friendly
def bundle(site, out, model, backbone, weights, update, **opts):
    """Build a deployable bundle from SITE (folder per object, or manifest CSV)."""
    if update:
        from export.update import update_bundle

        ctx = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in ("model", "backbone", "weights", *opts)
                 if name not in ("metadata", "sign")
                 and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"--update keeps the old bundle's models and settings; drop {', '.join(given)} "
                                   "(or build in full without --update)")
        _wrote(update_bundle(site, update, out, metadata=opts["metadata"], sign=opts["sign"]))
        return
    from export.bundler import build_bundle

    _wrote(build_bundle(site, out, model, build_options_from(opts), backbone=backbone, weights=weights))


@click.command("export")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--site", "site", required=True, type=click.Path(exists=True), help="Site whose references go in the index.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False))
@build_options
@click.option("--tensorrt", is_flag=True,
              help="Also build this GPU's TensorRT engine into the bundle's engine cache (<bundle>.trtcache/).")
@friendly
def export_cmd(run, site, out, tensorrt, **opts):
    """Export a training RUN to a bundle (same as `bundle SITE --model RUN`)."""
    from export.bundler import build_bundle

    if tensorrt:
        from runtime.models.tensorrt_cache import require_tensorrt

        require_tensorrt()  # fail before the long export, not after
    path = build_bundle(site, out, run, build_options_from(opts))
    _wrote(path)
    if tensorrt:
        from export.tensorrt_warm import warm_engine_cache

        click.echo(f"built TensorRT engine cache {warm_engine_cache(path)}")


def _resave(rec, bundle, key) -> None:
    rec.save(signing_key=key)
    if key:
        click.echo(f"re-signed {bundle}")
    elif rec.signature is not None:
        click.echo(f"warning: {bundle} was signed by key {rec.signature.key_id} and is now UNSIGNED; devices "
                   f"that trust that key refuse it until you run: sitelens sign {bundle} --key site.key", err=True)


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("instance")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--meta", multiple=True, help="Metadata as key=value (repeatable).")
@trust_option
@key_option
@friendly
def add(bundle, instance, images, meta, trust, key):
    """Add (or extend) INSTANCE in BUNDLE with reference IMAGES, without retraining."""
    for item in meta:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--meta")
    rec = open_recognizer(bundle, trust=trust)
    metadata = dict(item.split("=", 1) for item in meta) if meta else None
    n = rec.add(instance, images, metadata)
    _resave(rec, bundle, key)
    click.echo(f"added {n} reference(s) for {instance}; {len(rec.instances)} instances in {bundle}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("instance")
@trust_option
@key_option
@friendly
def remove(bundle, instance, trust, key):
    """Remove INSTANCE from BUNDLE."""
    rec = open_recognizer(bundle, trust=trust)
    n = rec.remove(instance)
    _resave(rec, bundle, key)
    click.echo(f"removed {instance} ({n} reference(s)); {len(rec.instances)} instances left in {bundle}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("log_dir", metavar="LOG", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="The new bundle.")
@click.option("--site", type=click.Path(exists=True), help="The site's references: recalibrate the new bundle "
                                                           "(default: keep BUNDLE's thresholds).")
@click.option("--support-factor", type=float, default=2.0, show_default=True,
              help="Geometric evidence a frame needs, as a multiple of the bundle's rule.")
@click.option("--max-per-work", type=int, default=5, show_default=True, help="Frames added per work at most.")
@click.option("--finetune", "finetune", type=click.Path(exists=True, file_okay=False),
              help="The training run BUNDLE's network came from: train it on the site and the chosen frames' images "
                   "(logged with --log-images), then build the bundle again from the new run, as BUNDLE was built. "
                   "Needs --site.")
@click.option("--finetune-epochs", type=int, default=3, show_default=True, help="Epochs of fine-tuning.")
@click.option("--run-out", type=click.Path(file_okay=False),
              help="Folder for the fine-tuned run (default: OUT with the suffix .run).")
@workers_option("With --finetune: processes that build the new bundle")
@calibration_views_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@trust_option
@key_option
@friendly
def learn(bundle, log_dir, out, site, support_factor, max_per_work, finetune, finetune_epochs, run_out, workers,
          calibration_views, as_json, trust, key):
    """Add the strongest frames of a visitor LOG (`recognize`/`camera --log`) to BUNDLE as references."""
    import json

    from export.learn import learn as learn_from_log

    report = learn_from_log(bundle, log_dir, out, site=site, support_factor=support_factor,
                            max_per_work=max_per_work, trusted_keys=list(trust) or None, sign=key,
                            calibration_views=calibration_views, progress=not as_json, finetune=finetune,
                            finetune_epochs=finetune_epochs, run_out=run_out, workers=workers)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['entries']} logged frame(s); {len(report['added'])} added, {len(report['refused'])} left out, "
               f"{len(report['unreadable'])} unreadable")
    for a in report["added"]:
        click.echo(f"  added   {a['entry']} -> {a['instance']} (score {a['score']:.3f}, support {a['support']})")
    for r in report["refused"]:
        detail = f" ({r['detail']})" if r["detail"] else ""
        click.echo(f"  left    {r['entry']} ({r['instance']}): {r['reason']}{detail}")
    for p in report["unreadable"]:
        click.echo(f"  unreadable {p}")
    ft = report["finetune"]
    if ft:
        click.echo(f"fine-tuned {ft['from']} for {ft['epochs']} epoch(s) on the site and {ft['frames']} visitor "
                   f"frame(s): {ft['run']} (validation mP@1 {ft['val_mP@1_start']} -> {ft['val_mP@1_best']})")
    th = report["thresholds"]
    click.echo("thresholds recalibrated" if th["recalibrated"] else f"thresholds: {th['why']}")
    if report["out"]:
        _wrote(Path(report["out"]))
    else:
        click.echo(f"nothing to add: {out} not written")
