"""ONNX graph passes and graph queries on plain ONNX protos (no torch, no NNCF).

The rewrites INT8 models get before they ship (the first conv as im2col taps + a 1x1 conv,
the final PixelShuffle on u8 pixels), the queries quantizers need (the convs, the output
tensor, the ops ONNX Runtime actually runs) and metadata copying. They sit with export, below
compress, so that every quantization path can use them.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import ConfigError, ModelError

__all__ = [
    "OUTPUT_GRID",
    "copy_metadata",
    "im2col_first_conv",
    "onnx_convs",
    "ort_graph_ops",
    "output_conv_tensor",
    "place_u8_pixel_shuffle",
    "u8_pixel_shuffle",
]

# u8 scale 1/255, zero point 0: the 8-bit grid the SR output is stored on anyway (evaluation
# and every camera pipeline round to it), so quantizing the model output there costs nothing,
# while it lets ORT run the last conv as QLinearConv too.
OUTPUT_GRID = {"scale": 1.0 / 255.0, "zero_point": 0}


def copy_metadata(
    src: str | os.PathLike, dst: str | os.PathLike, extra: Mapping[str, str] | None = None
) -> None:
    import onnx

    src_props = {
        p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props
    }
    proto = onnx.load(str(dst))
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({k: v for k, v in src_props.items() if k.startswith("edgesr.")})
    props.update(extra or {})
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(dst))


def fold_constant_identities(proto: Any) -> int:
    """Replace each Identity of an initializer with an initializer of the Identity's output name.

    The torch exporter routes some Q/DQ zero points through Identity nodes; TensorRT's parser
    wants scales and zero points as constants. Returns how many were folded.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    folded = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            tensor = copy.deepcopy(inits[node.input[0]])
            tensor.name = node.output[0]
            proto.graph.initializer.append(tensor)
            folded.append(node)
    for node in folded:
        proto.graph.node.remove(node)
    return len(folded)


def ort_graph_ops(
    onnx_path: str | os.PathLike, *, threads: int = 1, level: str = "all"
) -> Counter[str]:
    """Op types in the graph ONNX Runtime (CPU) actually runs after its optimizations.

    Keys are ``op_type`` (``"com.microsoft.QLinearConv"`` for contrib ops). An ORT-CPU INT8
    model should show QLinearConv here; a Q/DQ model ORT cannot fuse shows ``Conv`` (float)
    between DequantizeLinear nodes.
    """
    import onnx
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise ConfigError(f"level must be one of {sorted(levels)}, got {level!r}.")
    from edgesr.runtime.runners import ort_session_options

    with tempfile.TemporaryDirectory(prefix="edgesr-ortopt-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        opts = ort_session_options(threads)
        opts.graph_optimization_level = levels[level]
        opts.optimized_model_filepath = str(out)
        opts.log_severity_level = 3  # the "hardware specific optimizations" notice is expected
        try:
            ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise ModelError(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
        graph = onnx.load(str(out)).graph
    return Counter(
        f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in graph.node
    )


def onnx_convs(proto: Any) -> list[Any]:
    return [n for n in proto.graph.node if n.op_type == "Conv"]


def output_conv_tensor(proto: Any) -> str | None:
    """The model output as a Conv/Add produces it (before a final DepthToSpace), if it is one.

    That tensor holds the output pixel values, so the 8-bit image grid fits it exactly.
    """
    producers = {o: n for n in proto.graph.node for o in n.output}
    if len(proto.graph.output) != 1:
        return None
    tensor = proto.graph.output[0].name
    node = producers.get(tensor)
    if node is not None and node.op_type == "DepthToSpace":
        tensor = node.input[0]
        node = producers.get(tensor)
    if node is None or node.op_type not in ("Conv", "Add"):
        return None
    return tensor


_INT64_MAX = 2**63 - 1


def im2col_first_conv(proto: Any, *, align: int = 16) -> list[str]:
    """Rewrite the first conv of a 1-3 channel input as Pad + Slice taps + Concat + 1x1 conv.

    Exactly the same arithmetic, but ORT's int8 conv kernels need input channels in blocks of
    4+ to use VNNI: a 5x5 conv on a single Y channel ran at a fifth of the speed of a 3x3
    64-channel one (ORT 1.32, AVX512-VNNI), about 40% of the INT8 model's time. As a 1x1 conv
    over the kh*kw taps (padded with zero-weight taps to a multiple of ``align`` channels) it
    is a plain GEMM; the taps are u8 copies of the quantized input (Slice/Concat in u8).

    Returns the new tensors that carry the input's values (they take its quantization
    parameters); empty when the graph has no such conv.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    inputs = {i.name for i in graph.input}
    inits = {i.name: i for i in graph.initializer}
    conv = next((n for n in graph.node if n.op_type == "Conv" and n.input[0] in inputs), None)
    if conv is None or conv.input[1] not in inits:
        return []
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    weight = numpy_helper.to_array(inits[conv.input[1]])
    out_ch, in_ch, kh, kw = weight.shape
    if (
        attrs.get("group", 1) != 1
        or any(v != 1 for v in attrs.get("strides", [1, 1]))
        or any(v != 1 for v in attrs.get("dilations", [1, 1]))
        or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
        or in_ch > 3
        or kh * kw == 1
    ):
        return []
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    src = conv.input[0]
    prefix = "edgesr_im2col/"

    def const(name: str, values: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), prefix + name))
        return prefix + name

    padded, stacked = prefix + "padded", prefix + "taps"
    nodes = [
        helper.make_node(
            "Pad",
            [src, const("pads", [0, 0, top, left, 0, 0, bottom, right])],
            [padded],
            mode="constant",
            name=prefix + "Pad",
        )
    ]
    axes = const("axes", [2, 3])
    taps = []
    for i in range(kh):
        for j in range(kw):
            end_i = -(kh - 1 - i) if i < kh - 1 else _INT64_MAX
            end_j = -(kw - 1 - j) if j < kw - 1 else _INT64_MAX
            tap = f"{prefix}tap_{i}_{j}"
            starts, ends = const(f"starts_{i}_{j}", [i, j]), const(f"ends_{i}_{j}", [end_i, end_j])
            nodes.append(
                helper.make_node("Slice", [padded, starts, ends, axes], [tap], name=tap + "/Slice")
            )
            taps.append(tap)
    # Channel order of the stack: tap-major, then input channel. Zero-weight filler channels
    # (copies of one input channel) pad it to a multiple of ``align``: ORT's u8s8 GEMM ran a
    # 25-channel 1x1 conv five times slower than a 32-channel one.
    k = kh * kw * in_ch
    fill = (-k) % align
    if fill:
        filler = prefix + "filler"
        nodes.append(
            helper.make_node(
                "Slice",
                [
                    padded,
                    const("fill_starts", [0]),
                    const("fill_ends", [1]),
                    const("fill_axes", [1]),
                ],
                [filler + "_full"],
                name=filler + "/Slice",
            )
        )
        starts, ends = (
            const("fill_tap_starts", [0, 0]),
            const("fill_tap_ends", [-(kh - 1) or _INT64_MAX, -(kw - 1) or _INT64_MAX]),
        )
        nodes.append(
            helper.make_node(
                "Slice", [filler + "_full", starts, ends, axes], [filler], name=filler + "/Tap"
            )
        )
        taps += [filler] * fill
    nodes.append(helper.make_node("Concat", taps, [stacked], axis=1, name=prefix + "Concat"))
    w = weight.transpose(0, 2, 3, 1).reshape(out_ch, k, 1, 1)
    w = np.concatenate([w, np.zeros((out_ch, fill, 1, 1), w.dtype)], axis=1)
    inits[conv.input[1]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w), conv.input[1]))
    conv.input[0] = stacked
    for attr in conv.attribute:
        if attr.name == "kernel_shape":
            attr.ints[:] = [1, 1]
        elif attr.name == "pads":
            attr.ints[:] = [0, 0, 0, 0]
    at = list(graph.node).index(conv)
    for node in reversed(nodes):
        graph.node.insert(at, node)
    return [padded, stacked]


def u8_pixel_shuffle(proto: Any) -> bool:
    """Move the final DepthToSpace (PixelShuffle) before its DequantizeLinear, onto the u8 pixels.

    ORT runs QLinearConv in NHWC and transposes its output back to NCHW; a float DepthToSpace
    then moves 4-byte pixels (ESPCN x4 at 270x480: 1.5 ms of a 10 ms INT8 frame at 2 threads).
    DequantizeLinear is element-wise with one scale, so it commutes with any data movement:
    ``DQ(shuffle(q)) == shuffle(DQ(q))`` bit for bit. The shuffle is written as Transpose to
    NHWC + Reshape + Transpose + Reshape on u8; the first Transpose cancels the NHWC -> NCHW one
    ORT puts after a QLinearConv. CRD mode only (PyTorch's PixelShuffle); returns False and
    leaves the graph alone for anything else.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    if len(graph.output) != 1:
        return False
    producers = {o: n for n in graph.node for o in n.output}
    d2s = producers.get(graph.output[0].name)
    if d2s is None or d2s.op_type != "DepthToSpace":
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in d2s.attribute}
    dq = producers.get(d2s.input[0])
    consumers = [n for n in graph.node if d2s.input[0] in n.input]
    if (
        attrs.get("mode", b"DCR") not in (b"CRD", "CRD")
        or dq is None
        or dq.op_type != "DequantizeLinear"
        or len(consumers) != 1
        or len(dq.input) < 2
    ):
        return False
    r = int(attrs["blocksize"])
    prefix = "edgesr_u8_shuffle/"

    def const(name: str, values: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), prefix + name))
        return prefix + name

    q, shape, dims = dq.input[0], prefix + "shape", prefix + "dims"
    out_dims = graph.output[0].type.tensor_type.shape.dim
    one_channel = len(out_dims) == 4 and out_dims[1].dim_value == 1
    nodes = [helper.make_node("Shape", [q], [shape])]
    # ORT's u8 Transpose is about 4x slower on 6-D than on 5-D tensors (ESPCN x4 at 270x480:
    # 2.3 vs 0.6 ms), so a one-channel output is shuffled in 5-D.
    if one_channel:  # [N,H,W,r*r] -> [N,H,W,r,r] -> [N,H,r,W,r]
        split, perm = [0, 0, 0, r, r], [0, 1, 3, 2, 4]
    else:  # [N,H,W,C*r*r] -> [N,H,W,C,r,r] -> [N,C,H,r,W,r]
        split, perm = [0, 0, 0, -1, r, r], [0, 3, 1, 4, 2, 5]
    nodes += [
        helper.make_node("Transpose", [q], [prefix + "nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", [prefix + "nhwc", const("split", split)], [prefix + "nd"]),
        helper.make_node("Transpose", [prefix + "nd"], [prefix + "moved"], perm=perm),
        # (N, C*r*r, H, W) -> (N, C, H*r, W*r)
        helper.make_node("Mul", [shape, const("up", [1, 1, r, r])], [prefix + "scaled"]),
        helper.make_node("Div", [prefix + "scaled", const("down", [1, r * r, 1, 1])], [dims]),
        helper.make_node("Reshape", [prefix + "moved", dims], [prefix + "u8"]),
        helper.make_node("DequantizeLinear", [prefix + "u8", *dq.input[1:]], [d2s.output[0]]),
    ]
    nodes[-1].attribute.extend(dq.attribute)
    for i, node in enumerate(nodes):
        node.name = f"{prefix}{i}_{node.op_type}"
    kept = [n for n in graph.node if n is not dq and n is not d2s]
    graph.ClearField("node")
    graph.node.extend(kept + nodes)
    return True


def place_u8_pixel_shuffle(path: Path, tmp: Path) -> bool:
    """Rewrite ``path`` with :func:`u8_pixel_shuffle` where it pays: only if ORT's optimized
    graph gains no Transpose, i.e. the last op runs in NHWC and its layout Transpose cancels.

    After an op ORT keeps in NCHW (AnchorNet's final QLinearAdd) nothing cancels and a u8
    shuffle is an extra full Transpose: one written for NCHW measured 34 % slower there
    (srgan_lite_x4, 43 -> 57 ms at 2 threads), so the float DepthToSpace is kept.
    """
    import onnx

    proto = onnx.load(str(path))
    candidate = copy.deepcopy(proto)
    if not u8_pixel_shuffle(candidate):
        return False
    trial = tmp / "u8_shuffle.onnx"
    onnx.save(candidate, str(trial))
    if ort_graph_ops(trial)["Transpose"] > ort_graph_ops(path)["Transpose"]:
        return False
    onnx.save(candidate, str(path))
    return True
