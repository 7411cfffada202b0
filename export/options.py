"""What shapes a bundle besides the site and the model: one definition, taken by
``build_bundle`` and made by the CLI's build options (``sdk/cli_common.build_options``), so a
default is written once."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from runtime.errors import SitelensError
from runtime.search.index_params import IndexParams


CALIBRATION_SEEDS = range(1 << 32)   # what --calibration-seed takes and like() reads back from a manifest


def _seed_of(thresholds) -> int:
    """The calibration seed ``thresholds`` record; 0 (the only draw before the option) otherwise."""
    seed = ((thresholds.calibration or {}) if thresholds is not None else {}).get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed in CALIBRATION_SEEDS else 0


@dataclass(frozen=True)
class BuildOptions:
    """``index_params``: HNSW M/ef; None chooses them for recall@1 >= ``TARGET_RECALL`` against exact
    search on the site's simulated views (the measured recall is stored either way).
    ``verify``: local features for geometric verification of the shortlist: "xfeat" (learned, ONNX),
    "orb", "sift", or None/"none" (off).
    ``upright``: the site's objects are only ever seen upright (no quarter-turned reference rows).
    ``survey``: a manifest/folder of real photos (``__unknown__`` = not in the site) used in calibration.
    ``sign``: an Ed25519 private key file (or key object) to sign the bundle with.
    ``retain``: share of FP32's mP@1 a reduced precision must keep to ship (default
    ``export.precision.RETAIN``; benchmarks pass 0 to measure a precision that would fall back).
    ``int8_weights``: 8, or 7 for devices with x86 CPUs without VNNI (``runtime/models/int8_products.py``).
    ``ref_keypoints``: local-feature keypoints kept per upright reference row, each quarter-turned
    row at most half as many (the bundle's main cost per work; default: the feature's, see
    ``VerifyParams``); ``spread_keypoints``: keep them spread over
    the image; ``turned_features`` "query": quarter-turned rows share their image's upright
    features (a quarter of the bytes; the frame is turned back at match time instead);
    "steered": quarter-turned rows are made from the upright ones by the site's steerer, fitted
    at build time (``runtime/verify/steerer.py``; the bytes of "query", no extra extraction).
    ``descriptor_code``: how reference descriptors are stored, "int8" (as extracted) or "pcaK"
    (the site's K principal components, K bytes a keypoint; ``runtime/verify/descriptor_code.py``).
    ``glue_keypoints``: frame keypoints the learned matcher sees per candidate, those nearest the
    candidate's (default: ``VerifyParams``'s; 0: every one); fewer make its calls, and calibration,
    quicker. ``glue_layers``: the learned matcher's first that many transformer layers (1-6, with
    that layer's own assignment head; default and 0: all): its calls cost about in proportion.
    ``glue_pruning``: the learned matcher drops, after each layer, the points it judges unmatchable
    (LighterGlue's point pruning in its authors' setting, ``runtime.verify.glue.PRUNING``): calls on
    unknowns and other works, most of calibration's, cost much less; off: every point to the end.
    ``colour``: store each reference keypoint's chroma (two bytes) and refuse verified candidates
    whose inliers show other colours (``runtime/verify/colour.py``); xfeat, orb and sift alike.
    ``calibration_views``: simulated visitor views calibration scores (each twice: with the whole
    site and with its work left out); None: 400-800 by the site's size, up to 10 a reference
    (``export.calibration.gather``). Fewer make a quicker build whose rules rest on fewer samples,
    so they are stricter, never looser (the false-accept budget's count rounds down).
    ``calibration_seed``: the draw of calibration's simulated views, walls and scenes (the same seed,
    the same rules). A rule is set by the few strongest of a few hundred negatives, so another draw
    moves it a little: building with two seeds shows a site's engineer how much (the bundle records it).
    ``workers``: processes that describe references and score calibration samples, 0 for one per
    core (each holds its own models; the bundle is the same for any number, see ``export/workers.py``).
    Workers are spawned processes: a script calling ``build_bundle`` with ``workers`` != 1 needs
    the usual ``if __name__ == "__main__":`` guard.
    ``site_id`` (default: the site's name), ``release`` (default: ``manifest.new_release()``, the
    build time) and ``expires`` (ISO date, default none) go into the signed manifest, for devices to
    refuse other sites' bundles, rollbacks and stale bundles (``Recognizer.open``)."""

    size: int | None = None              # network input side (default: the run's, else the backbone's)
    max_aspect: float = 2.0
    index_params: IndexParams | None = None
    multiscale: bool = False
    per_instance_mean: bool = False
    calibrate: bool = True
    target_far: float = 0.01
    calibration_views: int | None = None
    calibration_seed: int = 0
    workers: int = 1
    metadata: str | Path | None = None   # instances.csv for a manifest site
    precision: str = "fp32"
    hash_bits: int | None = None
    verify: str | None = "xfeat"
    keep_blank: bool = False
    retain: float | None = None
    sign: Any = None
    upright: bool = False
    survey: Any = None
    int8_weights: int = 8
    site_id: str | None = None
    release: int | None = None
    expires: str | None = None
    ref_keypoints: int | None = None
    turned_features: str | None = None
    spread_keypoints: bool = False
    descriptor_code: str = "int8"
    glue_keypoints: int | None = None
    glue_layers: int | None = None
    glue_pruning: bool = True
    colour: bool = True

    @classmethod
    def like(cls, manifest, **changes) -> "BuildOptions":
        """The options a bundle was built with, as far as its ``manifest`` records them: precision
        asked for (and the INT8 weight bits), quarter turns, scales, binary codes, local features
        with their keypoints, turns, descriptor code and learned-matcher keypoints, the
        false-accept target and calibration seed (a rebuild draws the same samples, so its rules
        differ by the network, not the draw), site id and expiry; the rest (index parameters,
        calibration views, survey, metadata, workers) take their defaults or ``changes``. For
        building the same kind of bundle with another network (``sitelens learn --finetune``)."""
        asked = (manifest.model.details or {}).get("precision_report") or {}
        refs, v = manifest.references or {}, manifest.verification or {}
        known = dict(
            precision=asked.get("requested") or manifest.model.precision,
            int8_weights=int(asked.get("int8_weight_bits") or 8),
            upright=list(refs.get("rotations") or [0]) == [0],
            multiscale=list(refs.get("scales") or [1.0]) != [1.0],
            per_instance_mean=bool(refs.get("per_instance_mean")),
            hash_bits=(manifest.codes or {}).get("bits"),
            verify=v.get("feature") if v else None,
            ref_keypoints=v.get("ref_keypoints"),
            spread_keypoints=bool(v.get("ref_spread")),
            turned_features=v.get("turned_features") if v.get("turned_features") in ("query", "steered") else None,
            descriptor_code=v.get("descriptor_code") or "int8",
            glue_keypoints=v.get("glue_keypoints", 0) if v else None,
            glue_layers=v.get("glue_layers", 0) if v else None,
            glue_pruning=bool(v.get("glue_pruning")) if v else cls.glue_pruning,
            colour=bool(v.get("colour")) if v else cls.colour,
            target_far=manifest.thresholds.target_far if manifest.thresholds is not None else cls.target_far,
            calibrate=manifest.thresholds is not None,
            calibration_seed=_seed_of(manifest.thresholds),
            site_id=manifest.site.site_id,
            expires=manifest.site.expires,
        )
        return cls(**{**known, **changes})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @property
    def verifies(self) -> bool:
        return self.verify not in (None, "none")

    def check(self) -> None:
        """Refuse contradictory or malformed options before a long build, not when reading it back."""
        from runtime.bundle.manifest import SITE_ID, parse_expiry
        from runtime.verify.descriptor_code import components_of

        if self.verifies and self.per_instance_mean:
            raise SitelensError("geometric verification needs one row per reference (drop --per-instance-mean, "
                                "or --verify none)")
        if components_of(self.descriptor_code) is not None and self.verify != "xfeat":
            raise SitelensError(f"--descriptor-code {self.descriptor_code}: codes xfeat descriptors only "
                                f"(this build verifies with {self.verify or 'none'})")
        if self.calibration_views is not None and not 10 <= int(self.calibration_views) <= 100_000:
            raise SitelensError(f"--calibration-views {self.calibration_views}: between 10 and 100000")
        if int(self.calibration_seed) not in CALIBRATION_SEEDS:
            raise SitelensError(f"--calibration-seed {self.calibration_seed}: a whole number from 0 to 2**32 - 1")
        if self.ref_keypoints is not None and not 16 <= int(self.ref_keypoints) <= 2048:
            raise SitelensError(f"--ref-keypoints {self.ref_keypoints}: between 16 and 2048")
        if self.glue_keypoints is not None and not (self.glue_keypoints == 0 or 64 <= int(self.glue_keypoints) <= 4096):
            raise SitelensError(f"--glue-keypoints {self.glue_keypoints}: 0 (every one) or between 64 and 4096")
        if self.glue_layers is not None and not 0 <= int(self.glue_layers) <= 6:
            raise SitelensError(f"--glue-layers {self.glue_layers}: 0 (every one) or between 1 and 6")
        if not 0 <= int(self.workers) <= 256:
            raise SitelensError(f"--workers {self.workers}: between 0 (one per core) and 256")
        if self.site_id is not None and not SITE_ID.match(self.site_id):
            raise SitelensError(f"--site-id {self.site_id!r}: letters, digits, '.', '_' and '-' only, at most 128")
        if self.release is not None and not 0 <= int(self.release) < (1 << 63):
            raise SitelensError(f"--release {self.release}: a whole number >= 0")
        if self.expires is not None:
            try:
                parse_expiry(self.expires)
            except ValueError:
                raise SitelensError(f"--expires {self.expires!r}: not an ISO date (e.g. 2027-06-30)") from None

    @property
    def processes(self) -> int:
        """Worker processes to use (``workers``, 0 resolved to one per core)."""
        from .workers import default_workers

        return int(self.workers) or default_workers()
