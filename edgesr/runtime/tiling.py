"""Tiled inference: a frame cut into tiles with context, bit-identical to the whole frame.

Every shipped net is fully convolutional, so an output pixel depends only on LR pixels within
the net's *receptive radius* (computed here from the architecture, never hard-coded). A tile is
a crop of the frame with ``overlap`` LR pixels of real context on every side that is not a frame
border; at a frame border the crop stops, so the net zero-pads exactly where it pads the whole
frame. With ``overlap >= radius`` the tile's core is therefore computed from the same inputs as
in the whole frame, and the result is bit-identical (same runner, same per-pixel arithmetic).

With a smaller overlap the core's edge pixels see zero padding instead of their neighbours; the
tiles are then blended across each seam with linear ramps over ``2 * overlap`` LR pixels (the
ramps of the two tiles sum to one), which hides the seam. ``overlap=0`` is plain cropping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import ConfigError, ModelError

__all__ = [
    "Tile",
    "onnx_receptive_radius",
    "plan_tiles",
    "run_tiled",
    "torch_receptive_radius",
]


# -- receptive radius ------------------------------------------------------------------------
def _conv_extent(kernel: int, dilation: int, pad_begin: int) -> int:
    """LR pixels one stride-1 conv reaches on either side of its output pixel."""
    span = dilation * (kernel - 1)
    return max(pad_begin, span - pad_begin)


def _deconv_extent(kernel: int, stride: int, pad_begin: int, dilation: int = 1) -> int:
    """LR pixels a transposed conv (stride s = the upscale) reaches around one LR pixel's block.

    Output pixel p takes input i where p = i*s - pad + k*d; over p in [j*s, j*s + s - 1] the
    inputs run from j - floor((d*(K-1) - pad)/s) to j + floor((s - 1 + pad)/s).
    """
    span = dilation * (kernel - 1)
    return max((span - pad_begin) // stride, (stride - 1 + pad_begin) // stride, 0)


def torch_receptive_radius(module: Any) -> int:
    """Sum of the reach of every conv in ``module`` (walked in registration order), LR pixels.

    Exact for a chain of convs (ESPCN, FSRCNN, folded AnchorNet); an upper bound for nets with
    parallel branches (an unfolded RepConv3x3), which is still safe for tiling.
    """
    from torch import nn

    radius = 0
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose2d):
            s = int(m.stride[0])
            radius += max(
                _deconv_extent(int(m.kernel_size[i]), s, int(m.padding[i]), int(m.dilation[i]))
                for i in (0, 1)
            )
        elif isinstance(m, nn.Conv2d):
            if tuple(m.stride) != (1, 1):
                raise ModelError(
                    f"a strided conv ({m}) is not a super-resolution layer edgesr can tile; "
                    "pass tile=None to run whole frames."
                )
            if isinstance(m.padding, str):
                pads = [m.dilation[i] * (m.kernel_size[i] - 1) // 2 for i in (0, 1)]
            else:
                pads = [int(p) for p in m.padding]
            radius += max(
                _conv_extent(int(m.kernel_size[i]), int(m.dilation[i]), pads[i]) for i in (0, 1)
            )
    return radius


_CONV_WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3}


def onnx_receptive_radius(model: str | Path | Any) -> int:
    """The same sum over an ONNX graph's Conv / QLinearConv / ConvInteger / ConvTranspose nodes."""
    import onnx
    from onnx import numpy_helper

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    # A QDQ model's weights reach the conv through DequantizeLinear: follow it back.
    producer = {out: node for node in proto.graph.node for out in node.output}
    radius = 0
    for node in proto.graph.node:
        if node.op_type == "Pad":
            # An explicit im2col (Pad, then shifted Slices, then a 1x1 conv, as edgesr's INT8
            # ORT models write a 5x5 conv) reaches as far as it pads.
            radius += _pad_extent(node, proto, producer)
            continue
        if node.op_type not in _CONV_WEIGHT_INPUT:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        kernel = attrs.get("kernel_shape")
        if kernel is None:
            name = node.input[_CONV_WEIGHT_INPUT[node.op_type]]
            while name not in shapes and name in producer and producer[name].input:
                src = producer[name]
                if src.op_type == "Constant":
                    shapes[name] = tuple(numpy_helper.to_array(src.attribute[0].t).shape)
                    break
                name = src.input[0]
            if name not in shapes:
                raise ModelError(
                    f"cannot find the kernel size of {node.op_type} node '{node.name}'; "
                    "pass tile=None (no tiling) or an explicit receptive radius."
                )
            kernel = shapes[name][2:]
        dil = attrs.get("dilations", [1] * len(kernel))
        pads = attrs.get("pads", [0] * (2 * len(kernel)))
        strides = attrs.get("strides", [1] * len(kernel))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            pads = [d * (k - 1) // 2 for k, d in zip(kernel, dil, strict=True)] * 2
        if node.op_type == "ConvTranspose":
            radius += max(
                _deconv_extent(int(k), int(s), int(p), int(d))
                for k, s, p, d in zip(kernel, strides, pads[: len(kernel)], dil, strict=True)
            )
            continue
        if any(int(s) != 1 for s in strides):
            raise ModelError(
                f"{node.op_type} node '{node.name}' has stride {list(strides)}; edgesr tiles only "
                "stride-1 convs (pass tile=None)."
            )
        radius += max(
            _conv_extent(int(k), int(d), int(p))
            for k, d, p in zip(kernel, dil, pads[: len(kernel)], strict=True)
        )
    return radius


def _pad_extent(node: Any, proto: Any, producer: dict[str, Any]) -> int:
    """The largest spatial (H/W) padding of an ONNX Pad node on NCHW tensors."""
    import onnx
    from onnx import numpy_helper

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    pads = attrs.get("pads")
    if pads is None and len(node.input) > 1 and node.input[1]:
        name = node.input[1]
        inits = {t.name: t for t in proto.graph.initializer}
        if name in inits:
            pads = numpy_helper.to_array(inits[name]).tolist()
        elif name in producer and producer[name].op_type == "Constant":
            pads = numpy_helper.to_array(producer[name].attribute[0].t).tolist()
    if pads is None:
        raise ModelError(
            f"cannot read the padding of Pad node '{node.name}' (computed at run time); pass "
            "an explicit receptive radius (overlap) or tile=0."
        )
    half = len(pads) // 2
    spatial = [int(p) for i, p in enumerate(pads) if i % half >= half - 2]
    return max([0, *spatial])


# -- tiles -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """One tile in LR pixels: the core it owns and the crop (core + context) the net sees."""

    core: tuple[int, int, int, int]  # y0, y1, x0, x1
    crop: tuple[int, int, int, int]


def _split(length: int, tile: int) -> list[tuple[int, int]]:
    """``length`` cut into ceil(length/tile) nearly equal cores (none tiny at the end)."""
    n = max(1, math.ceil(length / tile))
    edges = [round(i * length / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def plan_tiles(height: int, width: int, *, tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most ``tile`` x ``tile`` LR pixels covering the frame, row by row."""
    if tile < 1 or overlap < 0:
        raise ConfigError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    tiles = []
    for y0, y1 in _split(height, tile):
        for x0, x1 in _split(width, tile):
            crop = (
                max(0, y0 - overlap),
                min(height, y1 + overlap),
                max(0, x0 - overlap),
                min(width, x1 + overlap),
            )
            tiles.append(Tile(core=(y0, y1, x0, x1), crop=crop))
    return tiles


def _ramp(c0: int, c1: int, r0: int, r1: int, length: int, overlap: int, scale: int) -> np.ndarray:
    """1-D blend weights over a crop's HR span: 1 inside, linear ramps across interior seams.

    The ramp over a seam at LR position c spans HR [(c-o)s, (c+o)s); the rising ramp of the
    tile after the seam and the falling ramp of the tile before it sum to exactly one.
    """
    s, band = scale, 2 * overlap * scale
    p = np.arange(r0 * s, r1 * s, dtype=np.float64) + 0.5
    w = np.ones_like(p)
    if c0 > 0:
        w = np.minimum(w, np.clip((p - (c0 - overlap) * s) / band, 0.0, 1.0))
    if c1 < length:
        w = np.minimum(w, np.clip(((c1 + overlap) * s - p) / band, 0.0, 1.0))
    return w.astype(np.float32)


def run_tiled(
    infer: Callable[[np.ndarray], np.ndarray],
    lr: np.ndarray,
    *,
    scale: int,
    tile: int | None,
    overlap: int,
    radius: int,
) -> np.ndarray:
    """Run ``infer`` (NCHW float32 -> NCHW float32) on a [C,H,W] frame tile by tile.

    ``tile=None`` (or a tile covering the frame) is one call on the whole frame. Returns
    float32 [C, sH, sW].
    """
    c, h, w = lr.shape
    if tile is None or (tile >= h and tile >= w):
        return infer(lr[None])[0]
    tiles = plan_tiles(h, w, tile=tile, overlap=overlap)
    out = np.empty((c, h * scale, w * scale), np.float32)
    s = scale
    crop_cores = overlap >= radius or overlap == 0  # exact, or plain hard seams
    if not crop_cores:
        cores = [t.core for t in tiles]
        smallest = min(min(y1 - y0, x1 - x0) for y0, y1, x0, x1 in cores)
        if 2 * overlap > smallest:
            raise ConfigError(
                f"overlap {overlap} is too wide to blend tiles of {smallest} LR pixels; use an "
                f"overlap of at most {smallest // 2}, or >= the receptive radius {radius} "
                "(exact, no blending)."
            )
        out.fill(0.0)
    for t in tiles:
        (y0, y1, x0, x1), (r0, r1, q0, q1) = t.core, t.crop
        sr = infer(lr[None, :, r0:r1, q0:q1])[0]
        if crop_cores:
            out[:, y0 * s : y1 * s, x0 * s : x1 * s] = sr[
                :, (y0 - r0) * s : (y1 - r0) * s, (x0 - q0) * s : (x1 - q0) * s
            ]
        else:
            wy = _ramp(y0, y1, r0, r1, h, overlap, s)
            wx = _ramp(x0, x1, q0, q1, w, overlap, s)
            out[:, r0 * s : r1 * s, q0 * s : q1 * s] += sr * wy[:, None] * wx[None, :]
    return out
