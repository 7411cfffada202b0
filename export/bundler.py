"""site + model -> ``.sitelens`` bundle (ONNX, index, descriptors, manifest, thresholds)."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from runtime.bundle import format as bf
from runtime.bundle.index_members import index_members
from runtime.models.embedder import Embedder
from runtime.search.feature_store import FeatureStore
from runtime.errors import SitelensError
from runtime.search.index import IndexParams, ReferenceIndex
from runtime.bundle.manifest import IndexInfo, Manifest, ModelInfo, SiteInfo, created_stamp, new_release
from runtime.image.preprocess import InputSpec
from runtime.recognizer import Recognizer
from runtime.site import Site, load_site
from runtime.verify.descriptor_code import DescriptorCode, components_of
from runtime.versions import installed as installed_versions

from training.backbone_registry import DEFAULT_BACKBONE, default_size

from .onnx_export import OPSET, export_onnx
from .options import BuildOptions
from .references import ALL_ROTATIONS, MULTI_SCALES, describe_references
from .stages import StageClock

log = logging.getLogger("sitelens")


def resolve_model(model=None, backbone: str = DEFAULT_BACKBONE, weights="pretrained"):
    """A DescriptorNet from a training run folder, a network object, or off the shelf."""
    from training.network import DescriptorNet

    if isinstance(model, DescriptorNet):
        return model.train(False), {}
    if model is not None:
        from training.checkpoint import load_run

        return load_run(model)
    return DescriptorNet(backbone, weights=weights).train(False), {}


def _agreement_images(site: Site, max_refs: int = 200, views_per_ref: int = 3, seed: int = 0):
    """References (capped) and ``views_per_ref`` simulated visitor views of each, for precision
    checks: a 1% mP@1 difference must stand out of the noise of a few hundred views."""
    import numpy as np

    from runtime.image.image_io import load_image
    from training.simulator import CameraViewSimulator
    from training.simulator.geometry import limit_size
    from training.simulator.sampler import pick, views_of

    rng = np.random.default_rng(seed)
    chosen = [site.references[i] for i in pick(len(site.references), max_refs, rng)]
    refs = [limit_size(load_image(r.path), 640) for r in chosen]
    labels = np.array([r.instance for r in chosen])
    views, source = views_of(refs, views_per_ref, CameraViewSimulator(seed=seed), rng)
    return refs, labels, views, labels[source]


def _verifier(verify: str | None, ref_keypoints: int | None = None, turned_features: str | None = None,
              spread_keypoints: bool = False, glue_keypoints: int | None = None, glue_layers: int | None = None,
              colour: bool = False, glue_pruning: bool = False):
    """(Verifier, {member name: ONNX bytes} of its models) for a feature name, or (None, {}) when off;
    ``ref_keypoints``: keypoints kept per upright reference row (default: the feature's), each
    quarter-turned row at most half as many (ranges: ``BuildOptions.check``);
    ``turned_features``, ``spread_keypoints``, ``glue_keypoints``, ``glue_layers``, ``colour``,
    ``glue_pruning`` (on: ``glue.PRUNING``): see ``VerifyParams`` (its
    ``descriptor_code`` is set once the references are stored, ``_index_stage``)."""
    if not verify or verify == "none":
        return None, {}
    from runtime.verify.verifier import Verifier, VerifyParams, make_extractor, make_matcher

    params = VerifyParams.for_feature(verify)
    if ref_keypoints is not None:
        params.ref_keypoints = int(ref_keypoints)
        # quarter-turned rows keep half as many (as the defaults do): the count sets the bytes per work
        params.turned_keypoints = min(params.turned_keypoints, max(16, int(ref_keypoints) // 2))
    if turned_features is not None:
        params.turned_features = turned_features
    params.ref_spread = bool(spread_keypoints)
    if glue_keypoints is not None:
        params.glue_keypoints = int(glue_keypoints)
    if glue_layers is not None:
        params.glue_layers = int(glue_layers)
    if glue_pruning and verify == "xfeat":
        from runtime.verify.glue import PRUNING

        params.glue_pruning = PRUNING
    params.colour = bool(colour)
    params.__post_init__()
    models = {}
    if verify == "xfeat":
        from .glue_export import export_lighterglue
        from .local_features import export_xfeat

        log.info("sitelens: exporting XFeat local features and the LighterGlue matcher to ONNX")
        models[bf.LOCAL_MODEL], params.local_fingerprint = export_xfeat()
        if params.glue_candidates:
            models[bf.GLUE_MODEL], params.glue_fingerprint = export_lighterglue(
                layers=params.glue_layers or None, pruning=params.glue_pruning or None)
    matcher = make_matcher(params, models.get(bf.GLUE_MODEL))
    return Verifier(params, make_extractor(params, models.get(bf.LOCAL_MODEL)), matcher), models


def _site_id(name: str) -> str:
    """A site id from a site's name: letters, digits, '.', '_' and '-'."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:128] or "site"


USER_SET = "set by the user, measured"  # the tuning note of M/ef given by hand (an update keeps them)


def _tune(index: ReferenceIndex, embedder: Embedder, site: Site, choose: bool, views: int = 200,
          seed: int = 0) -> dict:
    """Measure (and if ``choose``, pick) HNSW settings on simulated visitor views of the site."""
    import numpy as np

    from runtime.image.image_io import load_image
    from training.simulator import CameraViewSimulator
    from training.simulator.sampler import pick, views_of

    from .index_tuning import exact_top1, measured_recall, tune_index

    rng = np.random.default_rng(seed)
    refs = [site.references[i] for i in pick(len(site.references), views, rng, in_order=False)]
    per = max(1, views // max(len(refs), 1))
    queries = np.stack([embedder.embed(view) for view in views_of(
        (load_image(r.path) for r in refs), per, CameraViewSimulator(seed=seed), rng)[0]])
    if choose:
        params, hnsw, report = tune_index(index.descriptors, queries, index.params, hnsw=index.hnsw)
        index.replace_graph(hnsw, params)
        return report
    recall = measured_recall(index.hnsw, queries, exact_top1(queries, index.descriptors))
    return {"recall@1": round(recall, 4), "queries": len(queries),
            "chosen": {"M": index.params.M, "ef": index.params.ef}, "note": USER_SET}


def build_bundle(site: Site | str | Path, out: str | Path, model=None, options: BuildOptions | None = None, *,
                 backbone: str = DEFAULT_BACKBONE, weights="pretrained", progress: bool = True,
                 clock: StageClock | None = None, **changes) -> Path:
    """Build and atomically write a bundle; the written file is re-opened and verified.

    ``model``: a training run folder, a ``DescriptorNet``, or None (``backbone`` off the shelf with
    ``weights``). ``options``: a ``BuildOptions`` (see there for each one); keyword ``changes``
    replace single options (``build_bundle(site, out, verify="orb")``). ``clock``: a ``StageClock``
    that receives each stage's time (the build logs them either way). The stages run in order:
    network (and reduced precision), local-feature models, describe, index, calibrate, write."""
    o = replace(options or BuildOptions(), **changes)
    o.check()
    clock = clock or StageClock()
    start = time.perf_counter()
    if not isinstance(site, Site):
        site = load_site(site, metadata=o.metadata)
    survey = None
    if o.survey is not None:
        from runtime.site import load_queries

        survey = checked_survey(load_queries(o.survey), site, o.survey)
    out = Path(out)
    net, run_config = resolve_model(model, backbone, weights)
    spec = InputSpec(size=int(o.size or run_config.get("input", {}).get("size") or default_size(net.backbone_name)),
                     max_aspect=o.max_aspect)
    onnx_bytes, precision, precision_report = _network_stage(net, spec, site, o, clock)
    with clock.stage("local-feature models"):
        turned = "stored" if o.upright and o.turned_features == "steered" else o.turned_features  # nothing to steer
        verifier, verify_models = _verifier(o.verify, o.ref_keypoints, turned, o.spread_keypoints,
                                             o.glue_keypoints, o.glue_layers, o.colour, o.glue_pruning)
    embedder = Embedder(onnx_bytes, spec, providers=["CPUExecutionProvider"])
    scales = MULTI_SCALES if o.multiscale else (1.0,)
    rotations = (0,) if o.upright else ALL_ROTATIONS
    with clock.stage("describe"):
        recipe = (onnx_bytes, spec, verifier.params if verifier is not None else None,
                  verify_models.get(bf.LOCAL_MODEL))
        described = describe_references(embedder, site, scales, per_instance_mean=o.per_instance_mean,
                                        progress=progress, keep_blank=o.keep_blank, rotations=rotations,
                                        verifier=verifier, workers=o.processes, recipe=recipe)
    site = Site(site.name, described.used, site.metadata)  # calibration sees what the index holds
    steerer = None
    if verifier is not None and verifier.params.turned_features == "steered":
        with clock.stage("steerer"):
            steerer = _fit_steerer(verifier, site, progress)
    with clock.stage("index"):
        index, codes_info = _index_stage(described, o, steerer)
        if verifier is not None:   # what the bundle stores (a site too small to fit a code on keeps int8)
            verifier.params.descriptor_code = index.features.codec.name if index.features.codec else "int8"
        tuning = _tune(index, embedder, site, o.index_params is None)
    model_cfg = net.config()
    details = {k: v for k, v in model_cfg.items() if k != "descriptor_dim"}
    details.update(precision_report=precision_report, opset=OPSET, trained=bool(run_config),
                   training={k: run_config[k] for k in ("site", "epochs", "seed") if k in run_config})
    instances = described.instances
    manifest = Manifest(
        created=created_stamp(),
        built_with=installed_versions(build=True),
        site=SiteInfo(site.name, len(set(instances)), len(instances), o.site_id or _site_id(site.name),
                      new_release() if o.release is None else int(o.release), o.expires),
        model=ModelInfo(net.fingerprint(), int(model_cfg["descriptor_dim"]), spec, precision, details),
        index=IndexInfo(index.params, len(instances), tuning),
        references={"scales": list(scales), "aggregation": "gem" if o.multiscale else "none",
                    "per_instance_mean": o.per_instance_mean, "rotations": list(rotations)},
        instances={inst: site.metadata.get(inst, {}) for inst in dict.fromkeys(instances)},
        codes=codes_info, verification=verifier.params.to_dict() if verifier is not None else None,
    )
    members = {bf.MODEL: onnx_bytes, **index_members(index)[0], **verify_models}
    if o.calibrate:
        from .calibration import calibrate as calibrate_rules

        with clock.stage("calibrate"):
            contents = bf.BundleContents(out, manifest, members)
            rec = Recognizer(contents, providers=["CPUExecutionProvider"])
            views = {} if o.calibration_views is None else {"min_views": o.calibration_views,
                                                             "max_views": o.calibration_views}
            manifest.thresholds = calibrate_rules(rec, site, o.target_far, survey, progress=progress, clock=clock,
                                                  workers=o.processes, contents=contents,
                                                  seed=int(o.calibration_seed), **views)
    with clock.stage("write"):
        _write_verified(out, manifest, members, o.sign)
    clock.seconds["total"] = time.perf_counter() - start
    log.info("sitelens: built %s in %.0f s (%s)", out, clock.seconds["total"], clock.summary())
    return out


def _network_stage(net, spec: InputSpec, site: Site, o: BuildOptions, clock: StageClock):
    """The network as ONNX, reduced to ``o.precision`` where the site's simulated views allow it:
    (ONNX bytes, precision shipped, precision report or None)."""
    log.info("sitelens: exporting %s to ONNX", net.backbone_name)
    with clock.stage("network"):
        onnx_bytes = export_onnx(net, spec)
    if o.precision == "fp32":
        return onnx_bytes, "fp32", None
    from .precision import RETAIN, reduce_precision

    with clock.stage("precision"):
        refs, labels, views, view_labels = _agreement_images(site)
        return reduce_precision(onnx_bytes, o.precision, spec, refs, labels, views, view_labels,
                                RETAIN if o.retain is None else o.retain, o.int8_weights)


# descriptors a descriptor code is fitted on at least: a few reference images' worth, so that the
# components describe the site's kind of texture and hold for works added later
MIN_FIT_DESCRIPTORS = 4096


def _fit_steerer(verifier, site: Site, progress: bool):
    """The site's steerer (``runtime/verify/steerer.py``), fitted on up to ``FIT_IMAGES`` of its
    reference images spread evenly over the site (a site of one kind of work gets a steerer for it)."""
    import numpy as np

    from runtime.image.image_io import load_image
    from runtime.verify.steerer import FIT_IMAGES, fit_steerer

    paths = list(dict.fromkeys(ref.path for ref in site.references))
    chosen = sorted({int(i) for i in np.linspace(0, len(paths) - 1, min(FIT_IMAGES, len(paths)))})
    try:
        return fit_steerer(verifier.extractor, (load_image(paths[i]) for i in chosen), progress)
    except ValueError as exc:
        raise SitelensError(f"--turned-features steered: {exc}; the site's references show too little "
                            "texture, build with the default (stored) turned features") from None


def _index_stage(described, o: BuildOptions, steerer=None) -> tuple[ReferenceIndex, dict | None]:
    """The reference index over the described rows (with ITQ codes when ``o.hash_bits``; local
    descriptors coded as ``o.descriptor_code`` says, fitted on the site's own, before calibration
    so that the rules are set on what the device will match; quarter-turned rows made by
    ``steerer`` when there is one)."""
    binary, codes_info = None, None
    if o.hash_bits:
        from runtime.search.binary_codes import BinaryCodes

        from .itq import learn_itq

        binary = BinaryCodes(*learn_itq(described.descriptors, o.hash_bits))
        codes_info = {"type": "itq", "bits": o.hash_bits, "bytes_per_reference": o.hash_bits // 8}
    features = None
    if described.features is not None:
        features = FeatureStore.from_rows(described.features)
        components = components_of(o.descriptor_code)
        if components is not None and len(features.descs) >= MIN_FIT_DESCRIPTORS:
            features = features.coded(DescriptorCode.fit(features.descs, components))
        elif components is not None:
            log.warning("sitelens: the site's references hold %d local descriptors, too few to fit a %s code on "
                        "(%d at least); they are stored as extracted (int8)", len(features.descs), o.descriptor_code,
                        MIN_FIT_DESCRIPTORS)
        if steerer is not None:
            features = features.steered(steerer)
    index = ReferenceIndex(described.descriptors, described.instances, described.sources,
                           o.index_params or IndexParams(), binary=binary, features=features,
                           rotations=described.rotations, images=described.images,
                           digests=described.digests or None)
    return index, codes_info


def _write_verified(out: Path, manifest: Manifest, members: dict, sign) -> None:
    """Write atomically, then open what was written as a device would; a bundle that fails is removed."""
    bf.write_bundle(out, manifest, members, signing_key=sign)
    try:
        Recognizer.open(out, providers=["CPUExecutionProvider"])
    except SitelensError as exc:  # pragma: no cover - would be a bug in the writer
        out.unlink(missing_ok=True)
        raise SitelensError(f"{out}: the freshly written bundle failed verification ({exc})") from exc


def checked_survey(survey: list, site: Site, source) -> list:
    """A survey's photos checked before the build starts, not when calibration reaches them
    minutes later: every label a work of the site (a typo would make a photo of a known work
    count as an unknown one, silently), every photo an image within the limits (its header)."""
    from runtime.errors import SiteError
    from runtime.image.image_io import probe_image

    known = set(site.instances)
    strange = sorted({i for q in survey for i in q.instances} - known)
    if strange:
        raise SiteError(f"{source}: {len(strange)} label(s) of the survey are not works of the site: "
                        f"{', '.join(strange[:5])}{' ...' if len(strange) > 5 else ''} (label what the site does "
                        "not hold __unknown__)")
    for q in survey:
        probe_image(q.path)
    return survey
