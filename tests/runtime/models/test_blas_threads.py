"""The runtime asks OpenBLAS not to spin between calls, which works only before numpy loads."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from runtime.models.blas_threads import ENV, QUIET

ROOT = Path(__file__).resolve().parents[3]


def _import(first: str, env_value: str | None = None) -> dict:
    code = textwrap.dedent(f"""
        import json, os
        {first}
        import runtime
        print(json.dumps({{"env": os.environ.get({ENV!r}), "quiet": runtime.BLAS_QUIET}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_runtime_first_quiets_openblas():
    assert _import("pass") == {"env": QUIET, "quiet": True}


def test_numpy_loaded_first_is_reported_and_left_alone():
    assert _import("import numpy") == {"env": None, "quiet": False}


def test_the_environment_keeps_its_own_setting():
    assert _import("import numpy", env_value="8") == {"env": "8", "quiet": True}
