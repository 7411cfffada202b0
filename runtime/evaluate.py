"""Scoring a bundle on labelled queries (known instances and ``__unknown__`` frames)."""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from runtime.metrics import accept_rates, average_precision, global_average_precision, recall_at_k
from runtime.recognizer import Recognizer
from runtime.site import Query

RECALL_KS = (1, 5, 10)


def evaluate(recognizer: Recognizer, queries: list[Query], progress: bool = True, multi: bool = False) -> dict:
    """Metrics over known queries (mP@1, mAP, recall@k) plus open-set rates.

    ``mP@1``, ``mAP`` and ``recall@k`` ignore thresholds (pure retrieval); ``accuracy``
    counts a known query right when accepted with the right id and an unknown one when
    rejected. ``true_accept_rate``: known queries accepted as the right work;
    ``wrong_accept_rate``: known queries accepted as *another* work (the audio-guide tells the
    wrong story); ``false_accept_rate``: unknown queries accepted as anything. ``GAP``: global
    average precision of every answer ranked by its confidence (``metrics.global_average_precision``).
    ``multi``: photos may show several works (``instance`` ``a|b``): every work that verifies is an
    answer (``recognize(multi=True)``); ``multi_recall`` = works shown that were answered / works
    shown, ``multi_precision`` = answers that are shown works / answers, over all photos.
    ``results`` lists every query for reports.
    """
    results = []
    index = recognizer.index
    for q in tqdm(queries, desc="evaluate", unit="img", disable=not progress):
        rec, desc = recognizer.analyze(q.path, k=max(RECALL_KS), multi=multi)
        ranked = [c.instance for c in rec.candidates]
        row = {"path": str(q.path), "truth": sorted(q.instances), "best": rec.best,
               "score": rec.score, "margin": rec.margin, "accepted": rec.accepted,
               "ranked": ranked[:5], "scores": [c.score for c in rec.candidates[:5]],
               "decided_by": rec.decided_by, "confidence": rec.confidence,
               "support": [round(c.evidence.support, 1) if c.evidence else None for c in rec.candidates[:5]]}
        if multi:
            row["works"] = [c.instance for c in rec.works or []]
        if not q.is_unknown:
            scores, relevant = image_scores(index, desc, q.instances)
            row["ap"] = average_precision(scores, relevant)
            for k in RECALL_KS:
                row[f"recall@{k}"] = recall_at_k(ranked, q.instances, k)
            row["correct"] = rec.best in q.instances
            row["right"] = rec.accepted and rec.best in q.instances
        else:
            row["right"] = not rec.accepted
        results.append(row)
    return summarize(results, recognizer)


def image_scores(index, desc: np.ndarray, truth) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of each live reference *image* (its best row over turned copies) and whether it
    shows a right instance: AP ranks reference images, not index rows."""
    sims = index.similarities(desc)[0]
    images = np.asarray(index.images)
    ids, inverse = np.unique(images, return_inverse=True)
    best = np.full(len(ids), -np.inf)
    np.maximum.at(best, inverse, sims)
    inst = {}
    for img, name in zip(images, index.instances):
        inst.setdefault(int(img), name)
    live = np.isfinite(best)
    relevant = np.array([inst[int(i)] in truth for i in ids]) & live
    return best[live], relevant[live]


def summarize(results: list[dict], recognizer: Recognizer | None = None) -> dict:
    known = [r for r in results if r["truth"]]
    unknown = [r for r in results if not r["truth"]]
    mean = lambda rows, key: round(float(np.mean([r[key] for r in rows])), 4) if rows else None  # noqa: E731
    out = {
        "queries": len(results), "known": len(known), "unknown": len(unknown),
        "mP@1": mean(known, "correct"), "mAP": mean(known, "ap"),
        **{f"recall@{k}": mean(known, f"recall@{k}") for k in RECALL_KS},
        "accuracy": mean(results, "right"),
        **{k: None if v is None else round(v, 4) for k, v in accept_rates(
            [r["accepted"] for r in known], [r["correct"] for r in known], [r["accepted"] for r in unknown]).items()},
        "GAP": round(global_average_precision([r.get("confidence", 0.0) for r in results],
                                              [bool(r["truth"]) and r["correct"] for r in results], len(known)), 4)
        if known else None,
    }
    if any("works" in r for r in results):
        shown = sum(len(r["truth"]) for r in results)
        answered = sum(len(r["works"]) for r in results)
        right = sum(len(set(r["works"]) & set(r["truth"])) for r in results)
        out["multi_recall"] = round(right / shown, 4) if shown else None
        out["multi_precision"] = round(right / answered, 4) if answered else None
        out["multi_answers"] = answered
    if recognizer is not None:
        out["bundle"] = str(recognizer.path)
        out["match"] = recognizer.match
        out["thresholds"] = recognizer.thresholds.to_dict()
    out["results"] = results
    return out
