"""Would a global-descriptor veto cut wrong accepts? A probe before a calibration and rule change.

A wrong accept (``wrong_accept_rate``: a known photo accepted as *another* work) mostly comes from a
look-alike that verifies while the photographed work does not: XFeat sees grey levels, so a red
car verifies as the yellow one of the same model, a green cat-food tin as the pink one. The global
descriptor sees colour, and in those cases ranks the photographed work well above the one that
verified. The probe: a candidate accepted by verification whose global score is more than ``delta``
below the shortlist's top score is rejected instead (the photo is answered "unknown").

For each dev set's own site (``bench/large_site.py``'s bundles, ``--keep``):

1. calibration's samples, gathered with calibration's own code (``export.calibration.gather``), give
   the score gaps of simulated views accepted by verification, as their own work (right) or another
   (wrong); a calibrated ``delta`` is the smallest that rejects at most ``--lose`` of the right ones
   (and "below every right": the smallest that rejects none of them);
2. the set's query photos' findings (``Recognizer.findings``, stopping once a candidate verifies),
   decided as a device does (``runtime.recognizer.ranked``) under the bundle's rule (what
   ``sitelens eval`` reports), then with the veto at fixed deltas and
   at the calibrated one: TAR, WAR, FAR (the veto only rejects: rankings do not change).

One run, prints JSON (``--out NAME`` also writes bench/results/).

    python bench/global_veto.py --keep DIR [--sets ...] [--deltas 0.1 0.15 0.2] [--out global_veto]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import emit  # first: before numpy loads

import numpy as np
from tqdm import tqdm

from large_site import SETS, bundle_settings

MODES = ("hnsw", "exact")   # calibration gathers both (its look-alike test reads exact mode)


def decide(findings, rule, delta: float | None) -> tuple[str | None, str | None, float]:
    """(answer or None, what accepted it, its global score's gap below the shortlist's top)."""
    from runtime.recognizer import ranked

    if not findings.hits:
        return None, None, 0.0
    order, by = ranked(findings, rule)
    scores = {h[0]: h[1] for h in findings.hits}
    gap = float(scores[order[0]] - findings.hits[0][1])
    if by is None or (by == "verification" and delta is not None and gap < -delta):
        return None, by, gap
    return order[0], by, gap


def calibrated_delta(gaps_right: np.ndarray, lose: float) -> float:
    """The smallest delta that rejects at most ``lose`` of the right verified accepts."""
    if len(gaps_right) == 0:
        return float("inf")
    allowed = int(np.floor(lose * len(gaps_right)))
    worst = np.sort(-gaps_right)[::-1]            # deepest gaps first
    return float(worst[allowed]) if allowed < len(worst) else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--keep", required=True, help="bench/large_site.py's --keep folder (own bundles and queries)")
    ap.add_argument("--deltas", nargs="+", type=float, default=[0.1, 0.15, 0.2])
    ap.add_argument("--lose", type=float, default=0.005, help="share of right simulated accepts a calibrated delta may lose")
    ap.add_argument("--workers", type=int, default=2, help="processes that gather calibration's samples")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()

    from runtime.bundle import format as bf
    from runtime.image.image_io import load_image
    from runtime.metrics import accept_rates
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries, load_site
    from export.calibration import gather

    work = Path(args.keep)
    result = {"sets": {}}
    for name in args.sets:
        contents = bf.read_bundle(work / f"{name}.sitelens")
        rec = Recognizer(contents, providers=["CPUExecutionProvider"])
        rule = rec.thresholds.rule("hnsw")
        samples = gather(rec, load_site(work / name / "manifest.csv"), MODES, workers=args.workers,
                         contents=contents, target_far=rec.thresholds.target_far or 0.01)
        sim = [(s.truth, decide(s.findings["hnsw"], rule, None)) for s in samples.positives]
        right = np.array([g for t, (a, by, g) in sim if by == "verification" and a == t])
        wrong = np.array([g for t, (a, by, g) in sim if by == "verification" and a is not None and a != t])
        neg = [decide(s.findings["hnsw"], rule, None) for s in samples.negatives]
        cal = calibrated_delta(right, args.lose)
        loosest = calibrated_delta(right, 0.0)   # below every right simulated accept's gap
        found = []
        for q in tqdm(load_queries(work / name / "queries.csv"), desc=f"{name} queries", unit="photo"):
            img = load_image(q.path, rec.decode_need)
            # as the device finds them (``Recognizer.analyze``): verification stops once a candidate verifies
            found.append((None if q.is_unknown else set(q.instances),
                          rec.findings(img, rec.embedder.embed(img), "hnsw", stop=rule.verified)))
        row = {"settings": bundle_settings(contents.manifest),
               "simulated": {"right_verified": len(right), "wrong_verified": len(wrong),
                             "right_gap_p01": round(float(np.quantile(right, 0.01)), 4) if len(right) else None,
                             "wrong_gaps": sorted(round(float(g), 4) for g in wrong),
                             "negatives_verified": sum(1 for a, by, g in neg if by == "verification"),
                             "calibrated_delta": round(cal, 4), "deepest_right_gap": round(-loosest, 4)},
               "queries": {}}
        for label, delta in [("rule", None)] + [(f"delta {d}", d) for d in args.deltas] + [("calibrated", cal), ("below every right", loosest)]:
            known = [(truth, decide(f, rule, delta)) for truth, f in found if truth is not None]
            unknown = [decide(f, rule, delta)[0] is not None for truth, f in found if truth is None]
            rates = accept_rates([a is not None for _, (a, _, _) in known], [a in t for t, (a, _, _) in known], unknown)
            row["queries"][label] = {"delta": None if delta is None else round(delta, 4),
                                     **{k: None if v is None else round(v, 4) for k, v in rates.items()}}
        result["sets"][name] = row
        emit(result, args, args.out, show=False)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
