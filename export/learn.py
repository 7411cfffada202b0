"""``sitelens learn BUNDLE LOG -o NEW``: a site that learns from its visitors.

Frames the device accepted by geometric verification (``runtime.visitor_log``) are added as extra
references of their works when they clear a stricter bar than the one that accepted them:

- the entry was logged by this site's bundle (same site and model fingerprint: rows from another
  network would be meaningless here), and its work is still in the site;
- geometric evidence at least ``support_factor`` times the bundle's rule (support, or the
  fundamental-matrix count for a rule that verifies by it): a homography or 3-D fit that many
  times stronger than the one that accepts an answer, which a wrong work does not reach by chance;
- the view's global descriptor (its upright row), searched again in the bundle as it is now,
  still shortlists the work (the entry was verified against this bundle's references, not another version's). It need
  not rank it first: frames the global descriptor ranks low and geometry confirms are the ones
  that teach the site most;
- not a near copy (cosine >= ``redundant``) of a row the work already has or of a frame chosen
  before it, and at most ``max_per_work`` frames per work (the strongest first);
- it does not outrank their own work for any other logged frame (``_Frames.outranked_by``): a
  visitor's view of one work must not become what other works' photos look most like.

Nothing is added silently: the report lists every frame added (work, score, support) and every
one left out with its reason. With ``site`` (the site's references), the new bundle is
recalibrated as a full build is; without it the old thresholds are kept and the report says so
(the added rows are real views of known works: they raise scores of those works' photos, and the
held-out measurement in ``bench/learn_from_visitors.py`` checks false accepts did not rise).

With ``finetune`` (the training run the bundle's network came from) the chosen frames are not added
as rows of the old network: their images join the site's references, the run trains further on
them, and the bundle is built again from the new run (``_finetuned``). The frames are chosen by the
same rules, judged by the old bundle, which is the one that accepted them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from runtime.errors import SitelensError
from runtime.recognizer import Recognizer
from runtime.visitor_log import LogEntry, read_log

log = logging.getLogger("sitelens")


def _bar(rule, instance: str, evidence: dict, factor: float) -> bool:
    support, fundamental = float(evidence.get("support") or 0), float(evidence.get("fundamental") or 0)
    bar = rule.support_for(instance)
    if bar is not None and support >= factor * bar:
        return True
    return rule.fundamental is not None and fundamental >= factor * rule.fundamental


def _upright(entry: LogEntry) -> np.ndarray:
    rots = entry.rows.rotations
    return np.asarray(entry.rows.descriptors[rots.index(0) if 0 in rots else 0], np.float32)


def choose(rec: Recognizer, entries: list[LogEntry], support_factor: float = 2.0, max_per_work: int = 5,
           redundant: float = 0.97, need_image: bool = False) -> tuple[list[LogEntry], list[dict]]:
    """(entries to add, [{entry, instance, reason}] of those left out), by the module's rules.
    ``need_image``: entries logged without their image are left out (fine-tuning trains on pixels)."""
    rule = rec.thresholds.rule("exact")
    shortlist = max(rec.verifier.params.shortlist if rec.verifier else 2, 2)
    m = rec.manifest
    refused, passed = [], []
    live = set(rec.instances)
    ours = _Frames(rec, [e for e in entries if e.frame is not None and e.instance in live and
                         e.site.get("fingerprint") == m.model.fingerprint and e.site.get("site_id") == m.site.site_id])
    for e in entries:
        reason, detail = None, ""
        if e.site.get("fingerprint") != m.model.fingerprint or e.site.get("site_id") != m.site.site_id:
            reason = "logged by another site's bundle or network"
        elif e.instance not in live:
            reason = "its work is no longer in the site"
        elif e.frame is None:
            reason = "no whole-frame descriptor to check it against other visitors' photos"
        elif need_image and not e.has_image:
            reason = "logged without its image (fine-tuning needs frames logged with --log-images)"
        elif not _bar(rule, e.instance, e.evidence, support_factor):
            reason = f"geometric evidence under {support_factor:g}x the bundle's rule"
            detail = f"support {e.evidence.get('support')}, fundamental {e.evidence.get('fundamental')}"
        else:
            hits = rec.index.search_rows(_upright(e), shortlist, "exact")[0]
            score = next((h[1] for h in hits if h[0] == e.instance), None)
            if score is None:
                reason = "the work is not in the frame's shortlist in this bundle"
                detail = ", ".join(h[0] for h in hits[:3])
            elif score >= redundant:
                reason, detail = "a near copy of a reference the work has", f"cosine {score:.3f}"
        if reason:
            refused.append({"entry": e.path.name, "instance": e.instance, "reason": reason, "detail": detail})
        else:
            passed.append(e)
    chosen: list[LogEntry] = []
    per_work: dict[str, list[np.ndarray]] = {}
    for e in sorted(passed, key=lambda e: (-float(e.evidence.get("support") or 0), e.path.name)):
        mine = per_work.setdefault(e.instance, [])
        d = _unit(_upright(e))[0]
        if len(mine) >= max_per_work:
            refused.append({"entry": e.path.name, "instance": e.instance, "detail": "",
                            "reason": f"{max_per_work} stronger frames of this work chosen already"})
        elif any(float(d @ other) >= redundant for other in mine):
            refused.append({"entry": e.path.name, "instance": e.instance, "detail": "",
                            "reason": "a near copy of a stronger frame chosen already"})
        elif (beaten := ours.outranked_by(e)):
            refused.append({"entry": e.path.name, "instance": e.instance,
                            "detail": f"{len(beaten)}: " + ", ".join(beaten[:3]) + (", ..." if len(beaten) > 3 else ""),
                            "reason": "would outrank their own work for logged frames of other works"})
        else:
            mine.append(d)
            chosen.append(e)
    return sorted(chosen, key=lambda e: e.path.name), refused


def _unit(x) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, np.float32))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class _Frames:
    """The logged frames that judge a view (``outranked_by``), with what is fixed for the whole
    run computed once: each frame's unit descriptor and its best cosine to its own work's rows."""

    def __init__(self, rec: Recognizer, entries: list[LogEntry]):
        self.entries = entries
        self.q = _unit([e.frame for e in entries]) if entries else np.zeros((0, rec.index.dim), np.float32)
        rows = rec.index.rows_of({e.instance for e in entries})
        self.best_own = np.array([float(np.max(rec.index.descriptors[rows[e.instance]] @ q)) if rows[e.instance]
                                  else -1.0 for e, q in zip(entries, self.q)], np.float32)

    def outranked_by(self, e: LogEntry) -> list[str]:
        """The logged frames of other works whose whole-frame descriptor is closer to one of
        ``e``'s rows than to any row of its own work in the bundle: visitors' photos look alike
        (one camera, one light, one gallery), so a visitor's view can rank above the catalogue for
        other works' photos and push their work out of the shortlist. The log's other frames, each
        verified, are the visitors' photos to check that on; an entry that outranks any of them is
        left out."""
        if not self.entries:
            return []
        closest = np.max(self.q @ _unit(e.rows.descriptors).T, axis=1)
        return [f.path.name for f, c, own in zip(self.entries, closest, self.best_own)
                if f is not e and f.instance != e.instance and float(c) >= float(own)]


def learn(bundle: str | Path, log_folder: str | Path, out: str | Path, site=None, support_factor: float = 2.0,
          max_per_work: int = 5, trusted_keys=None, sign=None, calibration_views: int | None = None,
          progress: bool = True, finetune: str | Path | None = None, finetune_epochs: int = 3,
          run_out: str | Path | None = None, workers: int = 1) -> dict:
    """Write ``out``: ``bundle`` with the visitor log's strongest frames as extra references; the
    report (a dict) says what was added and what was left out, and why. ``site``: recalibrate
    on it (``calibration_views`` as ``BuildOptions.calibration_views``).

    ``finetune``: the training run ``bundle``'s network came from. The chosen frames' images
    (logged with ``--log-images``; frames without one are left out) join ``site``'s references,
    the run's network is trained ``finetune_epochs`` more epochs on them (``training.finetune``;
    the new run goes to ``run_out``, default ``out`` with the suffix ``.run``, with the frames in
    its ``visitor_frames/``), and the bundle is built again from the new run as ``bundle`` was
    built (``BuildOptions.like``: its precision, local features, turns, codes, target FAR,
    calibration seed, site id), recalibrated; ``workers`` as ``BuildOptions.workers``. Needs ``site``."""
    if support_factor < 1.0:
        raise SitelensError(f"--support-factor {support_factor}: at least 1 (the bar that accepted the frame)")
    if max_per_work < 1:
        raise SitelensError(f"--max-per-work {max_per_work}: at least 1")
    if finetune is not None:
        if site is None:
            raise SitelensError("--finetune needs --site: the network trains on the site's references and the new "
                                "bundle describes them again")
        if finetune_epochs < 1:
            raise SitelensError(f"--finetune-epochs {finetune_epochs}: at least 1")
        run_out = Path(run_out) if run_out is not None else Path(out).with_suffix(".run")
        if (run_out / "config.json").exists():
            raise SitelensError(f"{run_out}: holds a training run already; give another --run-out or remove it")
    rec = Recognizer.open(bundle, trusted_keys=trusted_keys)
    if rec.verifier is None:
        raise SitelensError(f"{bundle}: learning needs a bundle that verifies (built with --verify)")
    if finetune is not None:
        from training.checkpoint import read_config

        theirs = read_config(finetune).get("fingerprint")
        if theirs != rec.manifest.model.fingerprint:
            raise SitelensError(f"{finetune}: not the run {bundle}'s network came from (its network "
                                f"{str(theirs)[:12]}, the bundle's {rec.manifest.model.fingerprint[:12]})")
    entries, problems = read_log(log_folder)
    chosen, refused = choose(rec, entries, support_factor, max_per_work, need_image=finetune is not None)
    if finetune is not None:
        return _finetuned(rec, chosen, refused, site, out, Path(finetune), finetune_epochs, run_out, {
            "bundle": str(bundle), "log": str(log_folder), "entries": len(entries), "unreadable": problems,
            "support_factor": support_factor, "max_per_work": max_per_work},
            calibration_views, workers, sign, progress)
    before = rec.index.live_count
    for e in chosen:
        rec.add_rows(e.instance, [e.rows], [f"visitor:{e.path.name}"], [e.digest])
    report = {"bundle": str(bundle), "log": str(log_folder), "entries": len(entries), "unreadable": problems,
              "added": [_added(e) for e in chosen],
              "refused": refused, "rows_before": before, "rows_after": rec.index.live_count,
              "support_factor": support_factor, "max_per_work": max_per_work, "finetune": None}
    if chosen and site is not None:
        from runtime.site import load_site

        from .calibration import calibrate

        old = rec.thresholds
        views = {} if calibration_views is None else {"min_views": calibration_views, "max_views": calibration_views}
        rec.thresholds = calibrate(rec, load_site(site), old.target_far, progress=progress, **views)
        report["thresholds"] = {"recalibrated": True, "before": old.rule("hnsw").to_dict(),
                                "after": rec.thresholds.rule("hnsw").to_dict()}
    else:
        report["thresholds"] = {"recalibrated": False,
                                "why": "nothing added" if not chosen else "kept the bundle's (give --site to recalibrate)"}
    if chosen:
        rec.manifest.thresholds = rec.thresholds
        rec.save(out, signing_key=sign)
    report["out"] = str(out) if chosen else None
    return report


def _added(e: LogEntry) -> dict:
    return {"entry": e.path.name, "instance": e.instance, "score": round(e.score, 4),
            "support": e.evidence.get("support"), "fundamental": e.evidence.get("fundamental")}


def _finetuned(rec: Recognizer, chosen: list[LogEntry], refused: list[dict], site, out, run: Path, epochs: int,
               run_out: Path, report: dict, calibration_views, workers: int, sign, progress: bool) -> dict:
    """``learn``'s ``finetune`` path: the chosen frames' images join the site, the run trains on
    them, the bundle is built again from the new run. Returns the report."""
    from runtime.site import Reference, Site, load_site
    from runtime.visitor_log import entry_image
    from training.finetune import finetune as finetune_run

    from .bundler import build_bundle
    from .options import BuildOptions

    site = site if isinstance(site, Site) else load_site(site)
    in_site = set(site.instances)
    kept = []
    for e in chosen:
        if e.instance not in in_site:
            refused.append({"entry": e.path.name, "instance": e.instance, "detail": "",
                            "reason": "its work is not in --site (the new bundle holds the site's works)"})
            continue
        try:
            kept.append((e, entry_image(e)))
        except SitelensError as exc:
            refused.append({"entry": e.path.name, "instance": e.instance, "reason": "its image cannot be read",
                            "detail": str(exc)})
    report.update(added=[_added(e) for e, _ in kept], refused=refused, rows_before=rec.index.live_count)
    if not kept:
        report.update(rows_after=rec.index.live_count, out=None, finetune=None,
                      thresholds={"recalibrated": False, "why": "nothing added"})
        return report
    frames = run_out / "visitor_frames"
    frames.mkdir(parents=True, exist_ok=True)
    refs = list(site.references)
    for e, data in kept:   # the image as logged (already checked to decode), named after its entry
        path = frames / f"visitor-{e.path.stem}.jpg"
        path.write_bytes(data)
        refs.append(Reference(path, e.instance))
    metadata = {**{i: dict(meta) for i, meta in rec.manifest.instances.items() if meta}, **site.metadata}
    grown = Site(site.name, refs, metadata)
    log.info("sitelens: fine-tuning %s for %d epoch(s) on %d references (%d from visitors)", run, epochs,
             len(refs), len(kept))
    finetune_run(run, grown, run_out, epochs, progress=progress)
    options = BuildOptions.like(rec.manifest, calibration_views=calibration_views, workers=workers, sign=sign)
    build_bundle(grown, out, run_out, options, progress=progress)
    new = Recognizer.open(out)
    from training.checkpoint import read_config

    config = read_config(run_out)
    report.update(rows_after=new.index.live_count, out=str(out), finetune={
        "from": str(run), "run": str(run_out), "epochs": epochs, "frames": len(kept),
        "fingerprint_before": rec.manifest.model.fingerprint, "fingerprint_after": new.manifest.model.fingerprint,
        "val_mP@1_start": (config.get("history") or [{}])[0].get("val_mP@1"),
        "val_mP@1_best": (config.get("best") or {}).get("val_mP@1"), "best_epoch": (config.get("best") or {}).get("epoch")},
        thresholds={"recalibrated": True, "before": rec.thresholds.rule("hnsw").to_dict(),
                    "after": new.thresholds.rule("hnsw").to_dict()})
    return report
