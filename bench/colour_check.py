"""The colour test of verified answers (``runtime/verify/colour.py``) on the dev sets' own sites,
one run; prints JSON (``--out NAME`` also writes bench/results/ and a picture of the gaps).

For each set: its own site built off the shelf twice, ``sitelens bundle --no-colour`` (no chroma
stored: as before the test) and ``sitelens bundle`` (chroma stored, the default); ``sitelens
eval`` of its query rows on both (mP@1, TAR, WAR, FAR, GAP) and the bytes of each; then, on the
colour bundle with the colour test lifted (its rules otherwise as calibrated), the colour gap of
every answer verified by a homography, split into right and wrong works: what the test's bar
(``colour.GAP``) stands between.

    python bench/colour_check.py [--sets ...] [--keep DIR] [--out colour_check]

Bundles found in ``--keep`` (``<set>.sitelens``, ``<set>_colour.sitelens``) are reused (marked
``reused``); each bundle's settings are recorded as its manifest states them.
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from _common import RESULTS, emit, site_manifest  # first: before numpy loads

import numpy as np
from large_site import SETS, bundle_settings, evaluate, manifest_of
from hard_sets import sitelens


def gaps(bundle: Path, queries: Path) -> dict:
    """Colour gaps of the answers a homography verified, the colour test lifted: right work, wrong
    work, and photos of works the site does not hold (``__unknown__``)."""
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries
    from runtime.thresholds import Thresholds

    rec = Recognizer.open(bundle)
    t = rec.thresholds
    rec.thresholds = Thresholds({m: replace(r, colour=None) for m, r in t.modes.items()},
                                replace(t.default, colour=None), t.target_far, t.calibration, t.kinds)
    out = {"right": [], "wrong": [], "unknown": [], "unmeasured": {"right": 0, "wrong": 0, "unknown": 0}}
    for q in load_queries(queries):
        r = rec.recognize(q.path)
        if r.instance is None or r.decided_by != "verification":
            continue
        side = "unknown" if q.is_unknown else "right" if r.instance in q.instances else "wrong"
        ev = r.candidates[0].evidence
        if ev is None or ev.colour is None:
            out["unmeasured"][side] += 1
        else:
            out[side].append(round(float(ev.colour), 1))
    return out


def picture(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runtime.verify import colour

    sets = list(result["sets"])
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 3.2), squeeze=False)
    for ax, name in zip(axes[0], sets):
        g = result["sets"][name]["gaps"]
        bins = np.linspace(0, max([60.0] + g["right"] + g["wrong"] + g["unknown"]), 31)
        ax.hist(g["right"], bins, color="C2", alpha=0.7, label=f"right work ({len(g['right'])})")
        ax.hist(g["wrong"], bins, color="C3", alpha=0.8, label=f"wrong work ({len(g['wrong'])})")
        ax.hist(g["unknown"], bins, color="C1", alpha=0.8, label=f"work not in the site ({len(g['unknown'])})")
        ax.axvline(colour.GAP, color="k", ls="--", lw=1, label="bar (colour.GAP)")
        ax.set_title(name)
        ax.set_xlabel("colour gap (a*b*)")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("answers verified by a homography")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--keep", help="keep sites and bundles in this folder (reused when there)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json and <OUT>.png")
    args = ap.parse_args()
    from runtime.verify import colour

    work = Path(args.keep or tempfile.mkdtemp(prefix="colour_check_"))
    result = {"bar": colour.GAP, "sets": {}}
    for name in args.sets:
        manifest = site_manifest(name)
        row = {}
        for label, extra in (("without", ("--no-colour",)), ("with", ())):
            bundle = work / (f"{name}.sitelens" if label == "without" else f"{name}_colour.sitelens")
            reused = bundle.exists()   # found in --keep: built by an earlier run (build time is not measured here)
            if not reused:
                sitelens("bundle", manifest, "-o", bundle, *extra)
            row[label] = {**evaluate(bundle, manifest), "mb": round(bundle.stat().st_size / 1e6, 2), "reused": reused,
                          "settings": bundle_settings(manifest_of(bundle))}
        row["gaps"] = gaps(work / f"{name}_colour.sitelens", manifest)
        result["sets"][name] = row
        emit(result, args, args.out, show=False)
    if args.out:
        picture(result, RESULTS / f"{args.out}.png")
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
