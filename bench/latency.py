"""Per-frame latency on this machine; prints one JSON object.

decode+preprocess (a 1280x720 JPEG frame), embed (ONNX Runtime vs PyTorch eager of the same
network, measured in one run, with the ratio) and match (hnsw vs exact) at 1k/10k/100k refs.

    python bench/latency.py [--size 224] [--refs 1000 10000 100000] [--repeat 50]
"""
from __future__ import annotations

import argparse
import json
import os

import cv2
import numpy as np
from _common import percentiles, timed

from export.onnx_export import export_onnx
from runtime.embedder import Embedder
from runtime.image_io import load_image
from runtime.index import IndexParams, ReferenceIndex
from runtime.preprocess import InputSpec, resize_for_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--refs", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    import torch

    from training.network import DescriptorNet

    torch.set_num_threads(args.threads)
    spec = InputSpec(size=args.size)
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (0, 0), 3)
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    out = {"size": args.size, "threads": args.threads, "frame": "1280x720 JPEG"}
    out["decode_preprocess"] = percentiles(timed(lambda: resize_for_model(load_image(jpeg), spec), args.repeat))

    net = DescriptorNet().eval()
    emb = Embedder(export_onnx(net, spec), spec, providers=["CPUExecutionProvider"], threads=args.threads)
    x = resize_for_model(load_image(jpeg), spec)[None]
    ort_t = timed(lambda: emb.run(x), args.repeat)
    tx = torch.from_numpy(x)

    def eager():
        with torch.no_grad():
            net(tx)

    torch_t = timed(eager, args.repeat)
    out["embed_onnxruntime"] = percentiles(ort_t)
    out["embed_torch_eager"] = percentiles(torch_t)
    out["embed_speedup_ort_vs_torch_p50"] = round(float(np.median(torch_t) / np.median(ort_t)), 2)

    dim = emb.dim
    out["match"] = {}
    for n in args.refs:
        groups = max(1, n // 4)
        centres = rng.normal(size=(groups, dim)).astype(np.float32)
        refs = centres[np.arange(n) % groups] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
        idx = ReferenceIndex(refs, [f"i{i % groups}" for i in range(n)], params=IndexParams())
        q = centres[rng.integers(0, groups, args.repeat)] + 0.5 * rng.normal(size=(args.repeat, dim)).astype(np.float32)
        row = {}
        for mode in ("hnsw", "exact"):
            it = iter(q)
            row[mode] = percentiles(timed(lambda: idx.search(next(it, q[0]), 5, mode), args.repeat, warmup=0))
        agree = np.mean([idx.search(v, 1, "hnsw")[0][0] == idx.search(v, 1, "exact")[0][0] for v in q])
        row["hnsw_recall@1_vs_exact"] = round(float(agree), 4)
        out["match"][str(n)] = row
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
