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


@dataclass
class SaturationReport:
    """What :func:`int8_saturation` found. ``free``: no conv can clip on any CPU."""

    convs: int = 0  # convs with int8 weights
    worst_pair: int = 0  # the largest same-sign |w1| + |w2| over all of them
    at_risk: dict[str, int] = field(default_factory=dict)  # conv node -> its worst pair

    @property
    def free(self) -> bool:
        return not self.at_risk

    def summary(self) -> str:
        if self.convs == 0:
            return "no int8 convs"
        if self.free:
            return f"{self.convs} int8 convs, worst weight pair {self.worst_pair} <= {PAIR_LIMIT}: exact on every CPU"
        names = ", ".join(f"{k} ({v})" for k, v in self.at_risk.items())
        return (
            f"{len(self.at_risk)} of {self.convs} int8 convs have weight pairs above {PAIR_LIMIT} "
            f"and can saturate on x86 CPUs without VNNI: {names}"
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


def int8_saturation(model: str | os.PathLike | Any) -> SaturationReport:
    """Check every conv with int8 weights of an ONNX model (a path or a ModelProto)."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    report = SaturationReport()
    for name, weights in _int8_weights(proto).items():
        pair = int(_worst_pairs(weights).max())
        report.convs += 1
        report.worst_pair = max(report.worst_pair, pair)
        if pair > PAIR_LIMIT:
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
