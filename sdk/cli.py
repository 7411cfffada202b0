"""The `sitelens` command line. Heavy modules (torch) are imported inside the commands."""
from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path

import click

from runtime.errors import SitelensError
from runtime.version import __version__


def friendly(fn):
    """Turn sitelens errors into a one-line message and exit status 1 (no traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SitelensError as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


@click.group()
@click.version_option(__version__, prog_name="sitelens")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(quiet: bool):
    """sitelens: recognize a site's artworks from a visitor's camera, on the device."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def _open(bundle: str, match: str = "hnsw"):
    from runtime.recognizer import Recognizer

    return Recognizer.open(bundle, match=match)


match_option = click.option("--match", type=click.Choice(["hnsw", "exact", "binary", "hamming"]), default="hnsw",
                            show_default=True, help="hnsw (default), exact float search, binary (Hamming shortlist "
                            "re-ranked with floats) or hamming (codes alone); binary modes need --hash-bits at export.")
precision_option = click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32",
                                show_default=True, help="Model precision; checked against FP32, falls back if worse.")
verify_option = click.option("--verify", type=click.Choice(["orb", "sift"]), default=None,
                             help="Cache reference keypoints for geometric verification of ambiguous answers.")
hash_bits_option = click.option("--hash-bits", type=click.Choice(["64", "128", "256", "512", "1024"]), default=None,
                                help="Also store ITQ binary codes of this many bits (e.g. 256).")


@main.command()
@click.argument("site", type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Bundle to write (.sitelens).")
@click.option("--model", type=click.Path(exists=True, file_okay=False), help="Training run folder (default: off the shelf).")
@click.option("--backbone", default="tf_efficientnet_lite0", show_default=True)
@click.option("--weights", default="pretrained", show_default=True,
              help="'pretrained' (packaged), a local weights file, or 'timm' (download; needs internet).")
@click.option("--size", type=int, help="Shorter side fed to the network (default 224 or the run's).")
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False), help="instances.csv for a manifest site.")
@click.option("--multiscale", is_flag=True, help="Describe references at scales 1, 1/sqrt2, sqrt2.")
@click.option("--per-instance-mean", is_flag=True, help="One averaged descriptor per instance.")
@click.option("--target-far", type=float, default=0.01, show_default=True, help="False-accept rate for thresholds.")
@click.option("--no-calibrate", is_flag=True, help="Skip open-set threshold calibration (accept every top-1).")
@click.option("--ef", type=int, default=64, show_default=True, help="HNSW search breadth stored in the bundle.")
@click.option("--M", "m", type=int, default=16, show_default=True, help="HNSW graph degree.")
@precision_option
@hash_bits_option
@verify_option
@click.option("--keep-blank", is_flag=True, help="Keep textureless references (they match plain walls).")
@friendly
def bundle(site, out, model, backbone, weights, size, metadata, multiscale, per_instance_mean, target_far,
           no_calibrate, ef, m, precision, hash_bits, verify, keep_blank):
    """Build a deployable bundle from SITE (folder per object, or manifest CSV)."""
    from export.bundler import build_bundle
    from runtime.index import IndexParams

    path = build_bundle(site, out, model, backbone=backbone, weights=weights, size=size, metadata=metadata,
                        multiscale=multiscale, per_instance_mean=per_instance_mean, calibrate=not no_calibrate,
                        target_far=target_far, index_params=IndexParams(M=m, ef=ef), precision=precision,
                        hash_bits=int(hash_bits) if hash_bits else None, verify=verify, keep_blank=keep_blank)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@main.command()
@click.argument("site", type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--size", type=int, default=224, show_default=True)
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--negatives", type=int, default=4, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--loss", type=click.Choice(["triplet", "contrastive"]), default="triplet", show_default=True)
@click.option("--ce-weight", type=float, default=0.0, show_default=True, help="Instance cross-entropy regulariser.")
@click.option("--freeze-blocks", type=int, default=4, show_default=True, help="Lower backbone stages kept frozen (0 = none).")
@click.option("--whitening-dim", type=int, help="Reduce the descriptor with learned whitening (e.g. 512).")
@click.option("--no-whitening", is_flag=True)
@click.option("--backbone", default="tf_efficientnet_lite0", show_default=True)
@click.option("--weights", default="pretrained", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over even if the run folder has a checkpoint.")
@friendly
def train(site, out, epochs, size, batch, negatives, lr, loss, ce_weight, freeze_blocks, whitening_dim,
          no_whitening, backbone, weights, seed, device, no_resume):
    """Fine-tune the descriptor network on SITE's references (never on queries)."""
    from training.trainer import TrainConfig, train as run_training

    cfg = TrainConfig(epochs=epochs, size=size, batch=batch, negatives=negatives, lr=lr, loss=loss,
                      ce_weight=ce_weight, freeze_blocks=freeze_blocks, whitening=not no_whitening,
                      whitening_dim=whitening_dim, backbone=backbone, weights=weights, seed=seed, device=device)
    run = run_training(site, out, cfg, resume=not no_resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, only the first process wrote the run
        click.echo(f"wrote {run} (sitelens export {run} --site {site} -o site.sitelens)")


@main.command("export")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--site", "site", required=True, type=click.Path(exists=True), help="Site whose references go in the index.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False))
@click.option("--multiscale", is_flag=True)
@click.option("--per-instance-mean", is_flag=True)
@click.option("--target-far", type=float, default=0.01, show_default=True)
@precision_option
@hash_bits_option
@verify_option
@click.option("--tensorrt", is_flag=True, help="Also build a TensorRT engine for this machine's GPU.")
@friendly
def export_cmd(run, site, out, multiscale, per_instance_mean, target_far, precision, hash_bits, verify, tensorrt):
    """Export a training RUN to a bundle (same as `bundle SITE --model RUN`)."""
    from export.bundler import build_bundle

    if tensorrt:
        from export.tensorrt_engine import require_tensorrt

        require_tensorrt()  # fail before the long export, not after

    path = build_bundle(site, out, run, multiscale=multiscale, per_instance_mean=per_instance_mean,
                        target_far=target_far, precision=precision, hash_bits=int(hash_bits) if hash_bits else None,
                        verify=verify)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if tensorrt:
        from export.tensorrt_engine import build_engine

        click.echo(f"wrote TensorRT engine {build_engine(path)}")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("-k", type=int, default=5, show_default=True, help="Candidates to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
@match_option
@friendly
def recognize(bundle, images, k, as_json, match):
    """Recognize IMAGES with BUNDLE."""
    rec = _open(bundle, match)
    failed = 0
    for img in images:
        try:
            r = rec.recognize(img, k=k)
        except SitelensError as exc:
            failed += 1
            click.echo(json.dumps({"image": img, "error": str(exc)}) if as_json else f"{img}: ERROR {exc}")
            continue
        if as_json:
            click.echo(json.dumps({"image": img, **r.to_dict()}))
        else:
            title = r.metadata.get("title", "")
            answer = f"{r.instance}" + (f" ({title})" if title else "") if r.accepted else f"unknown (best {r.best})"
            click.echo(f"{img}: {answer}  score={r.score:.3f} margin={r.margin:.3f}")
            for c in r.candidates:
                click.echo(f"    {c.score:6.3f}  {c.instance}")
    if failed:
        sys.exit(1)


@main.command("eval")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("queries", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write an HTML (or .png) report of failures and scores.")
@click.option("--site", type=click.Path(exists=True), help="Site folder/manifest for reference thumbnails in the report.")
@click.option("--per-query", is_flag=True, help="Include every query's result in the JSON.")
@match_option
@friendly
def eval_(bundle, queries, as_json, report, site, per_query, match):
    """Score BUNDLE on QUERIES (folder per instance, or manifest's query rows)."""
    from runtime.evaluate import evaluate
    from runtime.site import load_queries

    result = evaluate(_open(bundle, match), load_queries(queries), progress=not as_json)
    if report:
        from sdk.report import write_report

        refs = {}
        source = site or (queries if Path(queries).is_file() else None)
        if source:
            from runtime.site import load_site

            for ref in load_site(source).references:
                refs.setdefault(ref.instance, str(ref.path))
        click.echo(f"report: {write_report(result, report, refs)}", err=True)
    if not per_query:
        result = {k: v for k, v in result.items() if k != "results"}
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            if key != "results":
                click.echo(f"{key:>18}: {value}")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@friendly
def inspect(bundle, as_json):
    """Show what a bundle holds (verifies every checksum first)."""
    from runtime.bundle_format import read_bundle

    contents = read_bundle(bundle)
    m = contents.manifest
    if as_json:
        click.echo(json.dumps(m))
        return
    model, index, th = m.get("model", {}), m.get("index", {}), m.get("thresholds") or {}
    lines = [
        ("bundle", f"{bundle} (schema {m['schema_version']}, sitelens {m['sitelens_version']}, created {m.get('created')})"),
        ("site", f"{m['site']['name']}: {m['site']['num_instances']} instances, {m['site']['num_references']} references"),
        ("model", f"{model.get('backbone')} gem p={model.get('gem_p')} dim={model.get('descriptor_dim')} "
                  f"whitening={model.get('whitening')} trained={model.get('trained')}"),
        ("precision", model.get("precision")), ("hash bits", (m.get("codes") or {}).get("bits", "none")),
        ("input", model.get("input")), ("fingerprint", model.get("fingerprint")),
        ("index", f"{index.get('type')} {index.get('space')} M={index.get('M')} ef={index.get('ef')} count={index.get('count')}"),
        ("references", m.get("references")),
        ("thresholds", f"score>={th.get('score')} margin>={th.get('margin')} at FAR {th.get('target_far')}" if th else "none (accepts every top-1)"),
    ]
    for key, value in lines:
        click.echo(f"{key:>12}: {value}")
    click.echo(f"{'members':>12}:")
    for name, info in m["members"].items():
        click.echo(f"{'':>14}{name:<14} {info['size'] / 1e6:9.3f} MB  sha256 {info['sha256'][:16]}…")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", required=True, help="Camera index (0), video file, or rtsp:// / http:// URL.")
@click.option("-k", "k", type=int, default=3, show_default=True, help="Accepted in k of the last n frames to fire.")
@click.option("-n", "n", type=int, default=5, show_default=True)
@click.option("--debounce", type=float, default=10.0, show_default=True, help="Seconds before the same work can re-fire.")
@click.option("--realtime", is_flag=True, help="Pace a video file at its fps and drop stale frames, like a live camera.")
@click.option("--max-seconds", type=float, help="Stop after this much stream time.")
@click.option("--stats", is_flag=True, help="Print a final JSON line with frames, fps and drops.")
@match_option
@friendly
def camera(bundle, source, k, n, debounce, realtime, max_seconds, stats, match):
    """Recognize a live camera or video; print one JSON line per event (recognized/unknown/lost)."""
    from runtime.stream import DecisionLayer, RecognitionStream

    stream = RecognitionStream(_open(bundle, match), source, DecisionLayer(k, n, debounce), realtime=realtime,
                               max_seconds=max_seconds)
    try:
        for event in stream:
            click.echo(json.dumps(event.to_dict()))
            sys.stdout.flush()
    except KeyboardInterrupt:
        stream.stop()
    if stats:
        click.echo(json.dumps({"event": "stats", **stream.stats()}))


@main.command()
@click.option("--out", default="sitelens-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the generated site, queries and bundle.")
@click.option("--epochs", type=int, default=3, show_default=True, help="Fine-tuning epochs (0 = off the shelf only).")
@click.option("--size", type=int, default=224, show_default=True)
@friendly
def demo(out, epochs, size):
    """Generate the embedded demo site, bundle it, fine-tune, and recognize visitor photos."""
    from sdk.demo import run_demo

    run_demo(Path(out), epochs=epochs, size=size)


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("instance")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--meta", multiple=True, help="Metadata as key=value (repeatable).")
@friendly
def add(bundle, instance, images, meta):
    """Add (or extend) INSTANCE in BUNDLE with reference IMAGES, without retraining."""
    rec = _open(bundle)
    metadata = dict(item.split("=", 1) for item in meta) if meta else None
    n = rec.add(instance, images, metadata)
    rec.save()
    click.echo(f"added {n} reference(s) for {instance}; {len(rec.instances)} instances in {bundle}")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("instance")
@friendly
def remove(bundle, instance):
    """Remove INSTANCE from BUNDLE."""
    rec = _open(bundle)
    n = rec.remove(instance)
    rec.save()
    click.echo(f"removed {instance} ({n} reference(s)); {len(rec.instances)} instances left in {bundle}")


if __name__ == "__main__":  # pragma: no cover
    main()
