"""Incremental rebuild: a site's folder changed a little, its bundle follows in seconds.

``sitelens bundle SITE -o NEW --update OLD`` compares the site with OLD by image content (the
sha256 of every reference file, kept per index row in ``labels.json``): works whose reference
images are all unchanged keep their rows, descriptors and keypoints as they are; works that are
new, or whose images changed, are described afresh with OLD's own models (``Recognizer.add``, the
device's path); works no longer in the site are removed. The HNSW search breadth is measured (and
re-chosen, unless OLD's was set by hand) on simulated views, metadata comes from the site.

The acceptance thresholds are OLD's: calibration simulates hundreds of views of the whole site and
dominates a full build, and a few works more or less barely move what it measures. The manifest's
calibration report says when they were calibrated and how many works changed since, and a full
build (without ``--update``) recalibrates. In a bundle calibrated with kinds of works
(``export/kinds.py``) a new work joins the kind it is nearest (``Recognizer.add``) and is held to
that kind's support bar. Models and settings (precision, local features, turns)
are OLD's too; a changed model or setting needs a full build.

Signing: with ``sign``, OLD must carry a valid signature by that same key (an edit must not launder
a bundle whose contents nobody vouched for).
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from runtime.bundle import format as bf
from runtime.errors import SitelensError
from runtime.image.image_io import file_digest
from runtime.bundle.manifest import IndexInfo, created_stamp
from runtime.recognizer import Recognizer
from runtime.site import Site, load_site
from runtime.versions import installed as installed_versions

from .stages import StageClock

log = logging.getLogger("sitelens")


def _old_bundle(old: Path, sign) -> bf.BundleContents:
    if sign is None:
        return bf.read_bundle(old)
    from runtime.bundle.signing import TrustedKey, key_id, load_private_key

    private = load_private_key(sign) if isinstance(sign, (str, Path)) else sign
    public = private.public_key()
    mine = TrustedKey(key_id(public), public, str(sign))
    try:
        return bf.read_bundle(old, trusted_keys=[mine])
    except SitelensError as exc:
        raise SitelensError(f"{exc} -- --update with --sign re-signs only a bundle that this key signed and "
                            "that verifies; build it in full instead") from None


def _site_images(site: Site) -> dict[str, list[tuple[str, Path]]]:
    """{instance: [(digest, path), ...]} of the site's references, unreadable files listed together."""
    out, bad = {}, []
    for ref in site.references:
        try:
            out.setdefault(ref.instance, []).append((file_digest(ref.path), ref.path))
        except SitelensError as exc:
            bad.append(str(exc))
    if bad:
        raise SitelensError(f"{site.name}: {len(bad)} unreadable reference image(s):\n  " + "\n  ".join(bad))
    return out


def update_bundle(site, old: str | Path, out: str | Path, *, metadata: str | Path | None = None,
                  progress: bool = True, sign=None, clock: StageClock | None = None) -> Path:
    """Write ``out``: ``old`` brought up to date with ``site`` (see the module docstring)."""
    from .bundler import USER_SET, _tune

    clock = clock or StageClock()
    start = time.perf_counter()
    old, out = Path(old), Path(out)
    with clock.stage("read"):
        contents = _old_bundle(old, sign)
        labels = contents.json(bf.LABELS)
        digests = labels.get("digests") or []
        if len(digests) != contents.manifest.index.count or not all(digests):
            raise SitelensError(f"{old}: holds no image digests (built before sitelens could update bundles, or "
                                "edited with `sitelens add`); build it in full once")
        if contents.manifest.references.get("per_instance_mean"):
            raise SitelensError(f"{old}: per-instance mean descriptors cannot be updated; build it in full")
        site = site if isinstance(site, Site) else load_site(site, metadata=metadata)
        wanted = _site_images(site)
        rec = Recognizer(contents, providers=["CPUExecutionProvider"], verify=False)
    old_created = contents.manifest.created  # the manifest object is updated in place below
    held: dict[str, set] = {}
    for inst, digest in zip(labels["instances"], digests):
        held.setdefault(inst, set()).add(digest)
    same = {i for i, imgs in wanted.items() if held.get(i) == {d for d, _ in imgs}}
    removed = sorted(set(held) - same)
    fresh = sorted(set(wanted) - same)
    with clock.stage("describe"):
        for inst in removed:
            rec.remove(inst)
        for inst in tqdm(fresh, desc="describe new works", unit="work", disable=not progress):
            try:
                rec.add(inst, [path for _, path in wanted[inst]])  # blank images are left out, with a warning
            except SitelensError as exc:
                log.warning("sitelens: %s", exc)
    for inst in rec.instances:
        rec.metadata[inst] = dict(site.metadata.get(inst, {}))
    manifest = rec.manifest
    with clock.stage("index"):
        live = Site(site.name, [r for r in site.references if r.instance in set(rec.instances)], site.metadata)
        tuning = manifest.index.tuning or {}
        rec.index = rec.index.compacted()  # removed rows dropped, the graph rebuilt without them
        new_tuning = _tune(rec.index, rec.embedder, live, choose=tuning.get("note") != USER_SET)
    added = sum(len(wanted[i]) for i in fresh)
    manifest.created = created_stamp()
    manifest.built_with = installed_versions(build=True)
    manifest.index = IndexInfo(rec.index.params, rec.index.live_count, new_tuning)
    if manifest.thresholds is not None:
        report = dict(manifest.thresholds.calibration or {})
        first = report.get("since_calibration") or {}
        report["since_calibration"] = {
            "calibrated": first.get("calibrated", old_created),
            "updates": first.get("updates", 0) + 1,
            "works_added_or_changed": first.get("works_added_or_changed", 0) + len(fresh),
            "works_removed": first.get("works_removed", 0) + len(set(removed) - set(fresh)),
        }
        manifest.thresholds = replace(manifest.thresholds, calibration=report)
    with clock.stage("write"):
        rec.save(out, signing_key=sign)
        Recognizer.open(out, providers=["CPUExecutionProvider"], verify=False)
    clock.seconds["total"] = time.perf_counter() - start
    log.info("sitelens: updated %s -> %s in %.0f s: %d work(s) kept, %d added or changed (%d image(s)), %d removed; "
             "thresholds kept from %s (%s)", old, out, clock.seconds["total"], len(same), len(fresh), added,
             len(set(removed) - set(fresh)), old_created, clock.summary())
    return out

