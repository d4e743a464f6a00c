"""``edgesr compress`` as a sequence: model -> compress -> measure latency -> check.

The compress stage makes and scores the models; it does not know how latency is measured or
what a budget is. This module wires the profiler's latency into it and the budget check after
it, so each stage can be changed (or called from Python) on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesr.outputs import prepare_out_dir

if TYPE_CHECKING:
    from edgesr.check.budget import CheckResult
    from edgesr.compress.stages import CompressResult, Latency, LatencyFn
    from edgesr.recipe import Recipe


@dataclass
class CompressRun:
    """A compress run and, when a budget was given, the check of the stage it picks
    (:func:`pick_stage`)."""

    result: CompressResult
    check: CheckResult | None = None
    picked: str = ""
    passing: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if self.check is None else int(self.check.exit_code)

    def summary(self) -> str:
        """The stage table, which model to pick, and the budget verdict when there is one."""
        r = self.result
        text = f"{r.table()}\n\n{r.guide()}\n\n{len(r.stages)} stages in {r.wall_time_s:.0f} s; manifest: {r.run_dir / 'manifest.json'}"
        if self.check is not None:
            if self.passing:
                why = f"the best of the {self.passing} stages that pass"
            elif self.check.verdict != "fail":
                why = "the best stage that fails no measured line"
            else:
                why = "no stage passes; the fastest timed one"
            text += f"\nbudget: {self.picked} ({why}): {self.check.verdict}\n{self.check.table()}"
        return text


def pick_stage(
    result: CompressResult, checks: Sequence[CheckResult]
) -> tuple[str, CheckResult, int]:
    """The stage to ship under a budget: the best quality (``CompressResult.quality``) among
    those that pass; else among those that fail no line (some only unmeasured by compress, e.g.
    p99 or power); else the fastest timed stage, the one closest to passing on speed.
    Returns (stage, its check, number passing)."""
    rows = list(zip(result.stages, checks, strict=True))
    passing = [rc for rc in rows if rc[1].exit_code == 0]
    unfailed = [rc for rc in rows if rc[1].verdict != "fail"]
    if passing or unfailed:
        row, check = max(passing or unfailed, key=lambda rc: result.quality(rc[0]))
    else:
        timed = [rc for rc in rows if rc[0].latency_p50_ms is not None] or rows
        row, check = min(timed, key=lambda rc: rc[0].latency_p50_ms or 0.0)
    return row.stage, check, len(passing)


def ort_latency(*, size: tuple[int, int], threads: int, runs: int) -> LatencyFn:
    """A latency function for :func:`edgesr.compress.compress`: ORT CPU, ``threads`` threads.

    All models are timed together, interleaved in rounds, each round in a new session per model
    (:func:`edgesr.profile.latency.time_interleaved`), the recipe's ``runs`` split across the
    rounds, at least 8 per round (a median of fewer varies more between rounds). Speed-ups are
    per-round ratios to the first model; when the machine was busy or they varied between
    rounds, every row carries the same warning and the table shows no ratio.
    """

    def measure(paths: Sequence[Path]) -> list[Latency]:
        from edgesr.compress.stages import Latency
        from edgesr.profile.latency import time_interleaved
        from edgesr.runtime.runners import OnnxRuntimeRunner

        rounds = 5
        timing = time_interleaved(
            [partial(OnnxRuntimeRunner, path, threads=threads) for path in paths],
            size=size,
            rounds=rounds,
            runs_per_round=max(8, math.ceil(runs / rounds)),
            names=[path.stem for path in paths],
        )
        return [
            Latency(
                p50_ms=stats.p50_ms,
                p90_ms=stats.p90_ms,
                speedup=speedup,
                speedup_range=spread,
                warning=timing.warning,
            )
            for stats, speedup, spread in zip(
                timing.stats, timing.speedups, timing.speedup_ranges, strict=True
            )
        ]

    return measure


def run_compress(
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
) -> CompressRun:
    """``edgesr compress``: the FP32 model (``from_``, shipped, or trained first), compressed,
    every stage timed together at the end, every stage checked against ``budget`` (all checks in
    ``RUN_DIR/check.json``) and the one to ship picked (:func:`pick_stage`)."""
    from edgesr.check.budget import check_compress_run, load_budget
    from edgesr.compress.calibration import load_calibration
    from edgesr.compress.stages import compress
    from edgesr.modelio import resolve_weights
    from edgesr.pipeline.models import resolve_model

    spec = recipe.compress
    out = Path(out)
    # Everything that can be checked cheaply is checked before any output is written.
    budget_spec = load_budget(budget) if budget is not None else None
    if from_ is not None:
        resolve_weights(from_)
    if spec.prune_layer_ratios:
        from edgesr.compress.prune import check_layer_ratios
        from edgesr.modelio import build_from_recipe

        check_layer_ratios(build_from_recipe(recipe), spec.prune_layer_ratios)
    frames = (
        load_calibration(
            calib or spec.calib,
            scale=recipe.model.scale,
            color=recipe.model.color,
            num_images=spec.calib_images,
        )
        if spec.int8
        else None
    )
    prepare_out_dir(out, force=force)

    teacher = resolve_model(recipe, from_, data=data, train_out=out / "train", log=log)
    size = (int(spec.latency_size[0]), int(spec.latency_size[1]))
    result = compress(
        teacher.model,
        data,
        recipe=recipe,
        info=teacher.info,
        source=teacher.source,
        out=out,
        calib=frames,
        eval_data=eval_data,
        latency=ort_latency(size=size, threads=spec.latency_threads, runs=spec.latency_runs),
        log=log,
    )
    if budget_spec is None:
        return CompressRun(result)
    stage, check, passing = pick_stage(result, check_compress_run(out, budget_spec))
    if log is not None:
        log(
            f"budget {budget_spec.name}: {passing} of {len(result.stages)} stages pass; pick {stage}"
        )
    return CompressRun(result, check, stage, passing)
