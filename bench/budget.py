"""recognize() under a time budget per frame on a large site; one run, prints JSON (``--out NAME``
also writes bench/results/).

The site is ``bench/large_site.py``'s (every shared set's references in one bundle, built off the
shelf with the defaults; ``--keep DIR`` reuses its ``large.sitelens``; ``--pad-to N`` adds
procedural paintings up to N references, for a site of 10k index rows). Each set's open-set query
photos (known works and ``__unknown__`` ones) are recognized, with verification, in three ways,
frame by frame in turn so that a slow spell of a shared machine falls on all of them alike:

- ``none``: no budget (every stage runs);
- ``chunks``: ``--budget-ms`` with the budget looked at every ``CHUNK_ROWS`` rows matched, between
  the second look's batches and before each geometric model (``Verifier.evidence``, the default);
- ``stages``: the same budget looked at between stages only (``CHUNK_ROWS`` set beyond any stage's
  rows: each stage's rows run to their end once begun, as before the chunks; a stage is still
  skipped when less time is left than the frame's longest step so far took).

Reported per set and over all frames: p50/p95/p99/max ms, the share of frames the budget cut
short, and the share whose answer (the accepted work, or none) differs from the unbudgeted one.

    python bench/budget.py [--sets ...] [--budget-ms 80] [--timed 60] [--pad-to N] [--keep DIR] [--out budget]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import emit, percentiles  # first: before numpy loads

import numpy as np

from large_site import SETS, bundle_settings, large_site, write

EVERY_ROW_OF_A_STAGE = 10 ** 9   # CHUNK_ROWS that no stage reaches: the budget is seen between stages only


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--budget-ms", type=float, default=80.0)
    ap.add_argument("--timed", type=int, default=60, help="query photos per set")
    ap.add_argument("--pad-to", type=int, default=0,
                    help="add procedural paintings up to this many references (4 rows each: 2500 for 10k rows)")
    ap.add_argument("--keep", help="keep the large site and its bundle in this folder (reused when there)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()

    from runtime.image.image_io import load_image
    from runtime.recognizer import Recognizer
    from runtime.site import load_queries
    from runtime.verify import verifier

    work = Path(args.keep or tempfile.mkdtemp(prefix="budget_"))
    per_set, refs, big, built, painted = large_site(args.sets, work, args.pad_to)
    free = Recognizer.open(big)
    rushed = Recognizer.open(big, budget_ms=args.budget_ms)
    chunk = verifier.CHUNK_ROWS
    ways = {"none": (free, chunk), "chunks": (rushed, chunk), "stages": (rushed, EVERY_ROW_OF_A_STAGE)}
    result = {"references": len(refs), "painted": painted, "rows": free.index.live_count,
              "build_seconds": None if built is None else round(built, 1), "bundle_settings": bundle_settings(free.manifest),
              "budget_ms": args.budget_ms, "chunk_rows": chunk, "sets": {}}
    every = {w: [] for w in ways}
    for name, rows in per_set.items():
        queries = write([r for r in rows if r[2] == "query"], work / name / "queries.csv")
        images = [load_image(q.path) for q in load_queries(queries)[: args.timed]]
        seconds = {w: [] for w in ways}
        answers = {w: [] for w in ways}
        truncated = {w: [] for w in ways}
        free.recognize(images[0])  # warm up
        rushed.recognize(images[0])
        for img in images:
            for w, (rec, rows_per_look) in ways.items():
                verifier.CHUNK_ROWS = rows_per_look
                t = time.perf_counter()
                r = rec.recognize(img)
                seconds[w].append(time.perf_counter() - t)
                answers[w].append(r.instance)
                truncated[w].append(r.truncated)
        verifier.CHUNK_ROWS = chunk
        row = {}
        for w in ways:
            every[w] += seconds[w]
            row[w] = {**percentiles(seconds[w]), "max_ms": round(1000 * max(seconds[w]), 3),
                      "truncated_share": round(float(np.mean(truncated[w])), 3),
                      "answers_changed": round(float(np.mean([a != b for a, b in zip(answers[w], answers["none"])])), 3)}
        result["sets"][name] = row
        emit(result, args, args.out, show=False)
    result["all"] = {w: {**percentiles(s), "max_ms": round(1000 * max(s), 3)} for w, s in every.items() if s}
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
