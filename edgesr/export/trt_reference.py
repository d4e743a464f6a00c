"""TensorRT's INT8 arithmetic for edgesr's Q/DQ ONNX models, on the CPU: the PSNR a Jetson
user will see from an ``int8-qdq`` engine, predicted without a Jetson.

ONNX Runtime runs a Q/DQ graph op by op (or with its own fusions and, on x86 without VNNI,
16-bit intermediate sums). TensorRT instead fuses the Q/DQ nodes into its layers (NVIDIA,
*Working with Quantized Types*: explicit quantization, Q/DQ fusion and layer placement), and
:class:`TrtInt8Reference` follows that:

* A ``Conv``/``ConvTranspose`` whose data input is a ``DequantizeLinear`` (per-tensor scale
  ``s_x``, zero point 0) and whose weights are INT8 with per-output-channel scales ``s_w`` (a DQ
  of an int8 constant, or Q -> DQ of a float constant, which TensorRT quantizes at build time)
  is one INT8 kernel: int8 x int8 products summed exactly (INT32 in TensorRT; float64 here,
  exact for these sizes), rescaled by ``s_x * s_w`` in FP32, FP32 bias added.
* The pointwise ops that follow it alone (Relu, Clip, LeakyRelu, PRelu, Add, Sub, Mul) are
  fused into that kernel: computed in FP32 on the unrounded result.
* If that chain ends in a ``QuantizeLinear``, the kernel writes INT8 directly:
  ``saturate(round_half_to_even(y / s_y))`` to [-128, 127], from the FP32 value. Otherwise the
  kernel's output is a float tensor in the build's float precision.
* Every other layer (the first conv that edgesr's int8-qdq keeps in float, a PReLU between
  its own DQ and Q, ...) computes in the build's float precision: ``"fp32"`` for strongly typed builds of an FP32-typed
  ONNX (TensorRT >= 10), ``"fp16"`` for the TensorRT 8.x ``--int8 --fp16`` route and DLA.
* ``DequantizeLinear`` is exact (``q * s`` in FP32): TensorRT moves it into its consumer, and
  across data movement (DepthToSpace, Reshape, ...), which therefore keeps values exact.

Assumptions, where TensorRT's choice is a kernel detail: FP16 kernels take FP16 inputs and
weights and accumulate in FP32 (as tensor cores do), and a float layer's output is stored in
FP16 before the next layer reads it; TensorRT may still pick an FP32 kernel where that is
faster, which would make the real engine slightly better than predicted on the fp16 route. FP32
summation order (sub-ULP differences, visible only as rare one-level flips at rounding ties) is
not modelled, and neither is a pointwise op that TensorRT might run in INT8 between its own DQ
and Q (here it computes in the float precision on the dequantized values). ``fuse=False`` runs the same graph op by op in the float precision (dequantize,
then float conv), the naive emulation this module exists to replace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesr.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import onnx

#: Ops the reference executes; TensorRT fuses the pointwise ones into a preceding INT8 conv.
FUSABLE_OPS = frozenset({"Relu", "Clip", "LeakyRelu", "PRelu", "Add", "Sub", "Mul"})
SUPPORTED_OPS = FUSABLE_OPS | {
    "Conv", "ConvTranspose", "QuantizeLinear", "DequantizeLinear", "DepthToSpace", "Identity",
    "Constant", "Sigmoid", "Tanh", "Div", "Reshape", "Transpose", "Concat", "Split",
}  # fmt: skip
FLOAT_PRECISIONS = ("fp32", "fp16")
#: Ops that only move values: their output keeps its input's precision (TensorRT moves Q/DQ
#: across them, so an INT8 tensor stays INT8 and an exact DQ output stays exact).
MOVE_OPS = frozenset({"DepthToSpace", "Reshape", "Transpose", "Identity", "Concat", "Split"})


def quantize(x: np.ndarray, scale: np.ndarray | float, axis: int | None = None) -> np.ndarray:
    """TensorRT/ONNX QuantizeLinear to INT8 with zero point 0: round half to even, saturate."""
    s = np.asarray(scale, np.float32)
    if s.ndim and axis is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    q = np.rint(x.astype(np.float32) / s)  # np.rint rounds half to even
    return np.clip(q, -128, 127).astype(np.int8)


@dataclass(frozen=True)
class _Int8Conv:
    """A Conv/ConvTranspose TensorRT runs as one INT8 kernel."""

    x_scale: np.ndarray  # 0-d float32
    weight_q: np.ndarray  # int8 weights
    weight_scale: np.ndarray  # per output channel (or one value), float32


class TrtInt8Reference:
    """Executes a Q/DQ ONNX model with TensorRT's INT8 fusion arithmetic (module docstring).

    ``float_precision``: ``"fp32"`` (strongly typed, TensorRT >= 10) or ``"fp16"`` (8.x
    ``--int8 --fp16``, DLA). ``fuse=False``: no fusion (for comparison only).
    """

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        *,
        float_precision: str = "fp32",
        fuse: bool = True,
    ) -> None:
        import onnx
        from onnx import numpy_helper

        if float_precision not in FLOAT_PRECISIONS:
            raise ConfigError(
                f"float_precision must be one of {', '.join(FLOAT_PRECISIONS)}, got "
                f"{float_precision!r}."
            )
        proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        self.graph = proto.graph
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self.float_dtype = np.float16 if float_precision == "fp16" else np.float32
        self.fuse = fuse
        unknown = sorted({n.op_type for n in self.graph.node} - SUPPORTED_OPS)
        if unknown:
            raise ModelError(
                f"the TensorRT INT8 reference does not execute {', '.join(unknown)}; it covers "
                f"{', '.join(sorted(SUPPORTED_OPS))} (edgesr's architectures)."
            )
        self.consts: dict[str, np.ndarray] = {
            i.name: numpy_helper.to_array(i) for i in self.graph.initializer
        }
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = [o.name for o in self.graph.output]
        self.input_name = next(i.name for i in self.graph.input if i.name not in self.consts)
        self.int8_convs: dict[str, _Int8Conv] = {}
        self.fused: set[str] = set()  # tensors kept in FP32 inside a fused INT8 kernel
        if fuse:
            self._plan_fusion()

    # ----------------------------------------------------------------------------------------
    # Fusion plan

    def _weight(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(int8 weights, per-channel scales) behind a weight DQ, or None (float weights)."""
        dq = self.producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        scale = self.consts.get(dq.input[1])
        if scale is None:
            return None
        if dq.input[0] in self.consts:
            q = self.consts[dq.input[0]]
        else:  # Q -> DQ of a float constant: TensorRT quantizes it at build time
            qnode = self.producer.get(dq.input[0])
            if (
                qnode is None
                or qnode.op_type != "QuantizeLinear"
                or qnode.input[0] not in self.consts
            ):
                return None
            q = quantize(self.consts[qnode.input[0]], self.consts[qnode.input[1]], _axis(qnode))
        if q.dtype != np.int8:
            return None
        return q, np.asarray(scale, np.float32).reshape(-1)

    def _plan_fusion(self) -> None:
        for node in self.graph.node:
            if node.op_type not in ("Conv", "ConvTranspose"):
                continue
            src = self.producer.get(node.input[0])
            weight = self._weight(node.input[1])
            if src is None or src.op_type != "DequantizeLinear" or weight is None:
                continue  # a float layer
            x_scale = np.asarray(self.consts[src.input[1]], np.float32)
            if x_scale.size != 1:
                raise ModelError(f"{src.name}: per-channel activation scale (TensorRT needs one).")
            self.int8_convs[node.name] = _Int8Conv(x_scale.reshape(()), *weight)
            out = node.output[0]
            self.fused.add(out)
            # Pointwise ops that alone consume the chain's output join the kernel.
            while out not in self.outputs:
                users = self.consumers.get(out, [])
                if len(users) != 1 or users[0].op_type not in FUSABLE_OPS:
                    break
                out = users[0].output[0]
                self.fused.add(out)
            users = self.consumers.get(out, [])
            if (
                out in self.outputs
                or not users
                or any(u.op_type != "QuantizeLinear" for u in users)
            ):
                # Not requantized: the kernel writes a float tensor in the build's precision.
                self.fused.discard(out)

    # ----------------------------------------------------------------------------------------
    # Execution

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's first output for input ``x`` (NCHW float32), as float32."""
        values: dict[str, np.ndarray] = dict(self.consts)
        values[self.input_name] = np.asarray(x, np.float32)
        for node in self.graph.node:
            if node.op_type == "Constant":
                continue
            with np.errstate(over="ignore"):  # FP16 overflow to inf is what is emulated
                result = self._execute(node, values)
            outs = result if isinstance(result, list) else [result]
            for name, out in zip(node.output, outs, strict=True):
                exact = name in self.fused or node.op_type in MOVE_OPS | {"DequantizeLinear"}
                if out.dtype.kind == "f" and not exact:
                    # Stored in the build's float precision (FP16 tensors on the fp16 route).
                    with np.errstate(over="ignore"):
                        out = out.astype(self.float_dtype).astype(np.float32)
                values[name] = out
        return values[self.outputs[0]].astype(np.float32)

    def _execute(self, node: Any, values: dict[str, np.ndarray]) -> np.ndarray | list[np.ndarray]:
        op = node.op_type
        ins: list[Any] = [values[i] if i else None for i in node.input]
        if op == "QuantizeLinear":
            return quantize(ins[0], ins[1], _axis(node))
        if op == "DequantizeLinear":
            scale = np.asarray(ins[1], np.float32)
            if scale.ndim:
                shape = [1] * ins[0].ndim
                shape[_axis(node)] = -1
                scale = scale.reshape(shape)
            return ins[0].astype(np.float32) * scale
        if op in ("Conv", "ConvTranspose"):
            return self._conv(node, ins, values)
        return _pointwise_or_move(node, ins)

    def _conv(self, node: Any, ins: list[Any], values: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        spec = self.int8_convs.get(node.name)
        bias = None if len(ins) < 3 or ins[2] is None else ins[2].astype(np.float32)
        if spec is not None:
            # INT8 kernel: exact integer sums (float64 holds them exactly), FP32 rescale + bias.
            xq = values[self.producer[node.input[0]].input[0]].astype(np.float64)
            wq = torch.from_numpy(spec.weight_q.astype(np.float64))
            acc = _torch_conv(node, torch.from_numpy(xq), wq)
            acc_np = acc.numpy().astype(np.float32)
            rescale = (spec.x_scale * spec.weight_scale).astype(np.float32)
            y = acc_np * (rescale.reshape(1, -1, 1, 1) if rescale.size > 1 else rescale)
            return y + bias.reshape(1, -1, 1, 1) if bias is not None else y
        # A float layer, in the build's float precision (FP16 operands, FP32 accumulation).
        x = ins[0].astype(self.float_dtype).astype(np.float32)
        w = ins[1].astype(self.float_dtype).astype(np.float32)
        y = _torch_conv(
            node, torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(w))
        ).numpy()
        if bias is not None:
            y = y + bias.astype(self.float_dtype).astype(np.float32).reshape(1, -1, 1, 1)
        return y


def _axis(node: Any) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _torch_conv(node: Any, x: Any, w: Any) -> Any:
    """ONNX Conv/ConvTranspose (2-D, explicit pads) with torch, in the operands' dtype."""
    import torch
    import torch.nn.functional as F

    a = _attrs(node)
    auto_pad = a.get("auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", "NOTSET"):
        raise ModelError(
            f"{node.name}: auto_pad {auto_pad!r} is not supported; export with explicit pads."
        )
    pads = list(a.get("pads", [0, 0, 0, 0]))
    strides = tuple(a.get("strides", [1, 1]))
    dilations = tuple(a.get("dilations", [1, 1]))
    group = int(a.get("group", 1))
    w = w.to(x.dtype)
    if node.op_type == "Conv":
        # ONNX pads are [top, left, bottom, right]; zero padding is exact in both domains.
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        return F.conv2d(x, w, stride=strides, dilation=dilations, groups=group)
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise ModelError(f"{node.name}: asymmetric ConvTranspose pads {pads} are not supported.")
    out_pad = tuple(a.get("output_padding", [0, 0]))
    with torch.no_grad():
        return F.conv_transpose2d(
            x, w, stride=strides, padding=(pads[0], pads[1]), output_padding=out_pad,
            groups=group, dilation=dilations,
        )  # fmt: skip


def _pointwise_or_move(node: Any, ins: list[Any]) -> np.ndarray | list[np.ndarray]:
    op, a = node.op_type, _attrs(node)
    x = ins[0]
    if op == "Relu":
        return np.maximum(x, 0).astype(np.float32)
    if op == "LeakyRelu":
        return np.where(x >= 0, x, x * np.float32(a.get("alpha", 0.01))).astype(np.float32)
    if op == "PRelu":
        slope = ins[1].astype(np.float32)
        if slope.ndim == 1 and x.ndim == 4:  # ONNX broadcasting from the right: one per channel
            slope = slope.reshape(1, -1, 1, 1) if slope.size > 1 else slope
        return np.where(x >= 0, x, x * slope).astype(np.float32)
    if op == "Clip":
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min", -np.inf)
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max", np.inf)
        return np.clip(x, lo, hi).astype(np.float32)
    if op in ("Add", "Sub", "Mul", "Div"):
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return fn(x.astype(np.float32), ins[1].astype(np.float32)).astype(np.float32)
    if op == "Sigmoid":
        return (1 / (1 + np.exp(-x.astype(np.float32)))).astype(np.float32)
    if op == "Tanh":
        return np.tanh(x).astype(np.float32)
    if op == "Identity":
        return x
    if op == "DepthToSpace":
        b = int(a["blocksize"])
        n, c, h, w = x.shape
        mode = a.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "CRD":
            y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        else:
            y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        return y.reshape(n, c // (b * b), h * b, w * b)
    if op == "Reshape":
        shape = [int(d) for d in ins[1]]
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)
    if op == "Transpose":
        return x.transpose(a.get("perm", list(range(x.ndim))[::-1]))
    if op == "Split":
        axis = int(a.get("axis", 0))
        if len(ins) > 1 and ins[1] is not None:
            sizes = [int(v) for v in ins[1]]
        elif "split" in a:  # opset < 13
            sizes = [int(v) for v in a["split"]]
        else:  # equal parts (ceil, the last one smaller), opset 18's num_outputs
            part = -(-x.shape[axis] // len(node.output))
            sizes = [min(part, x.shape[axis] - i * part) for i in range(len(node.output))]
        return np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    if op == "Concat":
        return np.concatenate([t for t in ins if t is not None], axis=int(a["axis"]))
    raise ModelError(f"op {op} is not executed by the TensorRT INT8 reference.")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Predicted PSNR


def predict_tensorrt_psnr(
    onnx_path: str | Path,
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    float_precision: str = "fp32",
) -> dict[str, Any]:
    """Y-PSNR of an int8-qdq ONNX under TensorRT's INT8 arithmetic (:class:`TrtInt8Reference`).

    ``pairs``: (LR, HR) images in the model's space, float in [0, 1]: HxW for Y models, HxWx3
    RGB for RGB models. As in edgesr's evaluation protocol, the SR output is clipped and
    stored as 8 bits, ``scale`` border pixels are shaved and RGB is scored on BT.601 Y.
    Returns ``{"psnr_db": mean, "per_image_db": [...], "float_precision": ...}``.
    """
    from edgesr.metrics import calculate_psnr

    ref = TrtInt8Reference(onnx_path, float_precision=float_precision)
    scale = int(ref.metadata.get("edgesr.scale", "0") or 0)
    if not scale:
        raise ModelError(f"{onnx_path} has no edgesr.scale metadata; export it with edgesr.")
    per_image = []
    for lr, hr in pairs:
        sr = np.round(run_image(ref.run, lr) * 255.0) / 255.0  # 8-bit output, as stored
        per_image.append(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True))
    if not per_image:
        raise ConfigError("predict_tensorrt_psnr needs at least one (LR, HR) pair.")
    return {
        "psnr_db": float(np.mean(per_image)),
        "per_image_db": per_image,
        "float_precision": float_precision,
    }


def run_image(fn: Any, lr: np.ndarray) -> np.ndarray:
    """An HxW (Y) or HxWx3 (RGB) image through an NCHW model function, clipped to [0, 1]."""
    x = lr[None, None] if lr.ndim == 2 else lr.transpose(2, 0, 1)[None]
    y = np.asarray(fn(np.ascontiguousarray(x, np.float32)))[0]
    y = y[0] if lr.ndim == 2 else y.transpose(1, 2, 0)
    return np.clip(y, 0.0, 1.0)


__all__: Sequence[str] = (
    "FLOAT_PRECISIONS",
    "SUPPORTED_OPS",
    "TrtInt8Reference",
    "predict_tensorrt_psnr",
    "quantize",
    "run_image",
)
