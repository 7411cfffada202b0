"""The `sitelens` command line. Heavy modules (torch) are imported inside the commands.

Device commands (recognize, eval, camera) live here; a site engineer's (train, bundle, export,
add, remove, learn) in ``cli_site.py``; signing (keygen, sign, verify) in ``cli_keys.py``.
"""
from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path

import click

from runtime.errors import SitelensError
from runtime.version import __version__

from . import cli_keys, cli_site
from .cli_common import (budget_option, calibration_views_option, device_options, friendly, open_recognizer,
                         open_visitor_log, trust_option, verify_option, visitor_log_options, workers_option)


@click.group()
@click.version_option(__version__, prog_name="sitelens")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(quiet: bool):
    """sitelens: recognize a site's artworks from a visitor's camera, on the device."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


for _cmd in (cli_site.train, cli_site.bundle, cli_site.export_cmd, cli_site.add, cli_site.remove,
             cli_site.learn, cli_keys.keygen, cli_keys.sign, cli_keys.verify):
    main.add_command(_cmd)


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("-k", type=int, default=5, show_default=True, help="Candidates to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
@click.option("--multi", is_flag=True, help="Every work that verifies (a wall with several), with its region.")
@device_options
@budget_option
@visitor_log_options
@friendly
def recognize(bundle, images, k, as_json, multi, match, trust, site_id, min_release, provider, budget_ms,
              log_dir, log_mb, log_images):
    """Recognize IMAGES with BUNDLE."""
    from runtime.image.image_io import load_image

    rec = open_recognizer(bundle, match, trust, provider, site_id, min_release, budget_ms)
    visitor_log = open_visitor_log(log_dir, log_mb, log_images, min_interval_s=0.0)  # each photo its own visit
    failed = 0
    for img in images:
        try:
            rgb = load_image(img, rec.decode_need)
            r = rec.recognize(rgb, k=k, multi=multi)
            if visitor_log is not None:
                visitor_log.record(rec, rgb, r)
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
            for w in r.works or []:
                click.echo(f"    work {w.instance}  support={w.evidence.support:.1f}  region="
                           f"{w.evidence.to_dict().get('region')}")
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
@click.option("--multi", is_flag=True, help="Photos with several works (instance a|b): multi_recall, multi_precision.")
@device_options
@friendly
def eval_(bundle, queries, as_json, report, site, per_query, multi, match, trust, site_id, min_release, provider):
    """Score BUNDLE on QUERIES (folder per instance, or manifest's query rows)."""
    from runtime.evaluate import evaluate
    from runtime.site import load_queries

    result = evaluate(open_recognizer(bundle, match, trust, provider, site_id, min_release), load_queries(queries),
                      progress=not as_json, multi=multi)
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
@trust_option
@friendly
def inspect(bundle, as_json, trust):
    """Show what a bundle holds (verifies every checksum first; with --trust, the signature too)."""
    from runtime.bundle.format import read_bundle

    contents = read_bundle(bundle, trusted_keys=list(trust) or None)
    m, sig = contents.manifest, contents.signature
    if sig is None:
        signature = "unsigned"
    elif sig.verified:
        signature = (f"signed by key {sig.key_id} on {sig.signed or '(a date outside the signature, not shown)'}: "
                     "verified against --trust")
    else:
        signature = f"signed by key {sig.key_id} on {sig.signed} (not checked: pass --trust site.pub)"
    from runtime.bundle.format import GLUE_MODEL, LOCAL_MODEL, MODEL

    models = (MODEL, LOCAL_MODEL, GLUE_MODEL)  # the same for any site; the rest grows with it
    images = _reference_images(contents)
    per_image = {n: round(i.size / max(images, 1)) for n, i in m.members.items() if n not in models}
    if as_json:
        click.echo(json.dumps({**m.to_dict(), "signature": None if sig is None else sig.__dict__,
                               "reference_images": images, "bytes_per_reference_image": per_image}))
        return
    model, index, th = m.model, m.index, m.thresholds
    lines = [
        ("bundle", f"{bundle} (schema {m.schema_version}, sitelens {m.sitelens_version}, created {m.created})"),
        ("built with", ", ".join(f"{k} {v}" for k, v in m.built_with.items()) if m.built_with else "not recorded"),
        ("signature", signature),
        ("site", f"{m.site.name}: {m.site.num_instances} instances, {m.site.num_references} references"),
        ("release", f"site id {m.site.site_id}, release {m.site.release}, expires {m.site.expires or 'never'}"
         if m.site.site_id else "no site id or release (built before they existed)"),
        ("model", f"{model.details.get('backbone')} gem p={model.details.get('gem_p')} dim={model.descriptor_dim} "
                  f"whitening={model.details.get('whitening')} trained={model.details.get('trained')}"),
        ("precision", model.precision), ("hash bits", (m.codes or {}).get("bits", "none")),
        ("input", model.input.to_dict()), ("fingerprint", model.fingerprint),
        ("index", f"hnsw ip M={index.params.M} ef={index.params.ef} count={index.count}"
                  + (f" (recall@1 {index.tuning.get('recall@1')} vs exact search on {index.tuning.get('queries')} "
                     "simulated views)" if index.tuning else "")),
        ("references", m.references),
        ("verification", _verification_line(m.verification)),
    ]
    lines += _threshold_lines(th)
    for key, value in lines:
        click.echo(f"{key:>12}: {value}")
    per_site = sum(i.size for n, i in m.members.items() if n not in models)
    click.echo(f"{'members':>12}: (per reference image: {images} images; models are the same for any site)")
    for name, info in m.members.items():
        share = "model" if name in models else f"{info.size / max(images, 1) / 1e3:7.1f} KB/image"
        click.echo(f"{'':>14}{name:<18} {info.size / 1e6:9.3f} MB  {share:>15}  sha256 {info.sha256[:16]}…")
    click.echo(f"{'':>14}{'site data':<18} {per_site / 1e6:9.3f} MB  {per_site / max(images, 1) / 1e3:7.1f} KB/image")


def _reference_images(contents) -> int:
    """Reference images behind the index rows (turned copies of one image are one image)."""
    from runtime.bundle.format import LABELS

    labels = contents.json(LABELS)
    images = labels.get("images") if isinstance(labels, dict) else None
    return len(set(images)) if images else contents.manifest.index.count


def _verification_line(v: dict | None) -> str:
    if not v:
        return "off (global descriptor only)"
    more = f" (+{v['second_look']} on a second look)" if v.get("second_look") else ""
    return (f"{v.get('feature')} top-{v.get('candidates')} candidates{more}, {v.get('query_keypoints')} query / "
            f"{v.get('ref_keypoints')} reference keypoints at {v.get('work_side')} px"
            + (", fundamental-matrix fallback" if v.get("fundamental") else "")
            + (f", learned matcher on {v.get('glue_candidates')} candidates with "
               f"{v.get('glue_keypoints') or 'all'} query keypoints"
               + (f", its first {v['glue_layers']} layers" if v.get("glue_layers") else "")
               + (f", point pruning {v['glue_pruning']}" if v.get("glue_pruning") else "")
               if v.get("glue_candidates") else "")
            + f", reference descriptors stored {v.get('descriptor_code', 'int8')}"
            + (", keypoint colours stored" if v.get("colour") else ""))


def _threshold_lines(th) -> list[tuple[str, str]]:
    if th is None:
        return [("thresholds", "none (accepts every top-1)")]
    seed = (th.calibration or {}).get("seed")
    lines = [("thresholds", f"calibrated for a false-accept rate of {th.target_far}"
                            + (f" (calibration seed {seed})" if seed else ""))]
    reports = (th.calibration or {}).get("modes", {})
    for mode in sorted(th.modes) or ["default"]:
        r = th.rule(mode)
        rule = (f"support>={r.support} | fundamental>={r.fundamental} | "
                f"{'score>=%s margin>=%s' % (r.score, r.margin) if r.global_path else 'no global-only accepts'}"
                + (f" | colour gap<={r.colour:g}" if r.colour is not None else ""))
        lines.append((mode, rule))
        if r.kind_support:
            works = Counter(th.kinds.values())
            lines.append(("", "support per kind of work: " + ", ".join(
                f"{k} >= {bar:g} ({works.get(k, 0)} works)" for k, bar in sorted(r.kind_support.items()))
                + "; other works the site's bar"))
        rep = reports.get(mode)
        if rep:
            parts = [f"TAR {rep['tar']} FAR {rep['far']} on {rep['positives']}+{rep['negatives']} calibration samples"]
            gain = rep.get("global_path")
            if gain:
                parts.append(f"the global path {'kept' if gain['kept'] else 'dropped'}: it accepts {gain['right']} "
                             f"more right, {gain['wrong']} more wrong"
                             + (f"; kept for kinds {', '.join(gain['for_kinds']) or 'none'} only"
                                if gain.get("for_kinds") is not None else ""))
            if "survey" in rep:
                sv = rep["survey"]
                parts.append(f"survey: TAR {sv['tar']} on {sv['positives']} photos, FAR {sv['far']} on {sv['negatives']}")
            lines.append(("", "; ".join(parts)))
    cal = th.calibration or {}
    if cal.get("look_alike_pairs"):
        listed = (cal.get("look_alikes") or [])[:10]
        shown = ", ".join("~".join(map(str, p)) for p in listed)
        more = cal["look_alike_pairs"] - len(listed)
        lines.append(("look-alikes", f"{cal['look_alike_pairs']} pair(s) of works not used as each other's unknowns: "
                                     f"{shown}" + (f" and {more} more" if more > 0 else "")))
    lines += _survey_shows_lines(cal.get("survey_shows"))
    return lines


def _survey_shows_lines(entries) -> list[tuple[str, str]]:
    """Survey photos that verified works beyond their label (``export.calibration.shown``), one
    line each: what a site engineer checks before trusting the survey's bars. Read from a bundle:
    anything but a list of objects is skipped."""
    if not isinstance(entries, list):
        return []
    lines = []
    for e in entries[:10]:
        if not isinstance(e, dict) or not isinstance(e.get("shows"), dict):
            continue
        works = ", ".join(f"{w} (support {v.get('support')}, 3-D {v.get('fundamental')})" for w, v in e["shows"].items()
                          if isinstance(v, dict))
        if not works:
            continue
        if e.get("negative") == "kept":
            what = "kept as an unknown, which the rules must refuse; if the photo shows it, label it so"
        else:
            what = "left out of its negative: the photo shows it too (label a photo of two works a|b)"
        lines.append(("survey" if not lines else "", f"{e.get('photo')} (labelled {e.get('label')}) verifies {works}; {what}"))
    if len(entries) > 10:
        lines.append(("", f"and {len(entries) - 10} more survey photos"))
    return lines


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", required=True, help="Camera index (0), video file, or rtsp:// / http:// URL.")
@click.option("-k", "k", type=int, default=3, show_default=True, help="Accepted in k of the last n frames to fire.")
@click.option("-n", "n", type=int, default=5, show_default=True)
@click.option("--debounce", type=float, default=10.0, show_default=True, help="Seconds before the same work can re-fire.")
@click.option("--realtime", is_flag=True, help="Pace a video file at its fps and drop stale frames, like a live camera.")
@click.option("--max-seconds", type=float, help="Stop after this much stream time.")
@click.option("--stats", is_flag=True, help="Print a final JSON line with frames, fps and drops.")
@click.option("--multi", type=click.Choice(["centre", "largest"]),
              help="Frames with several works: announce the one nearest the centre, or the largest.")
@device_options
@budget_option
@visitor_log_options
@friendly
def camera(bundle, source, k, n, debounce, realtime, max_seconds, stats, multi, match, trust, site_id, min_release,
           provider, budget_ms, log_dir, log_mb, log_images):
    """Recognize a live camera or video; print one JSON line per event (recognized/unknown/lost)."""
    from runtime.stream import DecisionLayer, RecognitionStream

    rec = open_recognizer(bundle, match, trust, provider, site_id, min_release, budget_ms)
    stream = RecognitionStream(rec, source, DecisionLayer(k, n, debounce), realtime=realtime, max_seconds=max_seconds,
                               multi=multi, visitor_log=open_visitor_log(log_dir, log_mb, log_images))
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
@click.option("--size", type=int, help="Network input side (default: the backbone's).")
@verify_option
@calibration_views_option
@workers_option("Processes that build the two bundles")
@friendly
def demo(out, epochs, size, verify, calibration_views, workers):
    """Generate the embedded demo site, bundle it, fine-tune, and recognize visitor photos."""
    from sdk.demo import run_demo

    run_demo(Path(out), epochs=epochs, size=size, verify=verify, calibration_views=calibration_views,
             workers=workers)


if __name__ == "__main__":  # pragma: no cover
    main()
