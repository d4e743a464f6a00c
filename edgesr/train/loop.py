"""The training loop: CPU-friendly, resumable, and data-parallel through ``torchrun``.

One process per core (or GPU) under ``torchrun`` uses gloo on CPU and NCCL on GPU; the global
batch stays ``data.batch_size`` whatever the world size, so a run's schedule does not depend
on how many processes ran it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F

from edgesr import __version__
from edgesr.errors import ConfigError, DataError, EdgesrError, OutputExistsError
from edgesr.modelio import ModelInfo, atomic_write_bytes, build_from_recipe, save_model
from edgesr.recipe import BOOKKEEPING_KEYS, TRAINING_SECTIONS, Recipe, dump_recipe
from edgesr.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from edgesr.train.progress import Progress

# Keys that may change between a run and its resumption: they do not change what is learned
# (a longer train.steps extends the run; the cosine schedule is stretched from there on).
RESUMABLE_CHANGES = BOOKKEEPING_KEYS | {"train.steps", "gan.steps"}


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_path: Path
    steps: int
    val_psnr: float | None
    wall_time_s: float


def lr_at(step: int, spec: Any) -> float:
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


def pixel_loss(name: str, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    if name == "l1":
        return F.l1_loss(sr, hr)
    if name == "mse":
        return F.mse_loss(sr, hr)
    if name == "charbonnier":
        return torch.sqrt((sr - hr) ** 2 + 1e-6).mean()
    raise ConfigError(f"unknown loss '{name}'; use l1, mse or charbonnier.")


def loss_name_at(step: int, spec: Any) -> str:
    return "mse" if step > spec.steps - spec.mse_finetune_steps else spec.loss


# --------------------------------------------------------------------------------------------


def _dist_env() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def _init_dist(world: int) -> torch.device:
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


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


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


def make_sampler(recipe: Recipe, images: list, *, batch_size: int, seed: int) -> Any:
    """The training-patch sampler for ``recipe``; the pixel and the GAN phase both use it."""
    from edgesr.data.pairs import PatchSampler, make_pairs

    return PatchSampler(
        make_pairs(images, scale=recipe.model.scale),
        scale=recipe.model.scale,
        color=recipe.model.color,
        lr_patch=recipe.data.lr_patch,
        batch_size=batch_size,
        augment=recipe.data.augment,
        seed=seed,
        degradation=recipe.data.degradation,
        camera=recipe.data.camera,
    )


def load_train_images(data: Any, recipe: Recipe) -> tuple[list, str]:
    """Images to train on and a description of where they came from."""
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


def _load_val_pairs(val: Any, recipe: Recipe) -> list:
    if val is None:
        return []
    from edgesr.evaluate import resolve_eval_data

    return resolve_eval_data(val, scale=recipe.model.scale)


def train(
    recipe: Recipe,
    data: str | Path | Iterable[Any] | None = None,
    *,
    out: str | Path,
    val: str | Path | Iterable[Any] | None = "recipe",
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
) -> TrainResult:
    """Train the recipe's net on ``data`` (default: the recipe's ``data.train``).

    ``data`` is a folder (DIV2K layout or any images), ``"embedded"``, or any iterable of
    HxWx3 uint8 RGB arrays. ``val`` is ``"recipe"`` (the recipe's ``data.val``), a folder,
    ``"embedded"``, an iterable, or None. ``out`` is the run directory; an existing run there
    is an error unless ``resume`` (continue it) or ``force`` (replace it).

    A recipe with a ``gan`` section trains in two phases (see :mod:`edgesr.train.gan`).
    """
    if recipe.gan is not None:
        from edgesr.train.gan import train_gan

        kwargs = dict(out=out, val=val, resume=resume, force=force, progress=progress)
        return train_gan(recipe, data, stream=stream, **kwargs)
    stream = stream or sys.stderr
    world, rank = _dist_env()
    spec = recipe.train
    if recipe.data.batch_size % world:
        raise ConfigError(
            f"data.batch_size {recipe.data.batch_size} must divide evenly over {world} processes."
        )
    run_dir = Path(out)
    ckpt = None
    if rank == 0:
        ckpt = prepare_run_dir(run_dir, recipe, resume=resume, force=force)
    device = _init_dist(world)
    _barrier(world)
    if rank != 0 and resume:
        ckpt = latest_checkpoint(run_dir)
    torch.set_num_threads(spec.threads or max(1, (os.cpu_count() or 1) // world))

    images, data_desc = load_train_images(data, recipe)
    sampler = make_sampler(
        recipe, images, batch_size=recipe.data.batch_size // world, seed=spec.seed * 1000 + rank
    )
    val_pairs = (
        _load_val_pairs(
            recipe.data.val if isinstance(val, str) and val == "recipe" else val, recipe
        )
        if rank == 0
        else []
    )

    torch.manual_seed(spec.seed)
    net = build_from_recipe(recipe).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    state: dict[str, Any] = {"elapsed_s": 0.0, "val_psnr": None, "data": data_desc}
    start_step = 0
    if ckpt is not None:
        state = load_checkpoint(ckpt, model=net, optimizer=optimizer)
        sampler.load_state_dict(
            state.pop("sampler")[str(rank)] if world > 1 else state.pop("sampler")["0"]
        )
        start_step = int(state.pop("step"))
        if state.get("data") != data_desc:
            raise DataError(
                f"cannot resume {run_dir}: it trained on {state.get('data')!r}, not {data_desc!r}; pass the same --data."
            )
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )

    log_path = run_dir / "log.jsonl"
    bar = Progress(
        total=spec.steps, start=start_step, stream=stream, enabled=progress and rank == 0
    )
    t0 = time.perf_counter() - float(state.get("elapsed_s", 0.0))
    step = start_step

    def validate() -> float | None:
        if not val_pairs:
            return None
        from edgesr.evaluate import evaluate_pairs_y

        net.eval()
        with torch.inference_mode():
            psnr = evaluate_pairs_y(
                lambda x: net(torch.from_numpy(x).to(device)).cpu().numpy(),
                val_pairs,
                scale=recipe.model.scale,
                color=recipe.model.color,
            )
        net.train()
        return psnr

    def checkpoint() -> None:
        samplers = _gather_sampler_states(sampler, world)
        if rank == 0:
            save_checkpoint(
                run_dir,
                step=step,
                model=net,
                optimizer=optimizer,
                state={**state, "elapsed_s": time.perf_counter() - t0, "sampler": samplers},
                keep=spec.keep_checkpoints,
            )
        _barrier(world)

    def log(entry: dict[str, Any]) -> None:
        if rank == 0:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    net.train()
    running = 0.0
    try:
        while step < spec.steps:
            step += 1
            lr = lr_at(step, spec)
            for group in optimizer.param_groups:
                group["lr"] = lr
            lr_batch, hr_batch = sampler.next_batch()
            sr = model(lr_batch.to(device, non_blocking=True))
            loss = pixel_loss(loss_name_at(step, spec), sr, hr_batch.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if spec.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), spec.grad_clip)
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise EdgesrError(
                    f"training diverged at step {step} (loss {value}); lower train.lr or set train.grad_clip, then resume from the last checkpoint."
                )
            running = value if step == start_step + 1 else 0.9 * running + 0.1 * value
            if step % spec.log_every == 0 or step == spec.steps:
                log(
                    {"step": step, "loss": running, "lr": lr, "elapsed_s": time.perf_counter() - t0}
                )
            if rank == 0 and step % spec.val_every == 0 and step != spec.steps:
                state["val_psnr"] = validate()
                log({"step": step, "val_psnr": state["val_psnr"]})
            bar.update(step, loss=running, psnr=state.get("val_psnr"))
            if step % spec.ckpt_every == 0 and step != spec.steps:
                checkpoint()
        if rank == 0:
            state["val_psnr"] = validate()
            log({"step": step, "val_psnr": state["val_psnr"]})
        checkpoint()
    except KeyboardInterrupt:
        if world == 1 and step > start_step:
            checkpoint()
            raise EdgesrError(
                f"interrupted at step {step}; a checkpoint was saved. Continue with --resume --out {run_dir}."
            ) from None
        raise
    finally:
        bar.close()

    wall = time.perf_counter() - t0
    model_path = run_dir / "model.safetensors"
    if rank == 0:
        info = ModelInfo.from_recipe(recipe)
        save_model(
            net.cpu(),
            model_path,
            info,
            extra={
                "steps": str(step),
                "train_data": data_desc,
                "val_psnr_y": "" if state["val_psnr"] is None else f"{state['val_psnr']:.4f}",
                "wall_time_s": f"{wall:.1f}",
                "world_size": str(world),
            },
        )
        summary = {
            "recipe": recipe.name,
            "recipe_hash": recipe.hash(),
            "steps": step,
            "val_psnr_y": state["val_psnr"],
            "wall_time_s": wall,
            "world_size": world,
            "train_data": data_desc,
            "edgesr_version": __version__,
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        atomic_write_bytes(
            run_dir / "train_summary.json", (json.dumps(summary, indent=2) + "\n").encode()
        )
    _barrier(world)
    return TrainResult(
        run_dir=run_dir,
        model_path=model_path,
        steps=step,
        val_psnr=state["val_psnr"],
        wall_time_s=wall,
    )


def _gather_sampler_states(sampler: Any, world: int) -> dict[str, Any]:
    """Every rank's data-sampler state, so a resumed DDP run draws the same batches."""
    own = sampler.state_dict()
    if world == 1:
        return {"0": own}
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, own)
    return {str(i): s for i, s in enumerate(gathered)}
