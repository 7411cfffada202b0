"""Open-set decision rules, one set per match mode, calibrated at export for a false-accept rate.

A frame is accepted as instance X when

1. X's geometric verification is strong enough: homography ``support`` (inliers, discounted when
   they cover little of the reference) at least ``support``, or (3-D fallback) at least
   ``fundamental`` fundamental-matrix inliers; the strongest verified candidate wins, whatever its
   global rank; or, failing that,
2. X is the global top-1 with cosine ``score`` and ``margin`` over the best other instance, and
   local geometry does not contradict it: when the frame had enough tentative matches with X for
   RANSAC to find a model (``JUDGE_MATCHES``) and neither a homography (``AGREE_INLIERS``; random
   correspondences give 4-6) nor a fundamental matrix (``AGREE_FUNDAMENTAL``) explains a fair number
   of them, the global descriptor's answer is refused. Where local features cannot judge (little
   texture, tiny images) it stands alone. This
   matters on real photos of look-alike scenes (buildings, skies), whose global scores against
   other works run higher than simulated views predict.

Colour: a candidate whose homography inliers' chroma differs from its reference's by more than
the rule's ``colour`` gap (``runtime/verify/colour.py``; measured only when the bundle stores
chroma) is a look-alike in other colours: test 1 does not accept it, unless it is the global
top-1 (``runtime.recognizer.ranked``: the global descriptor sees colour too), and it ranks as
unverified with no geometric strength. Test 2 accepts only the global top-1 and does not look at
colour. ``None``: no colour test (bundles built before it).

Kinds of works: on a site that mixes kinds (objects with look-alike siblings beside paintings and
buildings) one homography bar is set by the hardest kind and the others' weakly verifying photos
fall under it. A bundle may carry the kind of every work (``Thresholds.kinds``, instance -> kind)
and, per match mode, a support bar per kind (``Rule.kind_support``); a candidate is then held to
its kind's bar (``Rule.support_for``), and a work without a kind (or a kind without a bar) to the
site's ``support``. The 3-D and global tests stay site-wide. See ``export/kinds.py``.

``None`` disables a test (no thresholds at all = accept every top-1). Each match mode scores
differently (``hamming`` estimates the cosine from code bits; its shortlist differs), so each has
its own rules (``modes``); a bundle calibrated before modes existed applies one rule to all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from runtime.kinds import MATCH_MODES
from runtime.verify.geometric import CHANCE_INLIERS

JUDGE_MATCHES = 24   # tentative matches from which geometry can judge a global answer
AGREE_INLIERS = CHANCE_INLIERS    # homography inliers that count as agreement
AGREE_FUNDAMENTAL = 30  # ... or fundamental-matrix inliers (3-D objects; random matches give about 20)


def geometry_contradicts(evidence) -> bool:
    """True when verification had enough matches to judge the candidate and found no agreement."""
    return (evidence is not None and evidence.matches >= JUDGE_MATCHES and evidence.inliers < AGREE_INLIERS
            and evidence.fundamental < AGREE_FUNDAMENTAL)


def _number(d: dict, key: str, integer: bool = False):
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number or null, got {value!r}")
    if integer:
        if value < 0 or value != int(value):
            raise ValueError(f"{key} must be a non-negative integer or null, got {value!r}")
        return int(value)
    return float(value)


@dataclass(frozen=True)
class Rule:
    """The acceptance rule of one match mode."""

    score: float | None = None
    margin: float | None = None
    support: float | None = None
    fundamental: float | None = None
    global_path: bool = True   # False: only geometric verification can accept
    kind_support: dict | None = None   # kind of work -> its homography-support bar (replaces ``support``)
    colour: float | None = None   # largest colour gap (a*b* units) a candidate may show; None: no test
    # kinds of works the global path may answer (None: every work); a work without a kind may be
    # answered (a bundle's works all have one once it has kinds: ``Thresholds.assign_kind``)
    global_kinds: tuple | None = None
    # instance -> kind of work: the bundle's (``Thresholds.kinds``, attached by Thresholds), not saved with the rule
    kinds: dict | None = field(default=None, compare=False, repr=False)

    def support_for(self, instance: str | None = None) -> float | None:
        """The homography-support bar a candidate ``instance`` is held to: its kind's, else the site's."""
        if instance is None or not self.kind_support or not self.kinds:
            return self.support
        kind = self.kinds.get(instance)
        return self.support if kind is None else self.kind_support.get(kind, self.support)

    def colour_contradicts(self, evidence) -> bool:
        """Does ``evidence`` show another colour than its reference (a look-alike)?"""
        gap = getattr(evidence, "colour", None)
        return self.colour is not None and gap is not None and gap > self.colour

    def global_accepts(self, score: float, margin: float, evidence=None, instance: str | None = None) -> bool:
        """``evidence``: the candidate's geometric evidence when verification ran (see
        ``geometry_contradicts``); ``instance``: the candidate, held to ``global_kinds``."""
        if not self.global_path or geometry_contradicts(evidence):
            return False
        if self.global_kinds is not None and instance is not None and self.kinds \
                and self.kinds.get(instance, None) not in (None, *self.global_kinds):
            return False
        if self.score is not None and score < self.score:
            return False
        if self.margin is not None and margin < self.margin:
            return False
        return True

    def strength(self, evidence, instance: str | None = None) -> float:
        """How far ``evidence`` (of candidate ``instance``) got towards verification: the larger
        share of its support bar (``support_for``) or the ``fundamental`` threshold it reached,
        capped at 1 (0 with no evidence or no such test)."""
        if evidence is None or self.colour_contradicts(evidence):
            return 0.0
        shares = [value / bar for value, bar in ((evidence.support, self.support_for(instance)),
                                                 (evidence.fundamental, self.fundamental)) if bar]
        return min(1.0, max(shares, default=0.0))

    def verified(self, evidence, instance: str | None = None, colour: bool = True) -> bool:
        """Does ``evidence`` verify candidate ``instance`` (None: held to the site's bar)? Also the
        Verifier's ``verified(evidence, instance)`` stop test. ``colour``: apply the colour test."""
        if colour and self.colour_contradicts(evidence):
            return False
        support = self.support_for(instance)
        if support is not None and evidence.support >= support:
            return True
        return self.fundamental is not None and evidence.fundamental >= self.fundamental

    def to_dict(self) -> dict:
        d = {"score": self.score, "margin": self.margin, "support": self.support, "fundamental": self.fundamental,
             "global_path": self.global_path}
        if self.kind_support:
            d["kind_support"] = dict(sorted(self.kind_support.items()))
        if self.colour is not None:
            d["colour"] = self.colour
        if self.global_kinds is not None:
            d["global_kinds"] = sorted(self.global_kinds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Rule":
        if not isinstance(d, dict):
            raise ValueError(f"expected an object, got {type(d).__name__}")
        global_path = d.get("global_path", True)
        if not isinstance(global_path, bool):
            raise ValueError(f"global_path must be true or false, got {global_path!r}")
        kind_support = d.get("kind_support")
        if kind_support is not None:
            if not isinstance(kind_support, dict) or not all(isinstance(k, str) for k in kind_support):
                raise ValueError("kind_support must map kinds of works to support bars")
            kind_support = {k: _number(kind_support, k) for k in kind_support}
            if any(v is None or v < 0 for v in kind_support.values()):
                raise ValueError("kind_support's bars must be non-negative numbers")
        colour = _number(d, "colour")
        if colour is not None and colour < 0:
            raise ValueError(f"colour must be a non-negative number or null, got {colour!r}")
        global_kinds = d.get("global_kinds")
        if global_kinds is not None and (not isinstance(global_kinds, list)
                                         or not all(isinstance(k, str) for k in global_kinds)):
            raise ValueError("global_kinds must list kinds of works (strings)")
        return cls(_number(d, "score"), _number(d, "margin"), _number(d, "support"),
                   _number(d, "fundamental"), global_path, kind_support or None, colour,
                   None if global_kinds is None else tuple(sorted(global_kinds)))


@dataclass(frozen=True)
class Thresholds:
    modes: dict = field(default_factory=dict)       # match mode -> Rule
    default: Rule = field(default_factory=Rule)      # for modes not calibrated
    target_far: float | None = None
    calibration: dict | None = field(default=None, compare=False)  # how they were chosen (report)
    kinds: dict = field(default_factory=dict)        # instance -> kind of work (rules' ``kind_support``)

    def __post_init__(self):
        # every rule reads the one kinds map, so a work given a kind later (``assign_kind``) counts in all
        attach = lambda r: r if r.kinds is self.kinds else replace(r, kinds=self.kinds)  # noqa: E731
        object.__setattr__(self, "modes", {m: attach(r) for m, r in self.modes.items()})
        object.__setattr__(self, "default", attach(self.default))

    def rule(self, mode: str = "hnsw") -> Rule:
        return self.modes.get(mode, self.default)

    def assign_kind(self, instance: str, kind: str | None) -> None:
        """Give a work added after calibration its kind (None: none, the site's bars). In place:
        the rules share the map."""
        if kind is None:
            self.kinds.pop(instance, None)
        else:
            self.kinds[instance] = kind

    # single-rule shorthands (the rule of the default match mode)
    @property
    def score(self) -> float | None:
        return self.rule().score

    @property
    def margin(self) -> float | None:
        return self.rule().margin

    def accepts(self, score: float, margin: float, mode: str = "hnsw") -> bool:
        return self.rule(mode).global_accepts(score, margin)

    def to_dict(self) -> dict:
        d = {"target_far": self.target_far, "default": self.default.to_dict(),
             "modes": {m: r.to_dict() for m, r in self.modes.items()}, "calibration": self.calibration}
        if self.kinds:
            d["kinds"] = dict(sorted(self.kinds.items()))
        return d

    @classmethod
    def single(cls, score=None, margin=None, target_far=None, support=None, fundamental=None,
               calibration=None) -> "Thresholds":
        return cls({}, Rule(score, margin, support, fundamental), target_far, calibration)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Thresholds":
        d = d or {}
        if not isinstance(d, dict):
            raise ValueError(f"expected an object, got {type(d).__name__}")
        calibration = d.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise ValueError("calibration must be an object")
        modes = d.get("modes") or {}
        if not isinstance(modes, dict) or any(m not in MATCH_MODES for m in modes):
            raise ValueError(f"modes must map match modes {MATCH_MODES} to rules")
        if "default" in d:
            default = Rule.from_dict(d["default"])
        else:  # schema 1: one score/margin rule for every mode
            default = Rule(_number(d, "score"), _number(d, "margin"))
        kinds = d.get("kinds") or {}
        if not isinstance(kinds, dict) or not all(isinstance(i, str) and isinstance(k, str) for i, k in kinds.items()):
            raise ValueError("kinds must map instances to kinds of works (strings)")
        return cls({m: Rule.from_dict(r) for m, r in modes.items()}, default, _number(d, "target_far"), calibration,
                   dict(kinds))
