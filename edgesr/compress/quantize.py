"""INT8: NNCF post-training quantization, QAT with distillation, and per-target INT8 ONNX.

Two deployable layouts come out of one NNCF-quantized (and QAT-tuned) model:

* **TensorRT-style Q/DQ** (:func:`export_qdq_onnx`): ``nncf.strip`` to torch fake-quantizers,
  then the ONNX export. Weights are QuantizeLinear/DequantizeLinear per channel (axis 0,
  symmetric, zero point 0), activations per tensor, the output left float. TensorRT builds
  INT8 kernels from it. ONNX Runtime's CPU provider only fuses a conv into QLinearConv when a
  QuantizeLinear follows it, so the last conv runs in float on dequantized inputs and the
  model is no faster than FP32 there (ESPCN x4: 0.94-0.98x).
* **ORT-CPU QDQ** (:func:`quantize_ort_static`, :func:`qat_to_ort_int8`): ORT's
  ``quantize_static`` (u8 activations, s8 per-channel weights) with a QuantizeLinear after
  every conv (the output on the 8-bit image grid), so every conv becomes QLinearConv, and the
  single-channel first conv rewritten as u8 taps + a 1x1 conv that ORT's VNNI kernels run
  fast. :func:`qat_to_ort_int8` carries the QAT-learned weights and quantizer grids of the
  NNCF model into it through ``TensorQuantOverrides`` instead of recalibrating, so the ORT
  model computes what QAT trained (8-bit outputs agree to within one level). Its weights are
  7-bit (:data:`ORT_CPU_WEIGHT_BITS`), trained as such by QAT, so that no u8 x s8 pair can
  saturate ORT's x86 kernels without VNNI: the model computes the same on every CPU
  (:mod:`edgesr.runtime.saturation` checks it and the metadata records it).

NNCF is imported inside the functions, never at module import: ``import edgesr`` stays light
and NNCF stays optional.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesr.errors import ConfigError, DataError, ModelError, require
from edgesr.runtime.saturation import int8_saturation

__all__ = [
    "ORT_CPU_WEIGHT_BITS",
    "OUTPUT_GRID",
    "bake_qat_weights",
    "export_qdq_onnx",
    "nncf_activation_ranges",
    "ort_graph_ops",
    "ptq_nncf",
    "qat_finetune",
    "qat_to_ort_int8",
    "quantize_ort_static",
]

_NNCF_INSTALL = "pip install 'edgesr[compress]' (or: pip install nncf)"
_ONNX_COLOR = {"y": "y_bt601", "rgb": "rgb"}
# u8 scale 1/255, zero point 0: the 8-bit grid the SR output is stored on anyway (evaluation
# and every camera pipeline round to it), so quantizing the model output there costs nothing,
# while it lets ORT run the last conv as QLinearConv too.
OUTPUT_GRID = {"scale": 1.0 / 255.0, "zero_point": 0}
# Weights of ORT-CPU INT8 models: 7 bits ([-64, 64]) keep every u8 x s8 pair sum within int16
# (255 * 128 <= 32767), so x86 CPUs without VNNI (VPMADDUBSW saturates) compute exactly what
# VNNI and ARM compute, in any ORT session. Same kernels, same speed; QAT wins back the bit
# (ESPCN x4, Set5: see README "INT8 on every CPU").
ORT_CPU_WEIGHT_BITS = 7


def _nncf() -> Any:
    return require("nncf", purpose="INT8 quantization with NNCF", install=_NNCF_INSTALL)


def _as_tensor(frame: Any) -> torch.Tensor:
    if isinstance(frame, torch.Tensor):
        return frame.float()
    return torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))


def _frames(calib: Iterable[Any]) -> list[Any]:
    frames = list(calib)
    if not frames:
        raise DataError(
            "the calibration set is empty; pass frames from edgesr.compress.calibration."
            "load_calibration('embedded', ...) or a folder of your own images."
        )
    return frames


def _deployable(model: nn.Module) -> nn.Module:
    """The fused, eval-mode copy (never the caller's module: NNCF wraps models in place)."""
    fuse = getattr(model, "fuse", None)
    out = fuse() if callable(fuse) else copy.deepcopy(model)
    return out.eval()


# ---------------------------------------------------------------------------------------------
# ONNX helpers
# ---------------------------------------------------------------------------------------------


def _export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    scale: int | None = None,
    color: str | None = None,
    opset: int = 17,
) -> Path:
    """Export a float (or stripped fake-quantized) net with dynamic N/H/W and edgesr metadata.

    Private stand-in for ``edgesr.export.onnx_export.export_onnx`` until the pipeline switches
    over; it writes ``edgesr.scale``/``edgesr.color`` so :class:`OnnxRuntimeRunner` can run it.
    """
    import onnx

    scale = int(scale or getattr(model, "scale", 0))
    channels = int(getattr(model, "num_channels", 1 if color in (None, "y") else 3))
    color = color or ("y" if channels == 1 else "rgb")
    if scale < 1 or color not in _ONNX_COLOR:
        raise ConfigError(
            f"exporting needs scale >= 1 and color 'y'/'rgb', got {scale}, {color!r}."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, channels, 32, 32)
    dims = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        torch.onnx.export(
            model.eval(),
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["lr"],
            output_names=["sr"],
            dynamic_axes={"lr": dims, "sr": {0: "batch", 2: "sr_height", 3: "sr_width"}},
        )
    proto = onnx.load(str(path))
    meta = {"edgesr.scale": str(scale), "edgesr.color": _ONNX_COLOR[color]}
    kept = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def _copy_metadata(
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


# ---------------------------------------------------------------------------------------------
# NNCF: PTQ, QAT, strip/export
# ---------------------------------------------------------------------------------------------


def ptq_nncf(
    model: nn.Module,
    calib: Iterable[np.ndarray],
    *,
    subset_size: int | None = None,
    preset: str = "performance",
    target_device: str = "CPU",
    range_estimator: str = "minmax",
    bias_correction: bool = False,
    input_range: tuple[float, float] | None = (0.0, 1.0),
    signed_activations: bool = False,
    quantize_output: bool = False,
    float_layers: Sequence[str] = (),
    weight_bits: int = 8,
) -> nn.Module:
    """Post-training INT8 quantization of the deployable net with ``nncf.quantize``.

    Weights: symmetric per-channel, ``weight_bits`` wide (8: narrow range [-127, 127], what
    TensorRT uses; 7: [-63, 63], what ORT-CPU models need to be exact on every x86 CPU, see
    :data:`ORT_CPU_WEIGHT_BITS`). Activations: per-tensor, unsigned after ReLU (a full 8 bits for the
    one-sided range). The defaults are the SR-specific choices measured on a ReLU ESPCN x4
    (Set5 Y-PSNR of the PTQ model, each against these defaults):

    * ``range_estimator="minmax"`` (global min/max). NNCF's default averages per-frame maxima,
      which clips highlights and strong edges that only some frames have: an SR net must
      reproduce those, and clipping them cost 0.75 dB.
    * ``input_range=(0, 1)``: the input quantizer covers the whole image range (u8 step 1/255),
      whatever the calibration frames' brightest pixel was.
    * ``bias_correction=False``: NNCF's fast bias correction shifts biases so per-channel
      mean activations match FP32 on the calibration frames; for SR that cost 0.39 dB.
    * The output (the input of PixelShuffle) is not quantized unless ``quantize_output``: a
      signed int8 output quantizer is coarser than the 8-bit image the output becomes
      (0.035 dB). The ORT-CPU model adds its own lossless output grid (:data:`OUTPUT_GRID`).
    * NNCF's overflow fix (7-bit weights in the first layer only) is off: ``weight_bits=7``
      covers every layer, and QAT trains with the 7-bit grid.

    Args:
        model: FP32 net; ``model.fuse()`` (when it has one) is quantized, ``model`` is untouched.
        calib: float32 ``(1, C, h, w)`` LR frames (see
            :func:`edgesr.compress.calibration.load_calibration`).
        subset_size: frames used for statistics (default: all).
        preset: "performance" (symmetric activations, TensorRT-compatible) or "mixed"
            (asymmetric activations: finer for signed tensors, not for TensorRT).
        target_device: NNCF hardware config, "CPU" or "ANY" (same INT8 scheme for these nets).
        range_estimator: "minmax", "mean_minmax", "mean_quantile" or "histogram".
        bias_correction: run NNCF's fast bias correction.
        input_range: fixed (min, max) of the input quantizer; None: calibrated.
        signed_activations: force int8 (signed, zero point 0) activations; TensorRT accepts
            only those. Costs one bit of resolution after ReLU (0.07 dB before QAT).
        quantize_output: also quantize the input of PixelShuffle.
        float_layers: module paths of convs (``"tail"``, ``"body.4"``) left in float: mixed
            precision, see :func:`edgesr.compress.mixed.select_float_layers`.
        weight_bits: 8 (TensorRT) or 7 (ORT-CPU: no int16 saturation on any x86 CPU).

    Returns the NNCF-wrapped torch module (fake-quantized; trainable for QAT).
    """
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    frames = _frames(calib)
    presets = {
        "performance": nncf.QuantizationPreset.PERFORMANCE,
        "mixed": nncf.QuantizationPreset.MIXED,
    }
    devices = {"CPU": nncf.TargetDevice.CPU, "ANY": nncf.TargetDevice.ANY}
    estimators = {
        "minmax": RangeEstimatorParametersSet.MINMAX,
        "mean_minmax": RangeEstimatorParametersSet.MEAN_MINMAX,
        "mean_quantile": RangeEstimatorParametersSet.MEAN_QUANTILE,
        "histogram": RangeEstimatorParametersSet.HISTOGRAM,
    }
    if preset not in presets:
        raise ConfigError(f"preset must be one of {sorted(presets)}, got {preset!r}.")
    if str(target_device).upper() not in devices:
        raise ConfigError(f"target_device must be one of {sorted(devices)}, got {target_device!r}.")
    if range_estimator not in estimators:
        raise ConfigError(
            f"range_estimator must be one of {sorted(estimators)}, got {range_estimator!r}."
        )
    if weight_bits not in (7, 8):
        raise ConfigError(f"weight_bits must be 7 or 8, got {weight_bits!r}.")
    advanced: dict[str, Any] = {
        "overflow_fix": OverflowFix.DISABLE,
        "disable_bias_correction": not bias_correction,
        "activations_range_estimator_params": estimators[range_estimator],
    }
    net = _deployable(model)
    ignored_names = _conv_op_names(net, float_layers)
    ignored_types = [] if quantize_output else ["pixel_shuffle"]
    ignored = (
        nncf.IgnoredScope(names=ignored_names, types=ignored_types, validate=False)
        if ignored_names or ignored_types
        else None
    )
    qmodel = nncf.quantize(
        net,
        nncf.Dataset(frames, _as_tensor),
        preset=presets[preset],
        target_device=devices[str(target_device).upper()],
        subset_size=subset_size or len(frames),
        ignored_scope=ignored,
        advanced_parameters=AdvancedQuantizationParameters(**advanced),
    )
    if signed_activations:
        # NNCF 3.4's HW configs reject forcing signedness before quantization (the constraint
        # conflicts with their unsigned-after-ReLU choice), so flip the quantizers after it:
        # the range is kept, the grid becomes int8 with zero point 0.
        _force_signed_activations(qmodel)
    if weight_bits != 8:
        # NNCF 3.4's CPU HW config accepts only 8-bit weights at quantize() time, so narrow
        # the grids after it: each channel keeps its range (max |w|), now on [-63, 63].
        for name, q in _quantizers(qmodel).items():
            if _is_weight_hook(name):
                q.num_bits = weight_bits
    if input_range is not None:
        _set_input_range(qmodel, input_range, _as_tensor(frames[0]))
    return qmodel


def conv_layers(model: nn.Module) -> list[str]:
    """Module paths of the convs of the deployable net, in execution order of definition."""
    return [n for n, m in _deployable(model).named_modules() if isinstance(m, nn.Conv2d)]


def _conv_op_names(net: nn.Module, paths: Sequence[str]) -> list[str]:
    """NNCF 3.4 op names (``body/2/conv2d/0``) of the convs at module ``paths`` of ``net``."""
    if isinstance(paths, str):
        raise ConfigError(f"float_layers must be a list of module paths, got the string {paths!r}.")
    valid = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    unknown = [p for p in paths if p not in valid]
    if unknown:
        raise ConfigError(
            f"float_layers {unknown} are not convs of this net; valid: {', '.join(valid)}."
        )
    return [f"{p.replace('.', '/')}/conv2d/0" for p in paths]


def _force_signed_activations(qmodel: nn.Module) -> None:
    from nncf.torch.quantization.layers import SymmetricQuantizer

    for name, q in _quantizers(qmodel).items():
        if _is_weight_hook(name):
            continue  # weights are signed already
        if not isinstance(q, SymmetricQuantizer):
            raise ConfigError(
                "signed_activations needs symmetric activations (preset='performance')."
            )
        q.signed = True


@torch.no_grad()
def _set_input_range(
    qmodel: nn.Module, input_range: tuple[float, float], example: torch.Tensor
) -> None:
    """Pin the quantizer on the net input to ``input_range`` and keep QAT from moving it."""
    from nncf.torch.quantization.layers import AsymmetricQuantizer, SymmetricQuantizer

    low, high = (float(v) for v in input_range)
    if not high > low:
        raise ConfigError(f"input_range must be (min, max) with max > min, got {input_range!r}.")
    sites, _ = _trace_quantizer_sites(qmodel, example)
    for site in sites:
        if site["input"] is not site["example"]:
            continue
        q = site["module"]
        if isinstance(q, SymmetricQuantizer):
            if low < 0 and not q.signed:
                raise ConfigError(
                    f"input_range {input_range} is signed but the input quantizer is not."
                )
            q.scale.fill_(max(abs(low), abs(high)))
            q.scale.requires_grad_(False)
        elif isinstance(q, AsymmetricQuantizer):
            q.input_low.fill_(low)
            q.input_range.fill_(high - low)
            q.input_low.requires_grad_(False)
            q.input_range.requires_grad_(False)


def qat_finetune(
    qmodel: nn.Module,
    teacher: nn.Module | None,
    data: Any,
    *,
    steps: int,
    lr: float = 3e-4,
    alpha: float = 1.0,
    loss: str = "mse",
    lr_min_ratio: float = 0.01,
    grad_clip: float | None = 1.0,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Quantization-aware fine-tuning with distillation from the FP32 teacher.

    loss = alpha * D(student, teacher) + (1 - alpha) * D(student, HR), D = L1 or MSE. Weights
    and the quantizers' ranges (NNCF scales are parameters) are trained together with Adam,
    the learning rate following a cosine from ``lr`` to ``lr * lr_min_ratio``.

    The defaults are what recovered most PSNR on ESPCN x4 (Set5, 1500 steps of 32 x 24 px
    patches; PTQ -0.18 dB): pure distillation with MSE (alpha 1, -0.08 dB) beat alpha 0.5
    with MSE (-0.10) and with L1 (-0.13); lr 3e-4 beat 1e-4. The INT8 net should reproduce
    the teacher, and MSE is the error PSNR measures. More steps keep helping (4000: -0.06 dB).

    Args:
        qmodel: the model from :func:`ptq_nncf`; trained in place.
        teacher: FP32 net (its ``fuse()`` is used); None for ``alpha=0`` (plain QAT).
        data: anything with ``next_batch() -> (lr, hr)`` NCHW float tensors (a
            :class:`edgesr.data.pairs.PatchSampler`), or a zero-argument callable returning them.
        callback: called as ``callback(step, loss)`` after every step (logging, early stop).

    Returns the per-step losses.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps must be an integer >= 0, got {steps!r}.")
    losses_fn = {"l1": torch.nn.functional.l1_loss, "mse": torch.nn.functional.mse_loss}
    if loss not in losses_fn:
        raise ConfigError(f"loss must be 'l1' or 'mse', got {loss!r}.")
    dist = losses_fn[loss]
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha!r}.")
    if alpha > 0 and teacher is None:
        raise ConfigError("distillation (alpha > 0) needs the FP32 teacher; pass it or alpha=0.")
    next_batch = data.next_batch if hasattr(data, "next_batch") else data
    if not callable(next_batch):
        raise ConfigError("data must have next_batch() or be a callable returning (lr, hr).")
    teacher_net = _deployable(teacher) if teacher is not None else None
    if teacher_net is not None:
        for p in teacher_net.parameters():
            p.requires_grad_(False)
    params = [p for p in qmodel.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    qmodel.train()
    losses: list[float] = []
    for step in range(steps):
        t = step / max(1, steps - 1)
        for group in optimizer.param_groups:
            group["lr"] = lr * (
                lr_min_ratio + (1 - lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
            )
        lr_batch, hr_batch = next_batch()
        lr_batch, hr_batch = _as_tensor(lr_batch), _as_tensor(hr_batch)
        out = qmodel(lr_batch)
        objective = (1.0 - alpha) * dist(out, hr_batch)
        if teacher_net is not None and alpha > 0:
            with torch.no_grad():
                target = teacher_net(lr_batch)
            objective = objective + alpha * dist(out, target)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        value = float(objective.detach())
        if not math.isfinite(value):
            raise ModelError(
                f"QAT loss became {value} at step {step}; lower the learning rate (lr={lr})."
            )
        losses.append(value)
        if callback is not None:
            callback(step, value)
    qmodel.eval()
    return losses


def export_qdq_onnx(
    qmodel: nn.Module,
    path: str | os.PathLike,
    *,
    scale: int | None = None,
    color: str | None = None,
    example_input: torch.Tensor | None = None,
    require_int8_activations: bool = False,
) -> Path:
    """``nncf.strip`` the quantized model to torch fake-quantizers and export a Q/DQ ONNX.

    The layout is the one TensorRT builds INT8 engines from: weights QuantizeLinear ->
    DequantizeLinear per channel on axis 0 with zero point 0; activations per tensor.
    TensorRT accepts only int8 (zero point 0) activations: quantize with
    ``ptq_nncf(..., signed_activations=True)`` for it; ``require_int8_activations`` checks.
    Metadata ``edgesr.quantization = nncf-qdq``.
    """
    nncf = _nncf()
    import onnx

    channels = int(getattr(qmodel, "num_channels", 1))
    example = example_input if example_input is not None else torch.rand(1, channels, 32, 32)
    stripped = nncf.strip(
        qmodel, do_copy=True, strip_format=nncf.StripFormat.NATIVE, example_input=example
    )
    path = _export_onnx(stripped, path, scale=scale, color=color)
    proto = onnx.load(str(path))
    layout = _qdq_layout(proto)
    if require_int8_activations and layout["activation_types"] - {"int8"}:
        path.unlink()
        raise ModelError(
            f"{path}: activations are quantized as {sorted(layout['activation_types'])}; "
            "TensorRT needs int8 with zero point 0: quantize with signed_activations=True."
        )
    saturation = int8_saturation(proto)
    bits = {int(q.num_bits) for q in _weight_quantizers(qmodel).values()}
    proto.metadata_props.add(key="edgesr.quantization", value="nncf-qdq")
    proto.metadata_props.add(key="edgesr.int8_weight_bits", value=str(max(bits, default=8)))
    # TensorRT accumulates in int32; ONNX Runtime on x86 without VNNI would not, for a
    # "false" here (edgesr's OnnxRuntimeRunner then asks ORT for its exact kernels).
    proto.metadata_props.add(
        key="edgesr.int8_portable", value="true" if saturation.free else "false"
    )
    onnx.save(proto, str(path))
    return path


def _qdq_layout(proto: Any) -> dict[str, Any]:
    """What the QuantizeLinear nodes of a graph quantize: weights (initializers) vs activations."""
    import onnx

    inits = {i.name for i in proto.graph.initializer}
    consts = {n.output[0]: n for n in proto.graph.node if n.op_type in ("Constant", "Identity")}
    zp_type: dict[str, str] = {}
    for init in proto.graph.initializer:
        zp_type[init.name] = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name
    for node in proto.graph.node:
        if node.op_type == "Constant":
            zp_type[node.output[0]] = onnx.helper.tensor_dtype_to_np_dtype(
                node.attribute[0].t.data_type
            ).name
    for name, node in consts.items():
        if node.op_type == "Identity" and node.input[0] in zp_type:
            zp_type[name] = zp_type[node.input[0]]
    weights, acts = 0, set()
    for node in proto.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        if node.input[0] in inits:
            weights += 1
        elif len(node.input) > 2:
            acts.add(zp_type.get(node.input[2], "uint8"))
        else:
            acts.add("uint8")
    return {"weight_quantizers": weights, "activation_types": acts}


# ---------------------------------------------------------------------------------------------
# From the NNCF model to ORT: weights and ranges
# ---------------------------------------------------------------------------------------------


def _quantizers(qmodel: nn.Module) -> dict[str, nn.Module]:
    from nncf.torch.quantization.layers import BaseQuantizer

    return {name: mod for name, mod in qmodel.named_modules() if isinstance(mod, BaseQuantizer)}


def _hook_parts(name: str) -> tuple[str, str, int]:
    """``__nncf_hooks.pre_hooks.conv1/conv2d/0__1.0`` -> ("pre_hooks", "conv1/conv2d/0", 1)."""
    parts = name.split(".")
    try:
        kind = next(p for p in parts if p in ("pre_hooks", "post_hooks"))
        key = parts[parts.index(kind) + 1]
        op, port = key.rsplit("__", 1)
        return kind, op, int(port)
    except (StopIteration, ValueError, IndexError) as exc:
        raise ModelError(
            f"unexpected NNCF quantizer name {name!r}; this edgesr expects NNCF 3.4's hook layout."
        ) from exc


def _quant_grid(quantizer: nn.Module) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(low, step, level_low, level_high) of an NNCF quantizer, per channel or per tensor."""
    if getattr(quantizer, "is_half_range", False):
        raise ModelError("NNCF half-range (overflow fix) quantizers are not supported here.")
    with torch.no_grad():
        low, high = quantizer.get_input_low_input_high()
    low = low.detach().double().cpu().numpy().reshape(-1)
    high = high.detach().double().cpu().numpy().reshape(-1)
    lo, hi = int(quantizer.level_low), int(quantizer.level_high)
    step = (high - low) / (hi - lo)
    return low, step, lo, hi


def _weight_quantizers(qmodel: nn.Module) -> dict[str, nn.Module]:
    """Module path ("conv1", "body.0") -> the quantizer of its conv weight (port 1)."""
    out = {}
    for name, q in _quantizers(qmodel).items():
        if _is_weight_hook(name):
            # NNCF names an op <module path with "/">/<function>/<call index>.
            out[".".join(_hook_parts(name)[1].split("/")[:-2])] = q
    return out


def _is_weight_hook(name: str) -> bool:
    """A quantizer on a conv's weight (port 1 of conv2d; port 1 of e.g. cat is an activation)."""
    kind, op, port = _hook_parts(name)
    parts = op.split("/")
    return kind == "pre_hooks" and port == 1 and len(parts) >= 3 and parts[-2] == "conv2d"


@torch.no_grad()
def bake_qat_weights(qmodel: nn.Module) -> nn.Module:
    """The plain float net with the (QAT-learned) weights replaced by their fake-quantized values.

    Each weight is exactly ``int8 * scale`` of its NNCF quantizer, so quantizing it again
    per channel with that scale (ORT does, with :func:`nncf_activation_ranges` overrides)
    gives back the same integers.
    """
    plain = _rebuild_plain(qmodel)
    modules = dict(plain.named_modules())
    for path, q in _weight_quantizers(qmodel).items():
        conv = modules.get(path)
        if conv is None or not hasattr(conv, "weight"):
            raise ModelError(f"NNCF weight quantizer for '{path}' has no matching module.")
        was_training = q.training
        q.eval()
        conv.weight.copy_(q(conv.weight))
        q.train(was_training)
    return plain.eval()


def _rebuild_plain(qmodel: nn.Module) -> nn.Module:
    """A copy of ``qmodel`` without NNCF's hook storage (the original module class)."""
    plain = copy.deepcopy(qmodel)
    # NNCF 3.4 wraps in place: an instance-level forward/_replicate_for_data_parallel and a
    # "__nncf_hooks" submodule. Removing the three gives back the original module.
    plain._modules.pop("__nncf_hooks", None)
    plain.__dict__.pop("forward", None)
    plain.__dict__.pop("_replicate_for_data_parallel", None)
    return plain.eval()


def _trace_quantizer_sites(
    qmodel: nn.Module, example: torch.Tensor
) -> tuple[list[dict], list[dict]]:
    """Run ``qmodel`` once and see which tensors each activation quantizer and each conv touch.

    Identity of tensor objects ties an activation quantizer to the conv it feeds (its output
    is the conv's input) or follows (its input is the conv's output), without relying on
    NNCF's internal graph API.
    """
    quantizers = {n: q for n, q in _quantizers(qmodel).items() if not _is_weight_hook(n)}
    q_sites: list[dict] = []
    convs: list[dict] = []
    handles = []
    for name, q in quantizers.items():

        def hook(mod, args, out, name=name):
            q_sites.append(
                {"name": name, "module": mod, "input": args[0], "output": out, "example": example}
            )

        handles.append(q.register_forward_hook(hook))
    for path, mod in qmodel.named_modules():
        if isinstance(mod, nn.Conv2d):

            def chook(mod, args, out, path=path):
                convs.append(
                    {
                        "path": path,
                        "input": args[0],
                        "output": out,
                        "weight_shape": tuple(mod.weight.shape),
                    }
                )

            handles.append(mod.register_forward_hook(chook))
    was_training = qmodel.training
    try:
        with torch.no_grad():
            qmodel.eval()(example)
    finally:
        qmodel.train(was_training)
        for h in handles:
            h.remove()
    return q_sites, convs


def _onnx_convs(proto: Any) -> list[Any]:
    return [n for n in proto.graph.node if n.op_type == "Conv"]


def _output_conv_tensor(proto: Any) -> str | None:
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


def nncf_activation_ranges(
    qmodel: nn.Module,
    fp32_onnx: str | os.PathLike,
    *,
    weights: bool = True,
    output_grid: bool = True,
) -> dict[str, Any]:
    """Map the NNCF model's quantizers onto tensor names of the FP32 ONNX of the same net.

    Mapping is by graph position: convs in execution order (torch) = Conv nodes in
    topological order (ONNX), checked by weight shape. An activation quantizer whose output
    feeds conv k maps to the tensor feeding ONNX Conv k; one right after conv k (e.g. a
    residual before an Add) to Conv k's output; one on the net input to the graph input.

    Returns ONNX Runtime ``TensorQuantOverrides`` entries (tensor name -> list of dicts):
    activations ``[{"scale", "zero_point", "quant_type": "QUInt8"}]`` (NNCF's unsigned
    symmetric grid is u8 with zero point 0; a signed one is u8 with zero point 128), and with
    ``weights`` the per-channel ``[{"axis": 0, "scale", "zero_point": 0}, ...]`` of every conv
    weight. ``output_grid`` adds :data:`OUTPUT_GRID` for the output pixels (the last Conv or
    Add before PixelShuffle) when NNCF left them float.
    """
    import onnx

    proto = onnx.load(str(fp32_onnx))
    graph_input = proto.graph.input[0].name
    onnx_convs = _onnx_convs(proto)
    inits = {i.name: i for i in proto.graph.initializer}
    channels = int(getattr(qmodel, "num_channels", 1))
    example = torch.rand(1, channels, 24, 24, generator=torch.Generator().manual_seed(0))
    q_sites, convs = _trace_quantizer_sites(qmodel, example)
    if len(convs) != len(onnx_convs):
        raise ModelError(
            f"{fp32_onnx} has {len(onnx_convs)} Conv nodes but the NNCF model runs {len(convs)} "
            "convs; export the FP32 ONNX from the same (fused) net."
        )
    for k, (tc, oc) in enumerate(zip(convs, onnx_convs, strict=True)):
        w = inits.get(oc.input[1])
        if w is None or tuple(w.dims) != tc["weight_shape"]:
            raise ModelError(
                f"conv {k} ('{tc['path']}', weight {tc['weight_shape']}) does not match ONNX "
                f"node {oc.name} (weight {None if w is None else tuple(w.dims)}); export the "
                "FP32 ONNX from the same net."
            )

    overrides: dict[str, Any] = {}
    for site in q_sites:
        tensor = None
        if site["input"] is example:
            tensor = graph_input
        for k, tc in enumerate(convs):
            if tensor is None and tc["input"] is site["output"]:
                tensor = onnx_convs[k].input[0]
            # A quantizer on a conv's output: a post-hook inside the conv module (its output
            # is the module's) or a pre-hook of the next op (its input is the module's output).
            if tensor is None and (site["output"] is tc["output"] or site["input"] is tc["output"]):
                tensor = onnx_convs[k].output[0]
        if tensor is None:
            continue  # e.g. a quantizer inside an Add: ORT calibrates that tensor itself
        low, step, lo, hi = _quant_grid(site["module"])
        if hi - lo > 255:
            raise ModelError(f"quantizer {site['name']} has more than 8 bits; not an INT8 model.")
        overrides[tensor] = [
            {
                "quant_type": "QUInt8",
                "scale": float(step[0]),
                "zero_point": int(round(-low[0] / step[0])),
            }
        ]

    if weights:
        by_path = _weight_quantizers(qmodel)
        for k, tc in enumerate(convs):
            q = by_path.get(tc["path"])
            if q is None:
                continue
            low, step, lo, hi = _quant_grid(q)
            if np.any(np.abs(low + step * (-lo)) > 1e-6 * np.maximum(np.abs(low), 1e-12)):
                raise ModelError(f"weight quantizer of '{tc['path']}' is not symmetric.")
            count = tc["weight_shape"][0]
            step = np.broadcast_to(step, (count,))
            overrides[onnx_convs[k].input[1]] = [
                {"axis": 0, "scale": float(s), "zero_point": 0} for s in step
            ]

    last = _output_conv_tensor(proto) if output_grid else None
    if last is not None and last not in overrides:
        overrides[last] = [{"quant_type": "QUInt8", **OUTPUT_GRID}]
    return overrides


# ---------------------------------------------------------------------------------------------
# ONNX Runtime static quantization
# ---------------------------------------------------------------------------------------------


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


_INT64_MAX = 2**63 - 1


def _im2col_first_conv(proto: Any, *, align: int = 16) -> list[str]:
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


def _u8_pixel_shuffle(proto: Any) -> bool:
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


def _place_u8_pixel_shuffle(path: Path, tmp: Path) -> bool:
    """Rewrite ``path`` with :func:`_u8_pixel_shuffle` where it pays: only if ORT's optimized
    graph gains no Transpose, i.e. the last op runs in NHWC and its layout Transpose cancels.

    After an op ORT keeps in NCHW (AnchorNet's final QLinearAdd) nothing cancels and a u8
    shuffle is an extra full Transpose: one written for NCHW measured 34 % slower there
    (srgan_lite_x4, 43 -> 57 ms at 2 threads), so the float DepthToSpace is kept.
    """
    import onnx

    proto = onnx.load(str(path))
    candidate = copy.deepcopy(proto)
    if not _u8_pixel_shuffle(candidate):
        return False
    trial = tmp / "u8_shuffle.onnx"
    onnx.save(candidate, str(trial))
    if ort_graph_ops(trial)["Transpose"] > ort_graph_ops(path)["Transpose"]:
        return False
    onnx.save(candidate, str(path))
    return True


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
            u8 step 1/255, as :func:`ptq_nncf` pins it); None: calibrated. An entry for the
            input in ``ranges`` wins.
        im2col_first_conv: run the first conv of a 1-3 channel input as taps + 1x1 conv
            (:func:`_im2col_first_conv`; same result, about 6x faster on ORT's int8 kernels).
        u8_pixel_shuffle: run the final PixelShuffle on the u8 output pixels, before their
            DequantizeLinear (:func:`_u8_pixel_shuffle`; same result, ESPCN x4 10% faster).
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
    frames = _frames(calib)
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
        last = _output_conv_tensor(proto) if output_grid else None
        if last is not None and last not in overrides:
            overrides.update(_ort_overrides({last: {"quant_type": "QUInt8", **OUTPUT_GRID}}))
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
        node_names = {n.name for n in proto.graph.node}
        stray = sorted(set(exclude_nodes) - node_names)
        if stray:
            raise ModelError(f"exclude_nodes name nodes that {fp32_onnx} does not have: {stray}.")
        first_conv_float = any(
            n.op_type == "Conv" and n.name in exclude_nodes and n.input[0] == graph_input
            for n in proto.graph.node
        )
        # A float first conv gains nothing from the int8 im2col rewrite.
        im2col = _im2col_first_conv(proto) if im2col_first_conv and not first_conv_float else []
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
        shuffle = u8_pixel_shuffle and _place_u8_pixel_shuffle(out_path, Path(tmp))
    saturation = int8_saturation(out_path)
    if weight_bits == 7 and not saturation.free:
        out_path.unlink()
        raise ModelError(
            f"{saturation.summary()}; the weight ranges passed in are wider than 7 bits: "
            "quantize with ptq_nncf(..., weight_bits=7)."
        )
    _copy_metadata(
        fp32_onnx,
        out_path,
        {
            "edgesr.quantization": "ort-qdq" + ("+nncf-ranges" if ranges else ""),
            "edgesr.int8_first_conv": "im2col" if im2col else "conv",
            "edgesr.int8_pixel_shuffle": "u8" if shuffle else "float",
            "edgesr.int8_weight_bits": str(weight_bits),
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

    ``portable`` (default) requires 7-bit weights (``ptq_nncf(..., weight_bits=7)``), so the
    model computes the same on every CPU; ``portable=False`` carries 8-bit weights for targets
    known to accumulate in int32 (VNNI, ARM dot product).
    """
    bits = {int(q.num_bits) for q in _weight_quantizers(qmodel).values()}
    if portable and bits - {7}:
        raise ModelError(
            f"the NNCF model has {max(bits)}-bit weights, which can saturate ONNX Runtime's x86 "
            "kernels without VNNI; quantize with ptq_nncf(..., weight_bits=7) (QAT wins the bit "
            "back), or pass portable=False for a model that only runs on VNNI or ARM CPUs."
        )
    with tempfile.TemporaryDirectory(prefix="edgesr-qat2ort-") as tmp:
        fp32 = Path(keep_fp32) if keep_fp32 else Path(tmp) / "qat_float.onnx"
        net = bake_qat_weights(qmodel) if carry_weights else _rebuild_plain(qmodel)
        _export_onnx(net, fp32, scale=scale, color=color)
        ranges = nncf_activation_ranges(qmodel, fp32, weights=carry_weights)
        return quantize_ort_static(
            fp32,
            out_path,
            calib,
            ranges=ranges,
            exclude_nodes=float_conv_nodes(qmodel, fp32),
            weight_bits=max(bits, default=7),
        )


def float_conv_nodes(qmodel: nn.Module, fp32_onnx: str | os.PathLike) -> list[str]:
    """ONNX node names of the convs NNCF left in float (mixed precision: no weight quantizer).

    Convs map to Conv nodes by execution order, as in :func:`nncf_activation_ranges`.
    """
    import onnx

    onnx_convs = _onnx_convs(onnx.load(str(fp32_onnx)))
    channels = int(getattr(qmodel, "num_channels", 1))
    _, convs = _trace_quantizer_sites(qmodel, torch.rand(1, channels, 16, 16))
    if len(convs) != len(onnx_convs):
        raise ModelError(
            f"{fp32_onnx} has {len(onnx_convs)} Conv nodes but the NNCF model runs {len(convs)}."
        )
    quantized = _weight_quantizers(qmodel)
    return [
        oc.name for tc, oc in zip(convs, onnx_convs, strict=True) if tc["path"] not in quantized
    ]
