import logging

import numpy as np

from runtime.models import int8_products as ip

EIGHT = {ip.WEIGHT_BITS_KEY: "8"}
OLD_X86 = {"avx2", "fma", "avx512f", "avx512bw"}


def test_saturation_is_an_x86_without_vnni():
    assert ip.saturates("x86_64", OLD_X86)
    assert ip.saturates("AMD64", {"avx2"})
    for vnni in ("avx512_vnni", "avx_vnni", "amx_int8"):
        assert not ip.saturates("x86_64", OLD_X86 | {vnni})
    assert not ip.saturates("aarch64", set())  # ARM: exact products
    assert not ip.saturates("arm64", set())


def test_flags_of_this_cpu_are_read():
    import os

    flags = ip.cpu_flags()
    if os.path.exists("/proc/cpuinfo"):          # Linux: read from there, always a set
        assert isinstance(flags, set) and (not ip.is_x86() or "sse2" in flags)
    else:
        assert flags is None or isinstance(flags, set)
    if ip.is_x86() and flags is not None:
        assert ip.saturates() == (not flags & ip.VNNI_FLAGS)


def test_warning_only_for_8_bit_weights_on_a_saturating_cpu_provider():
    cpu = ["CPUExecutionProvider"]
    assert "--int8-weights 7" in ip.warning(EIGHT, cpu, "x86_64", OLD_X86)
    assert ip.warning(EIGHT, ["OpenVINOExecutionProvider", *cpu], "x86_64", OLD_X86)
    assert ip.warning(EIGHT, cpu, "x86_64", OLD_X86 | {"avx512_vnni"}) is None
    assert ip.warning(EIGHT, ["CUDAExecutionProvider", *cpu], "x86_64", OLD_X86) is None  # GPUs are exact
    assert ip.warning({ip.WEIGHT_BITS_KEY: "7"}, cpu, "x86_64", OLD_X86) is None
    assert ip.warning({}, cpu, "x86_64", OLD_X86) is None  # FP32 / FP16 models, INT8 from older exports
    assert ip.warning(EIGHT, cpu, "aarch64", set()) is None


def test_embedder_on_an_int8_model_of_this_machine(tiny_net, tmp_path, caplog):
    """The export's metadata reaches the embedder; it warns exactly when this CPU saturates."""
    from export.onnx_export import export_onnx
    from export.precision import to_int8
    from runtime.models.embedder import Embedder
    from runtime.image.preprocess import InputSpec

    spec = InputSpec(size=64)
    imgs = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(4)]
    with caplog.at_level(logging.WARNING, logger="sitelens"):
        emb = Embedder(to_int8(export_onnx(tiny_net, spec), imgs), spec, providers=["CPUExecutionProvider"])
    assert emb.metadata[ip.WEIGHT_BITS_KEY] == "8"
    warned = any("--int8-weights 7" in r.getMessage() for r in caplog.records)
    assert warned == ip.saturates()
