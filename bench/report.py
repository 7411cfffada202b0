"""Generate BENCHMARKS.md from bench/results/*.json: no figure is typed by hand.

Every table says which run it comes from (commit, date, machine, command). Results written by a
bench script without provenance are listed as stale, not shown as numbers.

    python bench/report.py [--check]     # --check: exit 1 if BENCHMARKS.md is not up to date
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from _ann import CALIBRATED_INTRINSIC, STRESS_INTRINSIC
from _common import RESULTS, ROOT

OUT = ROOT / "BENCHMARKS.md"


def _f(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{x:.0f}"
    return str(x)


def _ms(d: dict | None, key: str = "p50_ms") -> str:
    return "-" if not d else f"{d[key]:.1f}"


def _with_matcher(label: str, share, close: str = "") -> str:
    """A timing's label with the share of its frames that ran the learned matcher (when recorded)."""
    if share is None:
        return label + close
    return f"{label}{'; ' if close else ' ('}{share:.0%} run the learned matcher)"


def _origin(r: dict) -> str:
    p = r["provenance"]
    m = p["machine"]
    commit = (p.get("commit") or "?")[:10] + (" (uncommitted changes)" if p.get("dirty") else "")
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items() if v != "?")
    return (f"_From `{p['command']}` at commit {commit} on {p['date'][:10]}; {m.get('cores')} cores, "
            f"{m.get('cpu', '?')} ({', '.join(m.get('cpu_flags', [])) or 'no SIMD flags listed'})"
            f"{'; ' + versions if versions else ''}._")


def _generator(intrinsic: int | None) -> str:
    """The synthetic generator a matching row used (rows written before it was recorded: the stress one)."""
    intrinsic = STRESS_INTRINSIC if intrinsic is None else intrinsic
    return f"{'matched to real' if intrinsic == CALIBRATED_INTRINSIC else 'stress'} ({intrinsic})"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def hard_sets(r: dict) -> list[str]:
    rows = []
    for name, s in r["sets"].items():
        sift = s.get("sift_ransac_all_references") or {}
        off, ft = s["off_the_shelf"], s["fine_tuned"]
        rows.append([name, f"{off['known']} + {off['unknown']}", _f(sift.get("mP@1")), _f(off["mP@1"]),
                     _f(off["true_accept_rate"]), _f(off.get("wrong_accept_rate")), _f(off["false_accept_rate"]),
                     _f(off.get("GAP")), _f(ft["mP@1"]), _f(ft["mAP"]), _f(ft["true_accept_rate"]),
                     _f(ft.get("wrong_accept_rate")), _f(ft["false_accept_rate"]), _f(ft.get("GAP")),
                     _f(s["train_seconds"] / 60, 1) + (" (run kept from an earlier invocation)"
                                                       if s.get("training_reused") else ""),
                     _f(ft["eval_ms_per_query"], 0)])
    out = ["## Real photos with the product's defaults (`bench/hard_sets.py`)", "",
           "`sitelens bundle` (off the shelf) and `sitelens train` + `sitelens export` (fine-tuned), scored by "
           "`sitelens eval BUNDLE MANIFEST --json` on each set's open-set manifest (known photos + `__unknown__` "
           "photos of objects left out of the site). TAR: right answers accepted among known photos; WAR: known "
           "photos accepted as another work; FAR: unknown photos accepted; GAP: global average precision of every "
           "answer ranked by confidence (the Met benchmark's metric; '-' in results older than it). SIFT: classical "
           "SIFT + RANSAC against every reference, same run.", "", _origin(r), ""]
    out += _table(["set", "queries (known + unknown)", "SIFT+RANSAC mP@1", "off mP@1", "off TAR", "off WAR", "off FAR",
                   "off GAP", "fine-tuned mP@1", "fine-tuned mAP", "fine-tuned TAR", "fine-tuned WAR", "fine-tuned FAR",
                   "fine-tuned GAP", "training (min)", "eval ms/photo"], rows)
    multi = [(name, kind, s[key]["multi"]) for name, s in r["sets"].items()
             for kind, key in (("off the shelf", "off_the_shelf"), ("fine-tuned", "fine_tuned")) if "multi" in s[key]]
    if multi:
        out += ["", "Photos that show several works (`manifest_multi.csv`, `sitelens eval BUNDLE MANIFEST --multi`): "
                    "every work that verifies is an answer; recall = works shown that were answered, precision = "
                    "answers that are shown works.", ""]
        out += _table(["set", "network", "photos", "works answered", "multi recall", "multi precision"],
                      [[n, k, m["queries"], m["multi_answers"], _f(m["multi_recall"]), _f(m["multi_precision"])]
                       for n, k, m in multi])
    stem = r["provenance"].get("options", {}).get("out")
    pictures = [RESULTS / f"{stem}_{name}_{kind}_{what}.png" for name in r["sets"] for kind in ("off", "ft")
                for what in ("scores", "failures")] if stem else []
    links = [f"[{p.stem}]({p.relative_to(ROOT)})" for p in pictures if p.exists()]
    if links:
        out += ["", "Score distributions, ROC and failure sheets: " + ", ".join(links) + "."]
    return out + [""]


VERIFY_NAMES = {"xfeat": "XFeat (learned, ONNX; default)", "orb": "ORB", "sift": "SIFT", "none": "none (global descriptor only)"}


def verifiers(r: dict) -> list[str]:
    rows = []
    for name, s in r["sets"].items():
        for mode, m in s["verify"].items():
            rows.append([name, VERIFY_NAMES.get(mode, mode), _f(m["mP@1"]), _f(m["true_accept_rate"]),
                         _f(m["false_accept_rate"]), _ms(m["recognize_ms"]), _ms(m["recognize_ms"], "p95_ms"),
                         _f(m["bundle_mb"], 1), _f(m["build_seconds"] / 60, 1)])
    out = [f"## Verifying the shortlist: local features compared (`bench/verifiers.py`, {r['model']} network)", "",
           "The same site and descriptor network exported with each `--verify` choice (calibrated for the same "
           "false-accept target), scored by `sitelens eval BUNDLE MANIFEST --json` on the set's open-set manifest; "
           "recognize() timed per query photo (decoded image in, decision out).", "", _origin(r), ""]
    out += _table(["set", "verification", "mP@1", "TAR", "FAR", "recognize p50 ms", "p95 ms", "bundle MB",
                   "build (min)"], rows)
    return out + [""]


def _int8_bits(precision_report: dict | None) -> int:
    """Bits of the INT8 weights in an export's precision report (7 in results before 310090d,
    which did not record them)."""
    return (precision_report or {}).get("int8_weight_bits", 7)


def latency(r: dict) -> list[str]:
    f = r["frame"]
    dp, e2e, net = f["decode_preprocess"], f["end_to_end"], f["network"]
    model = r["site"].get("model", "off the shelf")
    provider = (net.get("providers") or ["CPUExecutionProvider"])[0]
    ort = "ONNX Runtime" if provider == "CPUExecutionProvider" else f"ONNX Runtime ({provider})"
    versions = ((r.get("provenance") or {}).get("machine") or {}).get("versions") or {}
    version = next((v for k, v in versions.items() if k.startswith("onnxruntime")), "?")
    flavour = "" if provider == "CPUExecutionProvider" else f", {provider}, ONNX Runtime {version}"
    out = [f"## The device path (`bench/latency.py`, {model} network{flavour})", "",
           f"A {f['frame']} frame (real photos of {r['site']['set']}, {r['site']['references']} references, "
           f"{model} descriptor network, "
           f"{r['site']['index_rows']} index rows with quarter turns), network input {f['input'][0]}x{f['input'][1]}; "
           "p50 / p95 in ms over repeated calls.", "", _origin(r), ""]
    int8 = net.get("onnxruntime_int8")
    kept = ((net.get("int8_gate") or {}).get("candidates") or {}).get("int8", {}).get("retained")
    bits = _int8_bits(net.get("int8_gate"))
    g_only, verified = e2e["global_only"], e2e["with_verification"]
    timings = [("decode + preprocess, JPEG, full decode", dp["jpeg_full_decode"]),
               ("decode + preprocess, JPEG, reduced-scale decode", dp["jpeg_reduced_decode"]),
               ("preprocess, RGB array", dp["array"]),
               (f"network, {ort}", net["onnxruntime"]),
               *([(f"network, {ort} INT8 (`--precision int8`, {bits}-bit weights; keeps {_f(kept)} of FP32's mP@1 on "
                   "simulated views, the gate asks 0.99)", int8)] if int8 else []),
               *[(f"network, ONNX Runtime CPU provider{' INT8' if name.endswith('int8') else ''} (same run)", net[name])
                 for name in ("onnxruntime_cpu_provider", "onnxruntime_cpu_provider_int8") if name in net],
               ("network, PyTorch eager (same network)", net["torch_eager"]),
               ("end to end, global descriptor only, array", g_only["array"]),
               ("end to end, global descriptor only, JPEG", g_only["jpeg"]),
               *([("end to end, global descriptor only, array, INT8 bundle", g_only["int8_array"]),
                  ("end to end, global descriptor only, JPEG, INT8 bundle", g_only["int8_jpeg"])] if int8 else []),
               (_with_matcher("end to end, with verification, array", verified.get("learned_matcher_share")),
                verified["array"]),
               ("end to end, with verification, JPEG", verified["jpeg"])]
    unknown = r.get("unknown_frames")
    if unknown:
        timings += [(_with_matcher(f"end to end, with verification, array, photos of works not in the site "
                                   f"({unknown['frames']}; {unknown['second_look_share']:.0%} take the second look",
                                   unknown.get("learned_matcher_share"), ")"), unknown["with_second_look"]),
                    ("the same photos without the second look", unknown["without_second_look"])]
        if unknown.get("without_learned_matcher"):
            timings.append(("the same photos without the learned matcher", unknown["without_learned_matcher"]))
    rows = [[label, _ms(d), _ms(d, "p95_ms")] for label, d in timings]
    rows.append([f"SIFT + RANSAC against all {r['sift_all']['references']} references", _f(r["sift_all"]["p50_ms"], 1),
                 _f(r["sift_all"]["p95_ms"], 1)])
    out += _table(["stage", "p50 ms", "p95 ms"], rows)
    faster = f"{ort} is **{net['speedup_p50']}x** faster than PyTorch eager at p50"
    if int8:
        faster += (f" (INT8: **{net['int8_speedup_vs_torch_p50']}x** faster than PyTorch eager FP32, "
                   f"{net['int8_speedup_vs_fp32_p50']}x faster than {ort} FP32)")
    if "onnxruntime_cpu_provider" in net:
        faster += (f"; it takes {net['onnxruntime']['p50_ms'] / net['onnxruntime_cpu_provider']['p50_ms']:.2f}x "
                   "the CPU provider's time")
        if int8 and "onnxruntime_cpu_provider_int8" in net:
            faster += f" (INT8: {int8['p50_ms'] / net['onnxruntime_cpu_provider_int8']['p50_ms']:.2f}x)"
    out += ["", f"{faster}; recognize() with verification is **{r['sift_all']['sitelens_cheaper_x_p50']}x** cheaper "
            "than SIFT against every reference.", ""]
    a = net.get("arithmetic")
    if a:
        out += [f"The network is {_f(a['gflop_per_frame'], 2)} GFLOP per frame (its convolutions and linear layers): "
                f"ONNX Runtime runs it at {_f(a['onnxruntime_gflops'], 0)} GFLOP/s, PyTorch eager at "
                f"{_f(a['torch_eager_gflops'], 0)}; this machine's float32 matrix product reaches "
                f"{_f(a['matmul_gflops']['numpy'], 0)} GFLOP/s (numpy) / {_f(a['matmul_gflops']['torch'], 0)} (torch). "
                f"5x over eager would need {_f(a['gflops_for_5x_over_eager'], 0)} GFLOP/s, "
                f"{_f(a['share_of_matmul_rate_for_5x'], 2)}x the matrix product's rate.", ""]
    o = net.get("other_runtime")
    if o:
        cos, ratio = o["cosine_to_onnxruntime"], o["time_over_onnxruntime_p50"]
        runtime = re.sub(r"-\S*", "", o["runtime"])  # the version without its build suffix
        line = (f"The same ONNX model through {runtime}, same run: float32 {_ms(o['openvino_fp32'])} ms p50 "
                f"({ratio['openvino_fp32']}x ONNX Runtime's time)")
        if "openvino_bf16" in o:
            line += (f"; bfloat16, which this CPU computes and ONNX Runtime's CPU provider does not, "
                     f"{_ms(o['openvino_bf16'])} ms ({ratio['openvino_bf16']}x; descriptors' cosine to float32 "
                     f"{_f(cos['openvino_bf16'], 4)})")
        if "openvino_int8_fp32" in o:
            line += (f"; the INT8 model {_ms(o['openvino_int8_fp32'])} ms ({ratio['openvino_int8_fp32']}x ONNX "
                     "Runtime's INT8 time)")
        out += [line + ".", ""]
    g = r["growth"]["with_verification"]
    out += _table(["index rows", *g.keys()], [["recognize() with verification, p50 ms", *[_ms(v) for v in g.values()]],
                                             ["p95 ms", *[_ms(v, "p95_ms") for v in g.values()]]])
    out += ["", "Matching alone, synthetic descriptors (curved low-dimensional manifold, not trivially separable; "
            "queries from the same distribution, not near a reference), HNSW with ef chosen as at export. The generator "
            "is set by its intrinsic dimension: matched to the dev sets' real descriptors (`bench/intrinsic_dim.py`), "
            "or the stress setting (about 3x their TwoNN dimension):", ""]
    out += _table(["references", "dim", "generator (intrinsic)", "M / ef", "HNSW p50 ms", "HNSW recall@1 vs exact",
                   "exact p50 ms"],
                  [[m["refs"], m["dim"], _generator(m.get("intrinsic")), f"{m['M']} / {m['ef']}", _ms(m["hnsw"]),
                    _f(m["hnsw"]["recall@1_vs_exact"]), _ms(m["exact"])] for m in r["matching"]])
    return out + [""]


def reliability_attacks(r: dict) -> list[str]:
    rows = [[name, a.get("outcome"), a.get("exit_status"), _f(a.get("peak_mb_above_baseline"), 1),
             _f(a.get("seconds"), 2), (a.get("message") or "").split(": ", 1)[-1][:110].replace("|", "/")]
            for name, a in r["attacks"].items()]
    bad = [name for name, a in r["attacks"].items() if a.get("outcome") not in ("refused", "survived")]
    out = ["## Reliability: what a hostile bundle, image or stream sends (`bench/reliability.py`, attacks)", "",
           "Each attack in its own child process: the outcome (refused with sitelens's own error; survived for the "
           "stream cycles), the child's exit status, its peak memory above its baseline once the hostile input was "
           f"prepared, seconds, and the start of the error. Accepted or crashed: **{len(bad)}**"
           + (f" ({', '.join(bad)})" if bad else "") + ".", "", _origin(r), ""]
    return out + _table(["attack", "outcome", "exit", "peak MB", "seconds", "message"], rows) + [""]


def reliability(r: dict) -> list[str]:
    if "fuzz_summary" not in r:
        return reliability_attacks(r)
    fz, cs, cr = r["fuzz_summary"], r["concurrency_small"], r["concurrency_real"]
    out = ["## Reliability (`bench/reliability.py`)", "", _origin(r), ""]
    out += _table(["what", "result"], [
        ["bundle mutations and tamperings tried", fz["mutations_tried"]],
        ["refused with sitelens's own error", fz["refused"]],
        ["crashes (child process killed by a signal)", fz["crashes"]],
        ["other exceptions", fz["other_exceptions"]],
        ["structural tamperings that opened (should be none)",
         ", ".join(r["fuzz"]["structural_small"]["accepted"] + r["fuzz"]["structural_real"]["accepted"]) or "none"],
        [f"recognize calls, {cs['threads']} threads, small bundle, during {cs['edits']['adds']} adds / "
         f"{cs['edits']['removes']} removes / {cs['edits']['saves']} saves", cs["recognize_calls"]],
        ["errors", cs["errors"]],
        ["p99 latency during edits vs without (ms), small bundle",
         f"{cs['latency_during_edits']['p99_ms']:.1f} vs {cs['latency_without_edits']['p99_ms']:.1f}"],
        [f"recognize calls, {cr['threads']} threads, real demo-site bundle, with edits", cr["recognize_calls"]],
        ["errors", cr["errors"]],
        ["p99 latency during edits vs without (ms), real bundle",
         f"{cr['latency_during_edits']['p99_ms']:.1f} vs {cr['latency_without_edits']['p99_ms']:.1f}"],
        ["reloaded instances that failed to recognize their own reference",
         cs["reloaded_self_recognition_failures"] + cr["reloaded_self_recognition_failures"]],
    ])
    return out + [""] + (reliability_attacks(r) if "attacks" in r else [])


def sim_vs_real(r: dict) -> list[str]:
    rows = []
    for name, s in r["sets"].items():
        g = s["median_gap_sim_minus_real"]
        rows.append([name, _f(s["real"]["right_score"].get("q50")), _f(s["simulated"]["right_score"].get("q50")),
                     _f(s["real"]["best_wrong_score"].get("q50")), _f(s["simulated"]["best_wrong_score"].get("q50")),
                     _f(s["real"]["right_support"].get("q50"), 1), _f(s["simulated"]["right_support"].get("q50"), 1),
                     _f(g["right_score"])])
    out = ["## Simulated vs real views (`bench/sim_vs_real.py`)", "",
           "Medians of the right answer's and the best wrong answer's global score, and of the right answer's "
           "geometric support, for real photos and simulated views of the references (off the shelf).", "",
           _origin(r), ""]
    out += _table(["set", "right score real", "right score sim", "best wrong real", "best wrong sim",
                   "right support real", "right support sim", "gap (sim - real)"], rows)
    if r.get("png"):
        out += ["", f"![simulated vs real](bench/results/{Path(r['png']).name})"]
    return out + [""]


def stream(r: dict) -> list[str]:
    out = ["## Camera walkthrough (`bench/stream.py`)", "", _origin(r), ""]
    rows = [[k, _f(v) if not isinstance(v, dict) else json.dumps(v)] for k, v in r.items()
            if k not in ("provenance", "events", "timeline")]
    return out + _table(["metric", "value"], rows) + [""]


def export_report(r: dict) -> list[str]:
    out = ["## Edge export: precision x match mode (`bench/export_report.py`)", "", _origin(r), ""]
    def shipped(p):
        return f"int8 ({_int8_bits(p.get('agreement'))}-bit weights)" if p["shipped"] == "int8" else p["shipped"]

    rows = [[p["set"], p["requested"], shipped(p), p["match"], p["bundle_mb"], _ms(p["embed_latency"]), _f(p["mP@1"]),
             _f((p.get("agreement") or {}).get("candidates", {}).get(p["shipped"], {}).get("retained"))]
            for p in r.get("precision", [])]
    out += _table(["set", "requested", "shipped", "match", "bundle MB", "network p50 ms", "mP@1", "share of FP32 mP@1"], rows)
    return out + [""]


def regions(r: dict) -> list[str]:
    rows = []
    for name, s in r["sets"].items():
        for kind in ("off_the_shelf", "fine_tuned"):
            if kind not in s:
                continue
            m = s[kind]
            rows.append([name, kind.replace("_", " "), *[
                f"{_f(m['full_frame'][f'recall@{k}'])} / {_f(m['max_over_crops'][f'recall@{k}'])} / "
                f"{_f(m['mean_over_crops'][f'recall@{k}'])}" for k in (1, 5, 10)],
                f"{_f(m['network_ms_per_frame']['full_frame'], 1)} / {_f(m['network_ms_per_frame']['crops_batch'], 1)}"])
    out = ["## The object inside a cluttered frame: query crops (`bench/regions.py`)", "",
           f"Recall@k of the right work on the global shortlist from the full frame / the best of the frame and "
           f"five crops of {r['share']:.0%} of each side (centre, corners; one batch) / their mean. Verification "
           "re-ranks the shortlist of 10, so recall@10 is what a region must raise to pay for its cost.", "",
           _origin(r), ""]
    out += _table(["set", "network", "recall@1", "recall@5", "recall@10", "network ms: frame / 5 crops"], rows)
    return out + [""]


def ann_options(r: dict) -> list[str]:
    out = ["## Searching 100k references: graph degree and reduced dimensions (`bench/ann_options.py`; "
           f"{_generator(r.get('intrinsic'))} generator)", "",
           f"{r['refs']} synthetic {r['dim']}-d descriptors (as in `latency.py`; generator: "
           f"{_generator(r.get('intrinsic'))}); recall@1 against exact search in "
           "full dimension, p50 ms per query on one thread. `pca_hnsw`: the graph is built on a PCA projection, "
           "its shortlist re-ranked by exact cosine." + (
               " `hnsw_smaller`: the same generator with fewer dimensions (a smaller descriptor, same intrinsic "
               "dimension), recall against exact search on those." if any(x["method"] == "hnsw_smaller" for x in r["rows"])
               else ""), "", _origin(r), ""]
    rows = [[x["method"], x["dim"], _f(x.get("variance_kept")), x["M"], x["ef"], x.get("short", 1),
             _f(x["recall@1_vs_exact"]), _ms(x)] for x in r["rows"]]
    return out + _table(["method", "graph dim", "variance kept", "M", "ef", "shortlist", "recall@1", "p50 ms"],
                        rows) + [""]


def intrinsic_dim(r: dict) -> list[str]:
    out = ["## How hard is search on real descriptors? Intrinsic dimension (`bench/intrinsic_dim.py`)", "",
           "TwoNN intrinsic dimension (Facco et al. 2017) of the first reference photo of every work of each dev set, "
           "described by each network among the kept bundles, per set and all sets pooled; then the synthetic "
           "generator's (median of " + str(r["seeds"]) + " draws of the same number of rows). The matching "
           "benchmarks use the smallest generator setting at least as high as every real measurement: "
           f"**{r['smallest_matching']}** (in use: {r['calibrated_intrinsic_in_use']}; stress rows: "
           f"{r['stress_intrinsic']}).", "", _origin(r), ""]
    names = list(r["real"][0]["sets"])
    rows = [[x["bundle"], "fine-tuned" if x["fine_tuned"] else "off the shelf",
             *[f"{x['sets'][n]['twonn']} ({x['sets'][n]['rows']})" for n in names],
             f"{x['pooled']['twonn']} ({x['pooled']['rows']})"] for x in r["real"]]
    out += _table(["network", "", *[f"{n} (rows)" for n in names], "pooled (rows)"], rows)
    sizes = list(r["generator"][0]["twonn_at_rows"])
    out += ["", "The generator at the same numbers of rows:", ""]
    out += _table(["generator intrinsic", *[f"{n} rows" for n in sizes]],
                  [[g["intrinsic"], *[_f(g["twonn_at_rows"][n], 1) for n in sizes]] for g in r["generator"]])
    return out + [""]


BUILD_STAGES = ("network", "local-feature models", "describe", "index", "calibrate/simulated views",
                "calibrate/look-alikes", "calibrate/simulated views left out", "calibrate/walls and labels",
                "calibrate/cluttered scenes", "write")


def build_cost(r: dict) -> list[str]:
    several = len({s.get("workers", 1) for s in r["sites"].values()}) > 1
    result = (r["provenance"].get("options") or {}).get("out") or "build_cost"
    out = ["## Building a bundle as the site grows (`bench/build_cost.py`)"
           + (", in worker processes (`--workers`)" if several else "")
           + (f": {result}" if result != "build_cost" else ""), "",
           f"`sitelens bundle` off the shelf with the defaults, on sites of the shared sets' reference images "
           f"({r['real_references']} real ones; procedural paintings beyond), each stage timed; seconds. KB per "
           "reference image: the bundle's members that grow with the site (the three models apart). Then the "
           "incremental rebuild (`bundle --update OLD`) after adding works, and the embedded demo site.", "",
           _origin(r), ""]
    rows = []
    for n, s in r["sites"].items():
        sec = s["seconds"]
        rows.append([s["references"], s["works"], s.get("workers", 1), _f(sec["total"] / 60, 1),
                     _f(s["seconds_per_reference"], 2),
                     *[_f(sec.get(k), 0) for k in ("describe", "index", "calibrate")],
                     *[_f(sec.get(k), 0) for k in BUILD_STAGES if k.startswith("calibrate/")],
                     _f(s["file_mb"], 1), _f(s["site_bytes_per_reference_image"] / 1e3, 1)])
    out += _table(["references", "works", "workers", "total (min)", "s per reference", "describe", "index", "calibrate",
                   "simulated views", "look-alikes", "views left out", "walls and labels", "cluttered scenes",
                   "bundle MB", "KB per reference image"], rows)
    members = sorted({m for s in r["sites"].values() for m in s["bytes_per_reference_image"]})
    out += ["", "Bytes per reference image, per member:", ""]
    out += _table(["references", *members],
                  [[s["references"], *[s["bytes_per_reference_image"].get(m, "-") for m in members]]
                   for s in r["sites"].values()])
    u, d = r.get("update"), r.get("demo_site")
    if u:
        out += ["", f"Incremental rebuild of the {u['references']}-reference site after adding {u['added_works']} "
                    f"works: **{_f(u['seconds']['total'], 1)} s** ("
                    + ", ".join(f"{k} {_f(v, 1)} s" for k, v in u["seconds"].items() if k != "total") + ")."]
    for d in r.get("demo_sites") or ([d] if d else []):
        out += ["", f"The demo site ({d['works']} works, {d['references']} reference images) built in full"
                    + (f" with {d['workers']} worker process(es)" if several else "") + ": "
                    f"**{_f(d['seconds']['total'], 0)} s**, of which calibration {_f(d['seconds'].get('calibrate'), 0)} s; "
                    f"bundle {_f(d['file_mb'], 1)} MB ({_f(d['models_mb'], 1)} MB of models)."]
    return out + [""]


def _bars(settings: dict | None) -> str:
    """The calibrated verification bars of a bundle (``bundle_settings``): homography support / 3-D inliers."""
    rule = (settings or {}).get("rule") or {}
    if not rule:
        return "-"
    kinds = sorted((rule.get("kind_support") or {}).values())
    per_kind = f" (kinds {_f(kinds[0])}-{_f(kinds[-1])})" if kinds else ""
    return f"{_f(rule.get('support'))}{per_kind} / {_f(rule.get('fundamental'))}"


def large_site(r: dict) -> list[str]:
    rows = []
    big = r["large_bundle"]
    bars = "settings" in big   # recorded since the bundles' settings are
    for name, s in r["sets"].items():
        for where in ("own_site", "large_site"):
            m = s[where]
            rows.append([name if where == "own_site" else "", f"{s['references']} (its own)" if where == "own_site"
                         else f"{r['references']} (all sets)", _f(m["mP@1"]), _f(m["true_accept_rate"]),
                         _f(m.get("wrong_accept_rate")), _f(m["false_accept_rate"]), _f(m.get("GAP")),
                         _ms(m["recognize_ms"]), _ms(m["recognize_ms"], "p95_ms")]
                        + ([_bars(m.get("settings") if where == "own_site" else big.get("settings"))] if bars else []))
    result = (r["provenance"].get("options") or {}).get("out") or "large_site"
    out = ["## Answers when the site is large (`bench/large_site.py`)"
           + (f": {result}" if result != "large_site" else ""), "",
           f"One site of every shared set's references ({r['references']} reference images, {r['works']} works"
           + (f", {r['painted']} of them procedural paintings" if r.get("painted") else "") + "), built off the "
           f"shelf with the defaults ({_f(big['mb'], 1)} MB" + (f", {_f(big['build_seconds'] / 60, 1)} min"
                                                                 if big.get("build_seconds") else "")
           + "); each set's query photos (its open-set manifest) scored against its own site and against the "
           "large one. recognize() per photo, decoded image in.", "", _origin(r), ""]
    budget = [[name, _f(s["large_site"]["recognize_ms_budget"]["budget_ms"], 0), _ms(s["large_site"]["recognize_ms_budget"]),
               _ms(s["large_site"]["recognize_ms_budget"], "p95_ms"),
               _f(s["large_site"]["recognize_ms_budget"]["truncated_share"])]
              for name, s in r["sets"].items() if "recognize_ms_budget" in s["large_site"]]
    out += _table(["set", "site references", "mP@1", "TAR", "WAR", "FAR", "GAP", "recognize p50 ms", "p95 ms"]
                  + (["support / 3-D bar"] if bars else []), rows)
    if bars:
        out += ["", "The bars are each bundle's calibrated verification thresholds (homography support, 3-D "
                    "inliers), set by its hardest unknowns; in brackets, when the bundle was calibrated per kind "
                    "of work, the range of its kinds' support bars (a work is held to its kind's; the 3-D bar is "
                    "the site's)."]
    if budget:
        out += ["", "recognize() on the large site with a time budget per frame (`budget_ms`; later verification "
                    "stages skipped once it is spent):", ""]
        out += _table(["set", "budget ms", "p50 ms", "p95 ms", "frames cut short"], budget)
    return out + [""]


def budget(r: dict) -> list[str]:
    labels = {"none": "no budget", "chunks": f"budget, looked at every {r['chunk_rows']} rows",
              "stages": "budget, looked at between stages only"}
    rows = []
    for name, s in [*r["sets"].items(), *([("all sets", r["all"])] if "all" in r else [])]:
        for k, (way, m) in enumerate(s.items()):
            rows.append([name if k == 0 else "", labels.get(way, way), _ms(m), _ms(m, "p95_ms"), _ms(m, "p99_ms"),
                         _f(m.get("max_ms"), 1), _f(m.get("truncated_share")), _f(m.get("answers_changed"))])
    out = [f"## recognize() under a time budget on the large site (`bench/budget.py`): {r['rows']} rows, "
           f"{_f(r['budget_ms'], 0)} ms", "",
           f"The large site of `bench/large_site.py` ({r['references']} reference images"
           + (f", {r['painted']} of them procedural paintings" if r.get("painted") else "") + f", {r['rows']} index rows"
           + (f", built with the CLI's defaults in {_f(r['build_seconds'] / 60, 1)} min" if r.get("build_seconds") else "")
           + f"); each set's open-set query photos recognized with verification, frame by frame in turn without a "
           f"budget and with {_f(r['budget_ms'], 0)} ms per frame, the budget looked at every few rows (the default) "
           "or between stages only. Answers changed: the accepted work (or none) differs from the unbudgeted one.",
           "", _origin(r), ""]
    out += _table(["set", "way", "p50 ms", "p95 ms", "p99 ms", "max ms", "frames cut short", "answers changed"], rows)
    return out + [""]


def learn_finetuned(r: dict) -> list[str]:
    """``learn_from_visitors.py --finetune``: before, after and the control (same epochs, no frames)."""
    rows, reasons = [], []
    for name, s in r["sets"].items():
        b, a, c = s["before"], s["after"] or s["before"], s["control"]
        ft = s.get("finetune") or {}
        rows.append([name, s["references"], f"{s['logged']} ({s['logged_wrong']})", f"{s['added']} ({s['added_wrong']})",
                     f"{b['known']} / {b['unknown']}", s.get("held_out_of_logged_works", "-"),
                     *(f"{_f(b[k])} → {_f(a[k])} (control {_f(c[k])})"
                       for k in ("mP@1", "true_accept_rate", "wrong_accept_rate", "false_accept_rate")),
                     f"{ft.get('val_mP@1_start', '-')} → {ft.get('val_mP@1_best', '-')} (epoch {ft.get('best_epoch', '-')})",
                     " / ".join(f"{k} {v:.0f}" for k, v in s["seconds"].items())])
        reasons.append(f"- {name}: " + (", ".join(f"{why} ({n})" for why, n in s["refused"].items()) or "none"))
    o = r["finetune"]
    out = ["### Fine-tuned on the visitors' frames (`learn --finetune`)", "",
           f"The set's bundle comes from a {o['train_epochs']}-epoch training run; the first week is logged with "
           f"images and `learn --finetune` trains {o['finetune_epochs']} more epochs on the references and the chosen "
           "frames, then builds the bundle again (recalibrated). Control: the same run trained the same epochs on "
           "the references alone, built with the same options: the difference between after and control is what "
           "the visitors' frames brought. Validation: the run's own simulated-view mP@1 at the start and at the "
           "best epoch (training keeps the best).", "", _origin(r), ""]
    out += _table(["set", "references", "logged (wrong)", "added (wrong)", "held out known / unknown",
                   "held-out photos of logged works", "mP@1", "TAR", "WAR", "FAR", "validation mP@1", "seconds"], rows)
    return out + ["", "Entries left out, by reason:", "", *reasons, ""]


def learn_from_visitors(r: dict) -> list[str]:
    if "finetune" in r:
        return learn_finetuned(r)
    rows, reasons = [], []
    for name, s in r["sets"].items():
        b, a = s["before"], s["after"] or s["before"]
        rows.append([name, s["references"], s["first_week"], f"{s['logged']} ({s['logged_wrong']})",
                     f"{s['added']} ({s['added_wrong']})", f"{b['known']} / {b['unknown']}", s.get("held_out_of_logged_works", "-"),
                     f"{_f(b['mP@1'])} → {_f(a['mP@1'])}", f"{_f(b['true_accept_rate'])} → {_f(a['true_accept_rate'])}",
                     f"{_f(b.get('wrong_accept_rate'))} → {_f(a.get('wrong_accept_rate'))}",
                     f"{_f(b['false_accept_rate'])} → {_f(a['false_accept_rate'])}", "yes" if s["recalibrated"] else "no"])
        reasons.append(f"- {name}: " + (", ".join(f"{why} ({n})" for why, n in s["refused"].items()) or "none"))
    out = ["## A site that learns from its visitors (`bench/learn_from_visitors.py`)", "",
           "Each set's query photos split in halves (known and unknown alike): the first half recognized with the "
           "visitor log on (`recognize --log`), `sitelens learn` adds the strongest entries as references, the "
           "held-out half scored with the bundle before and after. Logged: verified answers written to the log "
           "(in brackets: answers that were wrong: another work, or a photo of no known work); added: entries "
           "`learn` took (in brackets: wrong pseudo-labels). Only held-out photos of works the first week logged can "
           "gain.", "", _origin(r), ""]
    out += _table(["set", "references", "first-week photos", "logged (wrong)", "added (wrong)",
                   "held out known / unknown", "held-out photos of logged works", "mP@1", "TAR", "WAR", "FAR", "recalibrated"], rows)
    return out + ["", "Entries left out, by reason:", "", *reasons, ""]


def survey(r: dict) -> list[str]:
    """``survey.py``: the defaults' bundle and the one calibrated with a survey walk, each fold's
    held-out half, then both folds pooled (every query photo held out once)."""
    rows = []
    for name, s in r["sets"].items():
        for k, fold in enumerate(s["folds"]):
            d, v = fold["defaults"], fold["survey"]
            ins = fold.get("survey_in_sample") or {}
            rows.append([name, f"fold {k}", f"{fold['survey_known']} / {fold['survey_unknown']}",
                         f"{d['known']} / {d['unknown']}", f"{_bars(s)} → {_bars(fold)}",
                         *(f"{_f(d.get(key))} → {_f(v.get(key))}" for key in
                           ("mP@1", "true_accept_rate", "wrong_accept_rate", "false_accept_rate", "GAP")),
                         f"{_f(ins.get('tar'))} / {_f(ins.get('far'))}",
                         f"{_f(s.get('build_s'), 0)} → {_f(fold.get('build_s'), 0)}"])
        if "pooled" in s:
            d, v = s["pooled"]["defaults"], s["pooled"]["survey"]
            rows.append([f"**{name}**", "both folds", "", f"{d['known']} / {d['unknown']}", "",
                         f"{d['top1']} → {v['top1']}", f"{d['right']} → {v['right']}",
                         f"{d['wrong_work']} → {v['wrong_work']}", f"{d['unknown_accepted']} → {v['unknown_accepted']}",
                         "", "", ""])
    out = ["## A survey walk (`bench/survey.py`)", "",
           "Each set's query photos split in halves (known and unknown alike, the halves of "
           "`learn_from_visitors.py`); in turn one half is a survey walk (`sitelens bundle --survey`) and the other is "
           "scored, with the defaults' bundle and with the bundle calibrated with that survey (defaults → survey). "
           "Bars: homography support (per kind of work) / 3-D inliers of each bundle's default match mode. "
           "In sample: the survey's own TAR / FAR under the rule it helped choose. Both folds: photos, not rates "
           "(known ranked first rightly, answered rightly, answered as another work; unknown accepted).", "",
           _origin(r), ""]
    out += _table(["set", "held out", "survey known / unknown", "scored known / unknown", "bars", "mP@1", "TAR",
                   "WAR", "FAR", "GAP", "in sample TAR / FAR", "build s"], rows)
    shows = [f"- {name}, fold {k}: " + "; ".join(
        f"{e['photo']} ({e['label']} → {', '.join(e['shows'])}: {e['negative']})" for e in fold["survey_shows"])
        for name, s in r["sets"].items() for k, fold in enumerate(s["folds"]) if fold.get("survey_shows")]
    if shows:
        out += ["", "Survey photos that verified works beyond their label (what `bundle` warns of; a known "
                "photo's negative leaves those works out, an unknown photo's keeps them):", "", *shows]
    return out + [""]


def _change(row: dict, base: dict | None, key: str) -> str:
    """`` (+0.012)``: ``row``'s ``key`` against the baseline row's; empty without either."""
    if base is None or row.get(key) is None or base.get(key) is None:
        return ""
    return f" ({row[key] - base[key]:+.3f})"


def bundle_size(r: dict) -> list[str]:
    rows, members = [], sorted({m for s in r["sets"].values() for v in s.values() for m in v["bytes_per_reference_image"]})
    for name, variants in r["sets"].items():
        base = variants.get("default")
        for variant, v in variants.items():
            def delta(key):
                return _change(v, None if variant == "default" else base, key)
            rows.append([name, variant, " ".join(r["variants"].get(variant, [])) or "(defaults)", v["reference_images"],
                         _f(v["kb_per_reference_image"], 1), *(v["bytes_per_reference_image"].get(m, 0) for m in members),
                         _f(v["mP@1"]) + delta("mP@1"), _f(v["true_accept_rate"]) + delta("true_accept_rate"),
                         _f(v.get("wrong_accept_rate")) + delta("wrong_accept_rate"),
                         _f(v["false_accept_rate"]) + delta("false_accept_rate"), _f(v.get("GAP")),
                         _f(v.get("build_s"), 0), _f(v.get("eval_ms_per_query"), 0)])
    variants = ", ".join(v for v in r["variants"] if v != "default")
    out = [f"## Bytes per work against answers (`bench/bundle_size.py`, {r.get('_result', 'bundle_size')}): {variants}", "",
           "Each open dev set's site built off the shelf with the defaults but for the options that set which "
           "local features a reference keeps and how they are stored, or how much verification does per frame; "
           "bytes per reference image by member (`inspect --json`, models apart) beside the set's scores "
           "(`eval --json` on its open-set manifest; in brackets: the change from the defaults), the build's "
           "seconds (`bundle --workers` as in the command; - when the bundle was kept from an earlier run) and "
           "eval's milliseconds per query photo.", "", _origin(r), ""]
    out += _table(["set", "variant", "options", "reference images", "KB per reference image", *members,
                   "mP@1", "TAR", "WAR", "FAR", "GAP", "build s", "eval ms per query"], rows)
    return out + [""] + _over_draws(r)


def _over_draws(r: dict) -> list[str]:
    """bundle_size's variants built with other calibration seeds (``seedK``, ``<variant>_seedK``)
    gathered with their seed-0 variant: mean and range of each score over the draws."""
    rows = []
    for name, variants in r["sets"].items():
        families: dict[str, list[dict]] = {}
        for variant, v in variants.items():
            family = re.sub(r"_?seed\d+$", "", variant) or "default"
            families.setdefault(family, []).append(v)
        for family, draws in families.items():
            if len(draws) < 2:
                continue
            cells = []
            for key in ("mP@1", "true_accept_rate", "wrong_accept_rate", "false_accept_rate", "GAP"):
                x = [d[key] for d in draws if d.get(key) is not None]
                cells.append(f"{sum(x) / len(x):.3f} ({min(x):.3f}-{max(x):.3f})" if x else "-")
            rows.append([name, family, len(draws), _f(draws[0]["kb_per_reference_image"], 1), *cells])
    if not rows:
        return []
    return ["Over calibration draws (`--calibration-seed`: the variant built with seeds 0, 1, 2, ...): the mean "
            "of each score and, in brackets, its range. A rule rests on the few strongest of a few hundred "
            "simulated unknowns, so the draw alone moves a set of 81 photos by a photo or more; compare "
            "variants by these means.", ""] + _table(
        ["set", "variant", "draws", "KB per reference image", "mP@1", "TAR", "WAR", "FAR", "GAP"], rows) + [""]


def descriptor_codes(r: dict) -> list[str]:
    rows = []
    for name, codes in r["sets"].items():
        base = codes.get("int8")
        for code, v in codes.items():
            def delta(key):
                return _change(v, None if code == "int8" else base, key)
            rows.append([name, code, _f(v["bytes_per_keypoint"], 0),
                         _f(v["bytes_per_keypoint"] * v["keypoints_per_reference_image"] / 1e3, 1),
                         _f(v["mP@1"]) + delta("mP@1"), _f(v["true_accept_rate"]) + delta("true_accept_rate"),
                         _f(v.get("wrong_accept_rate")) + delta("wrong_accept_rate"),
                         _f(v["false_accept_rate"]) + delta("false_accept_rate"), _f(v.get("GAP"))])
    out = ["## Smaller local descriptors, probed (`bench/descriptor_codes.py`)", "",
           "Each open dev set's default bundle with its references' stored XFeat descriptors replaced in memory by "
           "what a smaller code gives back (int8: as stored; bitsB: B bits a dimension; pcaK: the site's own K "
           "principal components, int8; pcaKbB: B bits a component), scored with the bundle's own rules, "
           "calibrated on int8 (a shipped code would be recalibrated). In brackets: the change from int8.", "",
           _origin(r), ""]
    out += _table(["set", "code", "bytes per keypoint", "descriptor KB per reference image", "mP@1", "TAR", "WAR",
                   "FAR", "GAP"], rows)
    return out + [""]


def kind_bars(r: dict) -> list[str]:
    base = r["groupings"].get("one rule", {}).get("sets", {})
    rows = []
    for label, g in r["groupings"].items():
        bars = ", ".join(f"{k} ({g['kinds'][k]}): {_f(v)}" for k, v in sorted(g["support_bars"].items()))
        for name, v in g["sets"].items():
            def delta(key):
                return _change(v, None if label == "one rule" else base.get(name), key)
            rows.append([label, name, _f(v["mP@1"]) + delta("mP@1"), _f(v["true_accept_rate"]) + delta("true_accept_rate"),
                         _f(v.get("wrong_accept_rate")) + delta("wrong_accept_rate"),
                         _f(v["false_accept_rate"]) + delta("false_accept_rate")])
        rows.append([label, "calibration samples", "", _f(g["calibration"]["tar"]), "", _f(g["calibration"]["far"])])
        rows.append([label, "support bars", bars, "", "", ""])
    out = ["## A verification bar per kind of work, probed (`bench/kind_bars.py`)", "",
           f"The large site of `bench/large_site.py` ({r['references']} reference images, {r['works']} works): "
           "calibration's samples gathered on its bundle as a build does, each set's query photos' evidence found "
           "on it (every verification stage run), then decided with the bundle's rule (one rule) or with a "
           "homography-support bar per kind of work (by set: the dev set a work comes from; k-means K: groups "
           "of the works' mean global descriptors), each from the negatives' support among that kind's works "
           "within the kind's share of the budget; 3-D bar and global rule stay the site's. In brackets: the "
           "change from one rule. Calibration samples: TAR of the simulated views, FAR over all negatives. "
           "The sets' own sites: \"Answers when the site is large\".", "", _origin(r), ""]
    out += _table(["kinds", "set", "mP@1", "TAR", "WAR", "FAR"], rows)
    return out + [""]


def colour_check(r: dict) -> list[str]:
    rows, gaps = [], []
    for name, s in r["sets"].items():
        for label in ("without", "with"):
            m = s[label]
            rows.append([name if label == "without" else "", label, _f(m["mP@1"]), _f(m["true_accept_rate"]),
                         _f(m.get("wrong_accept_rate")), _f(m["false_accept_rate"]), _f(m.get("GAP")),
                         _f(m["mb"], 1) + (" (kept)" if m.get("reused") else "")])
        g = s["gaps"]
        right, wrong = g["right"], g["wrong"]
        gaps.append([name, f"{len(right)} (+{g['unmeasured']['right']} unmeasured)",
                     _f(sorted(right)[round(0.95 * (len(right) - 1))], 1) if right else "-", _f(max(right), 1) if right else "-",
                     f"{len(wrong)} (+{g['unmeasured']['wrong']} unmeasured)",
                     ", ".join(_f(x, 1) for x in sorted(wrong)) or "-",
                     ", ".join(_f(x, 1) for x in sorted(g["unknown"])) or "-"])
    out = ["## The colour test of verified answers (`bench/colour_check.py`)", "",
           "Each dev set's own site built off the shelf without keypoint colour (`--no-colour`) and with it (the "
           "default), its query photos (open-set manifest) scored on both. Then, on the colour bundle with the "
           f"colour test lifted, the colour gap (a*b*) of every answer a homography verified, right or wrong "
           f"work: the bar is {_f(r['bar'], 1)}. Bundles marked kept were built by an earlier run of the script "
           "(with the code of that time), not this one.", "", _origin(r), ""]
    out += _table(["set", "colour", "mP@1", "TAR", "WAR", "FAR", "GAP", "MB"], rows)
    out += ["", "Colour gaps of verified answers (colour test lifted):", ""]
    out += _table(["set", "right works", "p95", "max", "wrong works", "their gaps", "works not in the site"], gaps)
    return out + ["", f"![colour gaps](bench/results/{(r['provenance'].get('options') or {}).get('out') or 'colour_check'}.png)", ""]


def build_profile(r: dict) -> list[str]:
    comps = [c for c in r["components"] if c != "rest"]
    rows = [[name, _f(s["seconds"], 1), *[_f(s["components"].get(c), 1) for c in comps], _f(s["rest"], 1)]
            for name, s in r["stages"].items() if s["seconds"] >= 1.0]
    total = sum(s["seconds"] for s in r["stages"].values())
    rows.append(["**all stages**", _f(total, 1), *[_f(r["components"][c], 1) for c in comps],
                 _f(r["components"]["rest"], 1)])
    out = ["## Where a build spends its time (`bench/build_profile.py`)", "",
           f"`sitelens bundle` off the shelf with the defaults on {r['references']} of the shared sets' reference "
           f"images ({r['works']} works), one process under cProfile, one profile per stage; each stage's own seconds "
           "(its inner stages apart) split into the work behind them. The profiler slows Python code more than the "
           "native work, so the rest (Python: rules, bookkeeping) is overstated a little.", "", _origin(r), ""]
    out += _table(["stage", "seconds", *comps, "rest"], rows)
    name = (r["provenance"].get("options") or {}).get("out") or "build_profile"
    return out + ["", f"![build profile](bench/results/{name}.png)", ""]


RENDERERS = {"hard_sets.py": hard_sets, "large_site.py": large_site, "budget.py": budget, "learn_from_visitors.py": learn_from_visitors, "survey.py": survey, "bundle_size.py": bundle_size,
             "descriptor_codes.py": descriptor_codes, "kind_bars.py": kind_bars, "build_cost.py": build_cost, "build_profile.py": build_profile, "verifiers.py": verifiers, "latency.py": latency, "reliability.py": reliability,
             "sim_vs_real.py": sim_vs_real, "stream.py": stream, "export_report.py": export_report, "regions.py": regions,
             "intrinsic_dim.py": intrinsic_dim, "ann_options.py": ann_options, "colour_check.py": colour_check}
ORDER = list(RENDERERS)


def render() -> str:
    docs, stale = [], []
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        script = (r.get("provenance") or {}).get("command", "").split(" ")[0]
        if script in RENDERERS:
            r["_result"] = path.stem   # which result file a section comes from (README cites them by name)
            docs.append((ORDER.index(script), path.name, RENDERERS[script](r)))
        else:
            stale.append(path.name)
    lines = ["# Measured numbers", "",
             "Generated by `bench/report.py` from `bench/results/*.json`; do not edit by hand. Each section names "
             "the run it comes from. Machines are shared and noisy: compare medians and ratios measured in one run.",
             ""]
    for _, _, section in sorted(docs):
        lines += section
    if stale:
        lines += ["## Results without provenance (not shown)", "", *[f"- `{name}`" for name in stale], ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = render()
    if args.check:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
