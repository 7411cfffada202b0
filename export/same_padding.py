"""TensorFlow "same" padding moved into the convolutions of an exported graph (ONNX ``auto_pad``).

timm's ``tf_*`` backbones (EfficientNet-Lite among them) pad their strided convolutions at run time
(``Conv2dSame``: the padding depends on the input's size). The exporter writes each as a ``Pad``
node fed by some twenty nodes of shape arithmetic, and ONNX Runtime runs them all on every frame;
on an INT8 graph the ``Pad`` also leaves a float island (dequantize, pad, quantize, layout
transposes) between two quantized convolutions. ONNX ``Conv``'s ``auto_pad="SAME_UPPER"`` is the
same rule (total padding ``(ceil(i / s) - 1) * s + (k - 1) * d + 1 - i``, the odd pixel at the end),
computed inside the convolution.

Only a zero ``Pad`` whose amounts are computed at run time and whose one consumer is an unpadded
``Conv`` is folded; ``fold_same_padding`` leaves everything else as it is. The export checks the
folded graph against the unfolded one (``export.onnx_export``) and keeps the unfolded one if they
differ.
"""
from __future__ import annotations

import numpy as np


def _constant_values(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _attr(node, name: str):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def _foldable(pad, consumers: dict, constants: dict, outputs: set) -> bool:
    mode = _attr(pad, "mode")
    if mode not in (None, b"constant", "constant") or pad.output[0] in outputs:
        return False
    if len(pad.input) < 2 or pad.input[1] in constants:  # fixed amounts: not the run-time "same" rule
        return False
    if len(pad.input) > 3 and pad.input[3]:  # axes given
        return False
    if len(pad.input) > 2 and pad.input[2]:
        value = constants.get(pad.input[2])
        if value is None or np.any(value != 0):
            return False
    users = consumers.get(pad.output[0], [])
    if len(users) != 1 or users[0].op_type != "Conv" or users[0].input[0] != pad.output[0]:
        return False
    conv = users[0]
    pads = _attr(conv, "pads")
    auto = _attr(conv, "auto_pad")
    return (pads is None or not any(pads)) and auto in (None, b"NOTSET", "NOTSET")


def _prune(graph) -> None:
    """Drop nodes whose outputs nothing uses (the folded padding's shape arithmetic)."""
    keep = {o.name for o in graph.output}
    while True:
        used = keep | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            graph.node.remove(n)


def fold_same_padding(onnx_bytes: bytes) -> tuple[bytes, int]:
    """(the graph with run-time "same" padding folded into its convolutions, how many were folded)."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    constants = _constant_values(graph)
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    pads = [n for n in graph.node if n.op_type == "Pad" and _foldable(n, consumers, constants, outputs)]
    for pad in pads:
        conv = consumers[pad.output[0]][0]
        conv.input[0] = pad.input[0]
        kept = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
        del conv.attribute[:]
        conv.attribute.extend(kept + [helper.make_attribute("auto_pad", "SAME_UPPER")])
        graph.node.remove(pad)
    if not pads:
        return onnx_bytes, 0
    _prune(graph)
    return model.SerializeToString(), len(pads)
