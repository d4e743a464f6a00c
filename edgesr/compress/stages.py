"""``compress``: FP32 -> pruned -> distilled -> INT8, every stage written and scored.

Each stage is written as an ONNX model (float stages also as self-describing safetensors) and
scored the same way: PSNR/SSIM on the evaluation images through ONNX Runtime, so what is
deployed is what is scored. Latency is not this stage's business: the caller passes a
``latency`` function, called once at the end with every model, so all are timed under the same
conditions (:mod:`edgesr.pipeline.compress` passes the profiler's). The run directory gets a
``manifest.json`` for machines and a ``manifest.md`` table for people.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesr import __version__
from edgesr.modelio import ModelInfo, atomic_write_bytes, save_model
from edgesr.outputs import prepare_out_dir
from edgesr.recipe import Recipe, dump_recipe

Log = Callable[[str], None]


@dataclass(frozen=True)
class Latency:
    """One model's per-frame time, as a latency function measured it.

    ``speedup``: the first model's time over this one's, when the function measured the ratio
    itself (e.g. per interleaved round; None: the p50 ratio is used) with its ``speedup_range``
    (lowest, highest). ``warning``: why these numbers cannot be trusted ("" when they can); the
    stage table then shows no ratio.
    """

    p50_ms: float
    p90_ms: float
    speedup: float | None = None
    speedup_range: tuple[float, float] | None = None
    warning: str = ""


# Every model path in, one Latency per model out (same order).
LatencyFn = Callable[[Sequence[Path]], Sequence[Latency]]


@dataclass
class StageResult:
    """One row of the stage table. Latency fields stay None when no latency function was given."""

    stage: str
    target: str  # "any" (FP32 ONNX), "tensorrt" (Q/DQ) or "onnxruntime-cpu"
    onnx: str
    weights: str | None
    params: int
    gmacs: float  # at the latency frame size
    file_bytes: int
    psnr_y: float
    ssim_y: float
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    speedup_vs_fp32: float | None = None
    speedup_range: tuple[float, float] | None = None
    # Non-empty when the latency of this row cannot be trusted (a busy machine, a noisy timer).
    latency_warning: str = ""
    delta_psnr_vs_fp32: float = 0.0
    # Mean Y-PSNR per kind of evaluation image ("photos", "synthetic"; see image_kind) and per
    # image: one mean over mixed kinds can mislead (see CompressResult.table).
    psnr_y_by_kind: dict[str, float] = field(default_factory=dict)
    psnr_y_images: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    notes: str = ""


@dataclass
class CompressResult:
    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    bicubic: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def stage(self, name: str) -> StageResult:
        for s in self.stages:
            if s.stage == name:
                return s
        raise KeyError(name)

    def table(self) -> str:
        base = self.stages[0] if self.stages else None
        photos = base is not None and "photos" in base.psnr_y_by_kind
        extra_head, extra_rule = (" Δ photos |", "---:|") if photos else ("", "")
        head = f"| stage | target | params | GMACs | size KiB | PSNR-Y | SSIM-Y | ΔPSNR vs FP32 |{extra_head} ORT p50 ms | speed-up |"
        lines = [head, f"|---|---|---:|---:|---:|---:|---:|---:|{extra_rule}---:|---:|"]
        for s in self.stages:
            p50 = "—" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.1f}"
            speed = "—" if s.speedup_vs_fp32 is None else f"{s.speedup_vs_fp32:.2f}x"
            if s.target == "tensorrt" and s.latency_p50_ms is None:
                p50 = "on device†"
            if s.latency_warning:
                speed = "unreliable*"
            lines.append(
                f"| {s.stage} | {s.target} | {s.params:,} | {s.gmacs:.2f} | {s.file_bytes / 1024:.1f} | {s.psnr_y:.2f} | {s.ssim_y:.4f} "
                f"| {s.delta_psnr_vs_fp32:+.2f} |"
                + (f" {_kind_delta(s, base, 'photos')} |" if photos else "")
                + f" {p50} | {speed} |"
            )
        if self.bicubic:
            lines.append(
                f"| bicubic | — | — | — | — | {self.bicubic['psnr_y']:.2f} | {self.bicubic['ssim_y']:.4f} | |"
                + (" |" if photos else "")
                + " | |"
            )
        notes = []
        if photos and base is not None:
            near = sorted(n for n, v in base.psnr_y_images.items() if v > 40.0)
            kinds = [image_kind(n) for n in base.psnr_y_images]
            notes.append(
                f"The evaluation set holds {kinds.count('photos')} photos and "
                f"{kinds.count('synthetic')} synthetic images; Δ photos is what camera frames see."
                + (
                    f" On near-noiseless synthetic images ({', '.join(near)}: FP32 above 40 dB) a "
                    "sub-grey-level error costs dB, which the mean over all images carries."
                    if near
                    else ""
                )
                + " Score on your own frames with --eval DIR."
            )
        if any(s.target == "tensorrt" and s.latency_p50_ms is None for s in self.stages):
            notes.append(
                "† TensorRT layout: its ORT CPU time says nothing about a Jetson; time the engine "
                "there (`edgesr profile --backend tensorrt`)."
            )
        warnings = sorted({s.latency_warning for s in self.stages if s.latency_warning})
        notes += [f"\\* latency not trustworthy: {w}" for w in warnings]
        return "\n".join(lines + ([""] + notes if notes else []))

    def quality(self, s: StageResult) -> float:
        """What the front ranks by: PSNR on the evaluation set's photos where it has some (what
        camera frames see; see the table's note), else the mean over all its images."""
        photos = all("photos" in r.psnr_y_by_kind for r in self.stages)
        return s.psnr_y_by_kind["photos"] if photos else s.psnr_y

    def front(self) -> list[StageResult]:
        """The timed models no other timed model beats on both speed and quality, fastest first."""
        timed = [s for s in self.stages if s.latency_p50_ms is not None]
        q = {id(s): self.quality(s) for s in timed}

        def beaten(s: StageResult) -> bool:
            return any(
                o.latency_p50_ms <= s.latency_p50_ms  # type: ignore[operator]
                and q[id(o)] >= q[id(s)]
                and (o.latency_p50_ms < s.latency_p50_ms or q[id(o)] > q[id(s)])  # type: ignore[operator]
                for o in timed
                if o is not s
            )

        return sorted((s for s in timed if not beaten(s)), key=lambda s: s.latency_p50_ms or 0.0)

    def guide(self) -> str:
        """Which model to pick: the CPU front with its price in dB, then the TensorRT models."""
        lines = []
        front = self.front()
        if front:
            shaky = any(s.latency_warning for s in self.stages)
            ranked = "PSNR on photos" if "photos" in self.stages[0].psnr_y_by_kind else "PSNR"
            lines.append(
                f"Pick for ONNX Runtime on a CPU (fastest first; each is the best {ranked} at its speed"
                + (", but this run's latency is not trustworthy" if shaky else "")
                + "):"
            )
            for s in front:
                speed = (
                    ""
                    if s.speedup_vs_fp32 is None
                    # The table prints no ratio it cannot stand behind; neither does the guide.
                    else "speed-up unreliable*, "
                    if s.latency_warning
                    else f"{s.speedup_vs_fp32:.2f}x FP32 speed, "
                )
                photos = _kind_delta(s, self.stages[0], "photos")
                on_photos = f" (photos {photos})" if photos != "—" else ""
                lines.append(
                    f"  {s.stage:<20} {speed}{s.delta_psnr_vs_fp32:+.2f} dB vs FP32{on_photos}"
                )
        trt = [s for s in self.stages if s.target == "tensorrt"]
        if trt:
            lines.append(
                "For TensorRT (Jetson): build an engine from one of these (`edgesr export --target tensorrt`):"
            )
            for s in trt:
                photos = _kind_delta(s, self.stages[0], "photos")
                on_photos = f" (photos {photos})" if photos != "—" else ""
                lines.append(f"  {s.stage:<20} {s.delta_psnr_vs_fp32:+.2f} dB vs FP32{on_photos}")
        return "\n".join(lines)


@dataclass
class _Scorer:
    """Writes a stage's files and scores its ONNX model on the evaluation pairs."""

    out: Path
    pairs: list[Any]
    scale: int
    threads: int
    size: tuple[int, int]
    log: Log | None
    rows: list[StageResult] = field(default_factory=list)
    bicubic: dict[str, float] = field(default_factory=dict)

    def save(self, model: nn.Module, name: str, info: ModelInfo) -> tuple[Path, Path]:
        from edgesr.export.onnx_export import export_onnx

        weights = save_model(model, self.out / f"{name}.safetensors", info)
        onnx_path = self.out / f"{name}.onnx"
        export_onnx(model, onnx_path, info=info)
        return onnx_path, weights

    def score(
        self,
        stage: str,
        target: str,
        onnx_path: Path,
        weights: Path | None,
        model: nn.Module,
        t0: float,
        notes: str = "",
    ) -> StageResult:
        from edgesr.archs.complexity import complexity
        from edgesr.evaluate import evaluate
        from edgesr.runtime.runners import OnnxRuntimeRunner

        runner = OnnxRuntimeRunner(onnx_path, threads=self.threads)
        scores = evaluate(runner, self.pairs, scale=self.scale)
        self.bicubic = self.bicubic or scores.bicubic
        cplx = complexity(model, lr_size=self.size)
        images = {im.name: im.psnr_y for im in scores.images}
        row = StageResult(
            stage=stage,
            target=target,
            onnx=str(onnx_path.relative_to(self.out)),
            weights=str(weights.relative_to(self.out)) if weights else None,
            params=int(cplx["params"]),
            gmacs=float(cplx["gmacs"]),
            file_bytes=onnx_path.stat().st_size,
            psnr_y=scores.mean["psnr_y"],
            ssim_y=scores.mean["ssim_y"],
            psnr_y_by_kind=_by_kind(images),
            psnr_y_images=images,
            seconds=time.perf_counter() - t0,
            notes=notes,
        )
        if self.rows:
            row.delta_psnr_vs_fp32 = row.psnr_y - self.rows[0].psnr_y
        self.rows.append(row)
        photos = _kind_delta(row, self.rows[0], "photos")
        _say(
            self.log,
            f"  {stage:<20} PSNR-Y {row.psnr_y:.2f} dB ({row.delta_psnr_vs_fp32:+.2f}"
            + (f"; photos {photos}" if photos != "—" else "")
            + f")  [{row.seconds:.0f} s]",
        )
        return row


def image_kind(name: str) -> str:
    """``photos`` or ``synthetic`` for the embedded validation images, ``images`` otherwise."""
    if name.startswith("skimage/"):
        return "photos"
    if name.startswith("procedural/"):
        return "synthetic"
    return "images"


def _by_kind(images: dict[str, float]) -> dict[str, float]:
    kinds: dict[str, list[float]] = {}
    for name, psnr in images.items():
        kinds.setdefault(image_kind(name), []).append(psnr)
    return {k: sum(v) / len(v) for k, v in kinds.items()} if len(kinds) > 1 else {}


def _say(log: Log | None, text: str) -> None:
    if log is not None:
        log(text)


def compress(
    model: nn.Module,
    data: str | Path | Iterable[Any] | None = None,
    *,
    recipe: Recipe,
    info: ModelInfo,
    out: str | Path,
    source: str = "",
    calib: str | Path | Sequence[np.ndarray] | None = None,
    eval_data: str | Path | None = None,
    latency: LatencyFn | None = None,
    force: bool = False,
    log: Log | None = None,
) -> CompressResult:
    """Compress the FP32 ``model`` into deployable pruned and INT8 models under ``out``.

    Args:
        model: the FP32 teacher (``info`` says what net it is; ``source`` where it came from).
        data: images for distillation and QAT (default: the recipe's ``data.train``).
        recipe: what to do (``recipe.compress``).
        out: the run directory; it must be empty (a ``train/`` folder in it is kept), or ``force``.
        calib: a named calibration set, a folder, or frames from
            :func:`edgesr.compress.calibration.load_calibration` (default: ``compress.calib``).
        eval_data: where the stage table is scored (default: ``compress.eval``).
        latency: times every model at the end; without it the latency columns stay empty.
    """
    from edgesr.compress.distill import distill
    from edgesr.compress.prune import prune_channels
    from edgesr.evaluate import resolve_eval_data

    spec = recipe.compress
    out = Path(out)
    # Everything that can be checked cheaply is checked before any output is written.
    calib_frames = None if calib is None or isinstance(calib, (str, Path)) else list(calib)
    if spec.int8 and calib_frames is None:
        from edgesr.compress.calibration import load_calibration

        calib_frames = load_calibration(
            calib if isinstance(calib, (str, Path)) else spec.calib,
            scale=recipe.model.scale,
            color=recipe.model.color,
            num_images=spec.calib_images,
        )
    if spec.prune_layer_ratios:
        from edgesr.compress.prune import check_layer_ratios

        check_layer_ratios(model, spec.prune_layer_ratios)
    prepare_out_dir(out, force=force, keep=("train",))
    atomic_write_bytes(out / "recipe.yaml", dump_recipe(recipe).encode())
    t_start = time.perf_counter()
    torch.manual_seed(recipe.train.seed)

    fuse = getattr(model, "fuse", None)  # re-parameterisable nets fold their branches
    teacher = fuse() if callable(fuse) else model
    teacher.eval()
    size = (int(spec.latency_size[0]), int(spec.latency_size[1]))
    scorer = _Scorer(
        out=out,
        pairs=resolve_eval_data(eval_data or spec.eval, scale=info.scale),
        scale=info.scale,
        threads=spec.latency_threads,
        size=size,
        log=log,
    )

    t0 = time.perf_counter()
    _say(log, f"compress {recipe.name}: FP32 from {source}")
    # The FP32 stage is the deployable (fused, non-re-parameterisable) form of the teacher.
    rep = {"rep": False} if "rep" in info.params else {}
    fp32_info = ModelInfo(
        info.arch, info.scale, info.color, {**info.params, **rep}, recipe.name, recipe.hash()
    )
    scorer.score("fp32", "any", *scorer.save(teacher, "fp32", fp32_info), teacher, t0, source)

    sampler = _samplers(recipe, data, info) if _needs_sampler(recipe) else None
    reports: dict[str, Any] = {"equalization": {}, "mixed_precision": {}}

    def int8_of(net: nn.Module, net_info: ModelInfo, made_from: str, prefix: str) -> None:
        """INT8 models of ``net`` (QAT guided by the FP32 teacher), in every target layout."""
        from edgesr.compress.int8_stages import int8_stages

        assert calib_frames is not None
        made = int8_stages(
            recipe,
            net,
            teacher,
            net_info,
            sampler=sampler,
            calib=calib_frames,
            out=out,
            score=scorer.score,
            log=log,
            prefix=prefix,
        )
        reports["equalization"].update(made.get("equalization", {}))
        if "mixed_precision" in made:
            reports["mixed_precision"][made_from] = made["mixed_precision"]

    # The front: INT8 of the unpruned net (smallest loss), then pruned + distilled (+ INT8: fastest).
    if spec.int8 and "unpruned" in spec.int8_models:
        int8_of(teacher, fp32_info, "fp32", "")
    if spec.prunes:
        t0 = time.perf_counter()
        pruned = prune_channels(
            teacher,
            ratio=spec.prune_ratio,
            layer_ratios=spec.prune_layer_ratios,
            criterion=spec.prune_criterion,
            data=sampler("pruned") if sampler else None,
        )
        student_info = ModelInfo(
            info.arch,
            info.scale,
            info.color,
            {**fp32_info.params, **pruned.arch_params},
            recipe.name,
            recipe.hash(),
        )
        widths = ", ".join(
            f"{k} {pruned.widths_before[k]}->{pruned.widths_after[k]}" for k in pruned.widths_before
        )
        files = scorer.save(pruned.model, "pruned", student_info)
        ratios = ", ".join(f"{k} {v:g}" for k, v in spec.prune_layer_ratios.items())
        note = f"ratio {spec.prune_ratio}{f' ({ratios})' if ratios else ''}, "
        note += f"{spec.prune_criterion}: {widths}"
        scorer.score("pruned", "any", *files, pruned.model, t0, note)
        student, student_name = pruned.model, "pruned"
        if spec.kd_steps > 0:
            t0 = time.perf_counter()
            kd = distill(
                student,
                teacher,
                sampler("distilled") if sampler else None,
                steps=spec.kd_steps,
                lr=spec.kd_lr,
                alpha=spec.kd_alpha,
                loss=spec.kd_loss,
            )
            student, student_name = kd.model.eval(), "distilled"
            files = scorer.save(student, "distilled", student_info)
            note = f"{spec.kd_steps} KD steps, alpha {spec.kd_alpha}, {spec.kd_loss.upper()}"
            scorer.score("distilled", "any", *files, student, t0, note)
        if spec.int8 and "pruned" in spec.int8_models:
            int8_of(student, student_info, student_name, "pruned-")
    reports = {k: v for k, v in reports.items() if v}

    if latency is not None:
        # TensorRT-layout models run their float convs on a CPU: their ORT time says nothing
        # about a Jetson, so they are not timed here (`edgesr profile` on the device does).
        cpu_rows = [r for r in scorer.rows if r.target != "tensorrt"]
        _say(log, f"latency: {len(cpu_rows)} models, ORT CPU, {size[0]}x{size[1]}, interleaved")
        _fill_latency(cpu_rows, latency([out / r.onnx for r in cpu_rows]))

    result = CompressResult(
        run_dir=out,
        stages=scorer.rows,
        bicubic=scorer.bicubic,
        wall_time_s=time.perf_counter() - t_start,
    )
    _write_manifest(
        result,
        recipe,
        source=source,
        eval_data=eval_data,
        measured=latency is not None,
        reports=reports,
        eval_images=len(scorer.pairs),
    )
    return result


def _needs_sampler(recipe: Recipe) -> bool:
    spec = recipe.compress
    qat = any(spec.qat_steps_for(t) > 0 for t in spec.int8_targets)
    return (spec.prunes and spec.kd_steps > 0) or (spec.int8 and qat)


def _samplers(recipe: Recipe, data: Any, info: ModelInfo) -> Callable[[str], Any]:
    """Training patches for pruning, distillation and QAT, from the images training used.

    Each stage draws its own seeded stream (``samplers(stage)``) from the same images, so a
    model does not change when another stage is added, removed or run longer before it.
    """
    from edgesr.data.pairs import PatchSampler, make_pairs
    from edgesr.train.run import load_train_images

    images, _ = load_train_images(data, recipe)
    seed = recipe.train.seed + 17
    base = PatchSampler(
        make_pairs(images, scale=info.scale),
        scale=info.scale,
        color=info.color,
        lr_patch=recipe.data.lr_patch,
        batch_size=recipe.compress.batch_size,
        augment=recipe.data.augment,
        seed=seed,
        degradation=recipe.data.degradation,
        camera=recipe.data.camera,
    )
    return lambda stage: base.with_seed(seed + zlib.crc32(stage.encode()))


def _kind_delta(s: StageResult, base: StageResult | None, kind: str) -> str:
    if base is None or kind not in s.psnr_y_by_kind or kind not in base.psnr_y_by_kind:
        return "—"
    return f"{s.psnr_y_by_kind[kind] - base.psnr_y_by_kind[kind]:+.2f}"


def _fill_latency(rows: list[StageResult], measured: Sequence[Latency]) -> None:
    if len(measured) != len(rows):
        raise ValueError(
            f"latency function returned {len(measured)} results for {len(rows)} models"
        )
    for row, lat in zip(rows, measured, strict=True):
        row.latency_p50_ms, row.latency_p90_ms = lat.p50_ms, lat.p90_ms
        row.speedup_vs_fp32 = (
            lat.speedup if lat.speedup is not None else measured[0].p50_ms / lat.p50_ms
        )
        row.speedup_range = lat.speedup_range
        row.latency_warning = lat.warning


def _write_manifest(
    result: CompressResult,
    recipe: Recipe,
    *,
    source: str,
    eval_data: str | Path | None,
    measured: bool,
    reports: dict[str, Any],
    eval_images: int,
) -> None:
    spec = recipe.compress
    manifest = {
        "edgesr_version": __version__,
        "recipe": recipe.name,
        "recipe_hash": recipe.hash(),
        "source": source,
        "eval_data": str(eval_data or spec.eval),
        "eval_images": eval_images,
        "latency": {
            "backend": "onnxruntime-cpu",
            "size": list(spec.latency_size),
            "threads": spec.latency_threads,
            "runs": spec.latency_runs,
        }
        if measured
        else None,
        "bicubic": result.bicubic,
        "stages": [asdict(s) for s in result.stages],
        "front": [s.stage for s in result.front()],
        **reports,
        "wall_time_s": result.wall_time_s,
        "torch_version": torch.__version__,
        "python": sys.version.split()[0],
    }
    out = result.run_dir
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    atomic_write_bytes(
        out / "manifest.md",
        (f"# {recipe.name}: compression stages\n\n{result.table()}\n\n{result.guide()}\n").encode(),
    )
