"""site + model -> ``.sitelens`` bundle (ONNX, index, descriptors, manifest, thresholds)."""
from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

from runtime import bundle_format as bf
from runtime.embedder import Embedder
from runtime.errors import SitelensError
from runtime.index import IndexParams, ReferenceIndex
from runtime.preprocess import InputSpec
from runtime.recognizer import Recognizer
from runtime.site import Site, load_site

from .onnx_export import OPSET, export_onnx
from .references import MULTI_SCALES, describe_references

log = logging.getLogger("sitelens")


def resolve_model(model=None, backbone: str = "tf_efficientnet_lite0", weights="pretrained"):
    """A DescriptorNet from a training run folder, a network object, or off the shelf."""
    from training.network import DescriptorNet

    if isinstance(model, DescriptorNet):
        return model.eval(), {}
    if model is not None:
        from training.checkpoint import load_run

        return load_run(model)
    return DescriptorNet(backbone, weights=weights).eval(), {}


def build_bundle(site: Site | str | Path, out: str | Path, model=None, *, backbone: str = "tf_efficientnet_lite0",
                 weights="pretrained", size: int | None = None, max_aspect: float = 2.0,
                 index_params: IndexParams = IndexParams(), multiscale: bool = False,
                 per_instance_mean: bool = False, calibrate: bool = True, target_far: float = 0.01,
                 progress: bool = True, metadata: str | Path | None = None) -> Path:
    """Build and atomically write a bundle; the written file is re-opened and verified."""
    if not isinstance(site, Site):
        site = load_site(site, metadata=metadata)
    out = Path(out)
    net, run_config = resolve_model(model, backbone, weights)
    size = int(size or run_config.get("input", {}).get("size") or 224)
    spec = InputSpec(size=size, max_aspect=max_aspect)
    log.info("sitelens: exporting %s to ONNX", net.backbone_name)
    onnx_bytes = export_onnx(net, spec)
    embedder = Embedder(onnx_bytes, spec, providers=["CPUExecutionProvider"])
    scales = MULTI_SCALES if multiscale else (1.0,)
    descs, instances, sources = describe_references(embedder, site, scales, per_instance_mean=per_instance_mean,
                                                    progress=progress)
    index = ReferenceIndex(descs, instances, sources, index_params)
    model_cfg = net.config()
    manifest = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "site": {"name": site.name, "num_instances": len(set(instances)), "num_references": len(instances)},
        "model": {**model_cfg, "fingerprint": net.fingerprint(), "precision": "fp32", "opset": OPSET,
                  "input": spec.to_dict(), "trained": bool(run_config),
                  "training": {k: run_config[k] for k in ("site", "epochs", "seed") if k in run_config}},
        "index": {**index_params.to_dict(), "count": len(instances)},
        "references": {"scales": list(scales), "aggregation": "gem" if multiscale else "none",
                       "per_instance_mean": per_instance_mean},
        "instances": {inst: site.metadata.get(inst, {}) for inst in dict.fromkeys(instances)},
        "thresholds": None,
    }
    if calibrate:
        from .calibration import calibrate_thresholds

        manifest["thresholds"] = calibrate_thresholds(embedder, site, index, target_far, progress=progress)
    members = {bf.MODEL: onnx_bytes, **index.to_members()}
    bf.write_bundle(out, manifest, members)
    try:
        Recognizer.open(out, providers=["CPUExecutionProvider"])
    except SitelensError as exc:  # pragma: no cover - would be a bug in the writer
        out.unlink(missing_ok=True)
        raise SitelensError(f"{out}: the freshly written bundle failed verification ({exc})") from exc
    return out
