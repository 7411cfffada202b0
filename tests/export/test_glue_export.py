"""LighterGlue exported to ONNX: the rewritten fixed-depth module agrees with kornia's LightGlue and
ONNX Runtime agrees with it."""
import onnx

from export.glue_export import GlueScores, check_parity, export_lighterglue
from runtime.verify.glue import GLUE_FINGERPRINT_KEY


def test_export_agrees_with_kornia_and_carries_its_fingerprint():
    data, fingerprint = export_lighterglue()
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert meta[GLUE_FINGERPRINT_KEY] == fingerprint and len(fingerprint) == 64
    # checked once at export; again here with other lengths (dynamic axes), one side larger
    assert check_parity(GlueScores().train(False), data, sizes=((17, 90), (256, 40))) < 1e-2
