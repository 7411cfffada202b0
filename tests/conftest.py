"""Shared fixtures: a tiny generated site and a bundle built once per test session."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

SMALL_SIZE = 128  # network input for tests: keeps the suite fast on 2 cores


def write_rgb(path: Path, img: np.ndarray, quality: int = 92) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def poster(seed: int, h: int = 400, w: int = 300) -> np.ndarray:
    """A synthetic flat object rich in local features (shapes and lines of text, like a cover or a
    label); RGB uint8, deterministic per seed.

    Each poster has its own layout and its own few letters: posters whose lines sit on one grid and
    share words or runs of letters in one typeface are another case, where a homography lines up
    whole words of another poster (15-50 inliers; that is what a site's calibrated bar is for, see
    export/calibration.py), not a different object. The text comes from the simulator's stroke font,
    not ``cv2.putText``, whose glyphs change between OpenCV releases (the scene must not)."""
    from training.simulator.lettering import draw_text

    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(150, 256, 3), np.uint8)
    for _ in range(12):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(10, 120)), y0 + int(rng.integers(10, 120))), c, -1)
        else:
            cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, 60)), c, -1)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    top, pitch = float(rng.uniform(30, 50)), float(rng.uniform(50, 70))  # each poster its own layout ...
    alphabet = rng.choice(letters, 8, replace=False)  # ... and its own few letters
    for i in range(6):
        words = ["".join(rng.choice(alphabet, int(rng.integers(4, 9)))) for _ in range(2)]
        draw_text(img, " ".join(words), (int(rng.integers(5, 60)), int(top + i * pitch)),
                  22 * float(rng.uniform(0.6, 1.3)), (int(rng.integers(0, 80)),) * 3, 2)
    return img


def planar_scene(seed: int = 0):
    """A flat object seen at an angle, smaller inside the frame, on a wall (a synthetic planar scene)."""
    from training.simulator import random_wall
    from training.simulator.geometry import perspective

    rng = np.random.default_rng(seed)
    art = poster(seed)
    view = perspective(rng, art, 0.12)
    wall = random_wall(rng, 360, 480)
    y, x = 40, 120
    h, w = min(view.shape[0], 360 - y), min(view.shape[1], 480 - x)
    wall[y:y + h, x:x + w] = view[:h, :w]
    return wall, art


def make_site(root: Path, n: int = 6, refs: int = 2, seed: int = 3) -> Path:
    from sdk.demo_site import TITLES, paint

    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        ident, title, style = TITLES[k]
        art = paint(style, seed * 100 + k, 240, 192)
        write_rgb(root / ident / "a.jpg", art)
        for j in range(1, refs):
            crop = art[int(rng.integers(0, 30)):, int(rng.integers(0, 30)):]
            write_rgb(root / ident / f"b{j}.jpg", crop)
        rows.append({"id": ident, "title": title})
    with (root / "instances.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["id", "title"])
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="session")
def tiny_site(tmp_path_factory) -> Path:
    return make_site(tmp_path_factory.mktemp("site") / "gallery")


@pytest.fixture(scope="session")
def tiny_net():
    from training.network import DescriptorNet

    return DescriptorNet("tf_efficientnet_lite0", weights="pretrained").train(False)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_site, tiny_net) -> Path:
    from export.bundler import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "gallery.sitelens"
    # 48 simulated views (4 a reference) instead of 120: a quicker build, its rules stricter
    return build_bundle(tiny_site, out, tiny_net, size=SMALL_SIZE, progress=False, calibration_views=48)


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    dst = tmp_path / "copy.sitelens"
    dst.write_bytes(tiny_bundle.read_bytes())
    return dst
