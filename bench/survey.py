"""Does a survey walk help? ``sitelens bundle --survey`` against the defaults on held-out photos;
one run, prints JSON (``--out NAME`` also writes bench/results/).

A site engineer can walk the site once with a phone and label what the camera saw: works of the
site, and things that are not (``__unknown__``: other works, walls, people). Calibration then
counts those photos beside its simulated ones (``export/calibration.py``): known photos as
positives and, with their work left out, as negatives; unknown photos as negatives of their own
kind, which the rules must keep within the budget on their own.

For each dev set (its open-set manifest), the query photos are split in two halves, known and
unknown alike, by a hash of the path (``learn_from_visitors.halves``: the same split). Two folds:
each half in turn is the survey and the other half is scored, with the defaults' bundle
(``sitelens bundle``, no survey) and with the bundle built with that survey (``--survey``, every
other option the default). Per fold: ``sitelens eval --json`` of the held-out half with each
bundle, the rule each bundle's default match mode was calibrated to (its bars), the survey's own
TAR/FAR under it as the manifest stores it, the survey photos that verified works beyond their
label (``survey_shows``: what ``bundle`` warns of), and the build times. Pooled over both folds (every
query photo held out once): photos answered rightly, known photos answered as another work, and
unknown photos accepted, each against the defaults.

    python bench/survey.py [--sets smvs_books smvs_landmarks mcv_museum] [--keep DIR] [--workers N] [--out survey]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import emit  # first: before numpy loads

from hard_sets import sitelens
from large_site import bundle_settings, evaluate, manifest_of, own_site, write
from learn_from_visitors import halves

SETS = ("smvs_books", "smvs_landmarks", "mcv_museum")


def counts(row: dict) -> dict:
    """Photos behind an eval's rates: known ranked rightly first, known answered rightly, known
    answered as another work, unknown accepted (``sitelens eval --json`` reports rates over ``known`` and ``unknown``)."""
    known, unknown = row.get("known") or 0, row.get("unknown") or 0
    return {"known": known, "unknown": unknown,
            "top1": round((row.get("mP@1") or 0.0) * known),
            "right": round((row.get("true_accept_rate") or 0.0) * known),
            "wrong_work": round((row.get("wrong_accept_rate") or 0.0) * known),
            "unknown_accepted": round((row.get("false_accept_rate") or 0.0) * unknown)}


def pooled(folds: list[dict], which: str) -> dict:
    """Counts summed over the folds for bundle ``which`` ("defaults" or "survey"), with the rates
    they make (mP@1, TAR, WAR over known photos; FAR over unknown ones)."""
    total = {k: sum(counts(f[which])[k] for f in folds) for k in ("known", "unknown", "top1", "right",
                                                                  "wrong_work", "unknown_accepted")}
    total["mP@1"] = round(total["top1"] / total["known"], 4) if total["known"] else None
    total["true_accept_rate"] = round(total["right"] / total["known"], 4) if total["known"] else None
    total["wrong_accept_rate"] = round(total["wrong_work"] / total["known"], 4) if total["known"] else None
    total["false_accept_rate"] = round(total["unknown_accepted"] / total["unknown"], 4) if total["unknown"] else None
    return total


def survey_report(bundle: Path) -> tuple[dict | None, list]:
    """The survey's own TAR/FAR under the rule of the default match mode, and the survey photos
    that verified works beyond their label (``survey_shows``), as the manifest stores them."""
    th = manifest_of(bundle).thresholds
    cal = (th.calibration or {}) if th is not None else {}
    return ((cal.get("modes") or {}).get("hnsw") or {}).get("survey"), cal.get("survey_shows") or []


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--keep", help="keep (and reuse) bundles in this folder")
    ap.add_argument("--workers", type=int, default=1, help="`sitelens bundle --workers` (the bundle is the same)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="survey_"))
    result = {"sets": {}}
    for name in args.sets:
        rows, manifest, bundle, build_s = own_site(name, work, args.workers)
        first, held = halves(rows)
        row = {"references": sum(1 for r in rows if r[2] == "ref"), "build_s": None if build_s is None else round(build_s, 1),
               "rule": bundle_settings(manifest_of(bundle))["rule"], "folds": []}
        result["sets"][name] = row
        for fold, (survey, scored) in enumerate(((first, held), (held, first))):
            survey_csv = write(survey, work / name / f"survey{fold}.csv")
            scored_csv = write(scored, work / name / f"scored{fold}.csv")
            surveyed = work / f"{name}__survey{fold}.sitelens"
            seconds = None
            if not surveyed.exists():
                _, seconds = sitelens("bundle", manifest, "-o", surveyed, "--workers", args.workers,
                                      "--survey", survey_csv)
            in_sample, shows = survey_report(surveyed)
            row["folds"].append({
                "survey_known": sum(r[1] != "__unknown__" for r in survey),
                "survey_unknown": sum(r[1] == "__unknown__" for r in survey),
                "build_s": None if seconds is None else round(seconds, 1),
                "rule": bundle_settings(manifest_of(surveyed))["rule"], "survey_in_sample": in_sample,
                "survey_shows": shows,
                "defaults": evaluate(bundle, scored_csv), "survey": evaluate(surveyed, scored_csv)})
            emit(result, args, args.out, show=False)
        row["pooled"] = {"defaults": pooled(row["folds"], "defaults"), "survey": pooled(row["folds"], "survey")}
        emit(result, args, args.out, show=False)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
