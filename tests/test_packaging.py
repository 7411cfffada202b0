"""Extras must never install two flavours of onnxruntime together (they share one module)."""
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def _names(reqs):
    return {r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for r in reqs}


def test_onnxruntime_flavours_are_exclusive():
    project = PYPROJECT["project"]
    base = _names(project["dependencies"])
    flavours = {"onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"}
    assert not base & flavours
    extras = {k: _names(v) for k, v in project["optional-dependencies"].items()}
    assert "onnxruntime" in extras["cpu"] and "onnxruntime-gpu" in extras["gpu"]
    assert "onnxruntime-openvino" in extras["openvino"]
    for name, reqs in extras.items():
        assert len(reqs & flavours) <= 1, name
    assert not extras["train"] & flavours
    assert "torch" not in base


def test_console_script():
    assert PYPROJECT["project"]["scripts"]["sitelens"] == "sdk.cli:main"
