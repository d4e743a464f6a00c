"""``edgesr compress``: FP32 -> pruned -> distilled -> INT8, every stage exported and measured.

Each stage is written as an ONNX model (and float stages also as self-describing safetensors),
then measured the same way: PSNR/SSIM on the evaluation images through ONNX Runtime (what is
deployed is what is scored) and ORT CPU latency at the recipe's frame size. The run directory
gets a ``manifest.json`` for machines and a ``manifest.md`` table for people.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgesr import __version__
from edgesr.errors import ConfigError, ModelError, OutputExistsError
from edgesr.modelio import (
    ModelInfo,
    atomic_write_bytes,
    load_model,
    load_pretrained,
    save_model,
    shipped_weights,
)
from edgesr.recipe import Recipe, dump_recipe


@dataclass
class StageResult:
    """One row of the stage table."""

    stage: str
    target: str  # "any" (FP32 ONNX), "tensorrt" (Q/DQ) or "onnxruntime-cpu"
    onnx: str
    weights: str | None
    params: int
    gmacs: float  # at the latency frame size
    file_bytes: int
    psnr_y: float
    ssim_y: float
    latency_p50_ms: float
    latency_p90_ms: float
    speedup_vs_fp32: float = 1.0
    delta_psnr_vs_fp32: float = 0.0
    seconds: float = 0.0
    notes: str = ""


@dataclass
class CompressResult:
    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    bicubic: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    # The budget check of the final stage (edgesr.check.CheckResult), when a budget was given.
    check: Any = None

    @property
    def check_exit_code(self) -> int:
        return 0 if self.check is None else int(self.check.exit_code)

    @property
    def check_summary(self) -> str:
        if self.check is None:
            return ""
        return f"budget check of the final stage ({self.stages[-1].stage}): {self.check.verdict}\n{self.check.table()}"

    def stage(self, name: str) -> StageResult:
        for s in self.stages:
            if s.stage == name:
                return s
        raise KeyError(name)

    def table(self) -> str:
        head = "| stage | target | params | GMACs | size KiB | PSNR-Y | SSIM-Y | ΔPSNR vs FP32 | ORT p50 ms | speed-up |"
        lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in self.stages:
            lines.append(
                f"| {s.stage} | {s.target} | {s.params:,} | {s.gmacs:.2f} | {s.file_bytes / 1024:.1f} | {s.psnr_y:.2f} | {s.ssim_y:.4f} "
                f"| {s.delta_psnr_vs_fp32:+.2f} | {s.latency_p50_ms:.1f} | {s.speedup_vs_fp32:.2f}x |"
            )
        if self.bicubic:
            lines.append(
                f"| bicubic | — | — | — | — | {self.bicubic['psnr_y']:.2f} | {self.bicubic['ssim_y']:.4f} | | | |"
            )
        return "\n".join(lines)


def _say(log: Callable[[str], None] | None, text: str) -> None:
    if log is not None:
        log(text)


def prepare_out_dir(out: Path, *, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise OutputExistsError(
                f"{out} already holds results; pass --force to replace them or choose another --out."
            )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output folder {out} ({exc}); choose a writable --out."
        ) from exc


def load_teacher(
    recipe: Recipe,
    from_: str | Path | None,
    *,
    data: Any,
    out: Path,
    log: Callable[[str], None] | None,
) -> tuple[nn.Module, ModelInfo, str]:
    """The FP32 starting point: ``--from``, else the recipe's shipped weights, else train first."""
    if from_ is not None:
        model, info = load_model(from_, recipe=recipe)
        if (info.arch, info.scale, info.color) != (
            recipe.model.arch,
            recipe.model.scale,
            recipe.model.color,
        ):
            raise ModelError(
                f"{from_} holds {info.arch} x{info.scale} ({info.color}), but recipe {recipe.name} is "
                f"{recipe.model.arch} x{recipe.model.scale} ({recipe.model.color}); pass the matching --recipe."
            )
        return model, info, str(from_)
    if shipped_weights(recipe) is not None:
        model, info = load_pretrained(recipe)
        return model, info, f"shipped weights ({recipe.model.weights})"
    _say(
        log,
        f"recipe {recipe.name} ships no weights: training it first ({recipe.train.steps} steps)",
    )
    from edgesr.train import train

    result = train(recipe, data, out=out / "train", progress=False)
    model, info = load_model(result.model_path)
    return model, info, str(result.model_path)


def compress(
    recipe: Recipe,
    data: str | Path | Iterable[Any] | None = None,
    *,
    out: str | Path,
    from_: str | Path | None = None,
    calib: str | Path | None = None,
    eval_data: str | Path | None = None,
    budget: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> CompressResult:
    """Compress the recipe's FP32 net into deployable pruned and INT8 models.

    ``data`` feeds distillation and QAT (default: the recipe's ``data.train``); ``calib`` is a
    named calibration set or a folder (default: ``compress.calib``); ``eval_data`` is where the
    stage table is measured (default: ``compress.eval``).
    """
    from edgesr.compress.distill import distill
    from edgesr.compress.prune import prune_channels
    from edgesr.data.pairs import PatchSampler, make_pairs
    from edgesr.evaluate import evaluate, resolve_eval_data
    from edgesr.train.loop import load_train_images

    spec = recipe.compress
    out = Path(out)
    # Everything that can be checked cheaply is checked before any output is written.
    budget_spec = None
    if budget is not None:
        from edgesr.check.budget import load_budget

        budget_spec = load_budget(budget)
    if from_ is not None:
        from edgesr.modelio import resolve_weights

        resolve_weights(from_)
    calib_frames = None
    if spec.int8:
        from edgesr.compress.calibration import load_calibration

        calib_frames = load_calibration(
            calib or spec.calib,
            scale=recipe.model.scale,
            color=recipe.model.color,
            num_images=spec.calib_images,
        )
    prepare_out_dir(out, force=force)
    atomic_write_bytes(out / "recipe.yaml", dump_recipe(recipe).encode())
    t_start = time.perf_counter()
    torch.manual_seed(recipe.train.seed)

    teacher, info, source = load_teacher(recipe, from_, data=data, out=out, log=log)
    teacher = teacher.fuse() if hasattr(teacher, "fuse") else teacher
    teacher.eval()
    eval_pairs = resolve_eval_data(eval_data or spec.eval, scale=info.scale)
    size = tuple(spec.latency_size)
    result = CompressResult(run_dir=out)

    def measure(
        stage: str,
        target: str,
        onnx_path: Path,
        weights: Path | None,
        model: nn.Module | None,
        t0: float,
        notes: str = "",
    ) -> StageResult:
        from edgesr.archs.complexity import complexity
        from edgesr.profile.latency import time_runner
        from edgesr.runtime.runners import OnnxRuntimeRunner

        scores = evaluate(
            OnnxRuntimeRunner(onnx_path, threads=spec.latency_threads), eval_pairs, scale=info.scale
        )
        if not result.bicubic:
            result.bicubic = scores.bicubic
        lat = time_runner(
            OnnxRuntimeRunner(onnx_path, threads=spec.latency_threads),
            size=size,
            runs=spec.latency_runs,
        )
        cplx = complexity(model, lr_size=size) if model is not None else {"params": 0, "gmacs": 0.0}
        row = StageResult(
            stage=stage,
            target=target,
            onnx=str(onnx_path.relative_to(out)),
            weights=str(weights.relative_to(out)) if weights else None,
            params=int(cplx["params"]),
            gmacs=float(cplx["gmacs"]),
            file_bytes=onnx_path.stat().st_size,
            psnr_y=scores.mean["psnr_y"],
            ssim_y=scores.mean["ssim_y"],
            latency_p50_ms=lat.p50_ms,
            latency_p90_ms=lat.p90_ms,
            seconds=time.perf_counter() - t0,
            notes=notes,
        )
        if result.stages:
            base = result.stages[0]
            row.speedup_vs_fp32 = base.latency_p50_ms / row.latency_p50_ms
            row.delta_psnr_vs_fp32 = row.psnr_y - base.psnr_y
        result.stages.append(row)
        _say(
            log,
            f"  {stage:<10} PSNR-Y {row.psnr_y:.2f} dB ({row.delta_psnr_vs_fp32:+.2f})  ORT p50 {row.latency_p50_ms:.1f} ms ({row.speedup_vs_fp32:.2f}x)  [{row.seconds:.0f} s]",
        )
        return row

    def export(model: nn.Module, name: str, model_info: ModelInfo) -> tuple[Path, Path]:
        from edgesr.export.onnx_export import export_onnx

        weights = save_model(model, out / f"{name}.safetensors", model_info)
        onnx_path = out / f"{name}.onnx"
        export_onnx(model, onnx_path, info=model_info)
        return onnx_path, weights

    # FP32 ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    _say(log, f"compress {recipe.name}: FP32 from {source}")
    fp32_info = ModelInfo(
        info.arch,
        info.scale,
        info.color,
        {**info.params, **({"rep": False} if "rep" in info.params else {})},
        recipe.name,
        recipe.hash(),
    )
    onnx_fp32, w_fp32 = export(teacher, "fp32", fp32_info)
    measure("fp32", "any", onnx_fp32, w_fp32, teacher, t0, notes=source)

    student, student_info = teacher, fp32_info
    need_sampler = (spec.prune_ratio > 0 and spec.kd_steps > 0) or (
        spec.int8 and spec.qat_steps > 0
    )
    sampler = None
    if need_sampler:
        images, _ = load_train_images(data, recipe)
        sampler = PatchSampler(
            make_pairs(images, scale=info.scale),
            scale=info.scale,
            color=info.color,
            lr_patch=recipe.data.lr_patch,
            batch_size=spec.batch_size,
            augment=recipe.data.augment,
            seed=recipe.train.seed + 17,
            degradation=recipe.data.degradation,
            camera=recipe.data.camera,
        )

    # Pruned + distilled --------------------------------------------------------------------
    if spec.prune_ratio > 0:
        t0 = time.perf_counter()
        pruned = prune_channels(
            teacher, ratio=spec.prune_ratio, criterion=spec.prune_criterion, data=sampler
        )
        student_info = ModelInfo(
            info.arch,
            info.scale,
            info.color,
            {**fp32_info.params, **pruned.arch_params},
            recipe.name,
            recipe.hash(),
        )
        onnx_p, w_p = export(pruned.model, "pruned", student_info)
        widths = ", ".join(
            f"{k} {pruned.widths_before[k]}->{pruned.widths_after[k]}" for k in pruned.widths_before
        )
        measure(
            "pruned",
            "any",
            onnx_p,
            w_p,
            pruned.model,
            t0,
            notes=f"ratio {spec.prune_ratio} ({spec.prune_criterion}): {widths}",
        )
        student = pruned.model
        if spec.kd_steps > 0:
            t0 = time.perf_counter()
            kd = distill(
                student, teacher, sampler, steps=spec.kd_steps, lr=spec.kd_lr, alpha=spec.kd_alpha
            )
            student = kd.model.eval()
            onnx_d, w_d = export(student, "distilled", student_info)
            measure(
                "distilled",
                "any",
                onnx_d,
                w_d,
                student,
                t0,
                notes=f"{spec.kd_steps} KD steps, alpha {spec.kd_alpha}",
            )

    # INT8 ------------------------------------------------------------------------------------
    int8_reports: dict[str, Any] = {}
    if spec.int8:
        _int8_stages(
            recipe,
            student,
            teacher,
            student_info,
            sampler=sampler,
            calib=calib_frames,
            out=out,
            measure=measure,
            log=log,
            reports=int8_reports,
        )

    result.wall_time_s = time.perf_counter() - t_start
    manifest = {
        "edgesr_version": __version__,
        "recipe": recipe.name,
        "recipe_hash": recipe.hash(),
        "source": source,
        "eval_data": str(eval_data or spec.eval),
        "eval_images": len(eval_pairs),
        "latency": {
            "backend": "onnxruntime-cpu",
            "size": list(size),
            "threads": spec.latency_threads,
            "runs": spec.latency_runs,
        },
        "bicubic": result.bicubic,
        "stages": [asdict(s) for s in result.stages],
        **int8_reports,
        "wall_time_s": result.wall_time_s,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
    }
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    atomic_write_bytes(
        out / "manifest.md", (f"# {recipe.name}: compression stages\n\n{result.table()}\n").encode()
    )
    if budget_spec is not None:
        from edgesr.check.budget import check_compress_run

        result.check = check_compress_run(out, budget_spec)[-1]
    return result


def _int8_stages(
    recipe: Recipe,
    student: nn.Module,
    teacher: nn.Module,
    info: ModelInfo,
    *,
    sampler: Any,
    calib: list[Any],
    out: Path,
    measure: Callable[..., StageResult],
    log: Callable[[str], None] | None,
    reports: dict[str, Any],
) -> None:
    """INT8 per target: NNCF PTQ -> QAT with distillation -> ORT-CPU model and TensorRT Q/DQ.

    The two targets want different activation grids (ORT's fast kernels take u8 after ReLU,
    TensorRT takes only int8 with zero point 0), so each gets its own PTQ + QAT run.
    """
    from edgesr.compress.equalize import choose_equalization
    from edgesr.compress.nncf_int8 import export_qdq_onnx, ptq_nncf, qat_finetune
    from edgesr.compress.ort_int8 import ORT_CPU_WEIGHT_BITS, qat_to_ort_int8
    from edgesr.evaluate import resolve_eval_data
    from edgesr.export.onnx_export import stamp_onnx_metadata

    spec = recipe.compress
    base = info.params
    int8_info = ModelInfo(info.arch, info.scale, info.color, base, recipe.name, recipe.hash())

    # Equalization and mixed precision are chosen on the recipe's validation images, never
    # on the set the table reports.
    val = recipe.data.val or "embedded"
    val_pairs = (
        resolve_eval_data(val, scale=info.scale)
        if spec.equalize == "auto" or (spec.int8_max_drop_db is not None)
        else []
    )
    # Each target gets its own choice: equalization widens activation ranges, which TensorRT's
    # signed activations (7 bits for a ReLU output) pay more for. ESPCN x4 PTQ on validation:
    # +0.35 dB with u8 activations, -0.005 dB with int8.
    # ORT-CPU: u8 activations, 7-bit weights (exact on every CPU, see ORT_CPU_WEIGHT_BITS);
    # TensorRT: int8 activations, 8-bit weights (its int8 kernels accumulate in int32).
    targets = {
        stage: grid
        for stage, target, grid in (
            ("int8-ort", "onnxruntime-cpu", (False, spec.ort_weight_bits)),
            ("int8-qdq", "tensorrt", (True, 8)),
        )
        if target in spec.int8_targets
    }
    nets: dict[str, nn.Module] = {}
    reports["equalization"] = {}
    for target, (signed, bits) in targets.items():
        nets[target], eq_report = choose_equalization(
            student,
            calib,
            val_pairs,
            mode=spec.equalize,
            signed_activations=signed,
            weight_bits=bits,
            log=lambda text, t=target: _say(log, f"{text} [{t}]"),
        )
        reports["equalization"][target] = {**eq_report, "validation": str(val)}

    float_layers: tuple[str, ...] = ()
    if spec.int8_max_drop_db is not None:
        from edgesr.compress.mixed import select_float_layers

        first = next(iter(targets))
        mixed = select_float_layers(
            nets[first],
            calib,
            val_pairs,
            max_drop_db=spec.int8_max_drop_db,
            signed_activations=targets[first][0],
            weight_bits=targets[first][1],
            log=log,
        )
        float_layers = mixed.float_layers
        reports["mixed_precision"] = {**mixed.to_dict(), "validation": str(val)}
        if not mixed.met:
            _say(
                log,
                f"  mixed precision: the {spec.int8_max_drop_db} dB limit is not met even with "
                f"{len(float_layers)} float convs (PTQ drop {mixed.drop_db:.3f} dB); QAT follows",
            )

    def quantized(target: str) -> tuple[nn.Module, str]:
        signed, bits = targets[target]
        q = ptq_nncf(
            nets[target],
            calib,
            signed_activations=signed,
            float_layers=float_layers,
            weight_bits=bits,
        )
        note = f"NNCF PTQ ({bits}-bit weights) on {len(calib)} frames"
        if reports["equalization"][target]["applied"]:
            note = "channels equalized; " + note
        if float_layers:
            note += f" (float convs: {', '.join(float_layers)})"
        if spec.qat_steps > 0:
            qat_finetune(
                q,
                teacher,
                sampler,
                steps=spec.qat_steps,
                lr=spec.qat_lr,
                alpha=spec.qat_alpha,
                loss="mse",
            )
            note += f" + {spec.qat_steps} QAT steps (KD alpha {spec.qat_alpha}, MSE)"
        return q, note

    if "int8-ort" in targets:
        t0 = time.perf_counter()
        q_ort, note = quantized("int8-ort")
        ort_path = qat_to_ort_int8(
            q_ort,
            out / "int8-ort.onnx",
            calib,
            scale=info.scale,
            color=info.color,
            portable=spec.ort_weight_bits == ORT_CPU_WEIGHT_BITS,
        )
        stamp_onnx_metadata(ort_path, info=int8_info, precision="int8-qdq", force=True)
        measure(
            "int8-ort",
            "onnxruntime-cpu",
            ort_path,
            None,
            student,
            t0,
            notes=note + "; QAT weights and ranges carried into ORT quantize_static (QLinearConv)",
        )

    if "int8-qdq" in targets:
        t0 = time.perf_counter()
        q_trt, note = quantized("int8-qdq")
        qdq_path = export_qdq_onnx(
            q_trt,
            out / "int8-qdq.onnx",
            scale=info.scale,
            color=info.color,
            require_int8_activations=True,
        )
        stamp_onnx_metadata(qdq_path, info=int8_info, precision="int8-qdq", force=True)
        measure(
            "int8-qdq",
            "tensorrt",
            qdq_path,
            None,
            student,
            t0,
            notes=note + "; explicit Q/DQ for a strongly typed TensorRT build",
        )
