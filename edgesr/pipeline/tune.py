"""``edgesr tune`` as a sequence: per trial, time -> train -> export -> evaluate (-> INT8).

A trial builds the candidate net, exports it and times it on the chosen backend at the
recipe's frame size first (the weights do not change latency), interleaved with the recipe's
own net: its latency is that ratio times the recipe net's median, so trials timed minutes apart
on a busy machine still compare (see ``_TrialRunner._latency``). It then trains on the recipe's
training data under the trial's recipe, stopping early by the rule of
:func:`edgesr.tune.front.hopeless` at validations a third and two thirds through its schedule, exports the
trained net, scores it on the recipe's validation images with ONNX Runtime and, with ``int8``,
quantizes it (ORT-CPU static INT8) and scores and times that instead, so the front is of
deployable models. Study, space and selection live in :mod:`edgesr.tune`.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from edgesr.errors import ConfigError, EdgesrError
from edgesr.outputs import atomic_write_bytes

if TYPE_CHECKING:
    from edgesr.recipe import Recipe
    from edgesr.tune.front import TrialRecord
    from edgesr.tune.space import SearchSpace

# Validations at a third and two thirds of a trial's schedule feed the early-stop rule (each
# costs a pass over the validation images, so not more).
VAL_EVERY_FRACTION = 1 / 3
BACKENDS = ("onnxruntime", "tensorrt")


@dataclass(frozen=True)
class TuneOptions:
    trials: int
    sampler: str = "tpe"
    storage: str | None = None
    study: str | None = None
    backend: str = "onnxruntime"
    data: str | None = None
    workers: int = 1
    int8: bool = False
    # Size (ONNX bytes) as a third objective.
    size_objective: bool = False
    seed: int | None = 0
    # Budget lines: latency_ms / size_bytes maxima, psnr_y minimum; budget_name for the plot.
    limits: dict[str, float] = field(default_factory=dict)
    budget_name: str = ""
    # LR frame (H, W) and threads for latency (None: the recipe's compress.latency_*).
    latency_size: tuple[int, int] | None = None
    latency_threads: int | None = None
    latency_rounds: int = 3
    latency_runs: int = 6
    prune_margin_db: float = 0.5
    heartbeat_s: int = 10
    grace_s: int = 30


@dataclass
class TuneResult:
    out: Path
    records: list[TrialRecord]
    front: list[TrialRecord]
    best: TrialRecord | None
    table: str
    files: list[Path]


class _Stop(Exception):
    """Raised inside training by the early-stop watcher."""


class _Surplus(Exception):
    """This trial is beyond ``--trials`` (another worker took the last one)."""


# ------------------------------------------------------------------------------- entry


def run_tune(
    recipe: Recipe,
    space: SearchSpace,
    *,
    out: str | Path,
    options: TuneOptions,
    stream: TextIO | None = None,
) -> TuneResult:
    """Run (or resume) the study until it holds ``options.trials`` finished trials; write
    trials.json, pareto.json, pareto.png, best.yaml and pareto/trial-N.yaml into ``out``."""
    from edgesr.tune.study import SAMPLERS

    stream = stream or sys.stderr
    out = Path(out)
    if options.trials < 1:
        raise ConfigError("--trials must be at least 1.")
    if options.sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {options.sampler!r}; use one of {', '.join(SAMPLERS)}.")
    if options.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {options.backend!r}; use {' or '.join(BACKENDS)}.")
    if options.workers < 1:
        raise ConfigError("--workers must be at least 1.")
    if options.sampler == "grid":
        space.grid()  # a ConfigError now, not in a worker
    _claim_out_dir(out, recipe, options)
    extra = []
    if options.workers > 1:
        from edgesr.recipe import dump_recipe

        # Recipes hold read-only mappings, which do not pickle: workers load the resolved YAML.
        resolved = out / ".tune-recipe.yaml"
        atomic_write_bytes(resolved, dump_recipe(recipe).encode())
        ctx = multiprocessing.get_context("spawn")
        extra = [
            ctx.Process(target=_worker_entry, args=(resolved, space, out, options, i))
            for i in range(1, options.workers)
        ]
        for p in extra:
            p.start()
    try:
        _work(recipe, space, out, options, stream=stream, worker=0)
    finally:
        for p in extra:
            p.join()
        (out / ".tune-recipe.yaml").unlink(missing_ok=True)
    bad = [p.exitcode for p in extra if p.exitcode]
    if bad:
        raise EdgesrError(f"{len(bad)} tune worker process(es) failed (exit codes {bad}).")
    return write_outputs(recipe, space, out, options)


def _claim_out_dir(out: Path, recipe: Recipe, options: TuneOptions) -> None:
    """``out`` belongs to one study (``tune.json`` says which): its trials/NNNN folders are
    numbered by it, so another study's results there are refused, never overwritten."""
    from edgesr.errors import OutputExistsError
    from edgesr.tune.study import storage_url

    own = {
        "storage": _redact(storage_url(out, options.storage)),
        "study": options.study or f"{recipe.name}-tune",
    }
    marker = out / "tune.json"
    if marker.is_file():
        held = json.loads(marker.read_text())
        if held != own:
            raise OutputExistsError(
                f"{out} holds the results of study '{held.get('study')}' in {held.get('storage')}; "
                "resume that one with its --storage/--study, or choose another --out."
            )
        return
    # Hidden files and the database may be a second worker's, started at the same moment.
    if out.is_dir() and any(not p.name.startswith((".", "study.db")) for p in out.iterdir()):
        raise OutputExistsError(
            f"{out} already holds other results; choose another --out for edgesr tune."
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, (json.dumps(own, indent=2) + "\n").encode())


def _redact(url: str) -> str:
    """A database URL without its password (tune.json is not a secret store)."""
    head, sep, tail = url.partition("@")
    if sep and "://" in head and ":" in head.split("://", 1)[1]:
        scheme, user = head.split("://", 1)
        return f"{scheme}://{user.split(':', 1)[0]}:***@{tail}"
    return url


def _worker_entry(
    recipe_path: Path, space: SearchSpace, out: Path, options: TuneOptions, i: int
) -> None:
    """A ``--workers`` process: the same loop, its progress lines left to worker 0."""
    import io

    from edgesr.logs import quiet_third_party
    from edgesr.recipe import load_recipe

    with quiet_third_party():
        _work(load_recipe(recipe_path), space, out, options, stream=io.StringIO(), worker=i)


# ------------------------------------------------------------------------------ worker


def _open(recipe: Recipe, space: SearchSpace, out: Path, options: TuneOptions) -> Any:
    from edgesr.tune.study import make_sampler, open_storage, open_study, storage_url

    storage = open_storage(
        storage_url(out, options.storage), heartbeat_s=options.heartbeat_s, grace_s=options.grace_s
    )
    directions = ["maximize", "minimize"] + (["minimize"] if options.size_objective else [])
    sampler = make_sampler(
        options.sampler, grid=space.grid, seed=options.seed, constraints=_constraints
    )
    meta = {
        "recipe": recipe.name,
        "recipe_hash": recipe.hash(),
        "space": space.fingerprint(),
        "int8": str(options.int8),
        "backend": options.backend,
        "limits": json.dumps(options.limits, sort_keys=True),
    }
    return open_study(
        storage,
        options.study or f"{recipe.name}-tune",
        directions=directions,
        sampler=sampler,
        meta=meta,
    )


def _constraints(trial: Any) -> list[float]:
    """Optuna < 5's constraint values (<= 0 is feasible); newer ones read set_constraint."""
    return [float(len(trial.user_attrs.get("violations", [])))]


def _work(
    recipe: Recipe,
    space: SearchSpace,
    out: Path,
    options: TuneOptions,
    *,
    stream: TextIO,
    worker: int,
) -> None:
    """One worker: run trials until the study holds ``options.trials`` finished ones."""
    from optuna.storages import fail_stale_trials

    from edgesr.tune.study import counted, running_elsewhere

    study = _open(recipe, space, out, options)
    baseline = space.recipe_values(recipe)
    if worker == 0 and not study.trials and len(baseline) == len(space.params):
        # Trial 0: the recipe's own parameters, so the front shows what tuning gained.
        study.enqueue_trial(baseline, user_attrs={"baseline": True}, skip_if_exists=True)
    trial_fn = _TrialRunner(recipe, space, out, options, study)
    bar = _Bar(options.trials, stream)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" since Optuna 2.9
            fail_stale_trials(study)  # a dead worker's trial: failed and queued again
        done = counted(study)
        bar.show(study, done)
        if done >= options.trials:
            break
        if done + running_elsewhere(study, -1) >= options.trials:
            # The rest is running elsewhere: wait for it to finish (or to be found dead).
            time.sleep(max(1.0, options.heartbeat_s / 2))
            continue
        study.optimize(trial_fn, n_trials=1, catch=(_Surplus,))
    trial_fn.close()


class _Bar:
    """One line per finished trial count: trials done and the best feasible PSNR so far."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.last = total, stream, -1

    def show(self, study: Any, done: int) -> None:
        if done == self.last:
            return
        self.last = done
        from edgesr.tune.front import record_from_trial

        recs = [record_from_trial(t) for t in study.get_trials(deepcopy=False)]
        ok = [r for r in recs if r.state == "COMPLETE" and r.feasible is not False]
        best = max(ok, key=lambda r: r.psnr_y or 0.0, default=None)
        width = 20
        filled = int(width * min(done, self.total) / self.total)
        text = f"[{'#' * filled}{'-' * (width - filled)}] {done}/{self.total} trials"
        if best is not None:
            text += f", best {best.psnr_y:.2f} dB at {best.latency_ms:.2f} ms (trial {best.number})"
        pruned = sum(r.state == "PRUNED" for r in recs)
        if pruned:
            text += f", {pruned} stopped early"
        self.stream.write(text + "\n")
        self.stream.flush()


class _TrialRunner:
    """The objective: one trial, start to end, in ``out/trials/NNNN``."""

    def __init__(
        self, recipe: Recipe, space: SearchSpace, out: Path, options: TuneOptions, study: Any
    ) -> None:
        self.recipe, self.space, self.out, self.options, self.study = (
            recipe,
            space,
            out,
            options,
            study,
        )
        size = options.latency_size or tuple(recipe.compress.latency_size)
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.threads = options.latency_threads or recipe.compress.latency_threads
        self._reference: Path | None = None

    def __call__(self, trial: Any) -> tuple[float, ...]:
        import optuna

        from edgesr.tune.front import record_from_trial, violations
        from edgesr.tune.study import counted, uses_set_constraint, worker_id

        # Numbers order concurrent trials: only as many as the quota has room for go on.
        ahead = [
            t
            for t in self.study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
            )
            if t.number < trial.number
        ]
        if counted(self.study) + len(ahead) >= self.options.trials:
            trial.set_user_attr("pruned_reason", "beyond --trials (another worker took it)")
            self.study.stop()
            raise _Surplus()
        trial.set_user_attr("worker", worker_id())
        values = self.space.suggest(trial)
        recipe = trial_recipe(
            self.recipe, values, number=trial.number, threads=self._train_threads()
        )
        tdir = self.out / "trials" / f"{trial.number:04d}"
        if tdir.exists():
            shutil.rmtree(tdir)  # only a dead attempt of this very trial can be there
        tdir.mkdir(parents=True)

        # 1. Latency of the candidate (FP32) before training: the weights do not change it.
        trial.set_user_attr("gmacs", self._export_untrained(recipe, tdir / "untrained.onnx"))
        latency_ms, ratio, measured = self._latency(tdir / "untrained.onnx")
        trial.set_user_attr("latency_ms", latency_ms)
        trial.set_user_attr("fp32_latency_ms", latency_ms)
        trial.set_user_attr("latency_ratio", ratio)
        trial.set_user_attr("measured_ms", measured)
        limit = self.options.limits.get("latency_ms")
        if not self.options.int8 and limit is not None and latency_ms > limit:
            trial.set_user_attr("feasible", False)
            trial.set_user_attr(
                "pruned_reason", f"latency {latency_ms:.2f} ms > budget {limit:.2f} ms"
            )
            raise optuna.TrialPruned()

        # 2. Train, watching validation PSNR for the early-stop rule.
        finished = [
            record_from_trial(t)
            for t in self.study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
            )
        ]
        watch = _TrainWatch(tdir / "run", recipe.train.steps, latency_ms, finished, self.options)
        from edgesr.train import train

        try:
            result = train(
                recipe,
                self.options.data,
                out=tdir / "run",
                progress=True,
                stream=cast(TextIO, watch),
            )
        except _Stop as stop:
            trial.set_user_attr("val_curve", watch.curve)
            trial.set_user_attr("pruned_reason", str(stop))
            _drop_checkpoints(tdir / "run")
            raise optuna.TrialPruned(str(stop)) from None
        except EdgesrError as exc:
            # A learning rate too high for the net is an answer about this trial, not a reason
            # to end the study (bad data or Ctrl-C, the other errors here, are).
            if "diverged" not in str(exc):
                raise
            trial.set_user_attr("val_curve", watch.curve)
            trial.set_user_attr("pruned_reason", f"training diverged: {exc}")
            _drop_checkpoints(tdir / "run")
            raise optuna.TrialPruned(str(exc)) from None
        trial.set_user_attr("val_curve", watch.curve)
        _drop_checkpoints(tdir / "run")

        # 3. Export the trained net and score it where it will run.
        onnx_path = tdir / "model.onnx"
        net = _load_net(result.model_path)
        _export(net, recipe, onnx_path)
        (tdir / "untrained.onnx").unlink(missing_ok=True)
        model_path = onnx_path
        if self.options.int8:
            model_path = self._int8(recipe, onnx_path, tdir / "model-int8.onnx")
            latency_ms, ratio, measured = self._latency(model_path)
            trial.set_user_attr("latency_ms", latency_ms)
            trial.set_user_attr("latency_ratio", ratio)
            trial.set_user_attr("measured_ms", measured)
        psnr = self._psnr(recipe, model_path)
        size = model_path.stat().st_size
        broken = violations(
            latency_ms=latency_ms, size_bytes=size, psnr_y=psnr, limits=self.options.limits
        )
        trial.set_user_attr("psnr_y", psnr)
        trial.set_user_attr("size_bytes", size)
        trial.set_user_attr("violations", broken)
        trial.set_user_attr("feasible", not broken)
        if uses_set_constraint():
            trial.set_constraint("budget", float(len(broken)))  # <= 0: feasible
        values_out: tuple[float, ...] = (psnr, latency_ms)
        if self.options.size_objective:
            values_out += (float(size),)
        return values_out

    def close(self) -> None:
        if self._reference is not None:
            self._reference.unlink(missing_ok=True)
            self._reference.with_suffix(".engine").unlink(missing_ok=True)

    def _train_threads(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.options.workers)

    def _export_untrained(self, recipe: Recipe, path: Path) -> float:
        """Export the untrained net to ``path``; returns its GMACs at the latency frame."""
        import torch

        from edgesr.archs.complexity import complexity
        from edgesr.modelio import build_from_recipe

        torch.manual_seed(0)
        net = build_from_recipe(recipe)
        _export(net, recipe, path)
        return float(complexity(net, lr_size=self.size)["gmacs"])

    def _reference_model(self) -> Path:
        """The recipe's own net, the yardstick every trial is timed against."""
        if self._reference is None:
            path = self.out / "trials" / f".reference-{os.getpid()}.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            self._export_untrained(self.recipe, path)
            self._reference = path
        return self._reference

    def _latency(self, model: Path) -> tuple[float, float, float]:
        """(latency_ms, ratio, measured_ms) of ``model``: its median over the recipe's own
        net's, per round of one interleaved timing, times the recipe net's median from the
        study's first timing. A median alone drifts with the machine's load between trials
        minutes apart (the same net measured 80-112 ms on a shared 2-core machine); the ratio
        of two nets timed side by side does not, so trials compare like with like."""
        from edgesr.profile.latency import time_interleaved

        paths = [self._reference_model(), model]
        timing = time_interleaved(
            [self._runner_factory(p) for p in paths],
            size=self.size,
            rounds=self.options.latency_rounds,
            runs_per_round=self.options.latency_runs,
            names=["recipe", model.stem],
        )
        if "reference_ms" not in self.study.user_attrs:
            self.study.set_user_attr("reference_ms", timing.stats[0].p50_ms)
        reference_ms = float(self.study.user_attrs["reference_ms"])
        ratio = 1.0 / timing.speedups[1]
        return ratio * reference_ms, ratio, timing.stats[1].p50_ms

    def _runner_factory(self, onnx_path: Path) -> Callable[[], Any]:
        if self.options.backend == "onnxruntime":
            from edgesr.runtime.runners import OnnxRuntimeRunner

            return partial(OnnxRuntimeRunner, onnx_path, threads=self.threads)
        # TensorRT: an engine for exactly this frame, built once per model.
        from edgesr.export.tensorrt_build import build_engine
        from edgesr.profile.tensorrt_runner import TensorRTRunner

        engine = onnx_path.with_suffix(".engine")
        if not engine.exists():
            build_engine(onnx_path, engine, profiles=[self.size])
        return partial(TensorRTRunner, engine)

    def _int8(self, recipe: Recipe, fp32: Path, path: Path) -> Path:
        """ORT-CPU static INT8 of the trained net (edgesr compress's quantizer, its defaults)."""
        from edgesr.compress.calibration import load_calibration
        from edgesr.compress.ort_int8 import quantize_ort_static

        calib = load_calibration(
            recipe.compress.calib,
            scale=recipe.model.scale,
            color=recipe.model.color,
            num_images=recipe.compress.calib_images,
        )
        return quantize_ort_static(fp32, path, calib, weight_bits=recipe.compress.ort_weight_bits)

    def _psnr(self, recipe: Recipe, model: Path) -> float:
        """Mean Y-PSNR on the recipe's validation images (never the benchmark sets)."""
        from edgesr.evaluate import evaluate
        from edgesr.runtime.runners import OnnxRuntimeRunner
        from edgesr.train.run import load_val_pairs

        pairs = load_val_pairs("recipe", recipe)
        if not pairs:
            raise ConfigError(
                f"recipe {recipe.name} has no validation images (data.val is null); tune scores "
                "trials on them: set data.val (e.g. --set data.val=embedded or a folder)."
            )
        runner = OnnxRuntimeRunner(model, threads=self.threads)
        return float(evaluate(runner, pairs, bicubic=False).mean["psnr_y"])


class _TrainWatch:
    """The training progress stream, used as a clock: at each write it reads the run's new
    ``log.jsonl`` validations and raises :class:`_Stop` when the early-stop rule says so."""

    def __init__(
        self,
        run_dir: Path,
        steps: int,
        latency_ms: float,
        finished: Sequence[TrialRecord],
        options: TuneOptions,
    ) -> None:
        self.log, self.steps, self.latency_ms = run_dir / "log.jsonl", steps, latency_ms
        self.finished, self.margin = finished, options.prune_margin_db
        self.curve: dict[str, float] = {}
        self.offset = 0
        self.stopped = False

    def isatty(self) -> bool:
        return True  # the progress line then writes every 0.2 s: a prompt check

    def flush(self) -> None:
        pass

    def write(self, text: str) -> int:
        if self.stopped or not self.log.exists():
            return len(text)
        from edgesr.tune.front import hopeless

        with open(self.log, encoding="utf-8") as fh:
            fh.seek(self.offset)
            lines = fh.readlines()
        for line in lines:
            if not line.endswith("\n"):
                break  # a line still being written: read it next time
            self.offset += len(line.encode())
            entry = json.loads(line)
            if entry.get("val_psnr") is None or "step" not in entry:
                continue
            # The nearest third: trials with other train.steps validate at the same fractions.
            fraction = round(entry["step"] / self.steps / VAL_EVERY_FRACTION) * VAL_EVERY_FRACTION
            self.curve[f"{fraction:.2f}"] = float(entry["val_psnr"])
            if fraction < 1.0:
                reason = hopeless(
                    fraction,
                    float(entry["val_psnr"]),
                    self.latency_ms,
                    self.finished,
                    margin_db=self.margin,
                )
                if reason:
                    self.stopped = True
                    raise _Stop(reason)
        return len(text)


def trial_recipe(recipe: Recipe, values: dict[str, Any], *, number: int, threads: int) -> Recipe:
    """The recipe a trial trains: the searched values, validations every third, no
    intermediate checkpoints (a killed trial is re-run whole), no shipped weights."""
    from edgesr.tune.space import overrides_for

    base = recipe.replace(overrides_for(values))
    steps = base.train.steps
    val_every = max(1, round(steps * VAL_EVERY_FRACTION))
    return base.replace(
        [
            f"name={recipe.name}-tune-{number}",
            f"description={json.dumps(f'{recipe.name} tuned by edgesr tune (trial {number})')}",
            "model.weights=null",
            f"train.val_every={val_every}",
            f"train.ckpt_every={steps}",
            "train.keep_checkpoints=1",
            f"train.threads={threads}",
        ]
    )


def _export(net: Any, recipe: Recipe, path: Path) -> None:
    from edgesr.export.onnx_export import export_onnx
    from edgesr.modelio import ModelInfo

    fuse = getattr(net, "fuse", None)
    net = fuse() if callable(fuse) else net
    export_onnx(net.eval(), path, info=ModelInfo.from_recipe(recipe), verify=False, force=True)


def _load_net(path: Path) -> Any:
    from edgesr.modelio import load_model

    return load_model(path)[0]


def _drop_checkpoints(run_dir: Path) -> None:
    """A finished trial keeps its weights, log and summary; the checkpoints only cost disk."""
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


# ------------------------------------------------------------------------------ outputs


def write_outputs(
    recipe: Recipe, space: SearchSpace, out: Path, options: TuneOptions
) -> TuneResult:
    """trials.json, pareto.json, pareto.png, best.yaml and pareto/trial-N.yaml, from the study
    (so every worker and every resumed run writes the same, complete view)."""
    out.mkdir(parents=True, exist_ok=True)
    # Workers of one study share ``out``: one writes the view at a time. Unlocked, one worker's
    # rebuild of pareto/ or rename of the plot's temp file could pull a file from under another
    # (seen in CI as a FileNotFoundError from os.replace).
    with open(out / ".outputs.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _write_outputs(recipe, space, out, options)


def _write_outputs(
    recipe: Recipe, space: SearchSpace, out: Path, options: TuneOptions
) -> TuneResult:
    from edgesr.recipe import dump_recipe
    from edgesr.tune.front import (
        front_table,
        pareto_front,
        pick_best,
        plot_front,
        record_from_trial,
    )

    study = _open(recipe, space, out, options)
    records = [record_from_trial(t) for t in study.get_trials(deepcopy=False)]
    front = pareto_front(records, with_size=options.size_objective)
    best = pick_best(front, budgeted=bool(options.limits))
    files = []

    def dump(name: str, doc: Any) -> None:
        path = out / name
        atomic_write_bytes(path, (json.dumps(doc, indent=2) + "\n").encode())
        files.append(path)

    dump("trials.json", [r.to_dict() for r in records])
    dump("pareto.json", [r.to_dict() for r in front])

    def recipe_yaml(r: TrialRecord) -> bytes:
        tuned = trial_recipe(recipe, r.params, number=r.number, threads=1)
        # The schedule knobs tune set for its own bookkeeping go back to the recipe's.
        tuned = tuned.replace(
            [
                f"train.val_every={recipe.train.val_every}",
                f"train.ckpt_every={recipe.train.ckpt_every}",
                f"train.keep_checkpoints={recipe.train.keep_checkpoints}",
                f"train.threads={json.dumps(recipe.train.threads)}",
            ]
        )
        h, w = options.latency_size or recipe.compress.latency_size
        head = (
            f"# edgesr tune trial {r.number}: PSNR-Y {r.psnr_y:.2f} dB (validation), latency "
            f"{r.latency_ms:.2f} ms ({options.backend}, LR {h}x{w}).\n"
            f"# Trained weights: trials/{r.number:04d}/run/model.safetensors\n"
        )
        return (head + dump_recipe(tuned)).encode()

    front_dir = out / "pareto"
    if front_dir.exists():
        shutil.rmtree(front_dir)  # a view of the study, rebuilt whole each time
    for r in front:
        path = front_dir / f"trial-{r.number}.yaml"
        atomic_write_bytes(path, recipe_yaml(r))
        files.append(path)
    if best is not None:
        atomic_write_bytes(out / "best.yaml", recipe_yaml(best))
        files.append(out / "best.yaml")
    plot = out / "pareto.png"
    tmp = out / ".pareto.tmp.png"
    limit = options.limits.get("latency_ms")
    title = f"edgesr tune {recipe.name}: {len(records)} trials" + (
        f", budget {options.budget_name}" if options.budget_name else ""
    )
    plot_front(records, front, best, tmp, title=title, latency_limit_ms=limit)
    os.replace(tmp, plot)
    files.append(plot)
    table = front_table(front, best)
    atomic_write_bytes(out / "pareto.txt", (table + "\n").encode())
    return TuneResult(out=out, records=records, front=front, best=best, table=table, files=files)


def limits_from_budget(
    budget: Any, scale: int
) -> tuple[dict[str, float], tuple[int, int] | None, int | None]:
    """(limits, LR frame, threads) from an ``edgesr.check`` Budget, for :class:`TuneOptions`."""
    limits: dict[str, float] = {}
    for lim in budget.limits:
        if lim.key == "latency_p50":
            limits["latency_ms"] = lim.value  # canonical unit: ms
        elif lim.key == "model_size":
            limits["size_bytes"] = lim.value
        elif lim.key == "psnr_y":
            limits["psnr_y"] = lim.value
    frame = budget.frame.lr_size(scale) if budget.frame is not None else None
    return limits, frame, budget.threads


__all__ = ["TuneOptions", "TuneResult", "limits_from_budget", "run_tune", "trial_recipe"]


# ---------------------------------------------------------------------------------- CLI


def add_tune_parser(sub: Any, add_recipe_args: Callable[..., None]) -> None:
    """``edgesr tune``: the subcommand's arguments (the CLI stays thin)."""
    from edgesr.tune.study import SAMPLERS

    p = sub.add_parser(
        "tune", help="multi-objective search (PSNR vs latency) over recipe and architecture knobs"
    )
    add_recipe_args(p)
    p.add_argument("--space", help="search space YAML (default: recipes/spaces/<recipe>.yaml)")
    p.add_argument(
        "--trials",
        type=int,
        required=True,
        help="finished trials the study should hold; rerun with a larger N to resume",
    )
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--budget", help="budget name or YAML: trials that break it are infeasible")
    p.add_argument(
        "--storage",
        help="study database URL (default: sqlite:///DIR/study.db; postgresql://... for many machines)",
    )
    p.add_argument("--study", help="study name (default: <recipe>-tune)")
    p.add_argument("--out", help="output folder DIR (default: runs/<recipe>-tune)")
    p.add_argument("--data", help="training images: a folder or 'embedded' (default: data.train)")
    p.add_argument("--backend", choices=BACKENDS, default="onnxruntime")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the study")
    p.add_argument("--int8", action="store_true", help="score and time ORT-CPU INT8 models")
    p.add_argument("--size-objective", action="store_true", help="minimise model size too")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        help="seconds between a running trial's heartbeats; one silent for 3x this is re-run",
    )
    p.set_defaults(func=cmd_tune)


def cmd_tune(args: Any) -> int:
    from edgesr.logs import quiet_third_party
    from edgesr.recipe import load_recipe
    from edgesr.tune.space import load_space

    recipe = load_recipe(args.recipe, args.overrides)
    space = load_space(args.space, recipe)
    limits: dict[str, float] = {}
    frame = threads = None
    if args.budget:
        from edgesr.check.budget import load_budget

        budget = load_budget(args.budget)
        limits, frame, threads = limits_from_budget(budget, recipe.model.scale)
    options = TuneOptions(
        trials=args.trials,
        sampler=args.sampler,
        storage=args.storage,
        study=args.study,
        backend=args.backend,
        data=args.data,
        workers=args.workers,
        int8=args.int8,
        size_objective=args.size_objective,
        seed=args.seed,
        limits=limits,
        budget_name=str(args.budget or ""),
        latency_size=frame,
        latency_threads=threads,
        heartbeat_s=args.heartbeat,
        grace_s=3 * args.heartbeat,
    )
    out = Path(args.out) if args.out else Path("runs") / f"{recipe.name}-tune"
    if args.budget:
        used = ", ".join(f"{k} {v:g}" for k, v in limits.items()) or "none"
        print(
            f"budget {args.budget}: trials must meet {used} (latency_p50, model_size and psnr_y "
            "lines; check the rest with `edgesr check`)",
            file=sys.stderr,
        )
    with quiet_third_party(getattr(args, "verbose", False)) as output:
        result = run_tune(recipe, space, out=out, options=options, stream=output.stderr)
    print(result.table)
    if result.best is not None:
        print(f"best: trial {result.best.number} -> {out / 'best.yaml'}")
    else:
        print("no feasible complete trial yet: no best.yaml")
    print(f"plot: {out / 'pareto.png'}; all trials: {out / 'trials.json'}")
    return 0
