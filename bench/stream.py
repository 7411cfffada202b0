"""A walkthrough video made from real gallery photos (mcv_museum queries): a few seconds
per painting with camera shake and slow zoom, plain wall frames in between. Runs the
stream on it and reports sustained FPS, time-to-recognize and correct / missed / false /
flicker events, with the bundle's defaults (verification, calibrated rules). Prints JSON
(``--out NAME`` also writes bench/results/NAME.json).

    python bench/stream.py [--model run/] [--paintings 10] [--realtime] [--out stream]
"""
from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from _common import SHARED, emit  # first: before numpy loads (runtime/models/blas_threads.py)

import cv2
import numpy as np

from export.bundler import build_bundle
from runtime.image.image_io import load_image
from runtime.recognizer import Recognizer
from runtime.stream import DecisionLayer, RecognitionStream
from training.simulator import random_wall

W, H = 640, 480


def make_video(path: Path, photos: list[tuple[Path, str]], fps: float, seconds: float, gap: float, seed=0):
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    timeline, t = [], 0.0
    for photo, instance in photos:
        wall = random_wall(rng, H, W)
        for _ in range(int(gap * fps)):
            writer.write(np.ascontiguousarray(wall[:, :, ::-1]))
        t += int(gap * fps) / fps
        img = load_image(photo)
        h, w = img.shape[:2]
        f = max(W / w, H / h)
        img = cv2.resize(img, (int(w * f) + 1, int(h * f) + 1), interpolation=cv2.INTER_AREA)
        n = int(seconds * fps)
        timeline.append((t, t + n / fps, instance))
        for i in range(n):
            zoom = 1.0 + 0.15 * i / n
            m = cv2.getRotationMatrix2D((img.shape[1] / 2, img.shape[0] / 2), rng.normal(0, 1.0), zoom)
            m[:, 2] += rng.normal(0, 6, 2) - [(img.shape[1] - W) / 2, (img.shape[0] - H) / 2]
            frame = cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REFLECT)
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        t += n / fps
    writer.release()
    return timeline


def score(events, timeline):
    rec = [e for e in events if e.event == "recognized"]
    out = {"correct": 0, "false": 0, "flicker": 0, "missed": 0, "time_to_recognize_s": []}
    for start, end, inst in timeline:
        inside = [e for e in rec if start <= e.t < end + 0.5]
        right = [e for e in inside if e.instance == inst]
        out["correct"] += bool(right)
        out["missed"] += not right
        out["false"] += sum(e.instance != inst for e in inside)
        out["flicker"] += max(0, len(inside) - 1)
        if right:
            out["time_to_recognize_s"].append(right[0].t - start)
    in_segments = {id(e) for s, e_, i in timeline for e in rec if s <= e.t < e_ + 0.5}
    out["false"] += sum(id(e) not in in_segments for e in rec)  # fired on a wall
    ttr = out.pop("time_to_recognize_s")
    out["time_to_recognize_p50_s"] = round(float(np.median(ttr)), 3) if ttr else None
    out["time_to_recognize_max_s"] = round(float(np.max(ttr)), 3) if ttr else None
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default=str(SHARED / "mcv_museum"))
    ap.add_argument("--model")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--paintings", type=int, default=10)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--gap", type=float, default=1.5)
    ap.add_argument("--realtime", action="store_true", help="pace at the video fps and drop stale frames")
    ap.add_argument("--out", help="also write bench/results/OUT.json")
    args = ap.parse_args()
    root = Path(args.set)
    rows = list(csv.DictReader((root / "manifest.csv").open()))
    queries = [(root / r["path"], r["instance"]) for r in rows if r["role"] == "query" and "|" not in r["instance"]]
    rng = np.random.default_rng(0)
    chosen = [queries[i] for i in rng.choice(len(queries), min(args.paintings, len(queries)), replace=False)]
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "walk.avi"
        timeline = make_video(video, chosen, args.fps, args.seconds, args.gap)
        bundle = build_bundle(root / "manifest.csv", Path(tmp) / "b.sitelens", args.model, size=args.size, progress=False)
        stream = RecognitionStream(Recognizer.open(bundle), str(video), DecisionLayer(k=3, n=5), realtime=args.realtime)
        events = stream.run()
    emit({"paintings": len(timeline), "video_seconds": round(timeline[-1][1], 1), "fps_video": args.fps,
          "realtime": args.realtime, **stream.stats(), **score(events, timeline),
          "events": [e.to_dict() for e in events if e.event == "recognized"][:50]}, args, args.out)


if __name__ == "__main__":
    main()
