"""What a bundle build costs as the site grows; one run, prints JSON (``--out NAME`` also writes
bench/results/).

For each size: a site of that many reference images, built off the shelf with the defaults
(``build_bundle``, as ``sitelens bundle SITE -o X.sitelens``), each stage timed (``StageClock``):
exporting the network and local-feature models, describing references, building and tuning the
index, calibration (simulated views, look-alikes, walls and labels, cluttered scenes) and writing.
Reported: seconds per stage, seconds per reference, the bundle's bytes per reference image per
member. Then the incremental rebuild of the second size after ``--added`` new works
(``bundle --update``), and the embedded demo site (12 works) built in full. ``--workers``: as
``sitelens bundle --workers`` (default 0, its default: one process per core; the number used is
reported); ``--workers 1 2``: every site built with each number, in one run so the times compare.

Sites: every shared set's reference images (coil100, mcv_museum, smvs_books, smvs_landmarks: about
a thousand, as works of their sets), in a fixed interleaved order, then procedural paintings
(``sdk.demo_site.paint``, one work each) where a size needs more.

    python bench/build_cost.py [--sizes 100 1000 5000] [--added 10] [--workers 0] [--out build_cost]
                               [--option turned_features=steered ...]

``--option NAME=VALUE`` (repeatable): a ``BuildOptions`` field other than its default for every
build (VALUE read as JSON where it parses, else as text), e.g. the compact options of a site
that must fit an app update; recorded with the run's options.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
import time
from pathlib import Path

from _common import DEV_SETS, emit  # first: before numpy loads (runtime/models/blas_threads.py)

import numpy as np

STYLES = ("landscape", "shapes", "stripes", "portrait", "circles", "grid")


def real_references() -> list[tuple[Path, str]]:
    """(image, work) of every shared set's reference rows, the sets interleaved row by row."""
    per_set = []
    for name, manifest in DEV_SETS.items():
        with manifest.open(newline="") as fh:
            rows = [(manifest.parent / r["path"], f"{name}/{r['instance']}") for r in csv.DictReader(fh)
                    if r["role"] == "ref"]
        per_set.append(rows)
    return [r for group in itertools.zip_longest(*per_set) for r in group if r is not None]


def painted(folder: Path, count: int, start: int = 0) -> list[tuple[Path, str]]:
    """``count`` procedural paintings, one work each, written as JPEG under ``folder``."""
    import cv2

    from sdk.demo_site import paint

    out = []
    for k in range(start, start + count):
        path = folder / f"painting_{k:05d}.jpg"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), paint(STYLES[k % len(STYLES)], 90000 + k, 360, 288)[:, :, ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append((path, f"painted/{k:05d}"))
    return out


def write_site(rows: list[tuple[Path, str]], manifest: Path) -> Path:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "instance", "role"])
        for path, work in rows:
            w.writerow([str(path), work.replace("/", "__"), "ref"])
    return manifest


def bundle_bytes(path: Path) -> dict:
    """Bundle size and bytes per reference image of each site-dependent member (models apart)."""
    from runtime.bundle import format as bf

    c = bf.read_bundle(path)
    labels = c.json(bf.LABELS)
    images = len(set(labels.get("images") or range(c.manifest.index.count)))
    models = {bf.MODEL, bf.LOCAL_MODEL, bf.GLUE_MODEL}
    per = {n: round(i.size / images) for n, i in c.manifest.members.items() if n not in models}
    return {"file_mb": round(path.stat().st_size / 1e6, 2), "reference_images": images,
            "models_mb": round(sum(i.size for n, i in c.manifest.members.items() if n in models) / 1e6, 2),
            "bytes_per_reference_image": per, "site_bytes_per_reference_image": sum(per.values())}


def build_options(pairs: list[str]) -> dict:
    """``--option NAME=VALUE`` pairs -> keyword arguments of ``build_bundle``; an unknown name is refused."""
    import json

    from export.options import BuildOptions

    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in BuildOptions.names() or name == "workers":
            raise SystemExit(f"--option {pair!r}: NAME=VALUE with NAME a BuildOptions field other than workers")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


def build(manifest: Path, out: Path, workers: int = 0, options: dict | None = None) -> dict:
    """Build ``manifest``'s site into ``out`` with ``workers`` processes (0: one per core) and
    ``options`` (``build_bundle``'s keywords); reports the number used."""
    from export.bundler import build_bundle
    from export.options import BuildOptions
    from export.stages import StageClock

    clock = StageClock()
    build_bundle(manifest, out, None, progress=False, clock=clock, workers=workers, **(options or {}))
    seconds = {k: round(v, 1) for k, v in clock.seconds.items()}
    return {"workers": BuildOptions(workers=workers).processes, "seconds": seconds, **bundle_bytes(out)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 1000])
    ap.add_argument("--added", type=int, default=10, help="works added before the incremental rebuild")
    ap.add_argument("--workers", nargs="+", type=int, default=[0],
                    help="build every site with each of these numbers of worker processes (0: one per core)")
    ap.add_argument("--keep", help="keep sites and bundles in this folder")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a BuildOptions field for every build (repeatable), e.g. turned_features=steered")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    options = build_options(args.option)
    work = Path(args.keep or tempfile.mkdtemp(prefix="build_cost_"))
    real = real_references()
    result = {"real_references": len(real), "sites": {}}
    last = None
    for n in args.sizes:
        rows = real[:n] + painted(work / "painted", max(0, n - len(real)))
        manifest = write_site(rows, work / f"site_{n}" / "manifest.csv")
        for workers in args.workers:
            key = str(n) if len(args.workers) == 1 else f"{n}/{workers}"
            out = work / f"site_{key.replace('/', '_')}.sitelens"
            row = {"references": len(rows), "works": len({w for _, w in rows}),
                   "painted": max(0, n - len(real)), **build(manifest, out, workers, options)}
            row["seconds_per_reference"] = round(row["seconds"]["total"] / len(rows), 3)
            result["sites"][key] = row
            last = (n, rows, out)
            emit(result, args, args.out, show=False)
    if last is not None and args.added:
        from export.stages import StageClock
        from export.update import update_bundle

        n, rows, old = last
        extra = painted(work / "added", args.added, start=10 ** 6)
        manifest = write_site(rows + extra, work / f"site_{n}_plus" / "manifest.csv")
        clock = StageClock()
        out = work / f"site_{n}_plus.sitelens"
        update_bundle(manifest, old, out, progress=False, clock=clock)
        result["update"] = {"references": n, "added_works": args.added,
                            "seconds": {k: round(v, 1) for k, v in clock.seconds.items()}, **bundle_bytes(out)}
        emit(result, args, args.out, show=False)
    from sdk.demo_site import make_demo_site

    site, _ = make_demo_site(work / "demo")
    for workers in args.workers:
        t = time.perf_counter()
        demo = build(site, work / f"demo_{workers}.sitelens", workers, options)
        demo = {"works": len([p for p in site.iterdir() if p.is_dir()]),
                "references": len(list(site.rglob("*.jpg"))), **demo,
                "wall_seconds": round(time.perf_counter() - t, 1)}
        result.setdefault("demo_site", demo)   # the first number of workers; all of them below
        result.setdefault("demo_sites", []).append(demo)
        emit(result, args, args.out, show=False)
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
