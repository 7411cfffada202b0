"""The one owner of sitelens's numbers: retrieval metrics (mP@1, AP, recall@k), a result's score and
margin, and open-set rates. Used by training validation, the precision gate, calibration and
``eval``, so they all count the same way."""
from __future__ import annotations

import numpy as np


def top1_labels(queries: np.ndarray, pool: np.ndarray, pool_labels: np.ndarray) -> np.ndarray:
    """Label of each query's nearest pool row (cosine; rows are unit vectors)."""
    return np.asarray(pool_labels)[np.argmax(np.asarray(queries) @ np.asarray(pool).T, axis=1)]


def precision_at_1(predicted, truth) -> float:
    """Share of queries whose top answer is right (mP@1 with one relevant instance per query)."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    return float(np.mean(predicted == truth)) if len(truth) else 0.0


def mp1(queries: np.ndarray, query_labels, pool: np.ndarray, pool_labels) -> float:
    """mP@1 of nearest-neighbour retrieval of ``queries`` in ``pool``."""
    return precision_at_1(top1_labels(queries, pool, pool_labels), query_labels)


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one ranking: ``scores`` over all references, ``relevant`` a boolean mask."""
    n_rel = int(relevant.sum())
    if n_rel == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, n_rel + 1) / ranks))


def recall_at_k(ranked_instances: list[str], truth: frozenset, k: int) -> float:
    return float(any(inst in truth for inst in ranked_instances[:k]))


def score_margin(ranked_scores) -> tuple[float, float]:
    """A result's score (best instance) and margin (best minus the best *other* instance),
    from per-instance scores sorted best first."""
    s = [float(x) for x in ranked_scores]
    if not s:
        return 0.0, 0.0
    return s[0], s[0] - s[1] if len(s) > 1 else s[0]


def rates(positive_outcomes, negative_outcomes) -> tuple[float, float]:
    """(true-accept rate, false-accept rate) from outcomes: 1 accepted right, -1 accepted wrong,
    0 rejected. TAR counts only right answers among positives; FAR any accept among negatives."""
    p, n = np.asarray(positive_outcomes), np.asarray(negative_outcomes)
    return (float(np.mean(p == 1)) if len(p) else 0.0, float(np.mean(n != 0)) if len(n) else 0.0)


def accept_rates(known_accepted, known_correct, unknown_accepted) -> dict[str, float | None]:
    """Open-set rates of one evaluation, from per-query flags. ``true_accept_rate``: known photos
    accepted as their own work; ``wrong_accept_rate``: known photos accepted as *another* work (the
    guide plays the wrong story); ``false_accept_rate``: photos of no known work accepted at all.
    None where the queries hold no photo of that kind."""
    acc, ok = np.asarray(known_accepted, bool), np.asarray(known_correct, bool)
    unknown = np.asarray(unknown_accepted, bool)
    outcomes = np.where(acc, np.where(ok, 1, -1), 0)
    tar, _ = rates(outcomes, [])
    _, far = rates([], unknown)
    return {"true_accept_rate": tar if len(acc) else None,
            "wrong_accept_rate": float(np.mean(outcomes == -1)) if len(acc) else None,
            "false_accept_rate": far if len(unknown) else None}


def global_average_precision(confidence, correct, known: int) -> float:
    """GAP (micro average precision over all queries, the Met artwork benchmark's metric): every
    query's answer ranked by ``confidence``, best first; the precision at each right answer's rank,
    summed and divided by ``known``, the number of queries that show a known work. Queries of
    unknown works count only as wrong answers ranked where their confidence puts them, so a
    recognizer that is sure of its wrong answers scores lower than one that is not."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    if known <= 0:
        return 0.0
    order = np.argsort(-confidence, kind="stable")
    hits = correct[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(np.sum(precision * hits) / known)
