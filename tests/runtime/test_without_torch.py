"""The device install has no torch: runtime must import and recognize without it."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_runtime_recognizes_with_torch_unimportable(tiny_bundle, tiny_site):
    code = textwrap.dedent(f"""
        import sys, json
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'torchvision', 'timm'):
                    raise ImportError('torch is blocked in this test')
        sys.meta_path.insert(0, Block())
        import runtime
        from runtime.evaluate import evaluate
        from runtime.site import load_queries
        rec = runtime.Recognizer.open({str(tiny_bundle)!r})
        r = rec.recognize({str(tiny_site / 'portrait_of_a_lady' / 'a.jpg')!r})
        import numpy as np
        kp = np.random.default_rng(0).uniform(0, 300, (40, 2)).astype(np.float32)
        desc = np.random.default_rng(1).integers(-127, 128, (40, 64)).astype(np.int8)
        rec.verifier.matcher.match(kp, desc, kp, desc)  # the learned matcher runs on ONNX Runtime alone
        import sdk, sdk.cli
        assert sdk.Recognizer is runtime.Recognizer and sdk.RecognitionStream and sdk.Evidence
        print(json.dumps({{"best": r.best, "torch": any(m.startswith('torch') for m in sys.modules)}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"best": "portrait_of_a_lady", "torch": False}


def test_runtime_sources_never_import_torch():
    for path in (ROOT / "runtime").rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path
