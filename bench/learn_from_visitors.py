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
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections import Counter
from pathlib import Path

from _common import OPEN_SETS, emit, site_manifest  # first: before numpy loads

from hard_sets import sitelens
from large_site import evaluate, rows_of, write


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
    args = ap.parse_args()
    from export.learn import learn
    from runtime.image.image_io import load_image
    from runtime.recognizer import Recognizer
    from runtime.visitor_log import VisitorLog

    work = Path(args.keep or tempfile.mkdtemp(prefix="learn_"))
    result = {"sets": {}}
    for name in args.sets:
        rows = rows_of(site_manifest(name), name)
        manifest = write(rows, work / name / "manifest.csv")
        bundle = work / f"{name}.sitelens"
        if not bundle.exists():
            sitelens("bundle", manifest, "-o", bundle, "--workers", args.workers)
        first, held = halves(rows)
        held_csv = write(held, work / name / "held_out.csv")
        rec = Recognizer.open(bundle)
        log_dir = work / name / "visitor_log"
        for old in log_dir.glob("*.entry"):
            old.unlink()
        vlog = VisitorLog(log_dir, max_bytes=1 << 30, min_interval_s=0.0)
        truth, answered = {}, {}
        for path, instance, _ in first:
            img = load_image(path)
            r = rec.recognize(img)
            entry = vlog.record(rec, img, r)
            if entry is not None:
                truth[entry.name], answered[entry.name] = instance, r.instance
        new = work / f"{name}_learned.sitelens"
        report = learn(bundle, log_dir, new, site=manifest if args.recalibrate else None,
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


if __name__ == "__main__":
    main()
