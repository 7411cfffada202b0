"""Open-set threshold calibration from the site's own data.

Positives: simulated visitor views of each reference, matched against the full index.
Negatives: (a) the same views matched with their own instance left out, i.e. "a painting
that is not in the site", seen through the same camera, and (b) synthetic walls and labels. For a target false-accept rate the
(score, margin) pair with the highest true-accept rate on the positives is chosen.
"""
from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from runtime.embedder import Embedder
from runtime.image_io import load_image
from runtime.index import ReferenceIndex
from runtime.site import Site
from training.simulator import CameraViewSimulator, random_wall, wall_label

log = logging.getLogger("sitelens")


def _score_margin(sims: np.ndarray, instances: np.ndarray, exclude: str | None = None):
    """Best instance, its score, and margin to the best other instance, from reference sims."""
    sims = sims.copy()
    if exclude is not None:
        sims[instances == exclude] = -np.inf
    order = np.argsort(-sims)
    best = instances[order[0]]
    score = float(sims[order[0]])
    others = sims[order][instances[order] != best]
    second = float(others[0]) if len(others) and np.isfinite(others[0]) else -1.0
    return best, score, score - second


def choose_thresholds(pos_scores, pos_margins, pos_correct, neg_scores, neg_margins, target_far: float) -> dict:
    """Grid over margin thresholds; for each, the lowest score threshold meeting ``target_far``."""
    pos_scores, pos_margins = np.asarray(pos_scores), np.asarray(pos_margins)
    pos_correct = np.asarray(pos_correct, bool)
    neg_scores, neg_margins = np.asarray(neg_scores), np.asarray(neg_margins)
    best = None
    margins = np.unique(np.concatenate([[0.0], np.quantile(neg_margins, np.linspace(0, 0.95, 20))])) \
        if len(neg_margins) else np.array([0.0])
    for m in margins:
        neg_ok = neg_scores[neg_margins >= m]
        allowed = int(np.floor(target_far * len(neg_scores)))
        if len(neg_ok) <= allowed:
            s = -1.0
        else:
            s = float(np.sort(neg_ok)[::-1][allowed]) + 1e-6  # reject the (allowed+1)-th best negative
        tar = float(np.mean(pos_correct & (pos_scores >= s) & (pos_margins >= m))) if len(pos_scores) else 0.0
        far = float(np.mean((neg_scores >= s) & (neg_margins >= m))) if len(neg_scores) else 0.0
        if best is None or tar > best["tar"] + 1e-9:
            best = {"score": round(s, 6), "margin": round(float(m), 6), "tar": round(tar, 4), "far": round(far, 4)}
    return best


DUPLICATE_SIM = 0.85  # references of two instances this similar are reported as likely duplicates


def near_duplicates(index: ReferenceIndex, threshold: float = DUPLICATE_SIM) -> dict[str, set]:
    """Instances whose references look alike (same work catalogued twice, or a blank image):
    they are no 'unknown painting' for each other and are left out of the negatives."""
    inst = np.array(index.instances)
    sims = index.descriptors @ index.descriptors.T
    rows, cols = np.nonzero(np.triu(sims >= threshold, 1))
    dups: dict[str, set] = {}
    for r, c in zip(rows, cols):
        if inst[r] != inst[c]:
            dups.setdefault(inst[r], set()).add(inst[c])
            dups.setdefault(inst[c], set()).add(inst[r])
    if dups:
        pairs = sorted({tuple(sorted((a, b))) for a, bs in dups.items() for b in bs})
        log.warning("sitelens: %d pair(s) of instances have near-identical references (cosine >= %.2f), "
                    "likely duplicates: %s", len(pairs), threshold, ", ".join(f"{a}~{b}" for a, b in pairs[:20]))
    return dups


def calibration_samples(embedder: Embedder, site: Site, index: ReferenceIndex, min_views: int = 200,
                        max_views: int = 400, backgrounds: int = 40, seed: int = 0, progress: bool = True):
    """Each simulated view is scored twice: against the full index (a positive: is the right
    instance on top, with what score and margin?) and with its own instance left out (a
    negative: an unknown painting seen through the same phone camera). Both sides see the
    same degradations, so the threshold is not biased by clean-vs-degraded comparisons."""
    rng = np.random.default_rng(seed)
    sim = CameraViewSimulator(seed=seed)
    instances = np.array(index.instances)
    refs = list(site.references)
    views_per_ref = int(np.clip(np.ceil(min_views / max(len(refs), 1)), 1, 10))
    if len(refs) * views_per_ref > max_views:
        refs = [refs[i] for i in rng.choice(len(refs), max_views // views_per_ref, replace=False)]
    several = len(set(index.instances)) > 1
    dups = near_duplicates(index) if several else {}
    pos, neg = [], []
    for ref in tqdm(refs, desc="calibrate thresholds", unit="ref", disable=not progress):
        img = load_image(ref.path)
        for _ in range(views_per_ref):
            sims = index.similarities(embedder.embed(sim(img, rng)))[0]
            best, s, m = _score_margin(sims, instances)
            pos.append((s, m, best == ref.instance))
            if several:
                other, s_neg, m_neg = _score_margin(sims, instances, exclude=ref.instance)
                if other not in dups.get(ref.instance, ()):
                    neg.append((s_neg, m_neg))
    for i in range(backgrounds):
        img = wall_label(rng, 360, 480) if i % 2 else random_wall(rng, 360, 480)
        _, s, m = _score_margin(index.similarities(embedder.embed(img))[0], instances)
        neg.append((s, m))
    return np.array(pos, dtype=np.float64).reshape(-1, 3), np.array(neg, dtype=np.float64).reshape(-1, 2)


def calibrate_thresholds(embedder: Embedder, site: Site, index: ReferenceIndex, target_far: float = 0.01,
                         progress: bool = True, **kw) -> dict:
    pos, neg = calibration_samples(embedder, site, index, progress=progress, **kw)
    chosen = choose_thresholds(pos[:, 0], pos[:, 1], pos[:, 2] > 0, neg[:, 0], neg[:, 1], target_far)
    return {"score": chosen["score"], "margin": chosen["margin"], "target_far": target_far,
            "calibration": {"positives": len(pos), "negatives": len(neg), "tar": chosen["tar"],
                            "far": chosen["far"], "method": "simulated views: full index (positives) vs own instance left out (negatives) + walls"}}
