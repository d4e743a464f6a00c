"""NNCF INT8: post-training quantization, QAT with distillation, and the Q/DQ ONNX export.

:func:`ptq_nncf` and :func:`qat_finetune` give a fake-quantized torch model;
:func:`export_qdq_onnx` strips it into the Q/DQ layout TensorRT builds INT8 engines from
(weights per channel on axis 0, zero point 0; activations per tensor; the output float).
The rest reads an NNCF model back out (baked weights, quantizer grids mapped onto ONNX
tensor names) for :mod:`edgesr.compress.ort_int8`, which builds the ORT-CPU model from them.

NNCF is imported inside the functions, never at module import: ``import edgesr`` stays light
and NNCF stays optional.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesr.errors import ConfigError, DataError, ModelError, require
from edgesr.export import onnx_passes
from edgesr.runtime.saturation import int8_saturation

__all__ = [
    "bake_qat_weights",
    "calibration_frames",
    "conv_layers",
    "export_float_onnx",
    "export_qdq_onnx",
    "float_conv_nodes",
    "nncf_activation_ranges",
    "ptq_nncf",
    "qat_finetune",
    "rebuild_plain",
    "weight_quantizers",
]

_NNCF_INSTALL = "pip install 'edgesr[compress]' (or: pip install nncf)"
_ONNX_COLOR = {"y": "y_bt601", "rgb": "rgb"}


def _nncf() -> Any:
    return require("nncf", purpose="INT8 quantization with NNCF", install=_NNCF_INSTALL)


def _as_tensor(frame: Any) -> torch.Tensor:
    if isinstance(frame, torch.Tensor):
        return frame.float()
    return torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))


def calibration_frames(calib: Iterable[Any]) -> list[Any]:
    """The calibration frames as a list; a :class:`DataError` when there are none."""
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


def export_float_onnx(
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


# ---------------------------------------------------------------------------------------------
# PTQ, QAT, strip/export
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
    layer_weight_bits: Mapping[str, int] | None = None,
    input_bits: int = 8,
) -> nn.Module:
    """Post-training INT8 quantization of the deployable net with ``nncf.quantize``.

    Weights: symmetric per-channel, ``weight_bits`` wide (8: narrow range [-127, 127], what
    TensorRT uses; 7: [-63, 63], what ORT-CPU models need to be exact on every x86 CPU, see
    :data:`edgesr.compress.ort_int8.ORT_CPU_WEIGHT_BITS`). Activations: per-tensor, unsigned
    after ReLU (a full 8 bits for the one-sided range). The defaults are the SR-specific
    choices measured on a ReLU ESPCN x4 (Set5 Y-PSNR of the PTQ model, each against these
    defaults):

    * ``range_estimator="minmax"`` (global min/max). NNCF's default averages per-frame maxima,
      which clips highlights and strong edges that only some frames have: an SR net must
      reproduce those, and clipping them cost 0.75 dB.
    * ``input_range=(0, 1)``: the input quantizer covers the whole image range (u8 step 1/255),
      whatever the calibration frames' brightest pixel was.
    * ``bias_correction=False``: NNCF's fast bias correction shifts biases so per-channel
      mean activations match FP32 on the calibration frames; for SR that cost 0.39 dB.
    * The output (the input of PixelShuffle) is not quantized unless ``quantize_output``: a
      signed int8 output quantizer is coarser than the 8-bit image the output becomes
      (0.035 dB). The ORT-CPU model adds its own lossless output grid
      (:data:`onnx_passes.OUTPUT_GRID`). With ``signed_activations`` the same holds for copies
      of the input image added onto the output (AnchorNet's anchor, :func:`image_copy_ops`):
      int8 with zero point 0 would put them on a 7-bit grid, which costs AnchorNet x3 0.07 dB
      (PTQ, tuning split), so they and their Add stay float. On u8 (ORT-CPU) the image's own
      1/255 grid is lossless, and they stay quantized.
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
        layer_weight_bits: per-conv exceptions to ``weight_bits`` (module path -> 7 or 8).
        input_bits: 8, or 7: the net input on a 7-bit grid over ``input_range`` (u8 values
            0-127), which lets the first conv take 8-bit weights and still never saturate
            int16 on any x86 CPU (127 * 127 * 2 <= 32767; see
            :mod:`edgesr.runtime.saturation`).

    Returns the NNCF-wrapped torch module (fake-quantized; trainable for QAT).
    """
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    frames = calibration_frames(calib)
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
    layer_bits = dict(layer_weight_bits or {})
    for bits, what in [
        (weight_bits, "weight_bits"),
        *((b, f"layer_weight_bits[{k!r}]") for k, b in layer_bits.items()),
    ]:
        if bits not in (7, 8):
            raise ConfigError(f"{what} must be 7 or 8, got {bits!r}.")
    if input_bits not in (7, 8):
        raise ConfigError(f"input_bits must be 7 or 8, got {input_bits!r}.")
    if input_bits != 8 and input_range is None:
        raise ConfigError("input_bits=7 needs a fixed input_range (the grid spans it).")
    advanced: dict[str, Any] = {
        "overflow_fix": OverflowFix.DISABLE,
        "disable_bias_correction": not bias_correction,
        "activations_range_estimator_params": estimators[range_estimator],
    }
    net = _deployable(model)
    ignored_names = _conv_op_names(net, float_layers)
    _conv_op_names(net, list(layer_bits))  # validates the paths
    ignored_types = [] if quantize_output else ["pixel_shuffle"]
    if signed_activations and not quantize_output:
        ignored_names += image_copy_ops(net)
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
    # NNCF 3.4's CPU HW config accepts only 8-bit weights at quantize() time, so narrow the
    # grids after it: each channel keeps its range (max |w|), on [-63, 63] for 7 bits.
    for path, q in weight_quantizers(qmodel).items():
        q.num_bits = layer_bits.get(path, weight_bits)
    if input_range is not None:
        _set_input_range(qmodel, input_range, _as_tensor(frames[0]), bits=input_bits)
    return qmodel


def conv_layers(model: nn.Module) -> list[str]:
    """Module paths of the convs of the deployable net, in execution order of definition."""
    return [n for n, m in _deployable(model).named_modules() if isinstance(m, nn.Conv2d)]


def image_copy_ops(model: nn.Module) -> list[str]:
    """NNCF names (``/cat/0``, ``/add/0``) of the top-level ops that carry copies of the net
    input to the output: a Concat of nothing but the input (and splits of it), and each Add
    of such a copy (AnchorNet's anchor). Empty when the net cannot be traced."""
    import operator

    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(_deployable(model)).graph
    except Exception:  # untraceable control flow: nothing is known to be a copy
        return []
    copies: set[torch.fx.Node] = set()
    counts: dict[str, int] = {}
    names = []
    for node in graph.nodes:
        args = node.all_input_nodes
        kind = {torch.cat: "cat", operator.add: "add", torch.add: "add"}.get(node.target)
        if kind is not None:
            index = counts.get(kind, 0)  # NNCF numbers the calls of each function per scope
            counts[kind] = index + 1
        if node.op == "placeholder":
            copies.add(node)
        elif kind == "cat" and args and all(a in copies for a in args):
            copies.add(node)
            names.append(f"/cat/{index}")
        elif kind == "add" and any(a in copies for a in args):
            names.append(f"/add/{index}")
        elif (
            node.target in ("split", "chunk", operator.getitem)
            and args
            and all(a in copies for a in args)
        ):
            copies.add(node)
    return names


def input_feeds_only(model: nn.Module, conv: str) -> bool:
    """Does the net input go to conv ``conv`` alone? Then a coarser input grid touches nothing
    else (AnchorNet's input also feeds its anchor, the output's main path). False when the net
    cannot be traced."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(_deployable(model)).graph
    except Exception:  # untraceable control flow: assume the input goes elsewhere too
        return False
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    return len(inputs) == 1 and [(u.op, u.target) for u in inputs[0].users] == [
        ("call_module", conv)
    ]


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
    qmodel: nn.Module, input_range: tuple[float, float], example: torch.Tensor, *, bits: int = 8
) -> None:
    """Pin the quantizer on the net input to ``input_range`` (``bits`` wide) and keep QAT from
    moving it."""
    from nncf.torch.quantization.layers import AsymmetricQuantizer, SymmetricQuantizer

    low, high = (float(v) for v in input_range)
    if not high > low:
        raise ConfigError(f"input_range must be (min, max) with max > min, got {input_range!r}.")
    sites, _ = _trace_quantizer_sites(qmodel, example)
    for site in sites:
        if site["input"] is not site["example"]:
            continue
        q = site["module"]
        q.num_bits = bits
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
    path = export_float_onnx(stripped, path, scale=scale, color=color)
    proto = onnx.load(str(path))
    onnx_passes.fold_constant_identities(proto)  # zero points as constants, for TensorRT
    layout = _qdq_layout(proto)
    if require_int8_activations and layout["activation_types"] - {"int8"}:
        path.unlink()
        raise ModelError(
            f"{path}: activations are quantized as {sorted(layout['activation_types'])}; "
            "TensorRT needs int8 with zero point 0: quantize with signed_activations=True."
        )
    saturation = int8_saturation(proto)
    bits = {int(q.num_bits) for q in weight_quantizers(qmodel).values()}
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
    """What the QuantizeLinear nodes of a graph quantize: weights (initializers) vs activations.

    Zero points are read from initializers and Constant nodes: export_qdq_onnx folds the
    Identity nodes torch puts in front of some (onnx_passes.fold_constant_identities) first.
    """
    import onnx

    inits = {i.name for i in proto.graph.initializer}
    zp_type: dict[str, str] = {}
    for init in proto.graph.initializer:
        zp_type[init.name] = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name
    for node in proto.graph.node:
        if node.op_type == "Constant":
            zp_type[node.output[0]] = onnx.helper.tensor_dtype_to_np_dtype(
                node.attribute[0].t.data_type
            ).name
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
# Reading the NNCF model: quantizers, baked weights, ranges on ONNX tensors
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


def weight_quantizers(qmodel: nn.Module) -> dict[str, nn.Module]:
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
    plain = rebuild_plain(qmodel)
    modules = dict(plain.named_modules())
    for path, q in weight_quantizers(qmodel).items():
        conv = modules.get(path)
        if conv is None or not hasattr(conv, "weight"):
            raise ModelError(f"NNCF weight quantizer for '{path}' has no matching module.")
        was_training = q.training
        q.eval()
        conv.weight.copy_(q(conv.weight))
        q.train(was_training)
    return plain.eval()


def rebuild_plain(qmodel: nn.Module) -> nn.Module:
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
    weight. ``output_grid`` adds :data:`onnx_passes.OUTPUT_GRID` for the output pixels (the
    last Conv or Add before PixelShuffle) when NNCF left them float.
    """
    import onnx

    proto = onnx.load(str(fp32_onnx))
    graph_input = proto.graph.input[0].name
    onnx_convs = onnx_passes.onnx_convs(proto)
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
        by_path = weight_quantizers(qmodel)
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

    last = onnx_passes.output_conv_tensor(proto) if output_grid else None
    if last is not None and last not in overrides:
        overrides[last] = [{"quant_type": "QUInt8", **onnx_passes.OUTPUT_GRID}]
    return overrides


def float_conv_nodes(qmodel: nn.Module, fp32_onnx: str | os.PathLike) -> list[str]:
    """ONNX node names of the convs NNCF left in float (mixed precision: no weight quantizer).

    Convs map to Conv nodes by execution order, as in :func:`nncf_activation_ranges`.
    """
    import onnx

    onnx_convs = onnx_passes.onnx_convs(onnx.load(str(fp32_onnx)))
    channels = int(getattr(qmodel, "num_channels", 1))
    _, convs = _trace_quantizer_sites(qmodel, torch.rand(1, channels, 16, 16))
    if len(convs) != len(onnx_convs):
        raise ModelError(
            f"{fp32_onnx} has {len(onnx_convs)} Conv nodes but the NNCF model runs {len(convs)}."
        )
    quantized = weight_quantizers(qmodel)
    return [
        oc.name for tc, oc in zip(convs, onnx_convs, strict=True) if tc["path"] not in quantized
    ]
