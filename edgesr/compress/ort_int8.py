"""ORT-CPU INT8: ONNX Runtime static quantization (QDQ, u8 activations, s8 weights).

:func:`quantize_ort_static` puts a QuantizeLinear after every conv (the output on the 8-bit
image grid), so ORT's CPU provider fuses each conv into QLinearConv, and applies the graph
passes of :mod:`edgesr.export.onnx_passes` that make its int8 kernels fast.
:func:`qat_to_ort_int8` carries an NNCF (QAT) model's weights and quantizer grids into it as
``TensorQuantOverrides`` instead of recalibrating, so the ORT model computes what QAT trained.
Weights are 7-bit (:data:`ORT_CPU_WEIGHT_BITS`) so that no u8 x s8 pair can saturate x86
kernels without VNNI: the same result on every CPU.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgesr.compress.nncf_int8 import (
    bake_qat_weights,
    calibration_frames,
    export_float_onnx,
    float_conv_nodes,
    nncf_activation_ranges,
    rebuild_plain,
    weight_quantizers,
)
from edgesr.errors import ConfigError, ModelError
from edgesr.export import onnx_passes
from edgesr.runtime.saturation import int8_saturation

__all__ = ["ORT_CPU_WEIGHT_BITS", "qat_to_ort_int8", "quantize_ort_static"]

# Weights of ORT-CPU INT8 models: 7 bits ([-64, 64]) keep every u8 x s8 pair sum within int16
# (255 * 128 <= 32767), so x86 CPUs without VNNI (VPMADDUBSW saturates) compute exactly what
# VNNI and ARM compute, in any ORT session. Same kernels, same speed; QAT wins back the bit
# (ESPCN x4, Set5: see README "INT8 on every CPU").
ORT_CPU_WEIGHT_BITS = 7


class _FrameReader:
    """An ORT CalibrationDataReader over in-memory frames (rewindable, range-selectable)."""

    def __init__(self, frames: Sequence[np.ndarray], input_name: str) -> None:
        self.frames, self.input_name = list(frames), input_name
        self.start, self.end, self.pos = 0, len(self.frames), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start + self.pos >= self.end:
            return None
        frame = np.ascontiguousarray(self.frames[self.start + self.pos], dtype=np.float32)
        self.pos += 1
        return {self.input_name: frame}

    def __len__(self) -> int:
        return len(self.frames)

    def rewind(self) -> None:
        self.pos = 0

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.pos = start_index, min(end_index, len(self.frames)), 0


def _ort_overrides(ranges: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Accept (min, max), a dict, or a per-channel list of dicts per tensor."""
    from onnxruntime.quantization import QuantType

    out: dict[str, list[dict[str, Any]]] = {}
    for name, value in ranges.items():
        if isinstance(value, tuple) and len(value) == 2:
            entries = [{"rmin": value[0], "rmax": value[1]}]
        elif isinstance(value, Mapping):
            entries = [dict(value)]
        elif isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
            entries = [dict(v) for v in value]
        else:
            raise ConfigError(
                f"range for tensor '{name}' must be (min, max), a dict of ORT overrides or a "
                f"per-channel list of dicts, got {value!r}."
            )
        for entry in entries:
            for key in ("rmin", "rmax"):
                if key in entry:
                    entry[key] = np.array(entry[key], dtype=np.float32)
            if isinstance(entry.get("quant_type"), str):
                entry["quant_type"] = getattr(QuantType, entry["quant_type"])
            if "scale" in entry:
                # ORT wants numpy arrays typed like the quantized tensor (not numpy scalars).
                qtype = entry.get(
                    "quant_type", QuantType.QInt8 if "axis" in entry else QuantType.QUInt8
                )
                entry["scale"] = np.array(entry["scale"], dtype=np.float32)
                entry["zero_point"] = np.array(
                    entry["zero_point"], dtype=np.uint8 if qtype == QuantType.QUInt8 else np.int8
                )
        out[name] = entries
    return out


def quantize_ort_static(
    fp32_onnx: str | os.PathLike,
    out_path: str | os.PathLike,
    calib: Iterable[np.ndarray],
    *,
    per_channel: bool = True,
    ranges: Mapping[str, Any] | None = None,
    calibrate_method: str = "minmax",
    percentile: float = 99.999,
    output_grid: bool = True,
    input_range: tuple[float, float] | None = (0.0, 1.0),
    im2col_first_conv: bool = True,
    u8_pixel_shuffle: bool = True,
    weight_bits: int = ORT_CPU_WEIGHT_BITS,
    preprocess: bool = True,
    exclude_nodes: Sequence[str] = (),
) -> Path:
    """ORT-CPU INT8: ``quantize_static`` in QDQ format, u8 activations and s8 weights.

    U8S8 is ORT's fast path on x86 (VNNI: vpdpbusd) and ARM. Weights are 7-bit by default so
    that x86 CPUs without VNNI, whose vpmaddubsw saturates pairs at int16, compute the same
    (:data:`ORT_CPU_WEIGHT_BITS`). Every Conv output gets a QuantizeLinear, so ORT fuses each
    conv into QLinearConv.

    Args:
        fp32_onnx: float model with edgesr metadata (copied into the output).
        calib: float32 LR frames; with ``ranges`` covering every tensor they are still run
            (ORT calibrates whatever is not overridden) but decide nothing that is.
        ranges: ``TensorQuantOverrides`` per tensor name, e.g. from
            :func:`nncf_activation_ranges`; (min, max) tuples are accepted too.
        calibrate_method: "minmax" (default), "entropy" or "percentile" (``percentile`` %).
            On ESPCN x4 entropy clipped activation ranges and lost 2.8 dB against minmax;
            percentile 99.999 was within 0.005 dB of it.
        output_grid: quantize the output pixels (the last Conv/Add, before DepthToSpace) on
            the 8-bit image grid, scale 1/255 and zero point 0, instead of a calibrated range:
            the same clip-and-round an 8-bit image gets anyway, so lossless, and the last conv
            stays int8.
        input_range: fixed (min, max) of the input quantizer (default: the [0, 1] image range,
            u8 step 1/255, as :func:`~edgesr.compress.nncf_int8.ptq_nncf` pins it); None:
            calibrated. An entry for the input in ``ranges`` wins.
        im2col_first_conv: run the first conv of a 1-3 channel input as taps + 1x1 conv
            (:func:`onnx_passes.im2col_first_conv`; same result, about 6x faster on ORT's int8
            kernels).
        u8_pixel_shuffle: run the final PixelShuffle on the u8 output pixels, before their
            DequantizeLinear (:func:`onnx_passes.u8_pixel_shuffle`; same result, ESPCN x4 10%
            faster).
        weight_bits: 7 (default: the same result on every CPU) or 8 (finer, but without VNNI
            x86 ORT kernels can saturate: only for targets known to accumulate in int32). With
            per-channel weight ``ranges`` the overrides' scales decide the integers; they must
            fit ``weight_bits``. The result is checked (:mod:`edgesr.runtime.saturation`) and
            recorded in the metadata (``edgesr.int8_weight_bits``, ``edgesr.int8_portable``).
        preprocess: run ORT's ``quant_pre_process`` (shape inference + graph cleanup) first.
        exclude_nodes: ONNX node names left in float (mixed precision); ORT inserts
            DequantizeLinear before them and QuantizeLinear after.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if calibrate_method not in methods:
        raise ConfigError(
            f"calibrate_method must be one of {sorted(methods)}, got {calibrate_method!r}."
        )
    if weight_bits not in (7, 8):
        raise ConfigError(f"weight_bits must be 7 or 8, got {weight_bits!r}.")
    frames = calibration_frames(calib)
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    if not fp32_onnx.is_file():
        raise ModelError(f"FP32 ONNX model {fp32_onnx} does not exist.")
    overrides = _ort_overrides(ranges or {})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgesr-ortq-") as tmp:
        source = fp32_onnx
        if preprocess:
            source = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_onnx), str(source), skip_symbolic_shape=True)
        proto = onnx.load(str(source))
        names = (
            {i.name for i in proto.graph.initializer}
            | {o for n in proto.graph.node for o in n.output}
            | {i.name for i in proto.graph.input}
        )
        missing = sorted(set(overrides) - names)
        if missing:
            raise ModelError(
                f"range overrides name tensors that {fp32_onnx} does not have: {missing[:5]}; "
                "compute them against this ONNX file (nncf_activation_ranges(qmodel, fp32_onnx))."
            )
        last = onnx_passes.output_conv_tensor(proto) if output_grid else None
        if last is not None and last not in overrides:
            overrides.update(
                _ort_overrides({last: {"quant_type": "QUInt8", **onnx_passes.OUTPUT_GRID}})
            )
        graph_input = proto.graph.input[0].name
        if input_range is not None and graph_input not in overrides:
            low, high = (float(v) for v in input_range)
            if not high > low or low > 0 or high < 0:
                raise ConfigError(
                    f"input_range must contain 0 and have max > min, got {input_range!r}."
                )
            step = (high - low) / 255.0
            overrides.update(
                _ort_overrides(
                    {
                        graph_input: {
                            "quant_type": "QUInt8",
                            "scale": step,
                            "zero_point": round(-low / step),
                        }
                    }
                )
            )
        # Steps of the image's grid (255: every 8-bit pixel value; 127: 7 bits, which lets
        # the first conv take 8-bit weights, see edgesr.runtime.saturation).
        entry = overrides.get(graph_input, [{}])[0]
        levels = round(1.0 / float(entry["scale"])) if "scale" in entry else 0
        # Copies of the image (AnchorNet's anchor: a Concat of the input, or of its Split
        # channels, r^2 times) keep its grid; calibrated, they would be re-rounded on a step
        # set by the frames' brightest pixel, off the image's own grid (AnchorNet x3: +0.009 dB
        # Set5).
        if graph_input in overrides:
            copies = {graph_input}
            for node in proto.graph.node:  # topological order
                data = node.input[:1] if node.op_type == "Split" else node.input  # + sizes
                if node.op_type in ("Split", "Concat") and set(data) <= copies:
                    copies.update(node.output)
                    if node.op_type == "Concat":
                        overrides.setdefault(node.output[0], copy.deepcopy(overrides[graph_input]))
        node_names = {n.name for n in proto.graph.node}
        stray = sorted(set(exclude_nodes) - node_names)
        if stray:
            raise ModelError(f"exclude_nodes name nodes that {fp32_onnx} does not have: {stray}.")
        first_conv_float = any(
            n.op_type == "Conv" and n.name in exclude_nodes and n.input[0] == graph_input
            for n in proto.graph.node
        )
        # A float first conv gains nothing from the int8 im2col rewrite.
        im2col = (
            onnx_passes.im2col_first_conv(proto)
            if im2col_first_conv and not first_conv_float
            else []
        )
        if im2col:
            # The taps are copies of the input: same grid, so Slice/Concat run on u8 as is.
            for name in im2col:
                if graph_input in overrides:
                    overrides[name] = copy.deepcopy(overrides[graph_input])
            source = Path(tmp) / "im2col.onnx"
            onnx.save(proto, str(source))
        extra: dict[str, Any] = {"TensorQuantOverrides": overrides}
        if calibrate_method == "percentile":
            extra["CalibPercentile"] = percentile
        if calibrate_method != "minmax":
            # ORT's histogram collectors stack each batch's tensors, so frames of different
            # sizes must come one at a time; the histograms merge across batches.
            extra["CalibStridedMinMax"] = 1
        quantize_static(
            str(source),
            str(out_path),
            _FrameReader(frames, proto.graph.input[0].name),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            # ORT's reduce_range means 7-bit weights ([-64, 64]); activations stay 8-bit.
            reduce_range=weight_bits == 7,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[calibrate_method],
            nodes_to_exclude=list(exclude_nodes),
            extra_options=extra,
        )
        shuffle = u8_pixel_shuffle and onnx_passes.place_u8_pixel_shuffle(out_path, Path(tmp))
    saturation = int8_saturation(out_path)
    if weight_bits == 7 and not saturation.free:
        out_path.unlink()
        raise ModelError(
            f"{saturation.summary()}; the weight ranges passed in are wider than 7 bits: "
            "quantize with ptq_nncf(..., weight_bits=7)."
        )
    onnx_passes.copy_metadata(
        fp32_onnx,
        out_path,
        {
            "edgesr.quantization": "ort-qdq" + ("+nncf-ranges" if ranges else ""),
            "edgesr.int8_first_conv": "im2col" if im2col else "conv",
            "edgesr.int8_pixel_shuffle": "u8" if shuffle else "float",
            "edgesr.int8_weight_bits": str(weight_bits),
            **({"edgesr.int8_input_levels": str(levels)} if levels else {}),
            # "true": no u8 x s8 weight pair can saturate; the same integers on every CPU.
            "edgesr.int8_portable": "true" if saturation.free else "false",
            **({"edgesr.float_nodes": ",".join(exclude_nodes)} if exclude_nodes else {}),
        },
    )
    return out_path


def qat_to_ort_int8(
    qmodel: nn.Module,
    out_path: str | os.PathLike,
    calib: Iterable[np.ndarray],
    *,
    scale: int | None = None,
    color: str | None = None,
    carry_weights: bool = True,
    keep_fp32: str | os.PathLike | None = None,
    portable: bool = True,
) -> Path:
    """The ORT-CPU INT8 model of an NNCF (QAT) model, carrying its weights and ranges.

    The QAT weights are baked (fake-quantized values, :func:`bake_qat_weights`) into a float
    ONNX, then :func:`quantize_ort_static` quantizes it with NNCF's per-channel weight scales
    and activation scales/zero points as ``TensorQuantOverrides``: ORT re-derives the same
    int8 weights and the same activation grids, so nothing is recalibrated. Only tensors NNCF
    did not quantize are calibrated on ``calib`` (and the output goes on the 8-bit grid).

    ``portable`` (default) requires a model that computes the same on every CPU: 7-bit weights
    (``ptq_nncf(..., weight_bits=7)``), or 8-bit ones only where the conv's input cannot reach
    255 (the first conv with ``input_bits=7``); checked on the result
    (:func:`~edgesr.runtime.saturation.int8_saturation`). ``portable=False`` carries 8-bit
    weights anywhere, for targets known to accumulate in int32 (VNNI, ARM dot product).
    """
    bits = {int(q.num_bits) for q in weight_quantizers(qmodel).values()}
    with tempfile.TemporaryDirectory(prefix="edgesr-qat2ort-") as tmp:
        fp32 = Path(keep_fp32) if keep_fp32 else Path(tmp) / "qat_float.onnx"
        net = bake_qat_weights(qmodel) if carry_weights else rebuild_plain(qmodel)
        export_float_onnx(net, fp32, scale=scale, color=color)
        ranges = nncf_activation_ranges(qmodel, fp32, weights=carry_weights)
        path = quantize_ort_static(
            fp32,
            out_path,
            calib,
            ranges=ranges,
            exclude_nodes=float_conv_nodes(qmodel, fp32),
            weight_bits=max(bits, default=7),
        )
    saturation = int8_saturation(path)
    if portable and not saturation.free:
        path.unlink()
        raise ModelError(
            f"{saturation.summary()}: quantize with ptq_nncf(..., weight_bits=7) (8 bits only "
            "for a first conv with input_bits=7), or pass portable=False for a model that only "
            "runs on VNNI or ARM CPUs."
        )
    return path
