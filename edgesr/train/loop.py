"""The pixel-loss training loop: CPU-friendly, resumable, and data-parallel through ``torchrun``.

One process per core (or GPU) under ``torchrun`` uses gloo on CPU and NCCL on GPU; the global
batch stays ``data.batch_size`` whatever the world size, so a run's schedule does not depend
on how many processes ran it. The run folder, checkpoints, validation and Ctrl-C are
:mod:`edgesr.train.run`'s; :func:`edgesr.train.train` picks this loop or the GAN one.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TextIO

import torch

from edgesr.errors import ConfigError, EdgesrError
from edgesr.modelio import ModelInfo, build_from_recipe, save_model
from edgesr.recipe import Recipe, TrainSpec
from edgesr.train.checkpoint import latest_checkpoint
from edgesr.train.losses import pixel_loss
from edgesr.train.progress import Progress
from edgesr.train.run import (
    DataSource,
    Run,
    TrainResult,
    barrier,
    dist_env,
    gather_sampler_states,
    load_train_images,
    lr_at,
    make_sampler,
    prepare_run_dir,
    psnr_text,
)


def loss_name_at(step: int, spec: TrainSpec) -> str:
    return "mse" if step > spec.steps - spec.mse_finetune_steps else spec.loss


def train_pixel(
    recipe: Recipe,
    data: DataSource | None = None,
    *,
    out: str | Path,
    val: DataSource | None = "recipe",
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
) -> TrainResult:
    """Train the recipe's net on a pixel loss (``train.*``); arguments as
    :func:`edgesr.train.train`, which calls this for a recipe without a ``gan`` section."""
    stream = stream or sys.stderr
    world, rank = dist_env()
    spec = recipe.train
    if recipe.data.batch_size % world:
        raise ConfigError(
            f"data.batch_size {recipe.data.batch_size} must divide evenly over {world} processes."
        )
    run_dir = Path(out)
    ckpt = prepare_run_dir(run_dir, recipe, resume=resume, force=force) if rank == 0 else None
    run = Run.join(run_dir, recipe, world=world, rank=rank)
    if rank != 0 and resume:
        ckpt = latest_checkpoint(run_dir)

    images, data_desc = load_train_images(data, recipe)
    sampler = make_sampler(
        recipe, images, batch_size=recipe.data.batch_size // world, seed=spec.seed * 1000 + rank
    )
    run.load_validation(val)

    torch.manual_seed(spec.seed)
    net = build_from_recipe(recipe).to(run.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    run.state["data"] = data_desc  # a resume must train on the same data
    start_step = 0
    if ckpt is not None:
        start_step, samplers = run.restore(ckpt, model=net, optimizer=optimizer)
        sampler.load_state_dict(samplers[str(rank) if world > 1 else "0"])
    model: torch.nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        cuda = run.device.type == "cuda"
        model = DistributedDataParallel(net, device_ids=[run.device.index] if cuda else None)

    bar = Progress(total=spec.steps, start=start_step, stream=stream, enabled=progress and run.main)
    run.start_clock()
    step = start_step

    def checkpoint() -> None:
        samplers = gather_sampler_states(sampler, world)  # collective: every rank calls it
        run.checkpoint(step, samplers, model=net, optimizer=optimizer)

    net.train()
    running = 0.0
    try:
        with run.interruptible() as interrupt:
            while step < spec.steps:
                step += 1
                lr = lr_at(step, spec)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                lr_batch, hr_batch = sampler.next_batch()
                sr = model(lr_batch.to(run.device, non_blocking=True))
                hr = hr_batch.to(run.device, non_blocking=True)
                loss = pixel_loss(loss_name_at(step, spec), sr, hr)
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
                    run.log({"step": step, "loss": running, "lr": lr, "elapsed_s": run.elapsed()})
                if step % spec.val_every == 0 and step != spec.steps:
                    run.validate(net, step)
                bar.update(step, loss=running, psnr=run.val_psnr)
                if step % spec.ckpt_every == 0 and step != spec.steps:
                    checkpoint()
                if interrupt.requested:
                    checkpoint()
                    raise run.interrupted(step)
        run.validate(net, step)
        checkpoint()
    finally:
        bar.close()

    wall = run.elapsed()
    model_path = run_dir / "model.safetensors"
    if run.main:
        save_model(
            net.cpu(),
            model_path,
            ModelInfo.from_recipe(recipe),
            extra={
                "steps": str(step),
                "train_data": data_desc,
                "val_psnr_y": psnr_text(run.val_psnr),
                "wall_time_s": f"{wall:.1f}",
                "world_size": str(world),
            },
        )
        run.write_summary({"steps": step, "val_psnr_y": run.val_psnr, "wall_time_s": wall})
    barrier(world)  # rank 0 has written the model before any rank returns
    return TrainResult(
        run_dir=run_dir,
        model_path=model_path,
        steps=step,
        val_psnr=run.val_psnr,
        wall_time_s=wall,
    )
