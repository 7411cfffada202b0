"""Evaluation reports a person can look at: failures contact sheet, score histograms, ROC.

``write_report(result, "report.html")`` writes the HTML plus PNGs beside it
(``report_failures.png``, ``report_scores.png``); ``.png`` writes the two pictures only.
Needs matplotlib (the `train` extra) for the charts; the contact sheet uses OpenCV.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import cv2
import numpy as np

from runtime.image.image_io import load_image
from runtime.thresholds import Thresholds

THUMB = 128


def _thumb(path: str | None, label: str, colour) -> np.ndarray:
    tile = np.full((THUMB + 22, THUMB, 3), 255, np.uint8)
    if path:
        try:
            img = load_image(path)
            h, w = img.shape[:2]
            f = THUMB / max(h, w)
            small = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
            y, x = (THUMB - small.shape[0]) // 2, (THUMB - small.shape[1]) // 2
            tile[y:y + small.shape[0], x:x + small.shape[1]] = small
        except Exception:  # noqa: BLE001 - a missing thumbnail must not stop a report
            pass
    cv2.rectangle(tile, (0, 0), (THUMB - 1, THUMB - 1), colour, 3)
    cv2.putText(tile, label[:22], (3, THUMB + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def failure_sheet(result: dict, ref_paths: dict[str, str], max_rows: int = 30) -> np.ndarray | None:
    """One row per failed query: the query, then its top-5 (green = right instance)."""
    rows = []
    for r in [r for r in result["results"] if not r["right"]][:max_rows]:
        truth = set(r["truth"])
        tiles = [_thumb(r["path"], ("unknown" if not truth else "q: " + ",".join(truth)), (0, 0, 0))]
        for inst, score in zip(r["ranked"], r["scores"]):
            colour = (0, 170, 0) if inst in truth else (220, 0, 0)
            tiles.append(_thumb(ref_paths.get(inst), f"{score:.2f} {inst}", colour))
        tiles += [np.full_like(tiles[0], 255)] * (6 - len(tiles))
        rows.append(np.hstack(tiles))
    return np.vstack(rows) if rows else None


def _top_support(r: dict) -> float:
    """Geometric support of the answer (the first candidate after re-ranking); 0 when unverified."""
    support = (r.get("support") or [None])[0]
    return float(support or 0.0)


def _evidence_rank(r: dict) -> float:
    """Verified answers above all others (2 + support), the rest by global score (at most 1)."""
    support = _top_support(r)
    return 2.0 + support if support else r["score"]


def roc_points(result: dict, key=lambda r: r["score"]):
    """True-accept rate of known queries vs false-accept rate of unknown ones, sweeping a threshold
    on ``key`` of the answer (default: its global score)."""
    known = [r for r in result["results"] if r["truth"]]
    unknown = [r for r in result["results"] if not r["truth"]]
    if not known or not unknown:
        return None
    ks = np.array([key(r) for r in known])
    kc = np.array([r["correct"] for r in known])
    us = np.array([key(r) for r in unknown])
    ts = np.unique(np.concatenate([ks, us, [np.inf]]))
    far = np.array([(us >= t).mean() for t in ts])
    tar = np.array([((ks >= t) & kc).mean() for t in ts])
    return far, tar


def score_charts(result: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    res = result["results"]
    verified = any(_top_support(r) > 0 for r in res)
    roc = roc_points(result)
    panels = 1 + verified + (roc is not None)
    fig, axes = plt.subplots(1, panels, figsize=(4.8 * panels, 3.6))
    axes = list(np.atleast_1d(axes))
    groups = (("correct top-1", "C2", lambda r: r["truth"] and r["correct"]),
              ("wrong top-1", "C3", lambda r: r["truth"] and not r["correct"]),
              ("unknown", "C7", lambda r: not r["truth"]))
    scores = [r["score"] for r in res]
    bins = np.linspace(min([0.0] + scores), 1.0, 30)
    ax = axes.pop(0)
    for label, colour, keep in groups:
        data = [r["score"] for r in res if keep(r)]
        if data:
            ax.hist(data, bins=bins, alpha=0.6, label=f"{label} ({len(data)})", color=colour)
    # the rule of the match mode the evaluation ran (thresholds are per mode since schema 2)
    rule = Thresholds.from_dict(result.get("thresholds")).rule(result.get("match") or "hnsw")
    if rule.score is not None and rule.global_path:
        ax.axvline(rule.score, color="k", ls="--", label=f"global-path threshold {rule.score:.3f}")
    ax.set(title="answer's global score", xlabel="cosine")
    ax.legend(fontsize=8)
    if verified:
        ax = axes.pop(0)
        top = max(_top_support(r) for r in res)
        sbins = np.linspace(0, max(1.0, top), 30)
        for label, colour, keep in groups:
            data = [_top_support(r) for r in res if keep(r)]
            if data:
                ax.hist(data, bins=sbins, alpha=0.6, label=f"{label} ({len(data)})", color=colour)
        if rule.support is not None:
            ax.axvline(rule.support, color="k", ls="--", label=f"support threshold {rule.support:g}")
        bars = sorted(set((rule.kind_support or {}).values()))
        for k, bar in enumerate(bars):  # the kinds' own bars (works of a kind are held to theirs)
            ax.axvline(bar, color="grey", ls=":", lw=1,
                       label=f"support per kind of work {bars[0]:g}-{bars[-1]:g}" if k == 0 else None)
        ax.set(title="answer's geometric support", xlabel="support (coverage-discounted inliers)", yscale="log")
        ax.legend(fontsize=8)
    if roc:
        ax = axes.pop(0)
        ax.plot(*roc, "-o", ms=2, label="by global score")
        if verified:
            ax.plot(*roc_points(result, key=_evidence_rank), "-o", ms=2, label="by support, then score")
        ax.set(title="open set ROC", xlabel="false-accept rate (unknown)", ylabel="true-accept rate (known)",
               xlim=(-0.02, 1.02), ylim=(0, 1.02))
        if result.get("false_accept_rate") is not None:
            ax.plot([result["false_accept_rate"]], [result["true_accept_rate"]], "r*", ms=12, label="bundle's rules")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(result: dict, out: str | Path, ref_paths: dict[str, str] | None = None) -> Path:
    """``ref_paths``: a reference image per instance for the contact sheet (blank tiles without)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    ref_paths = ref_paths or {}
    sheet = failure_sheet(result, ref_paths)
    sheet_path = Path(f"{stem}_failures.png")
    if sheet is not None:
        cv2.imwrite(str(sheet_path), sheet[:, :, ::-1])
    charts = score_charts(result, Path(f"{stem}_scores.png"))
    if out.suffix.lower() == ".png":
        return charts or sheet_path
    summary = {k: v for k, v in result.items() if k != "results"}
    parts = ["<html><head><meta charset='utf-8'><title>sitelens eval</title></head><body style='font-family:sans-serif'>",
             "<h1>sitelens evaluation</h1>", f"<pre>{html.escape(json.dumps(summary, indent=2))}</pre>"]
    if charts:
        parts.append(f"<h2>Scores</h2><img src='{charts.name}'>")
    fails = sum(not r["right"] for r in result["results"])
    parts.append(f"<h2>Failures ({fails})</h2>")
    parts.append(f"<img src='{sheet_path.name}'>" if sheet is not None else "<p>None.</p>")
    parts.append("<h2>All queries</h2><table border=1 cellspacing=0 cellpadding=3><tr><th>query</th><th>truth</th>"
                 "<th>best</th><th>score</th><th>margin</th><th>accepted</th></tr>")
    for r in result["results"]:
        parts.append(f"<tr style='background:{'#dfd' if r['right'] else '#fdd'}'><td>{html.escape(r['path'])}</td>"
                     f"<td>{html.escape(','.join(r['truth']) or '__unknown__')}</td><td>{html.escape(str(r['best']))}</td>"
                     f"<td>{r['score']:.3f}</td><td>{r['margin']:.3f}</td><td>{r['accepted']}</td></tr>")
    parts.append("</table></body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
