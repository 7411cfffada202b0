"""Would a verification bar per kind of work hold the answers of a large site? A probe before a
calibration and bundle format change.

A bundle has one acceptance rule (``runtime/thresholds.py``): a candidate verifies when its
homography support (or its 3-D inliers) reaches a bar that calibration sets so that the site's
hardest unknowns stay within the false-accept budget. On ``bench/large_site.py``'s site (every
dev set's references together) the hardest unknowns are look-alike objects, and their bar is far
above what a building or a book cover needs: those sets answer worse there than on their own
sites. This bench takes that large site's bundle and:

1. gathers calibration's samples with calibration's own code (``export.calibration.gather``:
   simulated views, walls, labels, cluttered scenes, look-alikes left out), as a build does;
2. finds each dev set's query photos' evidence on the large site (``Recognizer.findings``, every
   verification stage run: what a bar decides on);
3. splits the works into kinds: ``one rule`` (the bundle's own rule, the baseline), ``by set``
   (the dev set a work comes from: what a curator could say), and ``k-means K``
   (``export.kinds.kinds_of``: K groups of the works' mean global descriptors, what a build can
   find alone);
4. gives each kind its own homography-support bar (``export.kinds.support_bars``: from the
   negatives' strongest support among that kind's works, each kind of negative within the kind's
   share of the budget, its share of the works, never below ``MIN_SUPPORT``); the 3-D bar and the global
   rule stay the site's (per-kind 3-D bars rested on a few dozen building negatives and let
   one more unknown building through in a first probe);
5. decides with ``runtime.recognizer.ranked``, given the site's rule with those bars
   (``Rule.kind_support``, as a bundle calibrated with kinds carries them).

Reports per grouping: the bars, calibration's own TAR/FAR under them, and each set's mP@1, TAR,
WAR and FAR on the large site. Compare with the sets' own sites in ``bench/large_site.py``'s
result built from the same bundles (``--keep``). One run, prints JSON (``--out NAME`` also
writes bench/results/).

    python bench/kind_bars.py [--keep DIR] [--kmeans 2 4 8] [--workers 2] [--out kind_bars]
"""
from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

from _common import emit  # first: before numpy loads

import numpy as np
from tqdm import tqdm

from large_site import SETS, bundle_settings, large_site, write

MODES = ("hnsw", "exact")   # calibration gathers both (its look-alike test reads exact mode)


def kinds_by_set(instances: list[str]) -> dict[str, str]:
    return {i: i.split("__")[0] for i in instances}


def outcome(findings, truth: str, rule) -> tuple[bool, bool, str | None]:
    """(accepted, accepted as ``truth``, top-1) of one query photo's findings under ``rule``,
    decided as a device does (``runtime.recognizer.ranked``)."""
    from runtime.recognizer import ranked

    if not findings.hits:
        return False, False, None
    order, decided_by = ranked(findings, rule)
    return decided_by is not None, decided_by is not None and order[0] == truth, order[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--kmeans", nargs="+", type=int, default=[2, 4, 8], help="numbers of groups tried")
    ap.add_argument("--workers", type=int, default=2, help="processes that gather calibration's samples")
    ap.add_argument("--keep", help="the large site and its bundle (bench/large_site.py's --keep; reused when there)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()

    from runtime.bundle import format as bf
    from runtime.metrics import accept_rates, rates
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries, load_site
    from runtime.image.image_io import load_image
    from export.calibration import gather, outcome as sample_outcomes
    from export.kinds import kinds_of, support_bars

    work = Path(args.keep or tempfile.mkdtemp(prefix="kind_bars_"))
    per_set, refs, big, _, _ = large_site(args.sets, work)
    contents = bf.read_bundle(big)
    rec = Recognizer(contents, providers=["CPUExecutionProvider"])
    rule = replace(rec.thresholds.rule("hnsw"), kind_support=None)   # the site's bar; groupings add theirs
    target_far = rec.thresholds.target_far or 0.01
    samples = gather(rec, load_site(work / "large" / "manifest.csv"), MODES, workers=args.workers,
                     contents=contents, target_far=target_far)
    found = {}
    for name, rows in per_set.items():
        queries = load_queries(write([r for r in rows if r[2] == "query"], work / name / "queries.csv"))
        found[name] = []
        for q in tqdm(queries, desc=f"{name} queries", unit="photo"):
            img = load_image(q.path, rec.decode_need)
            found[name].append(("|".join(sorted(q.instances)) if not q.is_unknown else None,
                                rec.findings(img, rec.embedder.embed(img), "hnsw")))
    instances = sorted(set(rec.index.instances))
    groupings = {"one rule": {i: "site" for i in instances}, "by set": kinds_by_set(instances)}
    groupings.update({f"k-means {k}": kinds_of(rec.index.descriptors, rec.index.instances, k) for k in args.kmeans})
    result = {"references": len(refs), "works": len(instances), "bundle_settings": bundle_settings(contents.manifest),
              "calibration_samples": {"positives": len(samples.positives), "negatives": len(samples.negatives)},
              "groupings": {}}
    for label, kind_of in groupings.items():
        bars = {"site": float(rule.support)} if label == "one rule" else support_bars(samples.negatives, kind_of, target_far)
        kind_rule = replace(rule, kind_support=bars, kinds=kind_of)   # each work held to its kind's bar
        tar, far = rates(sample_outcomes(rec, kind_rule, samples.positives, "hnsw"),
                         sample_outcomes(rec, kind_rule, samples.negatives, "hnsw"))
        works = Counter(kind_of.values())
        row = {"kinds": {g: works[g] for g in bars}, "support_bars": bars,
               "calibration": {"tar": round(tar, 4), "far": round(far, 4)}, "sets": {}}
        for name, items in found.items():
            known = [(truth, outcome(f, truth, kind_rule)) for truth, f in items if truth is not None]
            unknown = [outcome(f, "", kind_rule)[0] for truth, f in items if truth is None]
            rates_ = accept_rates([o[0] for _, o in known], [o[1] for _, o in known], unknown)
            row["sets"][name] = {"mP@1": round(float(np.mean([o[2] == t for t, o in known])), 4) if known else None,
                                 **{k: None if v is None else round(v, 4) for k, v in rates_.items()},
                                 "queries": len(items)}
        result["groupings"][label] = row
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
