"""The device path on this machine, one run; prints JSON (``--out NAME`` also writes bench/results/).

- frame: a 1280x720 frame (a real photo of the set, resized) given as an RGB array and as JPEG
  bytes: decode + preprocess (full vs reduced-scale JPEG decode), the network alone (ONNX Runtime
  FP32 and INT8 vs PyTorch eager, same network, same run, and the ratios; the same ONNX model through
  OpenVINO too when it is installed, ``bench/_other_runtime.py``; when the recognizer runs on another
  provider than ONNX Runtime's CPU one, the CPU provider beside it), and end to end (image in,
  decision out) with the global descriptor only (FP32 and INT8 bundles) and with verification on.
  The INT8 bundle is the same site exported with ``--precision int8``; whether it passed the
  precision gate is recorded next to its times.
- unknown_frames: recognize() with verification on photos of works the site does not hold (the
  open set's unknown photos, their works removed): the frames that take the second look, with and
  without it.
- sift_all: classical SIFT + RANSAC against every reference on the same frames, and how many times
  cheaper sitelens's recognize() is.
- growth: recognize() with verification as the site grows to 1k and 10k reference rows (rows added
  by jittering the real ones: the shortlist and the local features per candidate stay realistic).
- matching: the index alone at 1k / 10k / 100k synthetic descriptors: HNSW with the ef chosen as at
  export (recall@1 >= 0.99 against exact search) vs exact search. The descriptors' intrinsic
  dimension is matched to the dev sets' real descriptors (``bench/intrinsic_dim.py``); a stress
  generator about 3x harder (``--stress``) is measured beside it.

The site's bundle is exported off the shelf (ImageNet weights), or from a training run with
``--model RUN`` (``sitelens train`` then ``sitelens export``: what a site ships by default; a
fine-tuned descriptor ranks the right work first more often, so fewer frames take the second look).

    python bench/latency.py [--set smvs_books] [--model run/] [--size 224] [--repeat 40] [--refs 1000 10000 100000] [--out latency]
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import DEV_SETS, OPEN_SETS, emit, percentiles, timed, timed_together  # first: before numpy loads (runtime/models/blas_threads.py)

import cv2
import numpy as np
from _ann import CALIBRATED_INTRINSIC, STRESS_INTRINSIC, ground_truth, synthetic_descriptors
from _other_runtime import openvino_for
from _other_runtime import summary as other_summary
from _roofline import forward_gflop, matmul_gflops

from runtime.image.image_io import load_image
from runtime.image.preprocess import resize_for_model

FRAME = (1280, 720)


def frames_of(manifest: Path, n: int, unknown: bool = False) -> list[np.ndarray]:
    """The first ``n`` query photos (``unknown``: those of works the site does not hold), at 1280x720."""
    from runtime.site import load_queries

    out = []
    for q in [q for q in load_queries(manifest) if q.is_unknown == unknown][:n]:
        img = load_image(q.path)
        out.append(cv2.resize(img, FRAME, interpolation=cv2.INTER_CUBIC if img.shape[1] < FRAME[0] else cv2.INTER_AREA))
    return out


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def cycle(items):
    state = {"i": 0}

    def nxt():
        state["i"] += 1
        return items[state["i"] % len(items)]
    return nxt


def arithmetic(net, tx, ort_t, torch_t) -> dict:
    """The network's work per frame against this machine's float32 matrix-product rate: what a
    speed-up over PyTorch eager can reach at most."""
    gflop = forward_gflop(net, tx)
    matmul = {lib: round(matmul_gflops(backend=lib), 1) for lib in ("numpy", "torch")}
    peak = max(matmul.values())
    rate = (lambda t: round(gflop / float(np.median(t)), 1))
    need = gflop / (float(np.median(torch_t)) / 5)
    return {"gflop_per_frame": round(gflop, 3), "matmul_gflops": matmul,
            "onnxruntime_gflops": rate(ort_t), "torch_eager_gflops": rate(torch_t),
            "gflops_for_5x_over_eager": round(need, 1), "share_of_matmul_rate_for_5x": round(need / peak, 2)}


def cpu_provider_runs(models: dict, rec, threads: int, x) -> dict:
    """The bundles' models on ONNX Runtime's CPU provider (``onnxruntime_cpu_provider[_int8]``), to
    time beside the provider the recognizer chose (OpenVINO, CUDA)."""
    from runtime.models.embedder import Embedder

    runs = {}
    for kind, onnx_bytes in models.items():
        emb = Embedder(onnx_bytes, rec.spec, providers=["CPUExecutionProvider"], threads=threads)
        runs["onnxruntime_cpu_provider" + ("" if kind == "fp32" else f"_{kind}")] = (lambda e=emb: e.run(x))
    return runs


def frame_section(rec, frames, repeat: int, threads: int, rec_int8=None, models: dict | None = None) -> dict:
    """``models``: the bundles' ONNX bytes ({"fp32": ..., "int8": ...}), also timed through OpenVINO
    when it is installed."""
    import torch

    from training.network import DescriptorNet

    spec = rec.spec
    jpegs = [jpeg(f) for f in frames]
    nf, nj = cycle(frames), cycle(jpegs)
    out = {"frame": f"{FRAME[0]}x{FRAME[1]}", "input": list(spec.target_shape(FRAME[1], FRAME[0]))}
    out["decode_preprocess"] = {
        "jpeg_full_decode": percentiles(timed(lambda: resize_for_model(load_image(nj()), spec), repeat)),
        "jpeg_reduced_decode": percentiles(timed(lambda: resize_for_model(load_image(nj(), rec.decode_need), spec),
                                                 repeat)),
        "array": percentiles(timed(lambda: resize_for_model(load_image(nf()), spec), repeat)),
    }
    x = resize_for_model(frames[0], spec)[None]
    torch.set_num_threads(threads)
    net = DescriptorNet().train(False)
    tx = torch.from_numpy(x)

    def eager():
        with torch.no_grad():
            net(tx)

    # in alternating blocks, so that a slow spell of the machine does not fall on one of them only
    runs = {"onnxruntime": lambda: rec.embedder.run(x), "torch_eager": eager}
    if rec_int8 is not None:
        runs["onnxruntime_int8"] = lambda: rec_int8.embedder.run(x)
    cpu = cpu_provider_runs(models or {}, rec, threads, x) if rec.providers[0] != "CPUExecutionProvider" else {}
    refs = {"fp32": rec.embedder.run(x), **({"int8": rec_int8.embedder.run(x)} if rec_int8 is not None else {})}
    other, other_facts = openvino_for({k: v for k, v in (models or {}).items() if k in refs}, x, threads, refs)
    times = timed_together({**runs, **cpu, **other}, repeat)
    ort_t, torch_t = times["onnxruntime"], times["torch_eager"]
    out["network"] = {"onnxruntime": percentiles(ort_t), "torch_eager": percentiles(torch_t),
                      "speedup_p50": round(float(np.median(torch_t) / np.median(ort_t)), 2), "timed": "in alternating blocks"}
    if rec_int8 is not None:
        int8_t = times["onnxruntime_int8"]
        out["network"]["onnxruntime_int8"] = percentiles(int8_t)
        out["network"]["int8_speedup_vs_torch_p50"] = round(float(np.median(torch_t) / np.median(int8_t)), 2)
        out["network"]["int8_speedup_vs_fp32_p50"] = round(float(np.median(ort_t) / np.median(int8_t)), 2)
        out["network"]["int8_gate"] = rec_int8.manifest.model.details.get("precision_report")
    out["network"]["providers"] = rec.providers
    for name in cpu:  # the same models on ONNX Runtime's CPU provider when another one was chosen
        out["network"][name] = percentiles(times[name])
    if other:
        out["network"]["other_runtime"] = other_summary(times, other, other_facts)
    out["network"]["arithmetic"] = arithmetic(net, tx, ort_t, torch_t)
    # global descriptor only, FP32 and INT8 bundles, arrays and JPEGs: also in alternating blocks
    from runtime.recognizer import Recognizer

    plain = Recognizer.open(rec.path, threads=threads, verify=False)   # the same bundle, global descriptor only
    e2e = {"array": lambda: plain.recognize(nf()), "jpeg": lambda: plain.recognize(nj())}
    if rec_int8 is not None:  # built without verification (main)
        e2e.update(int8_array=lambda: rec_int8.recognize(nf()), int8_jpeg=lambda: rec_int8.recognize(nj()))
    global_only = {name: percentiles(t) for name, t in timed_together(e2e, repeat).items()}
    global_only["timed"] = "in alternating blocks"
    verified = timed_together({"array": lambda: rec.recognize(nf()), "jpeg": lambda: rec.recognize(nj())}, repeat)
    out["end_to_end"] = {"global_only": global_only,
                         "with_verification": {**{name: percentiles(t) for name, t in verified.items()},
                                               "timed": "in alternating blocks"}}
    return out


def path_shares(rec, frames) -> dict:
    """One recognize() per frame: the share of frames whose first candidates verified nothing, so
    that the second look ran, and the share on which the learned matcher (LighterGlue) ran (None
    when the bundle has none)."""
    first, matcher = rec.verifier.params.candidates, rec.verifier.matcher
    looked, ran = [], set()
    match = matcher.match if matcher is not None else None
    try:
        for i, f in enumerate(frames):
            if matcher is not None:
                matcher.match = lambda *a, i=i: ran.add(i) or match(*a)
            looked.append(len(rec.recognize(f).verification or {}) > first)
    finally:
        if matcher is not None:
            matcher.match = match
    return {"second_look_share": round(float(np.mean(looked)), 3),
            "learned_matcher_share": round(len(ran) / len(frames), 3) if matcher is not None else None}


def unknown_section(bundle: Path, set_name: str, n: int, repeat: int, threads: int) -> dict | None:
    """recognize() with verification on photos of works the site does not hold (the open set's
    ``__unknown__`` photos, their works removed from the site): the frames that take the second
    look, timed with and without it in the same run."""
    from runtime.recognizer import Recognizer
    from runtime.site import load_site

    open_set = OPEN_SETS.get(set_name)
    if open_set is None or not open_set.exists():
        return None
    rec = Recognizer.open(bundle, threads=threads)
    kept = {r.instance for r in load_site(open_set).references}
    removed = sorted(set(rec.instances) - kept)
    for inst in removed:
        rec.remove(inst)
    frames = frames_of(open_set, n, unknown=True)
    nf = cycle(frames)
    out = {"frames": len(frames), "instances_removed": len(removed), **path_shares(rec, frames),
           "with_second_look": percentiles(timed(lambda: rec.recognize(nf()), repeat))}
    second_look, rec.verifier.params.second_look = rec.verifier.params.second_look, 0
    out["without_second_look"] = percentiles(timed(lambda: rec.recognize(nf()), repeat))
    rec.verifier.params.second_look = second_look
    out["second_look_cost_x_p50"] = round(out["with_second_look"]["p50_ms"] / out["without_second_look"]["p50_ms"], 2)
    if out["learned_matcher_share"]:
        glue, rec.verifier.params.glue_candidates = rec.verifier.params.glue_candidates, 0
        out["without_learned_matcher"] = percentiles(timed(lambda: rec.recognize(nf()), repeat))
        rec.verifier.params.glue_candidates = glue
        out["learned_matcher_cost_x_p50"] = round(out["with_second_look"]["p50_ms"]
                                                  / out["without_learned_matcher"]["p50_ms"], 2)
    return out


class SiftAll:
    """Classical baseline: SIFT + ratio test + RANSAC homography against every reference."""

    def __init__(self, references: list[np.ndarray], side: int = 640):
        self.sift, self.side = cv2.SIFT_create(nfeatures=2000), side
        self.refs = [self.features(img) for img in references]
        self.matcher = cv2.BFMatcher(cv2.NORM_L2)

    def features(self, img):
        from runtime.verify.local_features import gray, working_image

        kp, desc = self.sift.detectAndCompute(working_image(gray(img), self.side), None)
        return (np.float32([k.pt for k in kp]) if kp else np.zeros((0, 2), np.float32)), desc

    def best(self, img) -> int:
        qk, qd = self.features(img)
        best, best_n = -1, 0
        for i, (rk, rd) in enumerate(self.refs):
            if qd is None or rd is None or len(rd) < 2 or len(qd) < 2:
                continue
            pairs = self.matcher.knnMatch(qd, rd, k=2)
            good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
            if len(good) < 8:
                continue
            _, mask = cv2.findHomography(qk[[m.queryIdx for m in good]], rk[[m.trainIdx for m in good]], cv2.RANSAC, 5.0)
            n = int(mask.sum()) if mask is not None else 0
            if n > best_n:
                best, best_n = i, n
        return best


def growth_section(rec, frames, sizes, repeat: int) -> dict:
    """recognize() with verification while the index grows to ``sizes`` rows (jittered copies of the
    real rows, with their local features)."""
    rng = np.random.default_rng(0)
    index = rec.index
    base_rows = np.flatnonzero(~index.deleted)
    out = {}
    nf = cycle(frames)
    k = 0
    for target in sizes:
        while index.live_count < target:
            rows = rng.choice(base_rows, min(256, target - index.live_count))
            for r in rows:
                d = index.descriptors[r] + 0.08 * rng.normal(size=index.dim).astype(np.float32)
                feats = [index.features.row(r)] if index.features is not None else None
                index.add(d[None], f"synthetic_{k}", features=feats, rotations=[index.rotations[r]])
                k += 1
        out[str(target)] = percentiles(timed(lambda: rec.recognize(nf()), repeat))
    return out


def matching_section(sizes, dim: int, repeat: int, intrinsics=(CALIBRATED_INTRINSIC,)) -> list[dict]:
    from export.index_tuning import tune_index
    from runtime.search.index import ReferenceIndex
    from runtime.search.index_params import IndexParams

    rows = []
    for intrinsic, n in [(i, n) for i in intrinsics for n in sizes]:
        base, queries = synthetic_descriptors(n, max(repeat, 200), dim, intrinsic=intrinsic, seed=n)
        labels = [f"i{i}" for i in range(n)]
        index = ReferenceIndex(base, labels, params=IndexParams())
        params, hnsw, report = tune_index(base, queries[:200], IndexParams(), hnsw=index.hnsw)
        index.replace_graph(hnsw, params)
        truth = ground_truth(queries, base)
        row = {"refs": n, "dim": dim, "intrinsic": intrinsic, "ef": params.ef, "M": params.M}
        for mode in ("hnsw", "exact"):
            nq = cycle(list(queries))
            row[mode] = percentiles(timed(lambda: index.search(nq(), 10, mode), repeat))
            found = [index.search(q, 1, mode)[0][0] for q in queries[:200]]
            row[mode]["recall@1_vs_exact"] = round(float(np.mean([f == f"i{t}" for f, t in zip(found, truth)])), 4)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", default="smvs_books", help="dev set whose photos and references are used")
    ap.add_argument("--model", help="training run directory (default: off the shelf, ImageNet weights)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--growth", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--refs", type=int, nargs="*", default=[1000, 10000, 100000])
    ap.add_argument("--dim", type=int, default=1280, help="synthetic descriptor dimension for the matching section")
    ap.add_argument("--stress", type=int, nargs="*", default=[100000],
                    help="sizes also measured on the stress generator (intrinsic dimension %d)" % STRESS_INTRINSIC)
    ap.add_argument("--no-int8", dest="int8", action="store_false",
                    help="skip the INT8 bundle (its export calibrates the quantization: a few minutes)")
    ap.add_argument("--out", help="also write bench/results/<OUT>.json")
    args = ap.parse_args()
    from export.bundler import build_bundle
    from runtime.bundle.format import read_bundle
    from runtime.recognizer import Recognizer
    from runtime.site import load_site

    manifest = DEV_SETS[args.set]
    site = load_site(manifest)
    frames = frames_of(manifest, args.frames)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(manifest, Path(tmp) / "b.sitelens", args.model, size=args.size, progress=False)
        rec = Recognizer.open(bundle, threads=args.threads)
        rec_int8 = None
        models = {"fp32": read_bundle(bundle).members["model.onnx"]}
        if args.int8:
            int8 = build_bundle(manifest, Path(tmp) / "int8.sitelens", args.model, size=args.size, progress=False,
                                precision="int8", retain=0.0, verify=None, calibrate=False)
            rec_int8 = Recognizer.open(int8, threads=args.threads)
            models["int8"] = read_bundle(int8).members["model.onnx"]
        result["site"] = {"set": args.set, "references": len(site.references),
                          "index_rows": rec.index.live_count, "model": "fine-tuned" if args.model else "off the shelf"}
        result["frame"] = frame_section(rec, frames, args.repeat, args.threads, rec_int8, models)
        result["frame"]["end_to_end"]["with_verification"].update(path_shares(rec, frames))
        result["unknown_frames"] = unknown_section(bundle, args.set, args.frames, args.repeat, args.threads)
        refs = [load_image(r.path) for r in site.references]
        sift = SiftAll(refs[:100])
        nf = cycle(frames)
        sift_t = timed(lambda: sift.best(nf()), min(args.repeat, 10), warmup=1)
        ours = result["frame"]["end_to_end"]["with_verification"]["array"]["p50_ms"]
        result["sift_all"] = {"references": min(100, len(refs)), **percentiles(sift_t),
                              "sitelens_cheaper_x_p50": round(float(np.median(sift_t) * 1000 / ours), 1)}
        result["growth"] = {"with_verification": growth_section(rec, frames, args.growth, args.repeat)}
    result["matching"] = matching_section(args.refs, args.dim, args.repeat)
    result["matching"] += matching_section(args.stress, args.dim, args.repeat, (STRESS_INTRINSIC,))
    emit(result, args, args.out)


if __name__ == "__main__":
    main()
