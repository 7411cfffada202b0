"""A site that learns from its visitors: does ``sitelens learn`` raise the held-out TAR without
raising false accepts? One run, prints JSON (``--out NAME`` also writes bench/results/).

For each dev set (its open-set manifest: references, known and ``__unknown__`` query photos), the
query photos are split in two halves, known and unknown alike (by a hash of the path, so the
split is fixed): the "first week" is recognized with the visitor log on (as ``sitelens recognize
--log``, one entry per accepted, verified photo), ``learn`` adds the strongest entries as
references, and the held-out half is scored with the old bundle and with the new one
(``sitelens eval --json``: mP@1, TAR, WAR, FAR, GAP). Also reported: what was added, what was left
out and why, and every added entry whose photo shows another work or none (a wrong pseudo-label).
The own-site bundles are built off the shelf with the defaults (``sitelens bundle``), or reused
from ``--keep`` (``bench/large_site.py`` writes the same ones there).

    python bench/learn_from_visitors.py [--sets ...] [--keep DIR] [--workers N] [--recalibrate] [--out learn_from_visitors]

``--finetune``: the same split with ``learn --finetune``. The set's bundle is exported from a short
training run (``sitelens train --epochs TRAIN_EPOCHS``, kept in ``--keep``), the log keeps images,
and ``learn --finetune RUN`` trains FINETUNE_EPOCHS more on the references and the chosen frames
and builds the bundle again. A control run trains the same epochs from the same run on the
references alone (built with the same options), so that what the visitors' frames bring is told
apart from what more epochs bring. Held out: before, after, control.
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections import Counter
from pathlib import Path

from _common import OPEN_SETS, emit, site_manifest  # first: before numpy loads

from hard_sets import sitelens
from large_site import evaluate, own_site, rows_of, write


def halves(rows):
    """(first week, held out): every other query photo in the order of a hash of its path, known
    and unknown photos split separately."""
    first, held = [], []
    for unknown in (False, True):
        group = sorted((r for r in rows if r[2] == "query" and (r[1] == "__unknown__") == unknown),
                       key=lambda r: hashlib.sha256(Path(r[0]).name.encode()).hexdigest())
        first += group[0::2]
        held += group[1::2]
    return first, held


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(OPEN_SETS))
    ap.add_argument("--support-factor", type=float, default=2.0)
    ap.add_argument("--max-per-work", type=int, default=5)
    ap.add_argument("--recalibrate", action="store_true", help="recalibrate the new bundle on the set's references")
    ap.add_argument("--keep", help="keep (and reuse) bundles in this folder")
    ap.add_argument("--workers", type=int, default=1, help="`sitelens bundle --workers` (the bundle is the same)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    ap.add_argument("--finetune", action="store_true", help="learn --finetune against a control (see above)")
    ap.add_argument("--train-epochs", type=int, default=2, help="with --finetune: epochs of the set's first run")
    ap.add_argument("--finetune-epochs", type=int, default=2, help="with --finetune: epochs learn trains further")
    args = ap.parse_args()
    if args.finetune:
        return finetuned(args)
    from export.learn import learn

    work = Path(args.keep or tempfile.mkdtemp(prefix="learn_"))
    result = {"sets": {}}
    for name in args.sets:
        rows, manifest, bundle, _ = own_site(name, work, args.workers)
        first, held = halves(rows)
        held_csv = write(held, work / name / "held_out.csv")
        truth, answered = log_first_week(bundle, first, work / name / "visitor_log", keep_images=False)
        new = work / f"{name}_learned.sitelens"
        report = learn(bundle, work / name / "visitor_log", new, site=manifest if args.recalibrate else None,
                       support_factor=args.support_factor, max_per_work=args.max_per_work, progress=False)
        wrong = [a for a in report["added"] if truth.get(a["entry"]) != a["instance"]]
        row = {"references": sum(1 for r in rows if r[2] == "ref"), "first_week": len(first), "held_out": len(held),
               "logged": len(truth), "logged_wrong": sum(truth[e] != answered[e] for e in truth),
               # only these can gain: a held-out photo of a work no first-week frame showed has nothing to learn from
               "held_out_of_logged_works": sum(r[1] in set(truth.values()) for r in held if r[1] != "__unknown__"),
               "added": len(report["added"]), "added_wrong": len(wrong), "wrong": wrong,
               "refused": dict(Counter(r["reason"] for r in report["refused"])),
               "recalibrated": report["thresholds"]["recalibrated"],
               "before": evaluate(bundle, held_csv), "after": evaluate(new, held_csv) if report["out"] else None}
        result["sets"][name] = row
        emit(result, args, args.out, show=False)
    emit(result, args, args.out)


def log_first_week(bundle: Path, first, log_dir: Path, keep_images: bool) -> tuple[dict, dict]:
    """Recognize the first-week photos with the visitor log on; (truth, answer) per entry written."""
    from runtime.image.image_io import load_image
    from runtime.recognizer import Recognizer
    from runtime.visitor_log import VisitorLog

    rec = Recognizer.open(bundle)
    for old in log_dir.glob("*.entry"):
        old.unlink()
    vlog = VisitorLog(log_dir, max_bytes=1 << 30, min_interval_s=0.0, keep_images=keep_images)
    truth, answered = {}, {}
    for path, instance, _ in first:
        img = load_image(path)
        r = rec.recognize(img)
        entry = vlog.record(rec, img, r)
        if entry is not None:
            truth[entry.name], answered[entry.name] = instance, r.instance
    return truth, answered


def finetuned(args):
    import shutil
    import time

    from export.bundler import build_bundle
    from export.learn import learn
    from export.options import BuildOptions
    from runtime.recognizer import Recognizer
    from runtime.site import load_site
    from training.finetune import finetune

    work = Path(args.keep or tempfile.mkdtemp(prefix="learn_"))
    result = {"finetune": {"train_epochs": args.train_epochs, "finetune_epochs": args.finetune_epochs}, "sets": {}}
    for name in args.sets:
        seconds = {}
        rows = rows_of(site_manifest(name), name)
        manifest = write(rows, work / name / "manifest.csv")
        run, bundle = work / f"{name}_e{args.train_epochs}.run", work / f"{name}_e{args.train_epochs}.sitelens"
        t = time.perf_counter()
        if not (run / "config.json").exists():
            sitelens("train", manifest, "-o", run, "--epochs", args.train_epochs)
        seconds["train"] = time.perf_counter() - t
        t = time.perf_counter()
        if not bundle.exists():
            sitelens("export", run, "--site", manifest, "-o", bundle, "--workers", args.workers)
        seconds["export"] = time.perf_counter() - t
        first, held = halves(rows)
        held_csv = write(held, work / name / "held_out.csv")
        log_dir = work / name / "visitor_log_images"
        truth, answered = log_first_week(bundle, first, log_dir, keep_images=True)
        new, new_run = work / f"{name}_finetuned.sitelens", work / f"{name}_finetuned.run"
        control, control_run = work / f"{name}_control.sitelens", work / f"{name}_control.run"
        for old in (new_run, control_run):
            shutil.rmtree(old, ignore_errors=True)
        t = time.perf_counter()
        report = learn(bundle, log_dir, new, site=manifest, support_factor=args.support_factor,
                       max_per_work=args.max_per_work, finetune=run, finetune_epochs=args.finetune_epochs,
                       run_out=new_run, workers=args.workers, progress=False)
        seconds["learn --finetune"] = time.perf_counter() - t
        t = time.perf_counter()
        finetune(run, load_site(manifest), control_run, args.finetune_epochs, progress=False)
        build_bundle(load_site(manifest), control, control_run,
                     BuildOptions.like(Recognizer.open(bundle).manifest, workers=args.workers), progress=False)
        seconds["control"] = time.perf_counter() - t
        wrong = [a for a in report["added"] if truth.get(a["entry"]) != a["instance"]]
        result["sets"][name] = {
            "references": sum(1 for r in rows if r[2] == "ref"), "first_week": len(first), "held_out": len(held),
            "logged": len(truth), "logged_wrong": sum(truth[e] != answered[e] for e in truth),
            "held_out_of_logged_works": sum(r[1] in set(truth.values()) for r in held if r[1] != "__unknown__"),
            "added": len(report["added"]), "added_wrong": len(wrong), "wrong": wrong,
            "refused": dict(Counter(r["reason"] for r in report["refused"])), "recalibrated": True,
            "finetune": report["finetune"], "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "before": evaluate(bundle, held_csv), "after": evaluate(new, held_csv) if report["out"] else None,
            "control": evaluate(control, held_csv)}
        emit(result, args, args.out, show=False)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
