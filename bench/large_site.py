"""Answers when the site is large: every shared set's references in one site, each set's query
photos scored against it; one run, prints JSON (``--out NAME`` also writes bench/results/).

The large site holds the references of all dev sets at once (coil100's objects, mcv_museum's
paintings, smvs_books' covers, smvs_landmarks' buildings; the open-set manifests' references, so
each set's ``__unknown__`` photos show works the site does not hold), optionally padded with
procedural paintings (``--pad-to``). Built off the shelf with the defaults, as
``sitelens bundle``. For each set: ``sitelens eval`` of its query rows against its own site and
against the large one (mP@1, TAR, WAR, FAR, GAP), and recognize() p50/p95 per photo at each size.

    python bench/large_site.py [--sets ...] [--pad-to 2500] [--keep DIR] [--bundle-args "..."] [--out large_site]

Each bundle's settings are recorded as its manifest states them (``bundle_settings``: local-feature
parameters, turns, precision and the calibrated rule of its default match mode), so a result made
with bundles kept from an earlier run (``--keep``) or built with ``--bundle-args`` says what it
measured.
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import tempfile
from pathlib import Path

from _common import emit, percentiles, site_manifest, timed  # first: before numpy loads

from build_cost import painted
from hard_sets import KEYS, sitelens

SETS = ("coil100", "mcv_museum", "smvs_books", "smvs_landmarks")


def rows_of(manifest: Path, prefix: str) -> list[tuple[str, str, str]]:
    """(absolute path, instance prefixed with the set, role); unknown and a|b instances kept as such."""
    out = []
    with manifest.open(newline="") as fh:
        for r in csv.DictReader(fh):
            inst = r["instance"]
            if inst != "__unknown__":
                inst = "|".join(f"{prefix}__{i}" for i in inst.split("|"))
            out.append((str((manifest.parent / r["path"]).resolve()), inst, r["role"]))
    return out


def write(rows, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "instance", "role"])
        w.writerows(rows)
    return path


def own_site(name: str, work: Path, workers: int = 1) -> tuple[list, Path, Path, float | None]:
    """A dev set's own site in ``work``: its open-set rows (``rows_of``), their manifest, and its
    bundle built off the shelf with the defaults (``sitelens bundle``; kept there and reused), with
    the seconds its build took (None when reused)."""
    rows = rows_of(site_manifest(name), name)
    manifest = write(rows, work / name / "manifest.csv")
    bundle = work / f"{name}.sitelens"
    seconds = None
    if not bundle.exists():
        _, seconds = sitelens("bundle", manifest, "-o", bundle, "--workers", workers)
    return rows, manifest, bundle, seconds


def evaluate(bundle: Path, queries: Path) -> dict:
    stdout, _ = sitelens("eval", bundle, queries, "--json")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {k: result.get(k) for k in KEYS}


def recognize_ms(bundle: Path, queries: Path, limit: int, budget_ms: float | None = None) -> dict:
    from latency import cycle

    from runtime.image.image_io import load_image
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries

    rec = Recognizer.open(bundle, budget_ms=budget_ms)
    images = [load_image(q.path) for q in load_queries(queries)[:limit]]
    nxt = cycle(images)
    truncated = []
    out = percentiles(timed(lambda: truncated.append(rec.recognize(nxt()).truncated), len(images), warmup=1))
    if budget_ms is not None:
        out["budget_ms"], out["truncated_share"] = budget_ms, round(sum(truncated) / max(len(truncated), 1), 3)
    return out


def bundle_settings(manifest) -> dict:
    """What a bundle was built with, from its manifest (``runtime.bundle.manifest.Manifest``):
    verification parameters as they run, reference turns, precision and the calibrated rule of
    the default match mode, hnsw (its bars show the site's hardest unknowns)."""
    from runtime.verify.verifier import VerifyParams

    rule = manifest.thresholds.rule("hnsw") if manifest.thresholds is not None else None
    verification = VerifyParams.from_dict(manifest.verification).to_dict() if manifest.verification else None
    return {"verification": verification, "rotations": (manifest.references or {}).get("rotations"),
            "precision": manifest.model.precision, "rule": rule.to_dict() if rule is not None else None}


def manifest_of(bundle: Path):
    """A bundle's manifest, the bundle verified as any reader does."""
    from runtime.bundle import format as bf

    return bf.read_bundle(bundle).manifest


def large_site(sets, work: Path, pad_to: int = 0, bundle_args=()) -> tuple[dict, list, Path, float | None, int]:
    """(rows per set, the large site's reference rows, its bundle ``work/large.sitelens``, seconds
    `sitelens bundle` took with the CLI's defaults (and ``bundle_args``) or None when the bundle was
    there already, the number of procedural paintings that pad the site up to ``pad_to`` references)."""
    per_set = {name: rows_of(site_manifest(name), name) for name in sets}
    refs = [r for rows in per_set.values() for r in rows if r[2] == "ref"]
    pad = max(0, pad_to - len(refs))
    refs += [(str(p), w.replace("/", "__"), "ref") for p, w in painted(work / "painted", pad)]
    large = write(refs, work / "large" / "manifest.csv")
    big = work / "large.sitelens"
    seconds = None
    if not big.exists():
        _, seconds = sitelens("bundle", large, "-o", big, *bundle_args)
    return per_set, refs, big, seconds, pad


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--pad-to", type=int, default=0, help="add procedural paintings up to this many references")
    ap.add_argument("--timed", type=int, default=60, help="query photos timed per set and site")
    ap.add_argument("--budget-ms", type=float, default=80.0, help="also time the large site with this budget per frame")
    ap.add_argument("--keep", help="keep sites and bundles in this folder (reused when there)")
    ap.add_argument("--bundle-args", default="", help="more `sitelens bundle` options for every bundle built")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="large_site_"))
    extra = shlex.split(args.bundle_args)
    per_set, refs, big, seconds, pad = large_site(args.sets, work, args.pad_to, extra)
    result = {"references": len(refs), "works": len({r[1] for r in refs}), "painted": pad,
              "large_bundle": {"build_seconds": round(seconds, 1) if seconds else None,
                               "mb": round(big.stat().st_size / 1e6, 1), "settings": bundle_settings(manifest_of(big))},
              "sets": {}}
    for name, rows in per_set.items():
        own_manifest = write(rows, work / name / "manifest.csv")
        queries = write([r for r in rows if r[2] == "query"], work / name / "queries.csv")
        own = work / f"{name}.sitelens"
        if not own.exists():
            sitelens("bundle", own_manifest, "-o", own, *extra)
        row = {"own_site": evaluate(own, own_manifest), "large_site": evaluate(big, queries)}
        row["own_site"]["settings"] = bundle_settings(manifest_of(own))
        row["own_site"]["recognize_ms"] = recognize_ms(own, queries, args.timed)
        row["large_site"]["recognize_ms"] = recognize_ms(big, queries, args.timed)
        row["large_site"]["recognize_ms_budget"] = recognize_ms(big, queries, args.timed, args.budget_ms)
        row["references"] = sum(1 for r in rows if r[2] == "ref")
        result["sets"][name] = row
        emit(result, args, args.out, show=False)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
