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
    return build_bundle(tiny_site, out, tiny_net, size=SMALL_SIZE, progress=False)


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    dst = tmp_path / "copy.sitelens"
    dst.write_bytes(tiny_bundle.read_bytes())
    return dst
