"""Can an INT8 ONNX model give different results on different CPUs? A model-level check.

ONNX Runtime's x86 u8 x s8 kernels without VNNI (AVX2, AVX-512 before Cascade Lake, e.g. AMD
Zen 1-3) multiply with VPMADDUBSW: pairs of u8 activations times s8 weights summed into a
*saturating* int16. With activations up to 255, a pair of same-sign weights whose magnitudes add
up to more than 128 can exceed 32767 and clip (255 * 127 * 2 = 64770). VNNI (vpdpbusd), AMX
and ARM's dot-product kernels accumulate in int32 and never clip, so the same model scores
differently on different machines. (ORT documents this under "quantization on x86-64".) Signed
activations meet the same kernel after ORT shifts them to u8.

Which weights MLAS pairs depends on its packing, so the check takes the worst case: for every
output channel of every quantized conv, the two largest weights of one sign. If their
magnitudes add up to at most 128 no pair can clip, whatever the pairing and the input: the
model computes the same integers on every CPU. 7-bit weights ([-64, 64]) always pass.

A conv whose input cannot reach 255 gets a wider limit (``32767 // largest u8 input``). The one
input edgesr knows the bound of is the image: models take pixels in [0, 1], so a conv fed by the
graph input (through data-movement ops such as the first conv's im2col taps) quantized with
scale 1/127 sees at most 127, and any 8-bit weights pass (127 + 127 <= 258).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PAIR_LIMIT", "SaturationReport", "cpu_int8_is_exact", "int8_saturation"]

# 255 * 128 = 32640 <= 32767 < 255 * 129: the largest same-sign pair |w1| + |w2| that cannot clip.
PAIR_LIMIT = 128
INT16_MAX = 32767
# Model inputs are pixels in [0, 1] (edgesr's input contract).
INPUT_MAX = 1.0
# Ops that only move, pick or pad (with zeros) values: they keep an upper bound.
_MOVES = {
    "Slice", "Concat", "Reshape", "Transpose", "Identity", "Pad", "Split", "Squeeze",
    "Unsqueeze", "DepthToSpace", "SpaceToDepth", "Flatten", "Gather", "MaxPool",
}  # fmt: skip


@dataclass
class SaturationReport:
    """What :func:`int8_saturation` found. ``free``: no conv can clip on any CPU."""

    convs: int = 0  # convs with int8 weights
    worst_pair: int = 0  # the largest same-sign |w1| + |w2| over all of them
    at_risk: dict[str, int] = field(default_factory=dict)  # conv node -> its worst pair
    # Convs whose input is bounded below 255 (e.g. the image on a 7-bit grid) -> their limit.
    limits: dict[str, int] = field(default_factory=dict)

    @property
    def free(self) -> bool:
        return not self.at_risk

    def summary(self) -> str:
        if self.convs == 0:
            return "no int8 convs"
        wider = (
            f"; {', '.join(f'{k}: {v}, its input bounded' for k, v in self.limits.items())}"
            if self.limits
            else ""
        )
        if self.free:
            return f"{self.convs} int8 convs, no weight pair above its limit ({PAIR_LIMIT}{wider}): exact on every CPU"
        names = ", ".join(f"{k} ({v})" for k, v in self.at_risk.items())
        return (
            f"{len(self.at_risk)} of {self.convs} int8 convs have weight pairs above their limit "
            f"({PAIR_LIMIT}{wider}) and can saturate on x86 CPUs without VNNI: {names}"
        )


def _worst_pairs(w: np.ndarray) -> np.ndarray:
    """Per output channel: the largest |w1| + |w2| over two weights of the same sign."""
    flat = w.reshape(w.shape[0], -1).astype(np.int32)
    worst = np.zeros(flat.shape[0], np.int32)
    for signed in (np.clip(flat, 0, None), np.clip(-flat, 0, None)):
        if signed.shape[1] >= 2:
            top2 = np.sort(signed, axis=1)[:, -2:]
            worst = np.maximum(worst, top2.sum(axis=1))
        else:
            worst = np.maximum(worst, signed[:, 0])
    return worst


def _int8_weights(proto: Any) -> dict[str, np.ndarray]:
    """Conv node name -> its int8 weights, for every conv whose weights are int8.

    Found as an int8 initializer behind the DequantizeLinear on a Conv's weight input (ORT's
    QDQ), a float initializer behind QuantizeLinear -> DequantizeLinear (NNCF's Q/DQ export,
    which ORT constant-folds to int8), or the weight input of a QLinearConv.
    """
    import onnx
    from onnx import numpy_helper

    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def const(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def int8_of(tensor: str) -> np.ndarray | None:
        if tensor in inits:
            return const(tensor) if inits[tensor].data_type == onnx.TensorProto.INT8 else None
        q = producer.get(tensor)
        if q is None or q.op_type != "QuantizeLinear" or len(q.input) < 3:
            return None
        w, scale, zero = const(q.input[0]), const(q.input[1]), const(q.input[2])
        if w is None or scale is None or zero is None or zero.dtype != np.int8:
            return None
        axis = next((a.i for a in q.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        if scale.ndim == 1 and scale.size > 1:
            shape[axis] = scale.size
        scale, zero = scale.reshape(shape), zero.astype(np.int32).reshape(shape)
        return np.clip(np.rint(w / scale) + zero, -128, 127).astype(np.int8)

    found = {}
    for node in graph.node:
        weights = None
        if node.op_type == "Conv" and len(node.input) > 1:
            dq = producer.get(node.input[1])
            if dq is not None and dq.op_type == "DequantizeLinear":
                weights = int8_of(dq.input[0])
        elif node.op_type == "QLinearConv":
            weights = int8_of(node.input[3])
        if weights is not None:  # else a float conv (mixed precision): float arithmetic
            found[node.name or node.output[0]] = weights
    return found


def _input_u8_max(proto: Any) -> dict[str, int]:
    """Conv node name -> the largest u8 value its activation input can hold, for the convs
    whose input is bounded below 255 (the graph input, in [0, 1], on a coarser grid)."""
    from onnx import numpy_helper

    graph = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    memo: dict[str, float | None] = {}

    def bound(tensor: str) -> float | None:
        """Upper bound of a tensor's values (its integers, after a QuantizeLinear)."""
        if tensor in memo:
            return memo[tensor]
        memo[tensor] = None  # cycles (none in an ONNX DAG) and unknowns: unbounded
        node = producer.get(tensor)
        if node is None:
            value = INPUT_MAX if tensor == graph.input[0].name else None
        elif node.op_type == "Pad" and len(node.input) > 2 and node.input[2]:
            fill = inits.get(node.input[2])  # a constant pad value other than 0 can exceed
            value = bound(node.input[0]) if fill is not None and not np.any(fill) else None
        elif node.op_type in _MOVES:
            data = (
                node.input[:1]
                if node.op_type in ("Reshape", "Pad", "Slice", "Gather")
                else node.input
            )
            parts = [bound(t) for t in data if t]
            value = None if not parts or None in parts else max(p for p in parts if p is not None)
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) >= 3:
            upper, scale, zero = (
                bound(node.input[0]),
                inits.get(node.input[1]),
                inits.get(node.input[2]),
            )
            if upper is None or scale is None or zero is None or scale.size != 1:
                value = None
            elif node.op_type == "QuantizeLinear":
                top = 255 if zero.dtype == np.uint8 else 127
                value = float(min(top, np.rint(upper / float(scale)) + int(zero)))
            else:
                value = (upper - int(zero)) * float(scale)
        else:
            value = None
        memo[tensor] = value
        return value

    found = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        dq = producer.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
            continue
        zero = inits.get(dq.input[2])
        if zero is None or zero.dtype != np.uint8:
            continue
        top = bound(dq.input[0])
        if top is not None and top < 255:
            found[node.name or node.output[0]] = int(top)
    return found


def int8_saturation(model: str | os.PathLike | Any) -> SaturationReport:
    """Check every conv with int8 weights of an ONNX model (a path or a ModelProto)."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    report = SaturationReport()
    bounded = _input_u8_max(proto)
    for name, weights in _int8_weights(proto).items():
        pair = int(_worst_pairs(weights).max())
        limit = INT16_MAX // max(1, bounded[name]) if name in bounded else PAIR_LIMIT
        if limit != PAIR_LIMIT:
            report.limits[name] = limit
        report.convs += 1
        report.worst_pair = max(report.worst_pair, pair)
        if pair > limit:
            report.at_risk[name] = pair
    return report


def _x86_features() -> set[str]:
    """CPUID feature names as NumPy's runtime dispatch reads them (CPUID itself, so an emulated
    CPU reports its own), else /proc/cpuinfo's flags (upper-cased, underscores dropped)."""
    import importlib

    for owner in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = importlib.import_module(owner).__cpu_features__
            return {k for k, v in features.items() if v}
        except (ImportError, AttributeError):
            continue
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return {w.upper().replace("_", "") for w in line.split(":", 1)[1].split()}
    except OSError:
        pass
    return set()


def cpu_int8_is_exact() -> bool:
    """Do ONNX Runtime's u8 x s8 kernels accumulate in int32 on this CPU?

    64-bit ARM: yes (dot-product or widening kernels). x86-64: only with VNNI (AVX512-VNNI,
    or AVX-VNNI); without it they saturate pairs in int16. Unknown: no (the safe answer).
    """
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return True
    if machine not in ("x86_64", "amd64"):
        return False
    features = _x86_features()
    return bool(features & {"AVX512VNNI", "AVXVNNI"})
