"""Open-set calibration: acceptance rules per match mode for a target false-accept rate, chosen on
evidence gathered through the device's own recognition path (``Recognizer.findings``).

Samples:

- simulated visitor views of references (a quarter of them turned when the bundle holds turned
  rows), each scored twice: against the whole site (a *positive*: is the right instance found,
  verified, with what score?) and with its own instance left out (a *negative*: a work that is
  not in the site, seen through the same camera); a positive with a candidate verified beyond
  the rules calibration sets in practice (``SURE_SUPPORT``) skips the second look, the 3-D model and the
  learned matcher, as the device does once a candidate verifies;
- synthetic plain walls (negatives, kind "wall"), wall labels (kind "label"), and cluttered scenes
  made of pieces of other references, those references left out (negatives, kind "scene"); each
  kind of negative must stay within the budget on its own (a few dozen walls among hundreds of
  scenes would hide a rule that accepts a quarter of all plain walls; labels among walls would
  hide one that accepts 4% of walls). There are 150 of each on sites of 50 references or more, so
  that the budget's quantile does not rest on a single sample; fewer on smaller sites
  (``synthetic_counts``), whose rules that makes stricter, not looser;
- a survey, when given (``export --survey``): real photos of works in the site (positives, and
  negatives with their instance and its look-alikes left out) and of things not in it (``__unknown__``, negatives).
  A real photo, unlike a view of one reference, often takes in the works beside its own: a work a
  known photo verifies as strongly as one work's references verify against each other
  (``shown``) is in the photo, and its negative leaves that work out too. An unknown photo's
  evidence is kept (a look-alike and a wrong label look the same); both are listed in the report
  (``survey_shows``), so that a site engineer can correct a label (``a|b``: a photo of two works).

Rules (see ``runtime/thresholds.py``) are chosen in order: the homography-support threshold gets
half of the false-accept budget, the fundamental-matrix (3-D) threshold a quarter, the global
score/margin rule what the negatives leave of it: the rule with the highest TAR (then the lowest
FAR), kept only when its global path accepts more positives rightly than it accepts wrongly
(``global_gain``); otherwise only verification accepts. On a site calibrated with kinds of works
the path is then dropped for the kinds whose views it answered none of rightly
(``Rule.global_kinds``). Verification thresholds never go below
``MIN_SUPPORT`` / ``MIN_FUNDAMENTAL``: with a few hundred negatives a 0.5% quantile rests on one
or two samples, and below those floors chance geometry (a few words in the same typeface) starts
to verify. A site whose samples can carry it gets a homography threshold per kind of work too
(``export/kinds.py``: groups of the works by their global descriptors, each with its share of
the budget), so that one kind's look-alikes do not set every work's bar; the 3-D and global
tests count what those bars accept. Instances whose references show the same thing are not used as each other's unknowns
(``LookAlikes``): the same plane (homography support) or the same 3-D structure
(fundamental-matrix inliers: two references of one facade from different corners). They are looked
for only where they would matter: among the instances a negative could be accepted as
(``suspects``), of the negatives that could set a rule (``relevant``: the few at the top of each
kind of evidence), after which that negative is scored again with them left out (``settle``).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from runtime.image.image_io import load_image
from runtime.kinds import BINARY_MATCH_MODES, MATCH_MODES
from runtime.metrics import rates
from runtime.verify import colour
from runtime.verify.verifier import FrameCache
from runtime.recognizer import Findings, Recognizer, answer_order, decided_by
from runtime.site import UNKNOWN, Query, Site
from runtime.thresholds import Rule, Thresholds, geometry_contradicts
from training.simulator import CameraViewSimulator, SimulatorConfig, collage, random_wall, wall_label
from training.simulator.sampler import pick

from .stages import StageClock
from .workers import Pool

log = logging.getLogger("sitelens")

MIN_SUPPORT = 12
MIN_FUNDAMENTAL = 30
MAX_REPORTED_PAIRS = 200  # look-alike pairs the bundle's calibration report lists (all are counted)
SHARE_HOMOGRAPHY, SHARE_FUNDAMENTAL = 0.5, 0.25
DUPLICATE_SUPPORT = 60.0  # references of two instances verified this strongly against each other look alike
# ... or sharing this many fundamental-matrix inliers: twice the 3-D test's floor (chance geometry
# between two references of different works stays below about 40 on the dev sets)
DUPLICATE_FUNDAMENTAL = 2 * MIN_FUNDAMENTAL
# a simulated view scored as a positive with a candidate this strong (the same plane,
# ``DUPLICATE_SUPPORT``) skips the second look, the 3-D model and the learned matcher, as the device
# does once a candidate verifies (the learned matcher's calls on positives were most of its calls,
# spent on answers already settled). Negatives keep every pass, so the false-accept side of a rule
# never depends on it; a homography threshold above it (unknowns verified that strongly: a
# look-alike not left out) only makes the positives' TAR a lower bound.
SURE_SUPPORT = DUPLICATE_SUPPORT


@dataclass
class Sample:
    findings: dict            # match mode -> Findings
    truth: str | None         # the instance it shows (None: must be rejected)
    source: str               # "simulated" (views) | "wall" | "label" | "scene" (cluttered) | "survey"
    labels: frozenset = frozenset()   # every instance it is labelled with (a survey photo of a|b), truth among them

    def right(self, instance) -> bool:
        """Is ``instance`` a right answer: the truth, or another work the sample is labelled with."""
        return instance is not None and (instance == self.truth or instance in self.labels)


@dataclass
class SampleSet:
    positives: list[Sample] = field(default_factory=list)
    negatives: list[Sample] = field(default_factory=list)
    look_alikes: list[tuple[str, str]] = field(default_factory=list)   # pairs of instances (``LookAlikes``)
    # survey photos that verify works beyond their label (``shown``): photo (relative to the survey's
    # folder), label, works -> evidence, and what its negative did with them: "left out" (a known
    # photo: it shows them) or "kept" (an unknown photo: a look-alike or a wrong label, it cannot tell)
    survey_shows: list[dict] = field(default_factory=list)


@dataclass
class Unknowns:
    """Negatives that leave works out: a reference's simulated views, a cluttered scene, a survey
    photo of a known work. ``owners``: the works it shows; ``left``: the instances left out when it
    was scored (the owners, and the look-alikes found of them); ``findings``: one dict (match mode
    -> Findings) per sample; ``key``: which view set, scene or photo, to score it again."""
    source: str
    key: int
    owners: set
    left: set
    findings: list


MAX_SETTLE_ROUNDS = 50   # rounds of look-alike checks; more would only leave a few rules stricter


def relevant(samples: list[tuple], modes, target_far: float, alike_score: float) -> set:
    """The owners of the negatives that could set a rule (``choose_rule``); ``samples``: (owner,
    kind of negative, findings: match mode -> Findings). Per match mode and kind: those at the top
    of homography support (as many as the budget lets through, and the next one), then of 3-D
    evidence among those the support threshold leaves, and any whose global score reaches a right
    answer's (``alike_score``). A look-alike of any other negative cannot move a threshold:
    looking for those matched most references of a large site against it (most negatives have
    some candidate at the verification floors)."""
    out = set()
    for mode in modes:
        groups: dict[str, list] = {}
        for owner, source, findings in samples:
            groups.setdefault(source, []).append((owner, findings[mode]))
        support = {source: np.array([_strongest(f, "support") for _, f in group], float)
                   for source, group in groups.items()}
        threshold = max([_smallest_threshold(v, SHARE_HOMOGRAPHY * target_far, MIN_SUPPORT)
                         for v in support.values()], default=MIN_SUPPORT)
        for source, group in groups.items():
            sup, n = support[source], len(group)
            top = np.argsort(-sup, kind="stable")[: int(np.floor(SHARE_HOMOGRAPHY * target_far * n)) + 1]
            out.update(group[i][0] for i in top if sup[i] >= MIN_SUPPORT)
            fund = np.array([_strongest(f, "fundamental") if sup[j] < threshold else -1
                             for j, (_, f) in enumerate(group)])
            top = np.argsort(-fund, kind="stable")[: int(np.floor(SHARE_FUNDAMENTAL * target_far * n)) + 1]
            out.update(group[i][0] for i in top if fund[i] >= MIN_FUNDAMENTAL)
            out.update(owner for owner, f in group if any(score >= alike_score for _, score, _ in f.hits))
    out.discard(None)
    return out


def settle(units: list[Unknowns], others: list[Sample], looks: "LookAlikes", modes, target_far: float, rescore,
           clock: StageClock) -> None:
    """Leave look-alikes out of the negatives that could set a rule (``relevant``), until none of
    those has a suspect (``suspects``) that is one: each round checks their owners and suspects
    (``LookAlikes.widen``), scores the ones that grew again (``rescore(source, units)`` -> new
    findings per unit) and looks again, since a lower threshold brings other negatives to the
    top and a work catalogued three times shows its third copy once the second is left out.
    ``others``: negatives that leave nothing out (walls, labels, unknown survey photos), which
    take part in the thresholds. Changes ``units`` in place."""
    for _ in range(MAX_SETTLE_ROUNDS):
        with clock.stage("look-alikes"):
            samples = [(k, u.source, f) for k, u in enumerate(units) for f in u.findings]
            samples += [(None, s.source, s.findings) for s in others]
            todo = sorted(relevant(samples, modes, target_far, looks.alike_score))
            wider = looks.widen({k: units[k].findings for k in todo}, {k: units[k].owners for k in todo},
                                {k: units[k].left for k in todo})
        if not wider:
            return
        for source, stage in (("simulated", "simulated views left out"), ("scene", "cluttered scenes"),
                              ("survey", "survey photos")):
            keys = [k for k in sorted(wider) if units[k].source == source]
            if keys:
                with clock.stage(stage):
                    for k in keys:
                        units[k].left = wider[k]
                    for k, findings in zip(keys, rescore(source, [units[k] for k in keys])):
                        units[k].findings = findings
    log.warning("sitelens: look-alikes still turning up after %d rounds; the rules keep the rest as unknowns",
                MAX_SETTLE_ROUNDS)


def alike(score: float, evidence, alike_score: float) -> bool:
    """Does a reference look like another instance's? Its global ``score`` reaches ``alike_score``
    (what a visitor's view of the *same* work typically scores, so the test holds on any model's
    scale), or verification found the same plane (support ``DUPLICATE_SUPPORT``) or the same 3-D
    structure (``DUPLICATE_FUNDAMENTAL`` fundamental-matrix inliers: neighbouring buildings
    photographed from two street corners share a facade that no single homography explains; left
    as unknowns for each other, they set the 3-D threshold above what any real photo reaches)."""
    if score >= alike_score:
        return True
    return evidence is not None and same_thing(evidence)


def same_thing(evidence) -> bool:
    """Verified as strongly as two references of one work verify against each other: the same
    plane (support ``DUPLICATE_SUPPORT``) or the same 3-D structure (``DUPLICATE_FUNDAMENTAL``)."""
    return evidence.support >= DUPLICATE_SUPPORT or evidence.fundamental >= DUPLICATE_FUNDAMENTAL


def shown(findings: dict, labelled) -> dict[str, dict]:
    """Works a survey photo shows beyond its label: those its findings (match mode -> Findings,
    the whole site) verify as strongly as one work's references verify against each other
    (``same_thing``), with that evidence (support, fundamental-matrix inliers)."""
    out: dict[str, dict] = {}
    for f in findings.values():
        for inst, ev in (f.verification or {}).items():
            if inst not in labelled and same_thing(ev):
                seen = out.setdefault(inst, {"support": 0.0, "fundamental": 0})
                seen["support"] = round(max(seen["support"], float(ev.support)), 1)
                seen["fundamental"] = max(seen["fundamental"], int(ev.fundamental))
    return dict(sorted(out.items()))


def suspects(findings: dict, alike_score: float) -> set[str]:
    """The instances a negative's findings (match mode -> Findings) would be accepted as first: in
    each mode, the candidate with the most homography support and the one with the most
    fundamental-matrix inliers, at the floors any rule keeps (``MIN_SUPPORT``, ``MIN_FUNDAMENTAL``),
    and the global top-1 when it scores ``alike_score`` (the global path accepts nothing else).
    Only these can make a look-alike count as a false accept, so only these are tested for being
    one (``LookAlikes``); once one is left out, the next takes its place and is tested in the next
    round (``settle``). Testing every candidate at the floors tested most of a large site."""
    out = set()
    for f in findings.values():
        if f.hits and f.hits[0][1] >= alike_score:
            out.add(f.hits[0][0])
        ev = f.verification or {}
        for attr, floor in (("support", MIN_SUPPORT), ("fundamental", MIN_FUNDAMENTAL)):
            best = max(ev, key=lambda i: getattr(ev[i], attr), default=None)
            if best is not None and getattr(ev[best], attr) >= floor:
                out.add(best)
    return out


class LookAlikes:
    """Instances whose references show the same thing (a work catalogued twice, overlapping views
    of neighbouring buildings, blank images): no 'unknown work' for each other, so they are left
    out of each other's negatives, and reported.

    Found on demand: ``check(instances)`` matches each reference of those instances (once) against
    the site with its own instance left out, and another instance is alike when ``alike`` says so
    (both ways: a pair found from either side counts for both). Calibration checks only the
    instances of a negative that could set a rule (``relevant``) and of its ``suspects``: a
    look-alike that does not come near being accepted changes no rule, and matching every
    reference made this stage grow with the site. ``pool``: a ``Pool`` of ``Scorer`` workers."""

    def __init__(self, site: Site, pool: Pool, alike_score: float, progress: bool = True):
        self.pool, self.alike_score, self.progress = pool, alike_score, progress
        self.refs: dict[str, list] = {}
        for ref in site.references:
            self.refs.setdefault(ref.instance, []).append(ref)
        self.checked: set[str] = set()
        self.pairs: dict[str, set] = {}

    def check(self, instances) -> None:
        todo = sorted(set(instances) - self.checked)
        self.checked.update(todo)
        refs = [ref for inst in todo for ref in self.refs.get(inst, ())]
        if not refs:
            return
        found = self.pool.map(_look_alikes, [(ref, self.alike_score) for ref in refs], "calibrate (look-alikes)",
                              self.progress)
        for ref, alike_instances in zip(refs, found):
            for inst in alike_instances:
                self.pairs.setdefault(ref.instance, set()).add(inst)
                self.pairs.setdefault(inst, set()).add(ref.instance)

    def of(self, instance: str) -> set:
        """The look-alikes of ``instance`` found so far."""
        return self.pairs.get(instance, set())

    def widen(self, items: dict, owners: dict, left: dict) -> dict:
        """Left-out sets that must grow. ``items``: key -> the findings (match mode -> Findings) of
        one negative or of several of one source (a reference's views); ``owners``: key -> the
        instances it shows; ``left``: key -> the instances already left out. Checks the owners and
        suspects of every negative that has suspects; returns {key: left-out set with the owners'
        look-alikes} for the keys where a suspect turned out to be one (those are scored again)."""
        near = {key: set().union(*(suspects(f, self.alike_score) for f in found)) - left[key]
                for key, found in items.items()}
        self.check({inst for key in near if near[key] for inst in owners[key]} | set().union(*near.values()))
        alikes = {key: set().union(*(self.of(inst) for inst in owners[key])) for key in near if near[key]}
        return {key: left[key] | alikes[key] for key in alikes if near[key] & alikes[key]}

    def found(self) -> list[tuple[str, str]]:
        """The pairs found, each once, sorted."""
        return sorted({tuple(sorted((a, b))) for a, bs in self.pairs.items() for b in bs})

    def report(self) -> None:
        pairs = self.found()
        if pairs:
            log.warning("sitelens: %d pair(s) of instances look alike (same work twice, overlapping views or blank "
                        "references); they are not used as each other's unknowns: %s", len(pairs),
                        ", ".join(f"{a}~{b}" for a, b in pairs[:20]) + (" ..." if len(pairs) > 20 else ""))


@dataclass
class Scorer:
    """What scoring calibration samples takes: the recognizer (the device's path), the match modes
    and how simulated views are made. Each worker process makes its own (``make_scorer``)."""
    rec: Recognizer
    modes: tuple = ()
    seed: int = 0
    views_per_ref: int = 1
    turned: bool = False

    def __post_init__(self):
        self.sim = CameraViewSimulator(seed=self.seed)   # stateless when given a generator per view

    def view(self, img: np.ndarray, k: int, j: int) -> np.ndarray:
        """View ``j`` of the ``k``-th chosen reference: the same in every pass and every process
        (one generator per view); a quarter of them turned when the bundle holds turned rows."""
        r = np.random.default_rng([self.seed, k, j])
        view = self.sim(img, r)
        if self.turned and r.random() < 0.25:
            view = np.ascontiguousarray(np.rot90(view, int(r.integers(1, 4))))
        return view


def make_scorer(path, manifest, members: dict, modes: tuple, seed: int, views_per_ref: int, turned: bool,
                threads: int) -> Scorer:
    """A worker's Scorer: the recognizer rebuilt from the bundle being built (manifest and member bytes)."""
    from runtime.bundle.format import BundleContents

    rec = Recognizer(BundleContents(path, manifest, members), providers=["CPUExecutionProvider"], threads=threads)
    return Scorer(rec, modes, seed, views_per_ref, turned)


def _look_alikes(sc: Scorer, item) -> list[str]:
    """Instances another reference (``item``: reference, alike score) looks like."""
    ref, alike_score = item
    img = load_image(ref.path)
    f = sc.rec.findings(img, sc.rec.embedder.embed(img), "exact", exclude={ref.instance}, all_passes=True)
    return [inst for inst, score, _ in f.hits if alike(score, (f.verification or {}).get(inst), alike_score)]


def _score_views(sc: Scorer, item) -> list[tuple]:
    """(findings with the whole site or None, findings with ``left_out`` left out or None) for each
    view of one reference; ``item``: (k, reference, whole site?, left_out set or None). The two
    scorings of a view share its FrameCache: the second only matches what the first did not."""
    k, ref, whole, left_out = item
    img = load_image(ref.path)
    out = []
    for j in range(sc.views_per_ref):
        view, cache = sc.view(img, k, j), FrameCache()
        pos = _findings(sc.rec, view, sc.modes, cache=cache, stop=_sure) if whole else None
        neg = _findings(sc.rec, view, sc.modes, set(left_out), cache) if left_out is not None else None
        out.append((pos, neg))
    return out


def _score_image(sc: Scorer, item) -> list[dict]:
    """Findings of one image (``item``: image, exclusion sets) for each exclusion set (None: the
    whole site), sharing one FrameCache."""
    img, excludes = item
    cache = FrameCache()
    return [_findings(sc.rec, img, sc.modes, None if ex is None else set(ex), cache) for ex in excludes]


def _sure(evidence, instance=None) -> bool:
    """Verified under any rule calibration can set (``SURE_SUPPORT``), whatever the work's kind,
    and not in other colours than its reference (``colour.GAP``)."""
    return evidence.support >= SURE_SUPPORT and (evidence.colour is None or evidence.colour <= colour.GAP)


def _findings(rec: Recognizer, img: np.ndarray, modes, exclude=None, cache=None, stop=None) -> dict[str, Findings]:
    """Findings of ``img`` in every match mode, every row and the second look matched (a negative
    gets every chance); ``stop``: evidence after which the second look, the 3-D model and the
    learned matcher are skipped (``Verifier.evidence``'s ``verified``)."""
    cache = FrameCache() if cache is None else cache
    if cache.descriptor is None:
        cache.descriptor = rec.embedder.embed(img)
    return {m: rec.findings(img, cache.descriptor, m, exclude=exclude, stop=stop, all_passes=True, cache=cache)
            for m in modes}


def synthetic_counts(references: int) -> tuple[int, int]:
    """(walls and labels, cluttered scenes) for a site of ``references`` images: 6 and 4 a
    reference, at least 60 and 40, at most 300 and 200 (sites of 50 references or more get the
    most). A small site's calibration then takes seconds, not minutes; with fewer negatives a kind
    is allowed fewer false accepts (the budget's count rounds down), so its rule can only be stricter."""
    walls = int(np.clip(6 * references, 60, 300)) // 2 * 2  # walls and labels alternate
    return walls, int(np.clip(4 * references, 40, 200))


def gather(rec: Recognizer, site: Site, modes, survey: list[Query] | None = None, min_views: int = 400,
           max_views: int = 800, backgrounds: int | None = None, collages: int | None = None, seed: int = 0,
           progress: bool = True, clock: StageClock | None = None, workers: int = 1, contents=None,
           target_far: float = 0.01) -> SampleSet:
    """``min_views``/``max_views``: simulated views of references, ``ceil(min_views / references)``
    of each (1-10) over at most ``max_views // that`` references (``BuildOptions.calibration_views``
    sets both); ``backgrounds``, ``collages``: numbers of synthetic negatives (default ``synthetic_counts``).
    ``workers`` > 1: samples are scored in that many processes, each with the recognizer rebuilt
    from ``contents`` (the ``BundleContents`` ``rec`` was made from); the samples are the same."""
    from .workers import threads_per_worker

    clock = clock or StageClock()
    counts = synthetic_counts(len(site.references))
    backgrounds = counts[0] if backgrounds is None else backgrounds
    collages = counts[1] if collages is None else collages
    rng = np.random.default_rng(seed)
    turned = len(rec.rotations) > 1
    views_per_ref = int(np.clip(np.ceil(min_views / max(len(site.references), 1)), 1, 10))
    refs = [site.references[i] for i in pick(len(site.references), max_views // views_per_ref, rng)]
    modes = tuple(modes)
    several = len(rec.instances) > 1
    recipe = () if contents is None or workers <= 1 else (
        contents.path, contents.manifest, contents.members, modes, seed, views_per_ref, turned,
        threads_per_worker(workers))
    out = SampleSet()
    with Pool(Scorer(rec, modes, seed, views_per_ref, turned), make_scorer, recipe, workers if recipe else 1) as pool:
        with clock.stage("simulated views"):  # each view with the whole site, and with its own work left out
            scored = pool.map(_score_views, [(k, ref, True, {ref.instance} if several else None)
                                             for k, ref in enumerate(refs)], "calibrate (simulated views)", progress)
        out.positives = [Sample(pos, ref.instance, "simulated") for ref, views in zip(refs, scored) for pos, _ in views]
        units: list[Unknowns] = []   # negatives that leave works out, in the order they are reported
        if several:
            units = [Unknowns("simulated", k, {ref.instance}, {ref.instance}, [neg for _, neg in views])
                     for k, (ref, views) in enumerate(zip(refs, scored))]
        with clock.stage("walls and labels"):
            walls = ((wall_label(rng, 360, 480) if i % 2 else random_wall(rng, 360, 480), (None,))
                     for i in range(backgrounds))
            found = pool.map(_score_image, walls, "calibrate (walls and labels)", progress, batch=64)
            plain = [Sample(f[0], None, "label" if i % 2 else "wall") for i, f in enumerate(found)]
        if len(rec.instances) > 2:
            mild = CameraViewSimulator(SimulatorConfig.mild(), seed=seed + 1)
            chosen = [site.references[i] for i in rng.choice(len(site.references), min(collages * 3, 3 * len(site.references)))]
            groups = [chosen[3 * i % len(chosen): 3 * i % len(chosen) + 3] for i in range(collages)]

            def scene(i):  # scene i is drawn from its own generator: it can be drawn again
                r = np.random.default_rng([seed, 3, i])
                return mild(collage(r, [load_image(ref.path) for ref in groups[i]]), r)

            with clock.stage("cluttered scenes"):
                owners = [{r.instance for r in group} for group in groups]
                found = pool.map(_score_image, ((scene(i), (owners[i],)) for i in range(collages)),
                                 "calibrate (cluttered scenes)", progress, batch=64)
            units += [Unknowns("scene", i, owners[i], set(owners[i]), [f[0]]) for i, f in enumerate(found)]

        def rescore(source: str, todo: list[Unknowns]):
            """New findings of units whose left-out sets grew (the survey's below, ``settle``'s)."""
            if source == "simulated":
                items = [(u.key, refs[u.key], False, u.left) for u in todo]
                return [[neg for _, neg in views] for views in pool.map(_score_views, items, "", False)]
            if source == "scene":
                items = ((scene(u.key), (u.left,)) for u in todo)
            else:
                items = ((load_image(survey[u.key].path), (u.left,)) for u in todo)
            return [[f[0]] for f in pool.map(_score_image, items, "", False, batch=64)]

        unknown_photos: list[Sample] = []
        if survey:  # a known photo is a positive, and (several works) a negative with its work left out
            with clock.stage("survey photos"):
                def photos():
                    for q in survey:
                        known = not q.is_unknown
                        yield load_image(q.path), (None, set(q.instances)) if known and several else (None,)

                found = pool.map(_score_image, photos(), "calibrate (survey photos)", progress, batch=64)
            wider = []   # known photos that show other works too: their negatives leave those out
            root = os.path.commonpath([os.path.dirname(os.path.abspath(q.path)) for q in survey])
            for i, (q, f) in enumerate(zip(survey, found)):
                more = shown(f[0], set(q.instances))
                if more:
                    out.survey_shows.append({
                        "photo": Path(os.path.relpath(os.path.abspath(q.path), root)).as_posix(),
                        "label": "|".join(sorted(q.instances)) or UNKNOWN, "shows": more,
                        "negative": "kept" if q.is_unknown else "left out"})
                if q.is_unknown:
                    unknown_photos.append(Sample(f[0], None, "survey"))
                    continue
                # a photo of a|b: either answer is right (and the truth is the same in every process:
                # a frozenset's order is not)
                out.positives.append(Sample(f[0], min(q.instances), "survey", frozenset(q.instances)))
                if several:
                    units.append(Unknowns("survey", i, set(q.instances) | set(more), set(q.instances) | set(more),
                                          [f[1]]))
                    if more:
                        wider.append(units[-1])
            if out.survey_shows:
                listed = [f"{e['photo']} ({e['label']}: {', '.join(e['shows'])}, {e['negative']})"
                          for e in out.survey_shows]
                log.warning("sitelens: %d survey photo(s) verify works beyond their label (left out of a known "
                            "photo's negative; kept for an unknown one, which the rules must refuse): %s",
                            len(listed), "; ".join(listed[:20]) + (" ..." if len(listed) > 20 else ""))
            if wider:
                with clock.stage("survey photos"):
                    for u, findings in zip(wider, rescore("survey", wider)):
                        u.findings = findings
        if several:
            right = [s.findings["exact"].hits[0][1] for s in out.positives
                     if s.findings["exact"].hits and s.right(s.findings["exact"].hits[0][0])]
            looks = LookAlikes(site, pool, float(np.median(right)) if right else 1.0, progress)


            settle(units, plain + unknown_photos, looks, modes, target_far, rescore, clock)
            looks.report()
            out.look_alikes = looks.found()
        def of(source: str) -> list[Sample]:
            return [Sample(f, None, source) for u in units if u.source == source for f in u.findings]

        out.negatives = of("simulated") + plain + of("scene") + unknown_photos + of("survey")
    return out


def outcome(rec: Recognizer, rule: Rule, samples: list[Sample], mode: str, orders: dict | None = None) -> np.ndarray:
    """Per sample: 1 accepted with the right instance, -1 accepted with a wrong one, 0 rejected.
    ``orders``: a memo of each sample's answer order (``answer_order``), shared by calls whose
    rules differ only in their global score and margin (the order does not depend on them)."""
    memo = {} if orders is None else orders
    out = np.zeros(len(samples), np.int8)
    for k, s in enumerate(samples):
        f = s.findings[mode]
        if f.hits:
            if id(s) not in memo:
                memo[id(s)] = answer_order(f, rule)
            order, verified = memo[id(s)]
            if decided_by(f, rule, order, verified) is not None:
                out[k] = 1 if s.right(order[0]) else -1
    return out


def by_source(samples: list[Sample]) -> dict[str, list[Sample]]:
    """Samples per kind (``Sample.source``), kinds in sorted order."""
    out: dict[str, list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.source):
        out.setdefault(s.source, []).append(s)
    return out


def _strongest(findings: Findings, attr: str):
    """The largest ``attr`` ("support", "fundamental") of any candidate's evidence, 0 without any."""
    return max((getattr(e, attr) for e in (findings.verification or {}).values()), default=0)


def _max_evidence(samples: list[Sample], mode: str, attr: str) -> np.ndarray:
    return np.array([_strongest(s.findings[mode], attr) for s in samples])


def _smallest_threshold(values: np.ndarray, budget: float, floor: float) -> float:
    """Smallest threshold t >= floor (whole or half units) with mean(values >= t) <= budget."""
    allowed = int(np.floor(budget * len(values)))
    if len(values) == 0:
        return floor
    top = np.sort(values)[::-1]
    t = float(np.floor(top[allowed] * 2) / 2 + 0.5) if allowed < len(top) else 0.0
    return max(floor, t)


def choose_rule(rec: Recognizer, samples: SampleSet, mode: str, target_far: float,
                kinds: dict | None = None) -> tuple[Rule, dict]:
    """The rule of match ``mode`` (see the module's docstring); ``kinds`` (instance -> kind of
    work, more than one kind): a homography-support bar per kind too (``export.kinds.support_bars``),
    the site's bar kept for works without a kind; the 3-D and global tests count what the kinds'
    bars accept."""
    pos, neg = samples.positives, samples.negatives
    verifying = rec.verifier is not None
    all_kinds = kinds if kinds and len(set(kinds.values())) > 1 else None   # for bars and a global path per kind
    support = fundamental = kind_support = None
    # the colour test is not calibrated: the support bars are set as without it (the look-alikes in
    # other colours it refuses still raise them), so it only ever takes answers away
    gap = colour.GAP if verifying and rec.verifier.params.colour else None
    groups = by_source(neg)
    if verifying:  # thresholds that hold for every kind of negative
        support = max([_smallest_threshold(_max_evidence(g, mode, "support"), SHARE_HOMOGRAPHY * target_far,
                                           MIN_SUPPORT) for g in groups.values()], default=MIN_SUPPORT)
        if all_kinds:
            from .kinds import support_bars

            kind_support = support_bars(neg, kinds, target_far, mode)
        kinds = kinds if kind_support else None
        if rec.verifier.params.fundamental:
            h_rule = Rule(support=support, global_path=False, kind_support=kind_support, kinds=kinds, colour=gap)
            fundamental = MIN_FUNDAMENTAL
            for g in groups.values():
                left = [s for s, o in zip(g, outcome(rec, h_rule, g, mode)) if o == 0]
                fundamental = max(fundamental, _smallest_threshold(
                    _max_evidence(left, mode, "fundamental"),
                    SHARE_FUNDAMENTAL * target_far * len(g) / max(len(left), 1), MIN_FUNDAMENTAL))
    verified_only = Rule(support=support, fundamental=fundamental, global_path=False, kind_support=kind_support,
                         kinds=kinds, colour=gap)
    orders: dict = {}   # every rule below shares verified_only's bars: one answer order per sample
    by_verification = outcome(rec, verified_only, neg, mode, orders) != 0 if verifying and neg \
        else np.zeros(len(neg), bool)
    # global rule: a grid over margins; for each, the lowest score that keeps every kind of negative
    # within budget, counting what verification already accepted of it
    top = [s.findings[mode].score_margin() for s in neg]
    neg_scores = np.array([t[0] for t in top]) if top else np.zeros(0)
    neg_margins = np.array([t[1] for t in top]) if top else np.zeros(0)
    sources = np.array([s.source for s in neg])
    contradicted = np.array([geometry_contradicts(s.findings[mode].top_evidence()) for s in neg], bool)
    margins = np.unique(np.concatenate([[0.0], np.quantile(neg_margins, np.linspace(0, 0.95, 20))])) \
        if len(neg_margins) else np.array([0.0])
    best = None
    for m in margins:
        score = -1.0
        for source in np.unique(sources):
            group = sources == source
            allowed = int(np.floor(target_far * group.sum())) - int(by_verification[group].sum())
            ok = np.sort(neg_scores[group & ~by_verification & ~contradicted & (neg_margins >= m)])[::-1]
            if allowed < 0 or len(ok) > allowed:
                score = max(score, float(ok[max(allowed, 0)]) + 1e-6 if len(ok) else -1.0)
        rule = Rule(round(score, 6), round(float(m), 6), support, fundamental, kind_support=kind_support, kinds=kinds,
                    colour=gap)
        tar, far = _rates(rec, rule, pos, neg, mode, orders)
        if far <= target_far + 1e-12 and (best is None or tar > best[1] + 1e-9
                                           or (tar > best[1] - 1e-9 and far < best[2] - 1e-12)):
            best = (rule, tar, far)
    gain = global_gain(rec, best[0], verified_only, pos, neg, mode, orders, all_kinds) if verifying and best else None
    if gain is not None and gain["right"] <= gain["wrong"]:
        best = None   # the global path does not earn its keep: only verification accepts
    elif gain is not None and all_kinds:   # ... and where it does, not for kinds it never answers rightly
        # (a kind's counts are a few views: a tie there says little, none right says the path adds nothing)
        paying = tuple(k for k, g in gain["kinds"].items() if g["right"] > 0)
        if not paying:
            best = None
        elif len(paying) < len(gain["kinds"]):
            rule = replace(best[0], global_kinds=paying, kinds=all_kinds)
            best = (rule, *_rates(rec, rule, pos, neg, mode, orders))
    if best is None:  # no global rule fits in the budget (or pays): only verification accepts
        rule = verified_only
        tar, far = _rates(rec, rule, pos, neg, mode, orders)
        best = (rule, tar, far)
    rule, tar, far = best
    report = {"tar": round(tar, 4), "far": round(far, 4), "positives": len(pos), "negatives": len(neg)}
    if gain is not None:
        report["global_path"] = {"kept": rule.global_path, **gain}
        if rule.global_path and rule.global_kinds is not None:
            report["global_path"]["for_kinds"] = list(rule.global_kinds)
    pos_groups = by_source(pos)
    for source in sorted(set(pos_groups) | set(groups)):
        p, n = pos_groups.get(source, []), groups.get(source, [])
        if p or n:
            t, f = _rates(rec, rule, p, n, mode, orders)
            report[source] = {"positives": len(p), "negatives": len(n), "tar": round(t, 4) if p else None,
                              "far": round(f, 4) if n else None}
    return rule, report


def global_gain(rec: Recognizer, rule: Rule, verified_only: Rule, pos: list[Sample], neg: list[Sample], mode: str,
                orders: dict | None = None, kinds: dict | None = None) -> dict:
    """What ``rule``'s global path adds on calibration's samples over ``verified_only`` (the same
    verification bars, no global path): ``right``, positives it accepts as their own work;
    ``wrong``, positives it accepts as another work and negatives it accepts. ``choose_rule`` keeps
    the path only when right > wrong: on a site where verification already answers every view the
    global score would (buildings), the path adds accepts of unknowns and nothing else, and real
    unknowns score higher against a look-alike than simulated ones do, so its cost on real photos
    is larger than calibration counts. ``kinds`` (instance -> kind of work): also the counts per
    kind of the work answered (``"kinds"``), for a path kept for some kinds only. ``orders``: as
    ``outcome``'s."""
    memo = {} if orders is None else orders
    out = {"right": 0, "wrong": 0}
    per_kind = {k: {"right": 0, "wrong": 0} for k in sorted(set((kinds or {}).values()))}
    for group, positive in ((pos, True), (neg, False)):
        for s, a, b in zip(group, outcome(rec, rule, group, mode, memo), outcome(rec, verified_only, group, mode, memo)):
            if a != b:   # accepted by the global path (verification's accepts are the same in both)
                which = "right" if positive and a == 1 else "wrong"
                out[which] += 1
                kind = (kinds or {}).get(memo[id(s)][0][0])
                if kind in per_kind:
                    per_kind[kind][which] += 1
    return {**out, "kinds": per_kind} if kinds else out


def _rates(rec, rule, pos, neg, mode, orders: dict | None = None) -> tuple[float, float]:
    """TAR over all positives; FAR = the worst over the kinds of negatives (simulated views, cluttered
    scenes, walls, survey photos): a rule must hold for every kind of unknown, not on average.
    ``orders``: as ``outcome``'s."""
    tar, _ = rates(outcome(rec, rule, pos, mode, orders), [])
    far = max((rates([], outcome(rec, rule, group, mode, orders))[1] for group in by_source(neg).values()),
              default=0.0)
    return tar, far


def calibrate(rec: Recognizer, site: Site, target_far: float = 0.01, survey: list[Query] | None = None,
              progress: bool = True, clock: StageClock | None = None, **kw) -> Thresholds:
    """Rules for every match mode the bundle supports; with verification, on a site whose samples
    carry several kinds of works (``export.kinds.number_of_kinds``), a support bar per kind."""
    from .kinds import kinds_of, number_of_kinds

    clock = clock or StageClock()
    modes = [m for m in MATCH_MODES if m not in BINARY_MATCH_MODES or rec.index.binary is not None]
    samples = gather(rec, site, modes, survey, progress=progress, clock=clock, target_far=target_far, **kw)
    rules, reports = {}, {}
    with clock.stage("rules"):
        count = number_of_kinds(sum(s.source == "simulated" for s in samples.negatives), target_far)
        kinds = kinds_of(rec.index.descriptors, rec.index.instances, count) if rec.verifier and count > 1 else {}
        for mode in modes:
            rules[mode], reports[mode] = choose_rule(rec, samples, mode, target_far, kinds)
        if not any(r.kind_support or r.global_kinds is not None for r in rules.values()):
            kinds = {}
    method = ("evidence from the device's recognition path; simulated views: full site (positives) vs own "
              "instance left out (negatives), walls and labels" + ("; survey photos" if survey else ""))
    return Thresholds(rules, rules["hnsw"], target_far, {
        "method": method, "seed": int(kw.get("seed", 0)), "modes": reports, "min_support": MIN_SUPPORT,
        "min_fundamental": MIN_FUNDAMENTAL,
        "look_alikes": [list(p) for p in samples.look_alikes[:MAX_REPORTED_PAIRS]],
        "look_alike_pairs": len(samples.look_alikes),
        **({"survey_shows": samples.survey_shows[:MAX_REPORTED_PAIRS]} if samples.survey_shows else {}),
        "kinds_of_works": dict(sorted(Counter(kinds.values()).items()))},
        kinds)
