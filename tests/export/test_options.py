"""``BuildOptions``: one definition of what shapes a bundle; ``like`` reads it back from a manifest."""
import copy

from export.options import BuildOptions
from runtime.verify.glue import PRUNING
from runtime.recognizer import Recognizer


def test_like_reads_back_what_the_manifest_records(tiny_bundle):
    m = Recognizer.open(tiny_bundle).manifest
    o = BuildOptions.like(m, workers=2)
    assert (o.precision, o.verify, o.upright, o.multiscale, o.hash_bits) == ("fp32", "xfeat", False, False, None)
    assert o.site_id == m.site.site_id and o.target_far == m.thresholds.target_far and o.workers == 2
    assert o.descriptor_code == "int8" and o.turned_features is None and o.calibrate
    assert o.glue_keypoints == m.verification["glue_keypoints"] == 0
    assert o.glue_pruning and m.verification["glue_pruning"] == PRUNING    # on by default
    o.check()
    other = copy.deepcopy(m)
    other.references["rotations"] = [0]
    other.verification.update(turned_features="query", descriptor_code="pca32", ref_spread=True, ref_keypoints=256)
    other.codes = {"type": "itq", "bits": 256, "bytes_per_reference": 32}
    other.model.details["precision_report"] = {"requested": "int8", "int8_weight_bits": 7, "shipped": "fp32"}
    o = BuildOptions.like(other)
    assert (o.upright, o.turned_features, o.descriptor_code, o.spread_keypoints, o.ref_keypoints) == \
        (True, "query", "pca32", True, 256)
    assert (o.hash_bits, o.precision, o.int8_weights) == (256, "int8", 7)   # what was asked for, not the fallback
    other.verification["glue_keypoints"] = 512
    assert BuildOptions.like(other).glue_keypoints == 512
    del other.verification["glue_keypoints"]
    assert BuildOptions.like(other).glue_keypoints == 0   # built before the choice: the matcher saw every keypoint
    other.verification["glue_layers"] = 3
    assert BuildOptions.like(other).glue_layers == 3 and o.glue_layers == 0   # 0: every layer (older bundles too)
    del other.verification["glue_pruning"]
    assert not BuildOptions.like(other).glue_pruning   # built before pruning: its matcher kept every point
    assert o.calibration_seed == 0
    other.thresholds.calibration["seed"] = 7
    assert BuildOptions.like(other).calibration_seed == 7   # a rebuild draws what the bundle drew
    other.thresholds.calibration["seed"] = "7"
    assert BuildOptions.like(other).calibration_seed == 0   # not a seed: the default draw
    other.verification = None
    assert BuildOptions.like(other).verify is None
