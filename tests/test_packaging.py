"""Extras must never install onnxruntime and onnxruntime-gpu together."""
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def _names(reqs):
    return {r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for r in reqs}


def test_onnxruntime_flavours_are_exclusive():
    project = PYPROJECT["project"]
    base = _names(project["dependencies"])
    assert not base & {"onnxruntime", "onnxruntime-gpu"}
    extras = {k: _names(v) for k, v in project["optional-dependencies"].items()}
    assert "onnxruntime" in extras["cpu"] and "onnxruntime-gpu" in extras["gpu"]
    for name, reqs in extras.items():
        assert not {"onnxruntime", "onnxruntime-gpu"} <= reqs, name
    assert not extras["train"] & {"onnxruntime", "onnxruntime-gpu"}
    assert "torch" not in base


def test_console_script():
    assert PYPROJECT["project"]["scripts"]["sitelens"] == "sdk.cli:main"
