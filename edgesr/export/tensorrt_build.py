"""TensorRT engines from edgesr ONNX files: the Python-API build, the trtexec scripts for the
device, and the ONNX checks TensorRT would otherwise fail on (or silently degrade).

Precision policy (the same for the Python API and the generated trtexec scripts):

* ``int8-qdq``: a Q/DQ ONNX, strongly typed network, no precision flags (TensorRT's explicit
  quantization guide: the Q/DQ nodes decide). This replaces the calibrator-based implicit INT8
  that gave wrong SR outputs in the field (TensorRT issue 1187).
* ``fp16``: the FP32 export converted by :func:`edgesr.export.onnx_export.convert_to_fp16`
  (FP16 nodes, FP32 fallback for nodes whose measured activations/weights would overflow FP16,
  Casts in between), built strongly typed. This is the only FP16 route on TensorRT 11 and
  TensorRT-RTX (no FP16/INT8/OBEY_PRECISION_CONSTRAINTS builder flags) and is exact on 10.x.
  On TensorRT 8.x, which has no strongly typed networks, the FP32 ONNX is built with the FP16
  flag, OBEY_PRECISION_CONSTRAINTS and the same fallback layers pinned to FP32.
* ``fp32``: strongly typed FP32 with TF32 disabled (TF32 has FP16's 10-bit mantissa).

``tensorrt`` is preferred when importable (Jetson JetPack, x86 + GPU); otherwise
``tensorrt_rtx`` (PyPI ``tensorrt-rtx``), whose ahead-of-time build needs no GPU: CI uses it to
prove that every exported ONNX parses and builds with a TensorRT-family builder. RTX engines run
only on RTX GPUs with the RTX runtime, never on a Jetson.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from edgesr import __version__
from edgesr.errors import ConfigError, DependencyError, ModelError, require
from edgesr.export.onnx_export import (
    INPUT_NAME,
    QDQ_OPS,
    OnnxModelInfo,
    _check_output,
    check_onnx_model,
    convert_to_fp16,
    load_onnx,
    make_fp16_onnx,
    recorded_verify_sizes,
    verification_inputs,
)
from edgesr.modelio import atomic_write_bytes
from edgesr.profile.minimal import SIDECAR_KEYS, engine_sidecar_dict

if TYPE_CHECKING:
    import onnx

#: Python modules of TensorRT-family builders, in order of preference.
TRT_MODULES = ("tensorrt", "tensorrt_rtx")
TRT_INSTALL = (
    "JetPack's python3-libnvinfer on a Jetson; `pip install tensorrt` on x86 with an NVIDIA GPU; "
    "`pip install tensorrt-rtx` for GPU-less parse/build checks (RTX GPU engines)"
)
ENGINE_PRECISIONS = ("auto", "fp16", "fp32", "int8-qdq")
#: The output frame edgesr builds engines for unless told otherwise: 1080p.
DEFAULT_OUTPUT_FRAME = (1080, 1920)
TRTEXEC_JETSON = "/usr/src/tensorrt/bin/trtexec"

Shape = tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------
# TensorRT module


def load_tensorrt(builder: str | None = None) -> ModuleType:
    """Import ``tensorrt`` (preferred) or ``tensorrt_rtx``; DependencyError if neither is.

    ``builder`` picks one module by name.
    """
    import importlib

    candidates = TRT_MODULES if builder is None else (builder,)
    if builder is not None and builder not in TRT_MODULES:
        raise ConfigError(f"builder must be one of {', '.join(TRT_MODULES)}, got {builder!r}.")
    for name in candidates[:-1]:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    purpose = "Building a TensorRT engine" + (
        " (tensorrt or tensorrt_rtx)" if builder is None else ""
    )
    return require(candidates[-1], purpose=purpose, install=TRT_INSTALL)


def tensorrt_available() -> str | None:
    """Name of the importable TensorRT-family module, or None (then only scripts can be made)."""
    try:
        return load_tensorrt().__name__
    except DependencyError:
        return None


# --------------------------------------------------------------------------------------------
# Optimization profiles


@dataclass(frozen=True)
class Profile:
    """An optimization profile for input ``lr``: min/opt/max NCHW shapes."""

    min: Shape
    opt: Shape
    max: Shape

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def trtexec_args(self, name: str = INPUT_NAME) -> list[str]:
        def dims(shape: Shape) -> str:
            return "x".join(str(d) for d in shape)

        return [
            f"--minShapes={name}:{dims(self.min)}",
            f"--optShapes={name}:{dims(self.opt)}",
            f"--maxShapes={name}:{dims(self.max)}",
        ]


#: What ``profiles`` arguments accept: a Profile, a (min, opt, max) triple, an (h, w) LR frame.
ProfileSpec = Union[Profile, tuple[Shape, Shape, Shape], tuple[int, int]]  # noqa: UP007


def lr_frame_size(out_h: int, out_w: int, scale: int) -> tuple[int, int]:
    """The LR input size whose x``scale`` output covers an ``out_h`` x ``out_w`` frame."""
    return math.ceil(out_h / scale), math.ceil(out_w / scale)


def frame_profile(
    h: int, w: int, *, channels: int, max_batch: int = 1, min_side: int = 16
) -> Profile:
    """Profile for LR frames of ``h`` x ``w`` (e.g. 270x480 for 1080p at x4): kernels tuned for
    exactly that frame (opt = max), smaller crops and tiles down to ``min_side`` accepted."""
    if min(h, w, channels, max_batch, min_side) < 1:
        raise ConfigError(f"frame size, channels and batch must be positive, got {h}x{w}.")
    return Profile(
        min=(1, channels, min(min_side, h), min(min_side, w)),
        opt=(1, channels, h, w),
        max=(max_batch, channels, h, w),
    )


def normalize_profiles(
    profiles: Iterable[ProfileSpec] | None, *, channels: int, scale: int
) -> list[Profile]:
    """Profiles from Profile objects, (min, opt, max) shape triples or (h, w) LR frame sizes.

    None gives one profile for 1080p output frames. Always at least one profile: TensorRT
    cannot build a dynamic-shape network without one.
    """
    if profiles is None:
        return [frame_profile(*lr_frame_size(*DEFAULT_OUTPUT_FRAME, scale), channels=channels)]
    out: list[Profile] = []
    for spec in profiles:
        if isinstance(spec, Profile):
            prof = spec
        elif _is_frame(spec):
            prof = frame_profile(int(spec[0]), int(spec[1]), channels=channels)
        elif isinstance(spec, (tuple, list)) and len(spec) == 3:
            try:
                prof = Profile(*(tuple(int(d) for d in s) for s in spec))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"bad profile {spec!r}: {exc}") from exc
        else:
            raise ConfigError(
                f"a profile is an (h, w) LR frame size or a (min, opt, max) triple of NCHW "
                f"shapes, got {spec!r}."
            )
        _check_profile(prof, channels)
        out.append(prof)
    if not out:
        raise ConfigError("give at least one optimization profile (or None for the default).")
    return out


def _is_frame(spec: Any) -> bool:
    return (
        isinstance(spec, (tuple, list))
        and len(spec) == 2
        and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in spec)
    )


def _check_profile(prof: Profile, channels: int) -> None:
    for shape in (prof.min, prof.opt, prof.max):
        if len(shape) != 4 or min(shape) < 1:
            raise ConfigError(f"profile shapes must be 4 positive dims [N,C,H,W], got {shape}.")
        if shape[1] != channels:
            raise ConfigError(
                f"profile shape {list(shape)} has {shape[1]} channels; the model takes {channels}."
            )
    if not all(a <= b <= c for a, b, c in zip(prof.min, prof.opt, prof.max, strict=True)):
        raise ConfigError(
            f"profile needs min <= opt <= max in every dim, got {list(prof.min)} / "
            f"{list(prof.opt)} / {list(prof.max)}."
        )


# --------------------------------------------------------------------------------------------
# What TensorRT needs from the ONNX


@dataclass(frozen=True)
class CompatIssue:
    severity: str  # "error": TensorRT rejects it or it defeats the precision; "warning"
    message: str
    node: str = ""

    def __str__(self) -> str:
        where = f" [{self.node}]" if self.node else ""
        return f"{self.severity}{where}: {self.message}"


#: Ops edgesr's tests build with a TensorRT-family builder (others may work; they warn).
TRT_CHECKED_OPS = frozenset(
    {
        "Abs", "Add", "AveragePool", "Cast", "Clip", "Concat", "Constant", "Conv",
        "ConvTranspose", "DepthToSpace", "DequantizeLinear", "Div", "Flatten", "Gather",
        "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Max", "MaxPool", "Min", "Mul",
        "Neg", "Pad", "PRelu", "QuantizeLinear", "Relu", "Reshape", "Resize", "Shape",
        "Sigmoid", "Slice", "SpaceToDepth", "Split", "Squeeze", "Sub", "Tanh", "Transpose",
        "Unsqueeze",
    }
)  # fmt: skip
# Ops that only move data: an output reached from a DQ through them is itself 8-bit.
_MOVE_OPS = frozenset({"DepthToSpace", "Reshape", "Transpose", "Identity", "Squeeze", "Unsqueeze"})


def check_tensorrt_compat(model: str | Path | onnx.ModelProto) -> list[CompatIssue]:
    """ONNX properties TensorRT rejects or that cost the intended precision.

    Errors: opset < 13; non-finite weights; Q/DQ that is not symmetric signed INT8 (TensorRT
    rejects non-zero zero points and int32 bias DQ); per-channel activation scales; per-channel
    weight scales on the wrong axis (0 for Conv, 1 for ConvTranspose: TensorRT-RTX still builds
    those, but TensorRT cannot use its INT8 conv kernels). Warnings: static H/W, DepthToSpace
    not in CRD mode (PyTorch's PixelShuffle order), ops outside :data:`TRT_CHECKED_OPS`, convs
    left in float in a Q/DQ model, an output quantized to 8 bits.
    """
    import onnx
    from onnx import numpy_helper

    proto = model if isinstance(model, onnx.ModelProto) else load_onnx(model)
    graph = proto.graph
    issues: list[CompatIssue] = []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        issues.append(CompatIssue("error", f"opset {opset} < 13: re-export with opset >= 17."))

    inits = {i.name: i for i in graph.initializer}
    consts = {
        n.output[0]: n.attribute[0].t
        for n in graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    }
    tensors = {**consts, **inits}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    for name, init in inits.items():
        arr = numpy_helper.to_array(init)
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            issues.append(CompatIssue("error", f"initializer {name} has NaN/Inf values."))

    real_inputs = [i for i in graph.input if i.name not in inits]
    for vi in real_inputs:
        dims = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        if len(dims) == 4 and all(isinstance(d, int) and d > 0 for d in dims[2:]):
            issues.append(
                CompatIssue(
                    "warning",
                    f"input {vi.name} has static H/W {dims[2:]}: the engine accepts only that "
                    "size; export with dynamic axes for other frame sizes.",
                )
            )

    has_qdq = any(n.op_type in QDQ_OPS for n in graph.node)
    for node in graph.node:
        if node.op_type not in TRT_CHECKED_OPS:
            issues.append(
                CompatIssue(
                    "warning",
                    f"op {node.op_type} is not among the ops edgesr checks with TensorRT.",
                    node.name,
                )
            )
        if node.op_type == "DepthToSpace":
            mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "DCR")
            if mode != "CRD":
                issues.append(
                    CompatIssue(
                        "warning",
                        f"DepthToSpace mode {mode}: PyTorch's PixelShuffle is CRD; check the "
                        "channel order.",
                        node.name,
                    )
                )
        if node.op_type in QDQ_OPS:
            issues.extend(_check_qdq(node, tensors, consumers))
        if has_qdq and node.op_type in ("Conv", "ConvTranspose"):
            src = producers.get(node.input[0])
            if src is None or src.op_type != "DequantizeLinear":
                issues.append(
                    CompatIssue(
                        "warning",
                        f"{node.op_type} input is not quantized: it runs in float in this Q/DQ "
                        "model.",
                        node.name,
                    )
                )
    if has_qdq:
        for out in graph.output:
            node = producers.get(out.name)
            while node is not None and node.op_type in _MOVE_OPS:
                node = producers.get(node.input[0])
            if node is not None and node.op_type == "DequantizeLinear":
                issues.append(
                    CompatIssue(
                        "warning",
                        f"output {out.name} comes straight from a DequantizeLinear: the SR "
                        "image is quantized to 256 levels; leave the last layer's output in "
                        "float.",
                        node.name,
                    )
                )
    return issues


def _check_qdq(
    node: onnx.NodeProto,
    tensors: dict[str, onnx.TensorProto],
    consumers: dict[str, list[onnx.NodeProto]],
) -> list[CompatIssue]:
    import onnx
    from onnx import numpy_helper

    issues = []
    ok_types = {
        onnx.TensorProto.INT8,
        onnx.TensorProto.FLOAT8E4M3FN,
        getattr(onnx.TensorProto, "INT4", onnx.TensorProto.INT8),
    }
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    zp = tensors.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 2 and node.input[2] and zp is None:
        issues.append(CompatIssue("error", "zero point is not a constant.", node.name))
    if zp is not None:
        if zp.data_type not in ok_types:
            kind = onnx.TensorProto.DataType.Name(zp.data_type)
            hint = (
                " (an int32 bias DQ: quantize without bias quantization)" if kind == "INT32" else ""
            )
            issues.append(
                CompatIssue(
                    "error",
                    f"{kind} Q/DQ{hint}: TensorRT takes signed INT8 (or FP8/INT4) Q/DQ only.",
                    node.name,
                )
            )
        elif np.any(numpy_helper.to_array(zp) != 0):
            issues.append(
                CompatIssue(
                    "error",
                    "non-zero zero point: TensorRT supports symmetric quantization only "
                    "(quantize with symmetric activations and weights).",
                    node.name,
                )
            )
    elif node.op_type == "QuantizeLinear":
        out_type = next((a.i for a in node.attribute if a.name == "output_dtype"), 0)
        if out_type not in ok_types:
            issues.append(
                CompatIssue(
                    "error",
                    "QuantizeLinear without a zero point outputs UINT8; TensorRT needs INT8.",
                    node.name,
                )
            )
    data = tensors.get(node.input[0])
    if (
        node.op_type == "DequantizeLinear"
        and data is not None
        and data.data_type == onnx.TensorProto.INT32
    ):
        issues.append(
            CompatIssue(
                "error",
                "int32 DequantizeLinear (a quantized bias): TensorRT rejects it; keep biases in "
                "float (onnxruntime: extra_options={'QuantizeBias': False}).",
                node.name,
            )
        )
    scale = tensors.get(node.input[1])
    size = int(np.prod(scale.dims)) if scale is not None else 1
    uses = consumers.get(node.output[0], [])
    weight_of = [
        c.op_type
        for c in uses
        if c.op_type in ("Conv", "ConvTranspose")
        and len(c.input) > 1
        and c.input[1] == node.output[0]
    ]
    if node.op_type == "DequantizeLinear" and weight_of:
        want = 1 if weight_of[0] == "ConvTranspose" else 0
        if size > 1 and axis != want:
            issues.append(
                CompatIssue(
                    "error",
                    f"{weight_of[0]} weights are quantized per channel on axis {axis}; TensorRT's "
                    f"INT8 kernels need the output-channel axis {want}.",
                    node.name,
                )
            )
    elif size > 1 and node.op_type == "DequantizeLinear" and data is None:
        issues.append(
            CompatIssue(
                "error", "per-channel activation scale: TensorRT needs per-tensor.", node.name
            )
        )
    return issues


def resolve_precision(requested: str, info: OnnxModelInfo) -> str:
    """``auto`` -> ``int8-qdq`` for Q/DQ models, else ``fp16``; checks the others fit the model."""
    if requested not in ENGINE_PRECISIONS:
        raise ConfigError(
            f"engine precision must be one of {', '.join(ENGINE_PRECISIONS)}, got {requested!r}."
        )
    if requested == "auto":
        return "int8-qdq" if info.has_qdq else "fp16"
    if requested == "int8-qdq" and not info.has_qdq:
        raise ConfigError(
            f"{info.path} has no Q/DQ nodes: an INT8 engine needs an explicitly quantized model "
            "(`edgesr compress`); TensorRT's implicit calibration is not used."
        )
    if requested in ("fp16", "fp32") and info.has_qdq:
        raise ConfigError(
            f"{info.path} is a Q/DQ (INT8) model; build it with precision int8-qdq (or auto)."
        )
    if requested == "fp32" and info.has_fp16:
        raise ConfigError(f"{info.path} holds FP16 tensors; use precision fp16 (or auto).")
    return requested


def _lint_or_raise(path: Path) -> list[str]:
    issues = check_tensorrt_compat(path)
    errors = [str(i) for i in issues if i.severity == "error"]
    if errors:
        raise ModelError(f"{path} is not TensorRT-ready:\n  " + "\n  ".join(errors))
    return [str(i) for i in issues if i.severity != "error"]


# --------------------------------------------------------------------------------------------
# Engine build


def write_engine_sidecar(path: str | Path, sidecar: dict[str, Any]) -> Path:
    """Write an engine sidecar (``<engine>.json``, or the ``<model>.sidecar.json`` template the
    device scripts copy next to each plan) atomically; the format is
    :func:`edgesr.profile.minimal.engine_sidecar_dict`'s (:data:`SIDECAR_KEYS`)."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(sidecar, indent=2) + "\n").encode())
    return path


@dataclass
class EngineReport:
    """What :func:`build_engine` built; ``to_dict`` is the JSON sidecar: the
    :func:`~edgesr.profile.minimal.engine_sidecar_dict` keys first (top-level ``scale`` and
    ``color``, which libedgesr's TensorRT backend reads), then this report."""

    engine_path: str
    sidecar_path: str
    onnx_path: str
    built_onnx_path: str
    onnx_sha256: str
    builder: str
    trt_version: str
    device: str
    precision: str
    strongly_typed: bool
    profiles: list[dict[str, list[int]]]
    workspace_mb: int
    build_time_s: float
    engine_size: int
    engine_sha256: str
    timing_cache: str | None
    fp32_nodes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    created_utc: str = ""
    edgesr_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        contract = engine_sidecar_dict(
            self.metadata, precision=self.precision, onnx_sha256=self.onnx_sha256
        )
        return {**contract, **dataclasses.asdict(self)}


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    profiles: Iterable[ProfileSpec] | None = None,
    precision: str = "auto",
    timing_cache: str | Path | None = None,
    workspace_mb: int = 1024,
    sample: np.ndarray | None = None,
    keep_fp32: Iterable[str] = (),
    builder: str | None = None,
    force: bool = False,
) -> EngineReport:
    """Build a TensorRT engine from an edgesr ONNX file through TensorRT's Python API.

    ``profiles``: (h, w) LR frame sizes or (min, opt, max) NCHW triples, one optimization profile
    each (default: 1080p output frames). ``precision``: see the module docstring; ``auto`` is
    int8-qdq for Q/DQ models, else fp16. ``timing_cache``: file loaded if present and saved
    after the build (TensorRT-RTX ignores timing caches). ``sample`` is the image the FP16
    overflow check measures (default the embedded photo). Writes the engine and
    ``<engine>.json`` (this report) atomically; for fp16 also ``<engine stem>.fp16.onnx``.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    info = check_onnx_model(onnx_path)
    precision = resolve_precision(precision, info)
    if isinstance(workspace_mb, bool) or not isinstance(workspace_mb, int) or workspace_mb < 1:
        raise ConfigError(f"workspace_mb must be a positive integer, got {workspace_mb!r}.")
    sidecar = engine_path.with_name(engine_path.name + ".json")
    for out in (engine_path, sidecar):
        _check_output(out, force=force)
    warnings = _lint_or_raise(onnx_path)
    profs = normalize_profiles(profiles, channels=info.num_channels, scale=info.scale)
    trt = load_tensorrt(builder)
    is_rtx = trt.__name__ == "tensorrt_rtx"
    flags = trt.NetworkDefinitionCreationFlag
    typed = hasattr(flags, "STRONGLY_TYPED")
    notes: list[str] = []

    built_onnx, fp32_nodes = onnx_path, []
    if precision == "fp16" and not info.has_fp16:
        if typed:
            built_onnx = engine_path.with_name(engine_path.stem + ".fp16.onnx")
            fp16 = make_fp16_onnx(
                onnx_path, built_onnx, sample=sample, keep_fp32=keep_fp32, force=force
            )
            fp32_nodes = fp16.fp32_nodes
            notes.append(
                f"FP16 graph {built_onnx.name}: PSNR {fp16.psnr_db:.1f} dB vs FP32 on ONNX Runtime."
            )
        else:
            fp32_nodes = _fp16_fallbacks(onnx_path, info, sample, keep_fp32)
    elif precision == "fp16":
        fp32_nodes = json.loads(info.metadata.get("edgesr.fp32_nodes", "[]"))

    try:
        engine, build_time, cache_path = _trt_build(
            trt, built_onnx, profs, precision, typed, fp32_nodes, workspace_mb, timing_cache, notes
        )
    except BaseException:
        if built_onnx != onnx_path:  # the FP16 graph this call wrote serves no engine
            built_onnx.unlink(missing_ok=True)
        raise
    atomic_write_bytes(engine_path, engine)
    if is_rtx:
        notes.append(
            "TensorRT-RTX engine: runs only on RTX GPUs with the TensorRT-RTX runtime, not on a "
            "Jetson; build the Jetson engine on the device (build_engine.sh)."
        )

    report = EngineReport(
        engine_path=str(engine_path),
        sidecar_path=str(sidecar),
        onnx_path=str(onnx_path),
        built_onnx_path=str(built_onnx),
        onnx_sha256=_sha256(built_onnx.read_bytes()),
        builder=trt.__name__,
        trt_version=str(trt.__version__),
        device=_device_description(is_rtx),
        precision=precision,
        strongly_typed=typed,
        profiles=[p.to_dict() for p in profs],
        workspace_mb=workspace_mb,
        build_time_s=round(build_time, 3),
        engine_size=len(engine),
        engine_sha256=_sha256(engine),
        timing_cache=None if cache_path is None else str(cache_path),
        fp32_nodes=list(fp32_nodes),
        warnings=warnings,
        notes=notes,
        metadata=info.metadata,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_engine_sidecar(sidecar, report.to_dict())
    return report


def _trt_build(
    trt: ModuleType,
    onnx_path: Path,
    profs: Sequence[Profile],
    precision: str,
    typed: bool,
    fp32_nodes: Sequence[str],
    workspace_mb: int,
    timing_cache: str | Path | None,
    notes: list[str],
) -> tuple[bytes, float, Path | None]:
    """Parse and build; returns (engine bytes, build seconds, timing cache path if saved)."""
    logger = _make_logger(trt)
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # e.g. CUDA initialization failure
        builder = None
        logger.errors.insert(0, str(exc))
    if builder is None:
        raise DependencyError(
            f"{trt.__name__} {trt.__version__} cannot create a builder here ("
            + "; ".join(logger.errors or ["no usable NVIDIA GPU?"])
            + "). Without a GPU, install tensorrt-rtx (ahead-of-time builds) or build on the "
            "device with the generated build_engine.sh."
        )
    flags = trt.NetworkDefinitionCreationFlag
    net_flags = 0
    if typed:
        net_flags |= 1 << int(flags.STRONGLY_TYPED)
    elif hasattr(flags, "EXPLICIT_BATCH"):  # TensorRT 8.x
        net_flags |= 1 << int(flags.EXPLICIT_BATCH)
    network = builder.create_network(net_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(
            f"{trt.__name__} {trt.__version__} cannot parse {onnx_path}:\n  "
            + "\n  ".join(errors or logger.errors)
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if not typed:
        _legacy_precision(trt, network, config, precision, list(fp32_nodes))
        notes.append("TensorRT without strongly typed networks: precision set by builder flags.")
    for prof in profs:
        p = builder.create_optimization_profile()
        p.set_shape(INPUT_NAME, prof.min, prof.opt, prof.max)
        config.add_optimization_profile(p)

    cache_path = Path(timing_cache) if timing_cache is not None else None
    cache = None
    if cache_path is not None and trt.__name__ == "tensorrt_rtx":
        notes.append("TensorRT-RTX ignores timing caches (it tunes on the device at run time).")
        cache_path = None
    elif cache_path is not None:
        data = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(data)
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            # Made by another GPU or TensorRT version: start a new one rather than fail.
            notes.append(f"timing cache {cache_path} did not match this device; replaced it.")
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_time = time.perf_counter() - start
    if serialized is None:
        raise ModelError(
            f"{trt.__name__} {trt.__version__} failed to build {onnx_path}:\n  "
            + "\n  ".join(logger.errors or ["(no error message)"])
        )
    if cache is not None and cache_path is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized), build_time, cache_path


def _fp16_fallbacks(
    onnx_path: Path, info: OnnxModelInfo, sample: np.ndarray | None, keep: Iterable[str]
) -> list[str]:
    """FP32 fallback node names without writing a converted graph (weakly typed TensorRT)."""
    inputs, _ = verification_inputs(sample, info.color, recorded_verify_sizes(info.metadata))
    _, fp32_nodes, _ = convert_to_fp16(load_onnx(onnx_path), inputs, keep_fp32=keep)
    return fp32_nodes


def _legacy_precision(
    trt: ModuleType, network: Any, config: Any, precision: str, fp32: list[str]
) -> None:
    """TensorRT 8.x: FP16 flag + layers pinned to FP32, or the INT8 flag Q/DQ needs there."""
    if precision == "int8-qdq":
        config.set_flag(trt.BuilderFlag.INT8)
    elif precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = set(fp32)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            # The parser names layers after ONNX nodes (multi-layer nodes get suffixes).
            if layer.name in pinned or any(layer.name.startswith(n + "_") for n in pinned):
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)


def _make_logger(trt: ModuleType) -> Any:
    """A logger that keeps errors for our messages instead of printing TensorRT's chatter."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(msg)

    return _Logger()


def _device_description(is_rtx: bool) -> str:
    """The Jetson model, else the GPU(s) nvidia-smi lists; RTX builds need none."""
    model = Path("/proc/device-tree/model")
    if model.is_file():
        text = model.read_bytes().decode(errors="replace").strip("\x00 \n")
        if "jetson" in text.lower() or "nvidia" in text.lower():
            return text
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            return "; ".join(line.strip() for line in out.splitlines())
    if is_rtx:
        return f"no GPU ({platform.machine()} host): TensorRT-RTX ahead-of-time build"
    return f"unknown ({platform.machine()} host, nvidia-smi not found)"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# trtexec scripts for the device


@dataclass
class BuildScripts:
    """Files :func:`write_trt_build_script` wrote for building the engine on the device."""

    out_dir: str
    build_script: str
    time_script: str
    onnx_files: list[str]
    engines: list[str]
    precision: str
    profiles: list[dict[str, list[int]]]
    fp32_nodes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: ``<model>.sidecar.json``: build_engine.sh copies it next to each plan as ``<plan>.json``.
    sidecar: str = ""

    def message(self) -> str:
        return (
            f"TensorRT-ready ONNX and trtexec scripts are in {self.out_dir}. The engine must be "
            f"built on the target device (engines are specific to the GPU and TensorRT version): "
            f"copy the folder there and run ./{Path(self.build_script).name}, then "
            f"./{Path(self.time_script).name} to time it."
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def write_trt_build_script(
    onnx_path: str | Path,
    out_dir: str | Path,
    *,
    profiles: Iterable[ProfileSpec] | None = None,
    precision: str = "auto",
    timing_cache: str = "timing.cache",
    workspace_mb: int = 1024,
    sample: np.ndarray | None = None,
    keep_fp32: Iterable[str] = (),
    force: bool = False,
) -> BuildScripts:
    """Write ``build_engine.sh`` and ``time_engine.sh`` (trtexec, same profiles and precision as
    :func:`build_engine`) plus the ONNX they need into ``out_dir``, ready to copy to a Jetson.

    Works without TensorRT. The build script picks the strongly typed route on TensorRT >= 10
    and the ``--fp16``/``--int8`` flags on 8.x (JetPack 5). trtexec builds one profile per
    engine, so several profiles give several engines.
    """
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    info = check_onnx_model(onnx_path)
    precision = resolve_precision(precision, info)
    warnings = _lint_or_raise(onnx_path)
    profs = normalize_profiles(profiles, channels=info.num_channels, scale=info.scale)
    if isinstance(workspace_mb, bool) or not isinstance(workspace_mb, int) or workspace_mb < 1:
        raise ConfigError(f"workspace_mb must be a positive integer, got {workspace_mb!r}.")
    build_sh, time_sh = out_dir / "build_engine.sh", out_dir / "time_engine.sh"
    sidecar_path = out_dir / f"{onnx_path.stem}.sidecar.json"
    existed = out_dir.exists()
    for out in (build_sh, time_sh, sidecar_path):
        _check_output(out, force=force)  # creates out_dir

    # A failure part-way removes what this call wrote: no device folder that looks complete.
    written: list[Path] = []
    try:
        src = out_dir / onnx_path.name
        if src.resolve() != onnx_path.resolve():
            _check_output(src, force=force)
            atomic_write_bytes(src, onnx_path.read_bytes())
            written.append(src)
        # The engine sidecar every plan this script builds gets (the C runtime needs scale/color).
        write_engine_sidecar(
            sidecar_path,
            engine_sidecar_dict(
                info.metadata, precision=precision, onnx_sha256=_sha256(src.read_bytes())
            ),
        )
        written.append(sidecar_path)
        onnx_files = [src.name]
        typed_onnx, fp32_nodes = src.name, []
        if precision == "fp16" and not info.has_fp16:
            typed_path = out_dir / f"{onnx_path.stem}.fp16.onnx"
            fp16 = make_fp16_onnx(src, typed_path, sample=sample, keep_fp32=keep_fp32, force=force)
            written.append(typed_path)
            typed_onnx, fp32_nodes = typed_path.name, fp16.fp32_nodes
            onnx_files.append(typed_path.name)

        # Engine names go into the scripts unquoted (beside $DLA): keep them shell-safe.
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", onnx_path.stem)
        engines = [
            f"{stem}_{precision}.engine"
            if len(profs) == 1
            else f"{stem}_{precision}_{p.opt[2]}x{p.opt[3]}.engine"
            for p in profs
        ]
        build = _build_script(
            info,
            precision,
            src.name,
            typed_onnx,
            profs,
            engines,
            fp32_nodes,
            timing_cache,
            workspace_mb,
            sidecar_path.name,
        )
        timing = _time_script(engines, profs)
        for path, text in ((build_sh, build), (time_sh, timing)):
            atomic_write_bytes(path, text.encode())
            written.append(path)
            path.chmod(0o755)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return BuildScripts(
        out_dir=str(out_dir),
        build_script=str(build_sh),
        time_script=str(time_sh),
        onnx_files=onnx_files,
        engines=engines,
        precision=precision,
        profiles=[p.to_dict() for p in profs],
        fp32_nodes=list(fp32_nodes),
        warnings=warnings,
        sidecar=str(sidecar_path),
    )


_SCRIPT_HEAD = """#!/usr/bin/env bash
# Generated by edgesr {version}: {what}.
# {purpose}
set -euo pipefail
cd "$(dirname "$0")"
TRTEXEC="${{TRTEXEC:-$(command -v trtexec || echo {trtexec})}}"
if [ ! -x "$TRTEXEC" ]; then
  echo "trtexec not found (looked on PATH and at {trtexec}); install TensorRT (JetPack) or set TRTEXEC=/path/to/trtexec" >&2
  exit 1
fi
"""

#: The device scripts' DLA options (``--dla-core N [--dla-only]``), parsed before anything runs.
_DLA_ARGS = """DLA="" DLA_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dla-core)
      case "${2:-}" in ''|*[!0-9]*) echo "--dla-core takes a DLA core number (0 or 1)" >&2; exit 2 ;; esac
      DLA="$2"; shift 2 ;;
    --dla-only) DLA_ONLY=1; shift ;;
    *) echo "unknown option $1 (usage: ./build_engine.sh [--dla-core N [--dla-only]])" >&2; exit 2 ;;
  esac
done
[ -n "$DLA" ] || [ "$DLA_ONLY" = 0 ] || { echo "--dla-only needs --dla-core N" >&2; exit 2; }
"""


def _build_script(
    info: OnnxModelInfo,
    precision: str,
    fp32_onnx: str,
    typed_onnx: str,
    profs: Sequence[Profile],
    engines: Sequence[str],
    fp32_nodes: Sequence[str],
    timing_cache: str,
    workspace_mb: int,
    sidecar: str,
) -> str:
    """The device build script: strongly typed on TensorRT >= 10, precision flags on 8.x and for
    DLA on 10.x (trtexec sets the FP16 flag for DLA builds there, which TensorRT 10 refuses on
    strongly typed networks; 11.x is strongly typed only). DLA computes in FP16/INT8 only, so
    fp32 is refused with --dla-core."""
    q = shlex.quote
    what = f"{info.arch} x{info.scale} ({info.color}), {precision}, from {fp32_onnx}"
    lines = [
        _SCRIPT_HEAD.format(
            version=__version__,
            what=what,
            purpose="Usage: ./build_engine.sh [--dla-core N [--dla-only]]. Builds the TensorRT engine(s) on this device; engines are specific to GPU and TensorRT version.",
            trtexec=TRTEXEC_JETSON,
        ),
        "# --dla-core N: build for DLA core N (engine names get _dlaN), layers DLA cannot run fall",
        "# back to the GPU (--allowGPUFallback) unless --dla-only.",
        _DLA_ARGS,
        "# TensorRT version as trtexec reports it (e.g. 100300 for 10.3.0, 8502 for 8.5.2);",
        "# set TRT_VERSION to skip the detection.",
        'version="${TRT_VERSION:-}"',
        'if [ -z "$version" ]; then',
        '  banner="$("$TRTEXEC" --help 2>&1 || true)"',
        '  if [[ $banner =~ TensorRT\\ v([0-9]+) ]]; then version="${BASH_REMATCH[1]}"; fi',
        "fi",
        'if [ -z "$version" ]; then',
        '  echo "could not read the TensorRT version from trtexec; assuming >= 10 (set TRT_VERSION to override)" >&2',
        "  version=100000",
        "fi",
        'if [ "$version" -ge 10000 ]; then major=$((version / 10000)); else major=$((version / 1000)); fi',
        'echo "trtexec: $TRTEXEC (TensorRT $major, $version)"',
        "dla=()",
        'if [ -n "$DLA" ]; then',
    ]
    if precision == "fp32":
        lines += [
            '  echo "DLA runs FP16 or INT8 only; export an fp16 or int8-qdq model for it" >&2',
            "  exit 2",
        ]
    lines += [
        '  dla=("--useDLACore=$DLA")',
        '  [ "$DLA_ONLY" = 1 ] || dla+=(--allowGPUFallback)',
        "fi",
        "# Each plan gets <plan>.json (scale, color, ...): a plan has no metadata, and libedgesr",
        "# and edgesr refuse a plan without its sidecar.",
        f"test -s {q(sidecar)} || {{ echo {q(f'{sidecar} is missing; re-run edgesr export')} >&2; exit 1; }}",
        "",
    ]
    typed_flags = ["--stronglyTyped"] + (["--noTF32"] if precision == "fp32" else [])
    if precision == "int8-qdq":
        # --int8 makes TensorRT honour Q/DQ without strong typing (8.x, DLA), and --fp16 lets the
        # layers left in float (the first conv of edgesr's int8-qdq) run in FP16 rather than FP32.
        legacy_flags = ["--int8", "--fp16"]
    elif precision == "fp16":
        legacy_flags = ["--fp16"]
        if fp32_nodes:
            spec = ",".join(f"{n}:fp32" for n in fp32_nodes)
            legacy_flags += [
                "--precisionConstraints=obey",
                f"--layerPrecisions={spec}",
                f"--layerOutputTypes={spec}",
            ]
    else:
        legacy_flags = ["--noTF32"]
    for prof, engine in zip(profs, engines, strict=True):
        base = engine.removesuffix(".engine")  # shell-safe (_engine_names)
        plan = f'"{base}${{DLA:+_dla$DLA}}.engine"'
        common = [
            *prof.trtexec_args(),
            f"--memPoolSize=workspace:{workspace_mb}",
            f"--timingCacheFile={timing_cache}",
        ]
        typed_cmd = " ".join(q(a) for a in [f"--onnx={typed_onnx}", *common, *typed_flags])
        legacy_cmd = " ".join(q(a) for a in [f"--onnx={fp32_onnx}", *common, *legacy_flags])
        lines += [
            f"plan={plan}",
            f'echo "building $plan: LR {prof.opt[2]}x{prof.opt[3]}, {precision}${{DLA:+, DLA core $DLA}}"',
            'if [ "$major" -ge 11 ] || { [ "$major" -ge 10 ] && [ -z "$DLA" ]; }; then',
            "  # Strongly typed: the ONNX tensor types (FP16 nodes / Q/DQ) decide every layer's precision.",
            f'  "$TRTEXEC" {typed_cmd} --saveEngine="$plan" --skipInference ${{dla[@]+"${{dla[@]}}"}}',
            "else",
            "  # TensorRT 8.x (JetPack 5/6.0), or DLA before 11 (trtexec sets the FP16 flag for DLA,",
            "  # which TensorRT 10 refuses on strongly typed networks): precision by flags.",
            '  if [ "$version" -ge 8600 ]; then only=--skipInference; else only=--buildOnly; fi',
            f'  "$TRTEXEC" {legacy_cmd} --saveEngine="$plan" "$only" ${{dla[@]+"${{dla[@]}}"}}',
            "fi",
            'test -s "$plan" || { echo "trtexec reported success but $plan is empty" >&2; exit 1; }',
            f'cp -- {q(sidecar)} "$plan.json.tmp" && mv -f -- "$plan.json.tmp" "$plan.json"',
            "",
        ]
    lines.append('echo "done; time it with ./time_engine.sh${DLA:+ --dla-core $DLA}"')
    return "\n".join(lines) + "\n"


#: time_engine.sh, both the generated one and deploy/jetson's (``time_engine_script()``, which a
#: test keeps identical to the file): @HEADER@, @PRELUDE@, @ENGINE@, @SHAPE@ are filled in.
_TIME_TEMPLATE = r"""@HEADER@
#
#   ./time_engine.sh [--with-copies] [--dla-core N] [--no-power] @USAGE_ENGINE@ [NxCxHxW] [TIMES.json] [extra trtexec options...]
#
# Runs trtexec on the engine: CUDA graph launches, 500 ms warm-up, 10 s of inferences, p50/p90/p99
# (TensorRT >= 8.5; 8.4 takes a single --percentile, p99), every inference's times exported to
# TIMES.json. NxCxHxW is the `lr` input shape (default @SHAPE@); it must lie inside the engine's
# optimization profile.
#   (default)      --noDataTransfers: the GPU time of the net itself (computeMs), no host<->device
#                  copies; what a camera pipeline whose frames already live in device memory sees.
#   --with-copies  keeps trtexec's input/output copies (h2dMs, computeMs, d2hMs; latencyMs is their
#                  sum): end to end from host memory.
#   --dla-core N   the engine was built for DLA core N (build_engine.sh --dla-core N); trtexec
#                  loads it on that core.
#   --no-power     no tegrastats log. Otherwise, where `tegrastats` is on PATH, it samples the
#                  power rails every 100 ms while trtexec runs into TIMES.tegrastats.log (warm-up
#                  included), and the summary gives the mean input power (VDD_IN or
#                  POM_5V_IN, else the sum of the rails).
# Set the power mode first (sudo ./set_power_mode.sh) so the numbers are comparable; the mode is
# printed with the results.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
@PRELUDE@
COPIES=0 DLA="" POWER=1
while [ $# -gt 0 ]; do
  case "$1" in
    --with-copies) COPIES=1; shift ;;
    --no-power) POWER=0; shift ;;
    --dla-core)
      case "${2:-}" in ''|*[!0-9]*) echo "--dla-core takes a DLA core number (0 or 1)" >&2; exit 2 ;; esac
      DLA="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
ENGINE="${1:-@ENGINE@}"
[ -n "$ENGINE" ] || usage 2
SHAPE="${2:-@SHAPE@}"
TIMES="${3:-times_$(basename "$ENGINE" .engine)_${SHAPE}.json}"
shift $(( $# < 3 ? $# : 3 ))
[ -f "$ENGINE" ] || { echo "engine $ENGINE does not exist; build it with build_engine.sh" >&2; exit 2; }

TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
if [ ! -x "$TRTEXEC" ]; then
  echo "trtexec not found (PATH, /usr/src/tensorrt/bin/trtexec); install JetPack's TensorRT or set TRTEXEC" >&2
  exit 1
fi
# trtexec prints "[TensorRT v100300]" (10.3.0) or "[TensorRT v8502]" (8.5.2) on every run.
version="${TRT_VERSION:-}"
if [ -z "$version" ]; then
  # No pipeline: under pipefail, a reader that stops early would fail the whole line.
  banner="$("$TRTEXEC" --help 2>&1 || true)"
  if [[ $banner =~ TensorRT\ v([0-9]+) ]]; then version="${BASH_REMATCH[1]}"; fi
fi
version="${version:-100000}"

flags=(--useCudaGraph --warmUp=500 --duration=10)
[ "$COPIES" = 1 ] || flags+=(--noDataTransfers)
# A comma-separated list needs TensorRT >= 8.5 (8.4's trtexec parses one number).
if [ "$version" -ge 8500 ]; then flags+=("--percentile=50,90,99"); else flags+=(--percentile=99); fi
[ -z "$DLA" ] || flags+=("--useDLACore=$DLA")

echo "TensorRT $version, $TRTEXEC"
if command -v nvpmodel >/dev/null 2>&1; then
  echo "power mode: $(nvpmodel -q 2>/dev/null | tr '\n' ' ')"
fi
POWER_LOG="${TIMES%.json}.tegrastats.log"
tegra_pid=""
if [ "$POWER" = 1 ] && command -v tegrastats >/dev/null 2>&1; then
  tegrastats --interval 100 > "$POWER_LOG" 2>&1 &
  tegra_pid=$!
  trap 'kill "$tegra_pid" 2>/dev/null || true' EXIT
fi
status=0
"$TRTEXEC" --loadEngine="$ENGINE" --shapes="lr:$SHAPE" "${flags[@]}" --exportTimes="$TIMES" "$@" || status=$?
if [ -n "$tegra_pid" ]; then
  kill "$tegra_pid" 2>/dev/null || true
  wait "$tegra_pid" 2>/dev/null || true
  trap - EXIT
fi
[ "$status" = 0 ] || { echo "trtexec failed (exit $status)" >&2; exit "$status"; }

# A summary from the exported per-inference times and the power log (python3 ships with JetPack).
# The rail format is edgesr.profile.minimal.parse_tegrastats's: NAME cur/avg[/max] in mW or W.
if command -v python3 >/dev/null 2>&1; then
  python3 - "$TIMES" "$COPIES" "$([ -n "$tegra_pid" ] && echo "$POWER_LOG")" <<'PY'
import json
import re
import sys

times, copies, power_log = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
runs = [r for r in json.load(open(times)) if "computeMs" in r]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


if runs:
    key, what = ("latencyMs", "host-to-host ms (copies + compute)") if copies else ("computeMs", "GPU compute ms")
    ms = [r[key] for r in runs]
    print(f"{len(ms)} runs, {what}: p50 {pct(ms, 50):.3f}  p90 {pct(ms, 90):.3f}  p99 {pct(ms, 99):.3f}")
    if copies:
        for part in ("h2dMs", "computeMs", "d2hMs"):
            if all(part in r for r in runs):
                print(f"  {part[:-2]} p50 {pct([r[part] for r in runs], 50):.3f} ms")
if power_log:
    rail_re = re.compile(
        r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+(?:\.\d+)?)(mW|W)?/(\d+(?:\.\d+)?)(mW|W)?"
        r"(?:/(\d+(?:\.\d+)?)(mW|W)?)?(?![\w/.])"
    )
    totals, rail = [], ""
    for line in open(power_log, errors="replace"):
        rails = {m[0]: float(m[1]) / (1 if m[2] == "W" else 1000) for m in rail_re.findall(line)}
        if rails:
            names = next(([n] for n in ("VDD_IN", "POM_5V_IN", "5V_IN") if n in rails), sorted(rails))
            rail = names[0] if len(names) == 1 else "sum(" + "+".join(names) + ")"
            totals.append(sum(rails[n] for n in names))
    if totals:
        print(f"power: {rail} mean {sum(totals) / len(totals):.2f} W over {len(totals)} samples ({power_log})")
    else:
        print(f"power: no rails in {power_log}")
PY
fi
echo "per-inference times: $TIMES"
"""


def time_engine_script(
    engine: str = "", shape: str = "1x1x270x480", *, header: str = "", prelude: str = ""
) -> str:
    """The trtexec timing script; ``engine`` (a shell word, may use ``$DLA``) is the default
    engine, empty for deploy/jetson's general script that takes it as an argument."""
    header = header or "# Time a TensorRT engine with trtexec on the device that built it."
    return "#!/usr/bin/env bash\n" + (
        _TIME_TEMPLATE.replace("@HEADER@", header.rstrip("\n"))
        .replace("@PRELUDE@", prelude)
        .replace("@USAGE_ENGINE@", "[ENGINE]" if engine else "ENGINE")
        .replace("@ENGINE@", engine)
        .replace("@SHAPE@", shape)
    )


def _time_script(engines: Sequence[str], profs: Sequence[Profile]) -> str:
    first, prof = engines[0], profs[0]
    shape = "x".join(str(d) for d in prof.opt)
    header = f"# Generated by edgesr {__version__}: times {first} (default; --dla-core N: its _dlaN build)."
    if len(engines) > 1:
        header += "\n# Other engines: " + ", ".join(engines[1:])
    return time_engine_script(
        first.removesuffix(".engine") + "${DLA:+_dla$DLA}.engine",
        shape,
        header=header,
        prelude='cd "$(dirname "$0")"',
    )


__all__ = [
    "DEFAULT_OUTPUT_FRAME",
    "ENGINE_PRECISIONS",
    "TRT_CHECKED_OPS",
    "TRT_MODULES",
    "BuildScripts",
    "CompatIssue",
    "SIDECAR_KEYS",
    "EngineReport",
    "Profile",
    "build_engine",
    "check_tensorrt_compat",
    "frame_profile",
    "load_tensorrt",
    "lr_frame_size",
    "normalize_profiles",
    "resolve_precision",
    "tensorrt_available",
    "write_engine_sidecar",
    "time_engine_script",
    "write_trt_build_script",
]
