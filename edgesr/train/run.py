"""Everything a training run needs besides its training step, shared by both loops.

The pixel-loss loop (:mod:`edgesr.train.loop`) and the GAN loop (:mod:`edgesr.train.gan`)
hold only their steps; neither imports the other. This module has the rest: the learning-rate
schedule, the run folder (prepared, or checked before a resume), the ``torchrun`` process
group, training images and validation pairs, and :class:`Run`, which validates, logs,
checkpoints, restores, writes the summary and turns Ctrl-C into a checkpoint. The folder's
layout is in :mod:`edgesr.train.checkpoint`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from edgesr import __version__
from edgesr.errors import ConfigError, DataError, EdgesrError, OutputExistsError
from edgesr.modelio import atomic_write_bytes
from edgesr.recipe import BOOKKEEPING_KEYS, TRAINING_SECTIONS, Recipe, TrainSpec, dump_recipe
from edgesr.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

# Keys that may change between a run and its resumption: they do not change what is learned
# (a longer train.steps extends the run; the cosine schedule is stretched from there on).
RESUMABLE_CHANGES = BOOKKEEPING_KEYS | {"train.steps", "gan.steps"}

#: Training data or validation data: a folder, ``"embedded"``, or HxWx3 uint8 RGB arrays.
DataSource = str | Path | Iterable[Any]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_path: Path
    steps: int
    val_psnr: float | None
    wall_time_s: float


# ------------------------------------------------------------------------ learning rate


@dataclass(frozen=True)
class LrSchedule:
    """A schedule for :func:`lr_at`; ``recipe.train`` (a TrainSpec) is one too."""

    steps: int
    lr: float
    lr_min: float = 0.0
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5


def lr_at(step: int, spec: LrSchedule | TrainSpec) -> float:
    """Learning rate for 1-based ``step``: a pure function, so a resumed run continues exactly."""
    if spec.warmup_steps and step <= spec.warmup_steps:
        return spec.lr * step / spec.warmup_steps
    if spec.schedule == "constant":
        return spec.lr
    if spec.schedule == "multistep":
        return spec.lr * spec.gamma ** sum(step > m for m in spec.milestones)
    span = max(1, spec.steps - spec.warmup_steps)
    t = min(1.0, (step - spec.warmup_steps) / span)
    return spec.lr_min + 0.5 * (spec.lr - spec.lr_min) * (1.0 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------- run folder


def prepare_run_dir(run_dir: Path, recipe: Recipe, *, resume: bool, force: bool) -> Path | None:
    """Check the output folder; returns the checkpoint to resume from (or None for a fresh run).

    A folder that already holds results is never reused silently.
    """
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise ConfigError(
                f"nothing to resume in {run_dir}: no complete checkpoint there; drop --resume to start a new run."
            )
        check_resumable(run_dir, recipe)
        return ckpt
    if run_dir.exists() and any(run_dir.iterdir()):
        if not force:
            raise OutputExistsError(
                f"{run_dir} already holds a run; pass --resume to continue it, --out NEW_DIR for a new run, "
                "or --force to delete it and start over."
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "recipe.yaml", dump_recipe(recipe).encode())
    return None


def check_resumable(run_dir: Path, recipe: Recipe) -> None:
    """ConfigError unless ``recipe`` trains what the run in ``run_dir`` was started with."""
    import yaml

    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    saved = {k: v for k, v in saved.items() if k in TRAINING_SECTIONS}
    changed = [
        k for k in _diff_recipes(saved, recipe.training_dict()) if k not in RESUMABLE_CHANGES
    ]
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir} with a different recipe ({', '.join(changed)} changed); "
            f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change on --resume. Start a new run with --out."
        )


def _diff_recipes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        path = f"{prefix}{k}"
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff_recipes(a, b, path + ".")
        elif a != b:
            out.append(path)
    return out


# ----------------------------------------------------------------------------------- data


def load_train_images(data: DataSource | None, recipe: Recipe) -> tuple[list, str]:
    """Images to train on (``data``, or the recipe's ``data.train``) and where they came from."""
    from edgesr.data.pairs import as_loaded_images

    source = recipe.data.train if data is None else data
    if isinstance(source, (str, Path)):
        if str(source) == "embedded":
            from edgesr.data.embedded import EMBEDDED_DESCRIPTION, embedded_images

            return embedded_images(
                split="train", seed=recipe.train.seed
            ), f"embedded: {EMBEDDED_DESCRIPTION}"
        from edgesr.data.folders import load_hr_folder

        return load_hr_folder(Path(source), min_size=recipe.data.min_size), str(
            Path(source).resolve()
        )
    return as_loaded_images(source), "in-memory images"


def make_sampler(recipe: Recipe, images: list, *, batch_size: int, seed: int) -> Any:
    """The training-patch sampler for ``recipe``; the pixel and the GAN phase both use it."""
    from edgesr.data.pairs import PatchSampler, make_pairs

    return PatchSampler(
        make_pairs(images, scale=recipe.model.scale, rescales=recipe.data.scale_augment),
        scale=recipe.model.scale,
        color=recipe.model.color,
        lr_patch=recipe.data.lr_patch,
        batch_size=batch_size,
        augment=recipe.data.augment,
        seed=seed,
        degradation=recipe.data.degradation,
        camera=recipe.data.camera,
    )


def load_val_pairs(val: DataSource | None, recipe: Recipe) -> list:
    """Validation pairs for ``val``: ``"recipe"`` (the recipe's ``data.val``), data, or None."""
    if isinstance(val, str) and val == "recipe":
        val = recipe.data.val
    if val is None:
        return []
    from edgesr.evaluate import resolve_eval_data

    return resolve_eval_data(val, scale=recipe.model.scale)


# ------------------------------------------------------------------------------ processes


def dist_env() -> tuple[int, int]:
    """(world size, rank) as set by ``torchrun``; (1, 0) in a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def init_dist(world: int) -> torch.device:
    """Start the process group when launched by torchrun (gloo on CPU, NCCL with CUDA)."""
    device = torch.device("cpu")
    if world > 1:
        import torch.distributed as dist

        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    return device


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def gather_sampler_states(sampler: Any, world: int) -> dict[str, Any]:
    """Every rank's data-sampler state by rank, so a resumed DDP run draws the same batches."""
    own = sampler.state_dict()
    if world == 1:
        return {"0": own}
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, own)
    return {str(i): s for i, s in enumerate(gathered)}


# ------------------------------------------------------------------------------------ run

# What a checkpoint holds: one net and its optimizer, or several by name (a GAN's g, d, ema).
Nets = nn.Module | Mapping[str, nn.Module]
Optimizers = torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer]


@dataclass
class Run:
    """One process's view of a run folder: device, validation, log, checkpoints, clock.

    Only rank 0 validates and writes; :meth:`checkpoint` is collective under torchrun.
    ``state`` is the JSON saved with every checkpoint (``elapsed_s``, ``val_psnr``, ``data``
    and what a loop adds); :meth:`restore` replaces it with the checkpoint's.
    """

    dir: Path
    recipe: Recipe
    device: torch.device
    world: int = 1
    rank: int = 0
    val_pairs: list = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=lambda: {"elapsed_s": 0.0, "val_psnr": None})
    _t0: float = field(default_factory=time.perf_counter)

    @classmethod
    def join(cls, run_dir: Path, recipe: Recipe, *, world: int = 1, rank: int = 0) -> Run:
        """Join the process group (after rank 0 prepared ``run_dir``) and set torch's threads."""
        device = init_dist(world)
        barrier(world)
        torch.set_num_threads(recipe.train.threads or max(1, (os.cpu_count() or 1) // world))
        return cls(run_dir, recipe, device, world, rank)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def val_psnr(self) -> float | None:
        return self.state["val_psnr"]

    def load_validation(self, val: DataSource | None) -> None:
        """Validation pairs for ``val`` (see :func:`load_val_pairs`); only rank 0 needs them."""
        self.val_pairs = load_val_pairs(val, self.recipe) if self.main else []

    def validate(self, net: nn.Module, step: int, **tags: str) -> None:
        """Y-PSNR of ``net`` on the validation pairs (None without any) into state and log."""
        if not self.main:
            return
        psnr = None
        if self.val_pairs:
            from edgesr.evaluate import evaluate_pairs_y

            was_training = net.training
            net.eval()
            with torch.inference_mode():
                psnr = evaluate_pairs_y(
                    lambda x: net(torch.from_numpy(x).to(self.device)).cpu().numpy(),
                    self.val_pairs,
                    scale=self.recipe.model.scale,
                    color=self.recipe.model.color,
                )
            net.train(was_training)
        self.state["val_psnr"] = psnr
        self.log({"step": step, **tags, "val_psnr": psnr})

    def log(self, entry: dict[str, Any]) -> None:
        """One line of ``log.jsonl``."""
        if self.main:
            with open(self.dir / "log.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    def start_clock(self) -> None:
        """Count time from now on top of the elapsed time restored from a checkpoint."""
        self._t0 = time.perf_counter() - float(self.state.get("elapsed_s", 0.0))

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def restore(self, ckpt: Path, *, model: Nets, optimizer: Optimizers) -> tuple[int, Any]:
        """Load ``ckpt`` into the nets, optimizers and ``state``; returns its step and the
        sampler state saved with it. A run may only resume on the data it trained on."""
        saved = load_checkpoint(ckpt, **_weights(model, optimizer))
        if saved.get("data") != self.state.get("data"):
            raise DataError(
                f"cannot resume {self.dir}: it trained on {saved.get('data')!r}, not {self.state.get('data')!r}; pass the same --data."
            )
        step, sampler_state = int(saved.pop("step")), saved.pop("sampler")
        self.state = saved
        return step, sampler_state

    def checkpoint(
        self, step: int, sampler_state: Any, *, model: Nets, optimizer: Optimizers
    ) -> None:
        """Save checkpoint ``step`` (rank 0), keeping ``train.keep_checkpoints`` of them."""
        if self.main:
            save_checkpoint(
                self.dir,
                step=step,
                **_weights(model, optimizer),
                state={**self.state, "elapsed_s": self.elapsed(), "sampler": sampler_state},
                keep=self.recipe.train.keep_checkpoints,
            )
        barrier(self.world)

    def interruptible(self) -> DeferredInterrupt:
        """Ctrl-C deferred to the end of a step, in a single process only: under torchrun the
        ranks could stop at different steps, and a checkpoint needs all of them."""
        return DeferredInterrupt(enabled=self.world == 1)

    def interrupted(self, step: int, what: str = "step") -> EdgesrError:
        """The error to raise after checkpointing an interrupted run (exit code 1)."""
        return EdgesrError(
            f"interrupted at {what} {step}; a checkpoint was saved. "
            f"Continue with --resume --out {self.dir}."
        )

    def write_summary(self, fields: dict[str, Any]) -> None:
        """``train_summary.json``: the recipe, the loop's ``fields``, then how it ran."""
        summary = {
            "recipe": self.recipe.name,
            "recipe_hash": self.recipe.hash(),
            **fields,
            "world_size": self.world,
            "train_data": self.state["data"],
            "edgesr_version": __version__,
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        atomic_write_bytes(
            self.dir / "train_summary.json", (json.dumps(summary, indent=2) + "\n").encode()
        )


def psnr_text(psnr: float | None) -> str:
    """A validation PSNR as model-file metadata ("" for none)."""
    return "" if psnr is None else f"{psnr:.4f}"


def _weights(model: Nets, optimizer: Optimizers) -> dict[str, Any]:
    # The checkpoint functions take one net as model=/optimizer= (the file names that older
    # pixel-loss checkpoints have) and named ones as models=/optimizers=.
    if isinstance(model, Mapping):
        return {"models": model, "optimizers": optimizer}
    return {"model": model, "optimizer": optimizer}


class DeferredInterrupt:
    """Ctrl-C takes effect at the end of the current step (see ``requested``), so the
    checkpoint it triggers holds whole steps only: a half step would not resume exactly (a
    GAN step is a G, an EMA and a D update). A second Ctrl-C stops at once."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> DeferredInterrupt:
        # Signal handlers can only be set from the main thread; elsewhere Ctrl-C is not ours.
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            previous = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)
            self._installed = False
