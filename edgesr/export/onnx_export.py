"""Export edgesr nets to ONNX and prove that the file computes what PyTorch computes.

The exported file follows one I/O convention, recorded in its ``metadata_props``: input ``lr``
float32 ``[N, C, H, W]`` in [0, 1], output ``sr`` float32 ``[N, C, s*H, s*W]``, N/H/W dynamic;
``edgesr.color`` is ``y_bt601`` (C=1, the Y of MATLAB's rgb2ycbcr divided by 255) or ``rgb``
(C=3) and ``edgesr.scale`` the integer scale. PixelShuffle becomes one ``DepthToSpace`` in CRD
mode (the TorchScript exporter, opset >= 11, gives exactly that).

Every export is checked on a real photo (an embedded validation image unless a sample is given)
at an even and an odd size and with batch 2: ONNX Runtime against PyTorch, max-abs-diff and PSNR
in the :class:`ExportReport`. Files are written to a temporary name and renamed only once every
check has passed, so a failed export leaves nothing behind.

FP16 (:func:`convert_to_fp16`) puts precision into the graph, as strongly typed TensorRT
(10.x ``--stronglyTyped``, 11.x, TensorRT-RTX) requires: float nodes become FP16, except those
whose activations or weights measured on the photo come within ``margin`` of the FP16 range
(65504); they stay FP32 behind Cast nodes. This is the guard against the NaN/Inf outputs that
FP16 SR engines are known for. ONNX Runtime's CPU provider computes FP16 nodes in FP32 and
drops the FP16 rounding in between, so it cannot show an overflow; FP16 graphs are therefore
verified twice: as written, and as :func:`emulate_fp16` (the FP32 graph with every FP16 tensor
rounded through explicit Casts, which overflow to Inf exactly where an FP16 engine would).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesr import __version__
from edgesr.errors import ConfigError, DataError, ModelError, require
from edgesr.modelio import ModelInfo, atomic_write_bytes
from edgesr.outputs import refuse_existing

if TYPE_CHECKING:
    import onnx
    from torch import nn

INPUT_NAME = "lr"
OUTPUT_NAME = "sr"
PRECISIONS = ("fp32", "fp16", "int8-qdq")
DEFAULT_OPSET = 17
#: Minimum PSNR (dB, peak 1.0) of the ONNX output against its reference, per precision.
#: FP32 must agree with PyTorch to float rounding; FP16 is compared with the FP32 net;
#: INT8 Q/DQ with its fake-quant PyTorch twin (only requantization rounding ties may differ).
MIN_PSNR_DB = {"fp32": 60.0, "fp16": 45.0, "int8-qdq": 40.0}
#: LR sizes (H, W) cropped from the sample for verification: one even, one odd.
VERIFY_SIZES: tuple[tuple[int, int], ...] = ((96, 128), (77, 101))
#: ModelInfo colour -> ``edgesr.color`` metadata value (runners map it back).
ONNX_COLOR = {"y": "y_bt601", "rgb": "rgb"}
COLOR_FROM_ONNX = {v: k for k, v in ONNX_COLOR.items()}
FP16_MAX = 65504.0
#: Float ops that may run in FP16: every float input of theirs is the data type T. Anything
#: else (Resize's scales, Q/DQ, shape ops, ...) stays FP32 behind Casts.
FP16_OPS = frozenset(
    {
        "Abs", "Add", "AveragePool", "Clip", "Concat", "Conv", "ConvTranspose", "DepthToSpace",
        "Div", "Flatten", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Max", "MaxPool",
        "Min", "Mul", "Neg", "Pad", "PRelu", "Relu", "Reshape", "Sigmoid", "Slice",
        "SpaceToDepth", "Split", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
    }
)  # fmt: skip
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _io_description(info: ModelInfo) -> str:
    c, s = info.num_channels, info.scale
    what = (
        "Y of BT.601 studio range (MATLAB rgb2ycbcr) / 255"
        if info.color == "y"
        else "RGB in [0, 1]"
    )
    return (
        f"input '{INPUT_NAME}' float32 [N,{c},H,W]: {what}; output '{OUTPUT_NAME}' float32 "
        f"[N,{c},{s}H,{s}W], same convention, not clipped; N, H, W dynamic"
    )


# --------------------------------------------------------------------------------------------
# Reports


@dataclass
class VerifyResult:
    """ONNX Runtime output against a reference on the same inputs."""

    max_abs_diff: float
    psnr_db: float  # over all outputs together; inf when identical
    min_psnr_db: float
    input_shapes: list[list[int]]
    per_input: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.psnr_db >= self.min_psnr_db

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["psnr_db"] = _json_float(self.psnr_db)
        out["passed"] = self.passed
        for row in out["per_input"]:
            row["psnr_db"] = _json_float(row["psnr_db"])
        return out


@dataclass
class ExportReport:
    """What an export wrote and how it was checked; ``to_dict`` gives the JSON report."""

    path: str
    precision: str
    opset: int
    file_size: int
    sha256: str
    ops: dict[str, int]
    metadata: dict[str, str]
    verified: bool
    max_abs_diff: float | None = None
    psnr_db: float | None = None  # inf when bit-identical (null in JSON)
    min_psnr_db: float | None = None
    input_shapes: list[list[int]] = field(default_factory=list)
    reference: str = ""  # what the ONNX output was compared with
    sample: str = ""
    simplified: bool = False
    fp32_nodes: list[str] = field(default_factory=list)  # fp16: nodes kept FP32
    export_time_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["psnr_db"] = _json_float(self.psnr_db)
        out["max_abs_diff"] = _json_float(self.max_abs_diff)
        return out


def write_export_report(report: ExportReport, path: str | Path, *, force: bool = False) -> Path:
    """Write ``report`` as JSON (atomically); refuses to overwrite unless ``force``."""
    path = Path(path)
    _check_output(path, force=force)
    data = json.dumps(report.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, data.encode())
    return path


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None  # JSON has no inf; null + psnr semantics documented above
    return float(value)


# --------------------------------------------------------------------------------------------
# Export


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    info: ModelInfo,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
    verify: bool = True,
    sample: np.ndarray | None = None,
    force: bool = False,
    min_psnr_db: float | None = None,
    verify_sizes: Sequence[tuple[int, int]] = VERIFY_SIZES,
    keep_fp32: Iterable[str] = (),
    fp16_margin: float = 8.0,
) -> ExportReport:
    """Export ``model`` to ONNX at ``path`` and verify it against PyTorch on a real image.

    ``precision``: ``fp32``; ``fp16`` (FP32 export converted by :func:`convert_to_fp16`,
    verified against the FP32 PyTorch net); ``int8-qdq`` for a fake-quant model, whose
    fake-quant ops export as QuantizeLinear/DequantizeLinear pairs and which is verified against
    itself, i.e. the ONNX is compared with its fake-quant PyTorch twin. ``sample``: an HxWx3
    uint8 RGB image (or HxWxC float32 already in the model's colour space); default an embedded
    validation photo. Raises ModelError when the net's output is not ``scale`` times its input,
    its scale/channels disagree with ``info``, or the ONNX output disagrees (PSNR below
    ``min_psnr_db``, default :data:`MIN_PSNR_DB`); OutputExistsError if ``path`` exists and not
    ``force``; ConfigError for bad options or an unwritable folder.
    """
    import torch

    start = time.perf_counter()
    precision = _check_precision(precision)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ConfigError(
            f"opset must be an integer >= {DEFAULT_OPSET} (DepthToSpace CRD and per-channel "
            f"Q/DQ need it), got {opset!r}."
        )
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ConfigError(f"the ONNX output path must end in .onnx, got {path}.")
    _check_output(path, force=force)
    if info.color not in ONNX_COLOR:
        raise ConfigError(f"unknown colour convention {info.color!r}; use 'y' or 'rgb'.")

    net = _deployable(model)
    _check_net(net, info, verify_sizes)
    inputs, sample_name = verification_inputs(sample, info.color, verify_sizes)
    has_fq = _has_fake_quant(net, inputs[0])
    if precision == "int8-qdq" and not has_fq:
        raise ConfigError(
            "precision 'int8-qdq' needs a fake-quantized model (e.g. from `edgesr compress`); "
            "this one has no fake-quant ops. Export it as fp32 or fp16."
        )
    if precision != "int8-qdq" and has_fq:
        raise ConfigError(
            f"the model contains fake-quant ops, which export as Q/DQ; export it with "
            f"precision 'int8-qdq', not {precision!r}."
        )

    tmp = _temp_path(path)
    try:
        c = info.num_channels
        dummy = torch.rand(1, c, verify_sizes[0][0], verify_sizes[0][1])
        with warnings.catch_warnings():
            # The TorchScript exporter warns about its own deprecation on every call.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            try:
                torch.onnx.export(
                    net,
                    (dummy,),
                    str(tmp),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamic_axes={
                        INPUT_NAME: {0: "N", 2: "H", 3: "W"},
                        OUTPUT_NAME: {0: "N", 2: "sH", 3: "sW"},
                    },
                    do_constant_folding=True,
                    dynamo=False,
                )
            except Exception as exc:  # the exporter raises many types
                raise ModelError(f"torch.onnx.export failed for {info.arch}: {exc}") from exc
        import onnx

        proto = onnx.load(str(tmp))
        if simplify:
            proto = simplify_onnx(proto)
        _name_nodes(proto)
        _check_io(proto, info.num_channels, where=str(path))

        fp32_nodes: list[str] = []
        emulation = None
        if precision == "fp16":
            fp32_proto = proto
            proto, fp32_nodes, _ = convert_to_fp16(
                fp32_proto, inputs, keep_fp32=keep_fp32, margin=fp16_margin
            )
            emulation = emulate_fp16(fp32_proto, fp32_nodes)
        set_edgesr_metadata(
            proto, info, precision=precision, fp32_nodes=fp32_nodes, verify_sizes=verify_sizes
        )
        data = _checked_bytes(proto, where=str(path))
        tmp.write_bytes(data)

        result = None
        if verify:
            threshold = MIN_PSNR_DB[precision] if min_psnr_db is None else float(min_psnr_db)
            check = dict(scale=info.scale, min_psnr_db=threshold, what=f"{path.name} ({precision})")
            if emulation is not None:
                result = _verify_fp16(data, emulation, _torch_fn(net), inputs, **check)
            else:
                result = compare_with_reference(data, _torch_fn(net), inputs, **check)
        _fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

    reference = {
        "fp32": "PyTorch FP32",
        "fp16": "PyTorch FP32",
        "int8-qdq": "PyTorch fake-quant twin",
    }[precision]
    return _report(
        path,
        proto,
        precision=precision,
        opset=opset,
        result=result,
        reference=reference if verify else "",
        sample=sample_name if verify else "",
        simplified=simplify,
        fp32_nodes=fp32_nodes,
        start=start,
    )


def _deployable(model: nn.Module) -> nn.Module:
    """``model.fuse()`` when the net has it (folded, eval-mode copy), else an eval copy."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ModelError(f"export_onnx needs a torch nn.Module, got {type(model).__name__}.")
    fuse = getattr(model, "fuse", None)
    net = fuse() if callable(fuse) else copy.deepcopy(model)
    return net.float().cpu().eval()


def _check_net(net: nn.Module, info: ModelInfo, sizes: Sequence[tuple[int, int]]) -> None:
    """Scale/channels against ``info``, and a probe: the output must be scale x the input."""
    import torch

    for attr, want in (("scale", info.scale), ("num_channels", info.num_channels)):
        have = getattr(net, attr, None)
        if have is not None and have != want:
            raise ModelError(
                f"the net has {attr}={have} but the recipe/model info says {want} "
                f"({info.recipe or info.arch}); export it with the recipe it was trained with."
            )
    h, w = sizes[-1]
    x = torch.rand(1, info.num_channels, h, w)
    try:
        with torch.inference_mode():
            y = net(x)
    except Exception as exc:
        raise ModelError(
            f"the net fails on a [1,{info.num_channels},{h},{w}] input ({exc}). If it only takes "
            f"sizes divisible by some factor (e.g. PixelUnshuffle), pass verify_sizes that are; "
            f"else check the colour convention ({info.color}, {info.num_channels} channels)."
        ) from exc
    want = (1, info.num_channels, h * info.scale, w * info.scale)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != want:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ModelError(
            f"the net maps [1,{info.num_channels},{h},{w}] to {shape}, not {want}: an edgesr "
            f"export needs an output exactly x{info.scale} the input."
        )


def _has_fake_quant(net: nn.Module, x: np.ndarray) -> bool:
    """Whether tracing the net records fake-quant ops (they export as Q/DQ)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = torch.jit.trace(net, torch.from_numpy(x[:1]), check_trace=False).inlined_graph
        except Exception:
            return False  # the export itself will report what is wrong
    return any("fake_quantize" in node.kind() for node in graph.nodes())


def _torch_fn(net: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run


def simplify_onnx(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim with the dynamic dims kept; Identity and constant shape chains go away."""
    onnxslim = require(
        "onnxslim",
        purpose="simplifying the exported ONNX graph",
        install="pip install onnxslim (or pass simplify=False)",
    )
    try:
        return onnxslim.slim(proto)
    except Exception as exc:
        raise ModelError(f"onnxslim failed to simplify the graph: {exc}") from exc


def set_edgesr_metadata(
    proto: onnx.ModelProto,
    info: ModelInfo,
    *,
    precision: str,
    fp32_nodes: Sequence[str] = (),
    verify_sizes: Sequence[tuple[int, int]] | None = None,
) -> None:
    """Write the edgesr I/O convention, scale, colour and provenance into ``metadata_props``."""
    meta = {
        "edgesr.format": "edgesr.onnx/1",
        "edgesr.scale": str(info.scale),
        "edgesr.color": ONNX_COLOR[info.color],
        "edgesr.version": __version__,
        "edgesr.arch": info.arch,
        "edgesr.params": json.dumps(dict(info.params), sort_keys=True),
        "edgesr.recipe": info.recipe,
        "edgesr.recipe_hash": info.recipe_hash,
        "edgesr.precision": _check_precision(precision),
        "edgesr.io": _io_description(info),
    }
    if fp32_nodes:
        meta["edgesr.fp32_nodes"] = json.dumps(list(fp32_nodes))
    if verify_sizes:
        # Sizes the net is known to take; later checks (FP16, TensorRT) reuse them.
        meta["edgesr.verify_sizes"] = json.dumps([[int(h), int(w)] for h, w in verify_sizes])
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "edgesr"
    proto.producer_version = __version__
    proto.doc_string = f"edgesr {info.arch} x{info.scale} ({precision}): {_io_description(info)}"


def stamp_onnx_metadata(
    src: str | Path,
    *,
    info: ModelInfo,
    precision: str,
    dst: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Add the edgesr metadata to an ONNX made elsewhere (e.g. an NNCF Q/DQ export).

    A single input/output is renamed to ``lr``/``sr``. Written atomically to ``dst`` (default:
    in place, which needs ``force``).
    """
    src = Path(src)
    dst = src if dst is None else Path(dst)
    proto = load_onnx(src)
    _check_output(dst, force=force)
    _rename_io(proto)
    _name_nodes(proto)
    _check_io(proto, info.num_channels, where=str(src))
    set_edgesr_metadata(proto, info, precision=precision)
    atomic_write_bytes(dst, _checked_bytes(proto, where=str(src)))
    return dst


def _rename_io(proto: onnx.ModelProto) -> None:
    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(
            f"an edgesr model has one input and one output; this graph has {len(inputs)} "
            f"inputs and {len(graph.output)} outputs."
        )
    renames = {inputs[0].name: INPUT_NAME, graph.output[0].name: OUTPUT_NAME}
    for old, new in list(renames.items()):
        if old == new:
            del renames[old]
    if not renames:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]
    inputs[0].name = renames.get(inputs[0].name, inputs[0].name)
    graph.output[0].name = renames.get(graph.output[0].name, graph.output[0].name)
    for vi in graph.value_info:
        vi.name = renames.get(vi.name, vi.name)


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Unique, non-empty node names: FP16 fallbacks and TensorRT layer names refer to them."""
    seen: set[str] = set()
    for i, node in enumerate(proto.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        while name in seen:
            name = f"{name}_{i}"
        node.name = name
        seen.add(name)


def _check_io(proto: onnx.ModelProto, channels: int, *, where: str) -> None:
    """``lr``/``sr`` float32 rank-4 tensors with the right channel count and dynamic H, W."""
    import onnx

    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    names = ([i.name for i in inputs], [o.name for o in graph.output])
    if names != ([INPUT_NAME], [OUTPUT_NAME]):
        raise ModelError(
            f"{where}: inputs/outputs are {names[0]}/{names[1]}, not ['{INPUT_NAME}']/"
            f"['{OUTPUT_NAME}']; export it with edgesr so the I/O convention holds."
        )
    for vi in (inputs[0], graph.output[0]):
        tt = vi.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in tt.shape.dim]
        if tt.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4:
            raise ModelError(
                f"{where}: '{vi.name}' must be a float32 [N,C,H,W] tensor, got "
                f"{onnx.TensorProto.DataType.Name(tt.elem_type)} {dims}."
            )
        if dims[1] != channels:
            raise ModelError(
                f"{where}: '{vi.name}' has {dims[1]} channels, the model's colour needs {channels}."
            )


def _checked_bytes(proto: onnx.ModelProto, *, where: str) -> bytes:
    """Serialized model after ``onnx.checker`` (full check: shape inference, strict)."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ModelError(f"{where}: the ONNX graph fails onnx.checker: {exc}") from exc
    return proto.SerializeToString()


def _report(
    path: Path,
    proto: onnx.ModelProto,
    *,
    precision: str,
    opset: int,
    result: VerifyResult | None,
    reference: str,
    sample: str,
    simplified: bool,
    fp32_nodes: Sequence[str],
    start: float,
) -> ExportReport:
    import onnx
    import onnxruntime
    import torch

    data = path.read_bytes()
    return ExportReport(
        path=str(path),
        precision=precision,
        opset=opset,
        file_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        ops=ops_histogram(proto),
        metadata={p.key: p.value for p in proto.metadata_props},
        verified=result is not None,
        max_abs_diff=None if result is None else result.max_abs_diff,
        psnr_db=None if result is None else result.psnr_db,
        min_psnr_db=None if result is None else result.min_psnr_db,
        input_shapes=[] if result is None else result.input_shapes,
        reference=reference,
        sample=sample,
        simplified=simplified,
        fp32_nodes=list(fp32_nodes),
        export_time_s=round(time.perf_counter() - start, 3),
        versions={
            "edgesr": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    )


def ops_histogram(proto: onnx.ModelProto) -> dict[str, int]:
    """``{op_type: count}`` of the graph's nodes, most frequent first."""
    return dict(Counter(n.op_type for n in proto.graph.node).most_common())


# --------------------------------------------------------------------------------------------
# Verification


def verification_inputs(
    sample: np.ndarray | None,
    color: str,
    sizes: Sequence[tuple[int, int]] = VERIFY_SIZES,
) -> tuple[list[np.ndarray], str]:
    """NCHW float32 crops of a real image: one per size, plus the first size as a batch of 2.

    ``sample``: HxWx3 uint8 RGB (converted with ``to_model_space``) or HxWxC float32 in the
    model's colour space; None takes an embedded validation photo. Returns (inputs, name).
    """
    from edgesr.data.pairs import to_model_space

    if color not in ONNX_COLOR:
        raise ConfigError(f"unknown colour convention {color!r}; use 'y' or 'rgb'.")
    channels = 1 if color == "y" else 3
    if sample is None:
        name, rgb = _embedded_photo()
        img = to_model_space(rgb, color)
    else:
        name = "sample"
        arr = np.asarray(sample)
        if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
            img = to_model_space(arr, color)
        elif np.issubdtype(arr.dtype, np.floating) and arr.ndim == 3 and arr.shape[2] == channels:
            img = arr.astype(np.float32)
        else:
            raise DataError(
                f"the verification sample must be HxWx3 uint8 RGB or HxWx{channels} float in "
                f"the model's colour space, got {arr.dtype} {arr.shape}."
            )
    if not sizes:
        raise ConfigError("verify_sizes must name at least one (H, W) size.")
    if img.shape[0] < 8 or img.shape[1] < 8:
        raise DataError(f"the verification image is {img.shape[1]}x{img.shape[0]}; need >= 8x8.")
    crops = [_center_crop(img, h, w) for h, w in sizes]
    inputs = [c.transpose(2, 0, 1)[None] for c in crops]
    first = inputs[0][0]
    inputs.append(np.stack([first, first[:, ::-1, ::-1]]))  # batch 2, second frame differs
    return [np.ascontiguousarray(x, dtype=np.float32) for x in inputs], name


def _center_crop(img: np.ndarray, h: int, w: int) -> np.ndarray:
    h, w = min(h, img.shape[0]), min(w, img.shape[1])
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[top : top + h, left : left + w]


def _embedded_photo() -> tuple[str, np.ndarray]:
    """The first embedded validation photo (a real photo, not a procedural image)."""
    from edgesr.data.embedded import embedded_images

    try:
        images = embedded_images(split="val", num_procedural=0)
    except DataError:  # a trimmed scikit-image without photos
        images = embedded_images(split="val", num_procedural=1)
    return images[0].name, images[0].rgb


def _session(model: str | Path | bytes, *, optimize: bool = True) -> Any:
    import onnxruntime as ort

    from edgesr.runtime.runners import ort_session_options

    opts = ort_session_options(1)  # small crops; leave the cores to whatever else runs
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        what = "the model" if isinstance(model, bytes) else str(model)
        raise ModelError(f"ONNX Runtime cannot load {what}: {exc}") from exc


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def compare_with_reference(
    model: str | Path | bytes,
    reference: Callable[[np.ndarray], np.ndarray],
    inputs: Sequence[np.ndarray],
    *,
    scale: int,
    min_psnr_db: float,
    what: str = "the ONNX model",
) -> VerifyResult:
    """Run ``model`` on ONNX Runtime and ``reference`` on each input; ModelError if they differ.

    Checks, per input: output shape exactly ``scale`` x the input, all values finite (FP16
    overflow shows up here as Inf/NaN), then PSNR (peak 1.0) over all outputs together.
    """
    session = _session(model)
    sq_err, count, max_abs = 0.0, 0, 0.0
    rows: list[dict[str, Any]] = []
    for x in inputs:
        try:
            got = session.run(None, {INPUT_NAME: x})[0]
        except Exception as exc:
            raise ModelError(
                f"{what} fails on ONNX Runtime for input {list(x.shape)}: {exc}"
            ) from exc
        want = np.asarray(reference(x), dtype=np.float32)
        expected = (x.shape[0], x.shape[1], x.shape[2] * scale, x.shape[3] * scale)
        if tuple(got.shape) != expected:
            raise ModelError(
                f"{what} maps {list(x.shape)} to {list(got.shape)}, not {list(expected)} "
                f"(x{scale}); its output must be exactly scale x its input."
            )
        if tuple(want.shape) != expected:
            raise ModelError(
                f"the reference maps {list(x.shape)} to {list(want.shape)}, not {list(expected)}."
            )
        if not np.isfinite(got).all():
            bad = int((~np.isfinite(got)).sum())
            raise ModelError(
                f"{what} outputs {bad} non-finite values (NaN/Inf) for input {list(x.shape)}; "
                "in FP16 this is an overflow: keep the overflowing layers in FP32."
            )
        diff = got.astype(np.float64) - want.astype(np.float64)
        err = float(np.square(diff).sum())
        sq_err, count = sq_err + err, count + diff.size
        max_abs = max(max_abs, float(np.abs(diff).max()))
        rows.append(
            {
                "shape": list(x.shape),
                "max_abs_diff": float(np.abs(diff).max()),
                "psnr_db": _psnr(err / diff.size),
            }
        )
    result = VerifyResult(
        max_abs_diff=max_abs,
        psnr_db=_psnr(sq_err / max(count, 1)),
        min_psnr_db=float(min_psnr_db),
        input_shapes=[list(x.shape) for x in inputs],
        per_input=rows,
    )
    if not result.passed:
        raise ModelError(
            f"{what} disagrees with its reference: PSNR {result.psnr_db:.2f} dB < "
            f"{min_psnr_db:.1f} dB required (max abs diff {max_abs:.3g}); the export is not "
            "faithful, nothing was written."
        )
    return result


def verify_onnx(
    onnx_path: str | Path,
    reference: Callable[[np.ndarray], np.ndarray] | nn.Module,
    *,
    min_psnr_db: float,
    sample: np.ndarray | None = None,
    inputs: Sequence[np.ndarray] | None = None,
    verify_sizes: Sequence[tuple[int, int]] | None = None,
) -> VerifyResult:
    """Check an existing edgesr ONNX (e.g. INT8 Q/DQ) against a reference on a real image.

    ``reference``: a torch module (e.g. the fake-quant PyTorch twin of a Q/DQ model) or any
    ``fn(NCHW float32) -> NCHW float32``. ``min_psnr_db`` is the stated tolerance; below it,
    ModelError. Inputs come from ``sample`` (or the embedded photo) in the colour space named
    by the file's metadata, cropped to ``verify_sizes`` (default: the sizes recorded at export),
    unless ``inputs`` are given.
    """
    from torch import nn

    meta = read_onnx_metadata(onnx_path)
    scale, color = int(meta["edgesr.scale"]), COLOR_FROM_ONNX[meta["edgesr.color"]]
    if inputs is None:
        sizes = verify_sizes or recorded_verify_sizes(meta)
        inputs, _ = verification_inputs(sample, color, sizes)
    fn = _torch_fn(reference.eval()) if isinstance(reference, nn.Module) else reference
    return compare_with_reference(
        Path(onnx_path),
        fn,
        list(inputs),
        scale=scale,
        min_psnr_db=min_psnr_db,
        what=str(onnx_path),
    )


# --------------------------------------------------------------------------------------------
# Reading and checking files


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file; ModelError (with the fix) for a missing or non-ONNX file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX model {path} does not exist.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(
            f"{path} is not an ONNX model ({type(exc).__name__}: {exc}); pass a .onnx written by "
            "`edgesr export` or an edgesr checkpoint (.safetensors)."
        ) from exc
    # Protobuf parses many byte strings without error; a real model has an opset and nodes.
    if not proto.opset_import or not proto.graph.node or proto.ir_version <= 0:
        raise ModelError(
            f"{path} is not an ONNX model (no graph or opset); pass a .onnx written by "
            "`edgesr export` or an edgesr checkpoint (.safetensors)."
        )
    return proto


def read_onnx_metadata(path: str | Path, *, require_edgesr: bool = True) -> dict[str, str]:
    """The file's ``metadata_props``; with ``require_edgesr``, ModelError unless scale/colour are set."""
    proto = load_onnx(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    if require_edgesr:
        _check_meta(meta, Path(path))
    return meta


def recorded_verify_sizes(meta: dict[str, str]) -> list[tuple[int, int]]:
    """The verification sizes an export recorded, else :data:`VERIFY_SIZES`."""
    try:
        sizes = [(int(h), int(w)) for h, w in json.loads(meta["edgesr.verify_sizes"])]
    except (KeyError, ValueError, TypeError):
        return list(VERIFY_SIZES)
    return sizes or list(VERIFY_SIZES)


def _check_meta(meta: dict[str, str], path: Path) -> None:
    problem = ""
    try:
        scale = int(meta["edgesr.scale"])
        if scale < 1:
            problem = f"edgesr.scale is {scale}"
        elif meta["edgesr.color"] not in COLOR_FROM_ONNX:
            problem = f"edgesr.color is {meta['edgesr.color']!r}"
    except KeyError as exc:
        problem = f"{exc.args[0]} is missing"
    except ValueError:
        problem = f"edgesr.scale is {meta.get('edgesr.scale')!r}"
    if problem:
        raise ModelError(
            f"{path} has no usable edgesr metadata ({problem}); export it with `edgesr export` "
            "so its scale and colour convention are recorded."
        )


@dataclass
class OnnxModelInfo:
    """What :func:`check_onnx_model` found in an edgesr ONNX file."""

    path: str
    arch: str
    scale: int
    color: str  # "y" or "rgb", as in ModelInfo
    precision: str
    recipe: str
    recipe_hash: str
    params: dict[str, Any]
    edgesr_version: str
    opset: int
    input_shape: list[int | str]
    output_shape: list[int | str]
    dynamic_batch: bool
    dynamic_hw: bool
    ops: dict[str, int]
    has_qdq: bool
    has_fp16: bool
    file_size: int
    metadata: dict[str, str]

    @property
    def num_channels(self) -> int:
        return 1 if self.color == "y" else 3

    def to_model_info(self) -> ModelInfo:
        return ModelInfo(
            arch=self.arch,
            scale=self.scale,
            color=self.color,
            params=dict(self.params),
            recipe=self.recipe,
            recipe_hash=self.recipe_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_onnx_model(path: str | Path, *, full_check: bool = True) -> OnnxModelInfo:
    """Validate an edgesr ONNX file: loads, passes onnx.checker, has the metadata and I/O."""
    path = Path(path)
    proto = load_onnx(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    _check_meta(meta, path)
    if full_check:
        _checked_bytes(proto, where=str(path))
    color = COLOR_FROM_ONNX[meta["edgesr.color"]]
    _check_io(proto, 1 if color == "y" else 3, where=str(path))
    try:
        params = json.loads(meta.get("edgesr.params", "{}"))
    except ValueError as exc:
        raise ModelError(f"{path}: edgesr.params is not JSON ({exc}); re-export it.") from exc
    shape_in = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    shape_out = [
        d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim
    ]
    ops = ops_histogram(proto)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxModelInfo(
        path=str(path),
        arch=meta.get("edgesr.arch", ""),
        scale=int(meta["edgesr.scale"]),
        color=color,
        precision=meta.get("edgesr.precision", "fp32"),
        recipe=meta.get("edgesr.recipe", ""),
        recipe_hash=meta.get("edgesr.recipe_hash", ""),
        params=params,
        edgesr_version=meta.get("edgesr.version", ""),
        opset=opset,
        input_shape=shape_in,
        output_shape=shape_out,
        dynamic_batch=not isinstance(shape_in[0], int) or shape_in[0] == 0,
        dynamic_hw=all(not isinstance(d, int) or d == 0 for d in shape_in[2:]),
        ops=ops,
        has_qdq=bool(QDQ_OPS & set(ops)),
        has_fp16=_has_fp16(proto),
        file_size=path.stat().st_size,
        metadata=meta,
    )


def _has_fp16(proto: onnx.ModelProto) -> bool:
    import onnx

    half = onnx.TensorProto.FLOAT16
    return any(i.data_type == half for i in proto.graph.initializer) or any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == half for a in n.attribute)
        for n in proto.graph.node
    )


# --------------------------------------------------------------------------------------------
# FP16 with FP32 fallback


def activation_ranges(proto: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> dict[str, float]:
    """Max |value| of every float tensor (activations and initializers) over ``inputs``.

    Runs the FP32 graph on ONNX Runtime with every intermediate tensor exposed as an output.
    Non-finite values count as ``inf``.
    """
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(proto)
    types = _float_tensors(inferred)
    probe = copy.deepcopy(inferred)
    existing = {o.name for o in probe.graph.output}
    inits = {i.name for i in probe.graph.initializer}
    for node in probe.graph.node:
        for name in node.output:
            if name in types and name not in existing and name not in inits:
                probe.graph.output.append(
                    onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                )
                existing.add(name)
    session = _session(probe.SerializeToString(), optimize=False)
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, float] = {}
    for x in inputs:
        try:
            values = session.run(None, {INPUT_NAME: x})
        except Exception as exc:
            raise ModelError(
                f"measuring activation ranges failed for input {list(x.shape)}: {exc}"
            ) from exc
        for name, value in zip(names, values, strict=True):
            ranges[name] = max(ranges.get(name, 0.0), _abs_max(value))
    ranges[INPUT_NAME] = max(_abs_max(x) for x in inputs)
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            ranges[init.name] = _abs_max(numpy_helper.to_array(init))
    return ranges


def _abs_max(a: np.ndarray) -> float:
    a = np.asarray(a)
    if a.size == 0 or not np.issubdtype(a.dtype, np.floating):
        return 0.0
    if not np.isfinite(a).all():
        return math.inf
    return float(np.abs(a).max())


def _float_tensors(proto: onnx.ModelProto) -> set[str]:
    """Names of FP32 tensors (from shape inference; an unknown type counts as not float)."""
    import onnx

    f32 = onnx.TensorProto.FLOAT
    graph = proto.graph
    names = {i.name for i in graph.initializer if i.data_type == f32}
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.type.tensor_type.elem_type == f32:
            names.add(vi.name)
    return names


def fp16_fallback_nodes(
    proto: onnx.ModelProto,
    ranges: dict[str, float],
    *,
    margin: float = 8.0,
) -> list[str]:
    """Names of the FP16-able nodes that must stay FP32: any float input, weight or output of
    theirs reaches ``FP16_MAX / margin`` (the margin covers images brighter or busier than the
    sample)."""
    if margin < 1:
        raise ConfigError(f"fp16 margin must be >= 1, got {margin}.")
    limit = FP16_MAX / margin
    out = []
    for node in proto.graph.node:
        if node.op_type not in FP16_OPS:
            continue
        tensors = [t for t in (*node.input, *node.output) if t]
        if any(ranges.get(t, 0.0) > limit for t in tensors):
            out.append(node.name)
    return out


def convert_to_fp16(
    proto: onnx.ModelProto,
    inputs: Sequence[np.ndarray],
    *,
    keep_fp32: Iterable[str] = (),
    margin: float = 8.0,
) -> tuple[onnx.ModelProto, list[str], dict[str, float]]:
    """FP16 copy of an FP32 graph for strongly typed TensorRT; I/O stay float32.

    Nodes in :data:`FP16_OPS` run in FP16 unless :func:`fp16_fallback_nodes` (measured on
    ``inputs``) or ``keep_fp32`` (node names) keep them in FP32; Casts are inserted at every
    FP16/FP32 boundary and FP16 copies made of the weights of FP16 nodes. Returns
    (model, FP32 node names, activation ranges).
    """
    import onnx
    from onnx import numpy_helper

    if QDQ_OPS & {n.op_type for n in proto.graph.node}:
        raise ConfigError("FP16 conversion is for FP32 models; this one has Q/DQ (INT8) nodes.")
    names = {n.name for n in proto.graph.node}
    keep = set(keep_fp32)
    unknown = sorted(keep - names)
    if unknown:
        raise ConfigError(
            f"keep_fp32 names nodes the graph does not have: {', '.join(unknown)}; node names: "
            f"{', '.join(sorted(names))}."
        )
    ranges = activation_ranges(proto, inputs)
    fallback = fp16_fallback_nodes(proto, ranges, margin=margin)
    fp32_nodes = sorted(set(fallback) | keep, key=[n.name for n in proto.graph.node].index)

    model = onnx.shape_inference.infer_shapes(proto)
    floats = _float_tensors(model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    half_nodes = {n.name for n in graph.node if n.op_type in FP16_OPS and n.name not in fp32_nodes}
    produced_half = {t for n in graph.node if n.name in half_nodes for t in n.output if t in floats}
    # A graph output made in FP16 is renamed internally and cast back to float32 at the end.
    out_names = {o.name for o in graph.output}
    renamed = {t: f"{t}__fp16" for t in produced_half & out_names}
    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}
    half_inits: dict[str, str] = {}

    def cast(tensor: str, to: int) -> str:
        key = (tensor, to)
        if key not in casts:
            suffix = "fp16" if to == onnx.TensorProto.FLOAT16 else "fp32"
            casts[key] = f"{tensor}__to_{suffix}"
            new_nodes.append(
                onnx.helper.make_node(
                    "Cast", [tensor], [casts[key]], name=f"Cast_{casts[key]}", to=to
                )
            )
        return casts[key]

    for node in graph.node:
        node = copy.deepcopy(node)
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = name = renamed[name]
            if not name or (name not in floats and name not in renamed.values()):
                continue
            is_half = name in produced_half or name in renamed.values()
            if node.name in half_nodes and not is_half:
                if name in inits:
                    if name not in half_inits:
                        half = numpy_helper.to_array(inits[name]).astype(np.float16)
                        half_inits[name] = f"{name}__fp16"
                        graph.initializer.append(numpy_helper.from_array(half, half_inits[name]))
                    node.input[i] = half_inits[name]
                else:
                    node.input[i] = cast(name, onnx.TensorProto.FLOAT16)
            elif node.name not in half_nodes and is_half:
                node.input[i] = cast(name, onnx.TensorProto.FLOAT)
        for i, name in enumerate(node.output):
            if name in renamed:
                node.output[i] = renamed[name]
        new_nodes.append(node)
    for original, internal in renamed.items():
        new_nodes.append(
            onnx.helper.make_node(
                "Cast",
                [internal],
                [original],
                name=f"Cast_{original}_out",
                to=onnx.TensorProto.FLOAT,
            )
        )
    # Drop FP32 initializers that only FP16 nodes used.
    used = {t for n in new_nodes for t in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]  # stale types; shape inference rebuilds them
    model = onnx.shape_inference.infer_shapes(model)
    return model, fp32_nodes, ranges


def emulate_fp16(proto: onnx.ModelProto, fp32_nodes: Iterable[str] = ()) -> onnx.ModelProto:
    """FP32 graph that stores tensors as :func:`convert_to_fp16` would: the weights of FP16 nodes
    rounded to FP16 values, and every float tensor entering or leaving an FP16 node passed
    through Cast(FP16) -> Cast(FP32). ONNX Runtime keeps such explicit Cast pairs, so values
    beyond 65504 become Inf here, as in an FP16 engine (accumulation stays FP32, as in
    TensorRT's FP16 convolutions)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.shape_inference.infer_shapes(proto)
    floats = _float_tensors(model)
    graph = model.graph
    keep = set(fp32_nodes)
    inits = {i.name: i for i in graph.initializer}
    half_nodes = {n.name for n in graph.node if n.op_type in FP16_OPS and n.name not in keep}
    rounded: dict[str, str] = {}
    new_nodes: list[onnx.NodeProto] = []
    out_names = {o.name for o in graph.output}

    def round_tensor(name: str) -> str:
        if name not in rounded:
            if name in inits:
                value = numpy_helper.to_array(inits[name]).astype(np.float16).astype(np.float32)
                rounded[name] = f"{name}__r16"
                graph.initializer.append(numpy_helper.from_array(value, rounded[name]))
            else:
                half, back = f"{name}__h16", f"{name}__r16"
                new_nodes.append(
                    onnx.helper.make_node(
                        "Cast", [name], [half], name=f"Cast_{half}", to=onnx.TensorProto.FLOAT16
                    )
                )
                new_nodes.append(
                    onnx.helper.make_node(
                        "Cast", [half], [back], name=f"Cast_{back}", to=onnx.TensorProto.FLOAT
                    )
                )
                rounded[name] = back
        return rounded[name]

    renamed: dict[str, str] = {}
    for node in graph.node:
        node = copy.deepcopy(node)
        for i, name in enumerate(node.input):
            name = renamed.get(name, name)
            node.input[i] = name
            if node.name in half_nodes and name in floats:
                node.input[i] = round_tensor(name)
        if node.name in half_nodes:
            for i, name in enumerate(node.output):
                if name in floats and name in out_names:
                    # Graph outputs keep their names: compute into a temp, round into the output.
                    node.output[i] = f"{name}__raw"
        new_nodes.append(node)
        if node.name in half_nodes:
            for name in node.output:
                if name.endswith("__raw"):  # a graph output: round into its own name
                    original = name[: -len("__raw")]
                    half = f"{original}__h16"
                    new_nodes.append(
                        onnx.helper.make_node(
                            "Cast", [name], [half], name=f"Cast_{half}", to=onnx.TensorProto.FLOAT16
                        )
                    )
                    new_nodes.append(
                        onnx.helper.make_node(
                            "Cast",
                            [half],
                            [original],
                            name=f"Cast_{original}",
                            to=onnx.TensorProto.FLOAT,
                        )
                    )
                elif name in floats:
                    round_tensor(name)
                    # Consumers read the rounded copy.
                    renamed[name] = rounded[name]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def _verify_fp16(
    half: bytes,
    emulation: onnx.ModelProto,
    reference: Callable[[np.ndarray], np.ndarray],
    inputs: Sequence[np.ndarray],
    *,
    scale: int,
    min_psnr_db: float,
    what: str,
) -> VerifyResult:
    """The FP16 emulation (overflow, rounding) and the FP16 graph as written must both agree."""
    result = compare_with_reference(
        emulation.SerializeToString(),
        reference,
        inputs,
        scale=scale,
        min_psnr_db=min_psnr_db,
        what=f"{what}, emulated FP16 storage",
    )
    compare_with_reference(half, reference, inputs, scale=scale, min_psnr_db=min_psnr_db, what=what)
    return result


def make_fp16_onnx(
    src: str | Path,
    dst: str | Path,
    *,
    sample: np.ndarray | None = None,
    keep_fp32: Iterable[str] = (),
    margin: float = 8.0,
    min_psnr_db: float | None = None,
    verify_sizes: Sequence[tuple[int, int]] | None = None,
    force: bool = False,
) -> ExportReport:
    """Write the FP16 (with FP32 fallback) version of an edgesr FP32 ONNX file, verified
    against the FP32 file on ONNX Runtime (as written and with FP16 storage emulated, see
    :func:`emulate_fp16`). The TensorRT-ready input for strongly typed FP16 builds."""
    start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    info = check_onnx_model(src)
    if info.precision != "fp32" or info.has_qdq or info.has_fp16:
        raise ConfigError(
            f"{src} is {info.precision} (Q/DQ: {info.has_qdq}, FP16: {info.has_fp16}); FP16 "
            "conversion needs the FP32 export."
        )
    _check_output(dst, force=force)
    sizes = verify_sizes or recorded_verify_sizes(info.metadata)
    inputs, sample_name = verification_inputs(sample, info.color, sizes)
    proto = load_onnx(src)
    half, fp32_nodes, _ = convert_to_fp16(proto, inputs, keep_fp32=keep_fp32, margin=margin)
    set_edgesr_metadata(
        half, info.to_model_info(), precision="fp16", fp32_nodes=fp32_nodes, verify_sizes=sizes
    )
    data = _checked_bytes(half, where=str(dst))
    reference = _session(src)
    threshold = MIN_PSNR_DB["fp16"] if min_psnr_db is None else float(min_psnr_db)
    result = _verify_fp16(
        data,
        emulate_fp16(proto, fp32_nodes),
        lambda x: reference.run(None, {INPUT_NAME: x})[0],
        inputs,
        scale=info.scale,
        min_psnr_db=threshold,
        what=f"{dst.name} (fp16)",
    )
    atomic_write_bytes(dst, data)
    return _report(
        dst,
        half,
        precision="fp16",
        opset=info.opset,
        result=result,
        reference=f"ONNX Runtime FP32 ({src.name})",
        sample=sample_name,
        simplified=True,
        fp32_nodes=fp32_nodes,
        start=start,
    )


# --------------------------------------------------------------------------------------------
# Files


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    return precision


def _check_output(path: Path, *, force: bool) -> None:
    """Refuse to overwrite without ``force``; make sure the folder exists and is writable."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file path.")
    refuse_existing(path, force=force, hint="or choose another --out")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {folder}: {exc}.") from exc
    probe = folder / f".edgesr-write-test-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        raise ConfigError(
            f"the output folder {folder} is not writable ({exc.strerror}); choose another --out."
        ) from exc
    probe.unlink(missing_ok=True)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


__all__ = [
    "DEFAULT_OPSET",
    "FP16_OPS",
    "INPUT_NAME",
    "MIN_PSNR_DB",
    "ONNX_COLOR",
    "OUTPUT_NAME",
    "PRECISIONS",
    "VERIFY_SIZES",
    "ExportReport",
    "OnnxModelInfo",
    "VerifyResult",
    "activation_ranges",
    "check_onnx_model",
    "compare_with_reference",
    "convert_to_fp16",
    "emulate_fp16",
    "export_onnx",
    "fp16_fallback_nodes",
    "load_onnx",
    "make_fp16_onnx",
    "ops_histogram",
    "read_onnx_metadata",
    "recorded_verify_sizes",
    "set_edgesr_metadata",
    "simplify_onnx",
    "stamp_onnx_metadata",
    "verification_inputs",
    "verify_onnx",
    "write_export_report",
]
