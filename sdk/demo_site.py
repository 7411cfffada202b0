"""The embedded demo site: procedurally generated 'paintings' (licence-clean by construction)
and visitor photos of them made with the camera-view simulator, plus frames to reject."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

TITLES = [
    ("harbour_at_dusk", "Harbour at Dusk", "landscape"), ("red_composition", "Composition in Red", "shapes"),
    ("the_orchard", "The Orchard", "landscape"), ("blue_rhythm", "Blue Rhythm", "stripes"),
    ("portrait_of_a_lady", "Portrait of a Lady", "portrait"), ("sunflowers_study", "Study of Circles", "circles"),
    ("night_city", "Night City", "shapes"), ("mountain_lake", "Mountain Lake", "landscape"),
    ("golden_grid", "Golden Grid", "grid"), ("the_dancer", "The Dancer", "portrait"),
    ("quiet_sea", "Quiet Sea", "stripes"), ("festival", "Festival", "circles"),
]
UNSEEN = ("the_lost_painting", "Not in the collection", "shapes")


def _palette(rng):
    return [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(6)]


def paint(style: str, seed: int, h: int = 480, w: int = 384) -> np.ndarray:
    """One deterministic artwork (RGB uint8)."""
    rng = np.random.default_rng(seed)
    pal = _palette(rng)
    img = np.zeros((h, w, 3), np.uint8)
    top, bottom = np.array(pal[0], np.float32), np.array(pal[1], np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img[:] = (top * (1 - t) + bottom * t).astype(np.uint8)
    if style == "landscape":
        for k in range(3):
            ys = (h * (0.45 + 0.15 * k) + 40 * np.sin(np.linspace(0, rng.uniform(2, 6), w) + rng.uniform(0, 6))).astype(np.int32)
            pts = np.concatenate([np.stack([np.arange(w), ys], 1), [[w - 1, h - 1], [0, h - 1]]]).astype(np.int32)
            cv2.fillPoly(img, [pts], pal[2 + k])
        cv2.circle(img, (int(rng.integers(40, w - 40)), int(h * 0.2)), int(rng.integers(18, 45)), pal[5], -1)
    elif style == "stripes":
        n = int(rng.integers(5, 12))
        for i in range(n):
            y0 = int(h * i / n)
            cv2.rectangle(img, (0, y0), (w, y0 + int(rng.integers(6, h // n))), pal[i % 6], -1)
        for _ in range(4):
            cv2.line(img, tuple(int(v) for v in rng.integers(0, w, 2)), tuple(int(v) for v in rng.integers(0, h, 2)), pal[5], 5)
    elif style == "portrait":
        cx, cy = w // 2 + int(rng.integers(-30, 30)), int(h * 0.4)
        cv2.ellipse(img, (cx, int(h * 0.95)), (int(w * 0.38), int(h * 0.35)), 0, 180, 360, pal[2], -1)
        cv2.ellipse(img, (cx, cy), (int(w * 0.17), int(h * 0.16)), 0, 0, 360, pal[3], -1)
        cv2.ellipse(img, (cx, cy - int(h * 0.1)), (int(w * 0.2), int(h * 0.09)), 0, 180, 360, pal[4], -1)
        for dx in (-1, 1):
            cv2.circle(img, (cx + dx * int(w * 0.06), cy - 5), 6, (20, 20, 20), -1)
    elif style == "grid":
        n = int(rng.integers(3, 6))
        for i in range(n):
            for j in range(n):
                if rng.random() < 0.6:
                    cv2.rectangle(img, (j * w // n + 4, i * h // n + 4), ((j + 1) * w // n - 4, (i + 1) * h // n - 4),
                                  pal[int(rng.integers(0, 6))], -1)
    else:  # shapes / circles
        for _ in range(int(rng.integers(6, 14))):
            c = pal[int(rng.integers(2, 6))]
            if style == "circles" or rng.random() < 0.4:
                cv2.circle(img, tuple(int(v) for v in (rng.integers(0, w), rng.integers(0, h))), int(rng.integers(15, 90)), c, -1)
            else:
                pts = np.stack([rng.integers(0, w, 4), rng.integers(0, h, 4)], 1).astype(np.int32)
                cv2.fillPoly(img, [pts], c)
    # brush texture, so crops and close-ups have detail
    tex = cv2.GaussianBlur(rng.normal(0, 14, (h, w)).astype(np.float32), (0, 0), 1.2)
    return np.clip(img.astype(np.float32) + tex[:, :, None], 0, 255).astype(np.uint8)


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])


def make_demo_site(root: str | Path, queries_per_object: int = 3, seed: int = 7) -> tuple[Path, Path]:
    """Write ``root/site`` (references + instances.csv) and ``root/queries`` (visitor photos,
    ``__unknown__`` frames). Returns (site, queries)."""
    from training.simulator import CameraViewSimulator, SimulatorConfig, random_wall, wall_label

    root = Path(root)
    site, queries = root / "site", root / "queries"
    rng = np.random.default_rng(seed)
    mild = CameraViewSimulator(SimulatorConfig.mild(), seed=seed)
    visitor = CameraViewSimulator(SimulatorConfig(p_closeup=0.3, closeup_min_area=0.4, p_on_wall=0.4, wall_min_fill=0.4), seed=seed + 1)
    rows = []
    for k, (ident, title, style) in enumerate(TITLES):
        art = paint(style, seed * 100 + k)
        _save(site / ident / "catalogue.jpg", art)
        if k % 2 == 0:  # some objects have a second reference photo
            _save(site / ident / "photo_2.jpg", mild(art, rng))
        for q in range(queries_per_object):
            _save(queries / ident / f"visitor_{q}.jpg", visitor(art, rng))
        rows.append({"id": ident, "title": title, "artist": "sitelens demo generator", "audio": f"audio/{ident}.mp3"})
    unknown = queries / "__unknown__"
    _save(unknown / "wall.jpg", random_wall(rng, 360, 480))
    _save(unknown / "label.jpg", wall_label(rng, 360, 480))
    _save(unknown / "other_painting.jpg", visitor(paint(UNSEEN[2], 99991), rng))
    with (site / "instances.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "artist", "audio"])
        writer.writeheader()
        writer.writerows(rows)
    return site, queries
