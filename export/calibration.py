"""Open-set calibration: acceptance rules per match mode for a target false-accept rate, chosen on
evidence gathered through the device's own recognition path (``Recognizer.findings``).

Samples:

- simulated visitor views of references (a quarter of them turned when the bundle holds turned
  rows), each scored twice: against the whole site (a *positive*: is the right instance found,
  verified, with what score?) and with its own instance left out (a *negative*: a work that is
  not in the site, seen through the same camera);
- synthetic walls and labels (negatives);
- a survey, when given (``export --survey``): real photos of works in the site (positives, and
  negatives with their instance left out) and of things not in it (``__unknown__``, negatives).

Rules (see ``runtime/thresholds.py``) are chosen in order: the homography-inlier threshold gets
half of the false-accept budget, the fundamental-matrix (3-D) threshold a quarter, the global
score/margin rule what the negatives leave of it. Verification thresholds never go below
``MIN_SUPPORT`` / ``MIN_FUNDAMENTAL``: simulated negatives are cleaner than real clutter, and
real unknown photos (text, logos, neighbouring buildings) reach ~20 chance homography inliers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from runtime.image_io import load_image
from runtime.metrics import rates
from runtime.recognizer import Findings, Recognizer
from runtime.site import Query, Site
from runtime.thresholds import Rule, Thresholds
from training.simulator import CameraViewSimulator, random_wall, wall_label

log = logging.getLogger("sitelens")

MIN_SUPPORT = 20
MIN_FUNDAMENTAL = 40
SHARE_HOMOGRAPHY, SHARE_FUNDAMENTAL = 0.5, 0.25
DUPLICATE_SIM = 0.85  # references of two instances this similar are reported as likely duplicates


@dataclass
class Sample:
    findings: dict            # match mode -> Findings
    truth: str | None         # the instance it shows (None: must be rejected)
    source: str               # "simulated" | "wall" | "survey"


@dataclass
class SampleSet:
    positives: list[Sample] = field(default_factory=list)
    negatives: list[Sample] = field(default_factory=list)


def near_duplicates(rec: Recognizer, threshold: float = DUPLICATE_SIM) -> dict[str, set]:
    """Instances whose references look alike (same work catalogued twice, or a blank image):
    they are no 'unknown painting' for each other and are left out of the negatives."""
    index = rec.index
    upright = np.array(index.rotations) == 0
    inst = np.array(index.instances)[upright]
    x = index.descriptors[upright]
    sims = x @ x.T
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


def _findings(rec: Recognizer, img: np.ndarray, modes, exclude=None, cache=None) -> dict[str, Findings]:
    cache = {} if cache is None else cache
    if "desc" not in cache:
        cache["desc"] = rec.embedder.embed(img)
    return {m: rec.findings(img, cache["desc"], m, exclude=exclude, all_passes=True, cache=cache) for m in modes}


def gather(rec: Recognizer, site: Site, modes, survey: list[Query] | None = None, min_views: int = 200,
           max_views: int = 400, backgrounds: int = 40, seed: int = 0, progress: bool = True) -> SampleSet:
    rng = np.random.default_rng(seed)
    turned = len(rec.rotations) > 1
    sim = CameraViewSimulator(seed=seed)
    refs = list(site.references)
    views_per_ref = int(np.clip(np.ceil(min_views / max(len(refs), 1)), 1, 10))
    if len(refs) * views_per_ref > max_views:
        refs = [refs[i] for i in sorted(rng.choice(len(refs), max_views // views_per_ref, replace=False))]
    several = len(rec.instances) > 1
    dups = near_duplicates(rec) if several else {}
    out = SampleSet()
    for ref in tqdm(refs, desc="calibrate (simulated views)", unit="ref", disable=not progress):
        img = load_image(ref.path)
        for _ in range(views_per_ref):
            view = sim(img, rng)
            if turned and rng.random() < 0.25:
                view = np.ascontiguousarray(np.rot90(view, int(rng.integers(1, 4))))
            cache: dict = {}
            out.positives.append(Sample(_findings(rec, view, modes, cache=cache), ref.instance, "simulated"))
            if several:
                left_out = {ref.instance} | dups.get(ref.instance, set())
                out.negatives.append(Sample(_findings(rec, view, modes, left_out, cache), None, "simulated"))
    for i in range(backgrounds):
        img = wall_label(rng, 360, 480) if i % 2 else random_wall(rng, 360, 480)
        out.negatives.append(Sample(_findings(rec, img, modes), None, "wall"))
    for q in tqdm(survey or [], desc="calibrate (survey photos)", unit="img", disable=not progress):
        img = load_image(q.path)
        if q.is_unknown:
            out.negatives.append(Sample(_findings(rec, img, modes), None, "survey"))
            continue
        truth = next(iter(q.instances))
        cache = {}
        out.positives.append(Sample(_findings(rec, img, modes, cache=cache), truth, "survey"))
        if several:
            out.negatives.append(Sample(_findings(rec, img, modes, set(q.instances), cache), None, "survey"))
    return out


def outcome(rec: Recognizer, rule: Rule, samples: list[Sample], mode: str) -> np.ndarray:
    """Per sample: 1 accepted with the right instance, -1 accepted with a wrong one, 0 rejected."""
    out = []
    for s in samples:
        r = rec.decide(s.findings[mode], mode, rule=rule)
        out.append(0 if not r.accepted else (1 if r.instance == s.truth else -1))
    return np.array(out, np.int8)


def _max_evidence(samples: list[Sample], mode: str, attr: str) -> np.ndarray:
    return np.array([max((getattr(e, attr) for e in (s.findings[mode].verification or {}).values()), default=0)
                     for s in samples])


def _smallest_threshold(values: np.ndarray, budget: float, floor: float) -> float:
    """Smallest threshold t >= floor (whole or half units) with mean(values >= t) <= budget."""
    allowed = int(np.floor(budget * len(values)))
    if len(values) == 0:
        return floor
    top = np.sort(values)[::-1]
    t = float(np.floor(top[allowed] * 2) / 2 + 0.5) if allowed < len(top) else 0.0
    return max(floor, t)


def choose_rule(rec: Recognizer, samples: SampleSet, mode: str, target_far: float) -> tuple[Rule, dict]:
    pos, neg = samples.positives, samples.negatives
    verifying = rec.verifier is not None
    support = fundamental = None
    if verifying:
        support = _smallest_threshold(_max_evidence(neg, mode, "support"), SHARE_HOMOGRAPHY * target_far, MIN_SUPPORT)
        if rec.verifier.params.fundamental:
            h_rule = Rule(support=support, global_path=False)
            left = [s for s, o in zip(neg, outcome(rec, h_rule, neg, mode)) if o == 0]
            fundamental = _smallest_threshold(_max_evidence(left, mode, "fundamental"),
                                              SHARE_FUNDAMENTAL * target_far * len(neg) / max(len(left), 1),
                                              MIN_FUNDAMENTAL)
    verified_only = Rule(support=support, fundamental=fundamental, global_path=False)
    far_verified = float(np.mean(outcome(rec, verified_only, neg, mode) != 0)) if verifying and neg else 0.0
    budget = max(0.0, target_far - far_verified)
    # global rule: a grid over margins; for each, the lowest score meeting the remaining budget
    top = [s.findings[mode].score_margin() for s in neg]
    neg_scores = np.array([t[0] for t in top]) if top else np.zeros(0)
    neg_margins = np.array([t[1] for t in top]) if top else np.zeros(0)
    margins = np.unique(np.concatenate([[0.0], np.quantile(neg_margins, np.linspace(0, 0.95, 20))])) \
        if len(neg_margins) else np.array([0.0])
    best = None
    for m in margins:
        candidates = []
        ok = neg_scores[neg_margins >= m]
        allowed = int(np.floor(budget * len(neg)))
        if len(ok) <= allowed:
            candidates.append(-1.0)
        else:
            candidates.append(float(np.sort(ok)[::-1][allowed]) + 1e-6)
        for s in candidates:
            rule = Rule(round(s, 6), round(float(m), 6), support, fundamental)
            tar, far = _rates(rec, rule, pos, neg, mode)
            if far <= target_far + 1e-12 and (best is None or tar > best[1] + 1e-9):
                best = (rule, tar, far)
    if best is None:  # no global rule fits in the budget: only verification accepts
        rule = verified_only
        tar, far = _rates(rec, rule, pos, neg, mode)
        best = (rule, tar, far)
    rule, tar, far = best
    report = {"tar": round(tar, 4), "far": round(far, 4), "positives": len(pos), "negatives": len(neg)}
    for source in ("simulated", "survey"):
        p = [s for s in pos if s.source == source]
        n = [s for s in neg if s.source == source]
        if p or n:
            t, f = _rates(rec, rule, p, n, mode)
            report[source] = {"positives": len(p), "negatives": len(n), "tar": round(t, 4) if p else None,
                              "far": round(f, 4) if n else None}
    return rule, report


def _rates(rec, rule, pos, neg, mode) -> tuple[float, float]:
    return rates(outcome(rec, rule, pos, mode), outcome(rec, rule, neg, mode))


def calibrate(rec: Recognizer, site: Site, target_far: float = 0.01, survey: list[Query] | None = None,
              progress: bool = True, **kw) -> Thresholds:
    """Rules for every match mode the bundle supports."""
    modes = ["hnsw", "exact"] + (["binary", "hamming"] if rec.index.binary is not None else [])
    samples = gather(rec, site, modes, survey, progress=progress, **kw)
    rules, reports = {}, {}
    for mode in modes:
        rules[mode], reports[mode] = choose_rule(rec, samples, mode, target_far)
    method = ("evidence from the device's recognition path; simulated views: full site (positives) vs own "
              "instance left out (negatives), walls and labels" + ("; survey photos" if survey else ""))
    return Thresholds(rules, rules["hnsw"], target_far, {"method": method, "modes": reports,
                                                         "min_support": MIN_SUPPORT, "min_fundamental": MIN_FUNDAMENTAL})
