"""``edgesr export``: any edgesr model (shipped weights, a checkpoint, a train or compress run)
to the artifact a target runs, verified, with a JSON export report beside it.

Targets:
  * ``onnx`` — the FP32 ONNX (or the float model given), verified against PyTorch.
  * ``onnxruntime-cpu`` — the model ONNX Runtime on a CPU runs fastest: the ORT-CPU INT8 model
    of a compress run, else the FP32 ONNX.
  * ``tensorrt`` — TensorRT-ready ONNX (the Q/DQ INT8 model of a compress run, else FP32 with
    FP16 built in), and the engine when TensorRT is importable here; otherwise the trtexec
    scripts to build it on the device.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, ModelError
from edgesr.outputs import prepare_out_dir

TARGETS = ("onnx", "onnxruntime-cpu", "tensorrt")
# Which compress-run stage each target takes, best first.
COMPRESS_STAGE_FOR = {
    "onnx": ("distilled", "pruned", "fp32"),
    "onnxruntime-cpu": ("pruned-int8-ort", "int8-ort", "distilled", "pruned", "fp32"),
    "tensorrt": ("pruned-int8-qdq", "int8-qdq", "distilled", "pruned", "fp32"),
}


@dataclass
class ExportResult:
    out_dir: Path
    target: str
    files: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def _compress_stage(run: Path, target: str) -> tuple[Path, dict[str, Any]]:
    manifest = json.loads((run / "manifest.json").read_text())
    stages = {s["stage"]: s for s in manifest["stages"]}
    for name in COMPRESS_STAGE_FOR[target]:
        if name in stages:
            return run / stages[name]["onnx"], stages[name]
    raise ModelError(f"{run}/manifest.json lists no stage usable for --target {target}.")


def export(
    recipe: Any,
    *,
    target: str,
    out: str | Path,
    from_: str | Path | None = None,
    sizes: list[tuple[int, int]] | None = None,
    force: bool = False,
) -> ExportResult:
    """Export for ``target`` into ``out``; see the module docstring."""
    if target not in TARGETS:
        raise ConfigError(f"unknown --target '{target}'; use one of: {', '.join(TARGETS)}.")
    out = Path(out)
    source = Path(from_) if from_ is not None else None
    if source is not None and not source.exists():
        raise ModelError(
            f"--from {source} does not exist; pass a checkpoint, a train/compress run directory or an .onnx file."
        )
    existed = out.exists()
    prepare_out_dir(out, force=force)
    try:
        return _export_into(recipe, target=target, out=out, source=source, sizes=sizes)
    except BaseException:
        # Nothing half-written may stay behind looking like an export: out was empty (or new).
        if existed:
            for child in out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _export_into(
    recipe: Any,
    *,
    target: str,
    out: Path,
    source: Path | None,
    sizes: list[tuple[int, int]] | None,
) -> ExportResult:
    from edgesr.export.onnx_export import check_onnx_model, export_onnx, write_export_report
    from edgesr.modelio import load_model, load_pretrained

    result = ExportResult(out_dir=out, target=target)

    onnx_path: Path
    if source is not None and (source / "manifest.json").is_file():
        # A compress run: its stage models are verified already; copy the right one.
        picked, stage = _compress_stage(source, target)
        onnx_path = out / f"{recipe.name}.{stage['stage']}.onnx"
        shutil.copyfile(picked, onnx_path)
        if target == "tensorrt":
            _constant_zero_points(onnx_path)
        result.messages.append(
            f"took stage '{stage['stage']}' of {source} (PSNR-Y {stage['psnr_y']:.2f} dB on its eval set)"
        )
    elif source is not None and source.suffix.lower() == ".onnx":
        info = check_onnx_model(source)
        if info.scale != recipe.model.scale:
            raise ModelError(
                f"{source} upscales x{info.scale}, but recipe {recipe.name} is x{recipe.model.scale}; pass the matching --recipe."
            )
        onnx_path = out / source.name
        shutil.copyfile(source, onnx_path)
    else:
        model, info = (
            load_model(source, recipe=recipe) if source is not None else load_pretrained(recipe)
        )
        if info.scale != recipe.model.scale or info.arch != recipe.model.arch:
            raise ModelError(
                f"{source} holds {info.arch} x{info.scale}, but recipe {recipe.name} is {recipe.model.arch} x{recipe.model.scale}; pass the matching --recipe."
            )
        onnx_path = out / f"{recipe.name}.fp32.onnx"
        report = export_onnx(model, onnx_path, info=info)
        report_path = write_export_report(report, out / f"{recipe.name}.fp32.export.json")
        result.files.append(report_path)
        result.messages.append(
            f"ONNX vs PyTorch: max |diff| {report.max_abs_diff:.2e}, PSNR {report.psnr_db:.1f} dB"
        )
    result.files.insert(0, onnx_path)

    if target == "tensorrt":
        from edgesr.export.tensorrt_build import (
            build_engine,
            frame_profile,
            tensorrt_available,
            write_trt_build_script,
        )

        channels = check_onnx_model(onnx_path).num_channels
        profiles = [
            frame_profile(h, w, channels=channels)
            for h, w in (sizes or [_default_frame(recipe.model.scale)])
        ]
        scripts = write_trt_build_script(onnx_path, out / "device", profiles=profiles)
        result.files.append(Path(scripts.build_script))
        if tensorrt_available():
            engine = out / f"{onnx_path.stem}.engine"
            rep = build_engine(
                onnx_path, engine, profiles=profiles, timing_cache=out / "timing.cache"
            )
            result.files.append(engine)
            result.messages.append(
                f"built {engine.name} ({rep.precision}, {rep.builder} {rep.trt_version}) in {rep.build_time_s:.1f} s"
            )
        else:
            result.messages.append(scripts.message())
    return result


def _constant_zero_points(path: Path) -> None:
    """Runs compressed before edgesr folded them route Q/DQ zero points through Identity nodes,
    which TensorRT's parser does not take as constants: fold them in the copy."""
    import onnx

    from edgesr.export.onnx_export import load_onnx
    from edgesr.export.onnx_passes import fold_constant_identities

    proto = load_onnx(path)  # ModelError, naming the file, if it is not ONNX
    if fold_constant_identities(proto):
        onnx.save(proto, str(path))


def _default_frame(scale: int) -> tuple[int, int]:
    """The LR frame that upscales to 1080p (1920x1080) at this scale."""
    return (1080 + scale - 1) // scale, (1920 + scale - 1) // scale
