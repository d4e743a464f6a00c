"""GAN training of compact generators: pixel-loss pre-training, then adversarial fine-tuning.

:func:`edgesr.train.train` hands a recipe with a ``gan`` section to :func:`train_gan`, with
the pixel-loss loop for phase 1 (this module does not import that loop). Run directory::

    out/
      recipe.yaml, log.jsonl, checkpoints/   phase 2 (adversarial), laid out as in checkpoint.py
      pretrain/                              phase 1: an ordinary pixel-loss run of train.*
        model.safetensors                    the pixel-loss net, the baseline to compare with
      model.safetensors                      the EMA generator: a normal edgesr model file
      train_summary.json                     both phases

Phase 2 starts G from phase 1's weights and D from scratch. Each step updates G on
``pixel_weight * pixel + perceptual_weight * VGG19 + adversarial_weight * RaGAN +
phase_weight * phase consistency`` (against the upsampling grid) with D frozen, then the
EMA copy of G, then D on the RaGAN loss of real vs detached fake patches.
Checkpoints hold G, D (with its spectral-norm vectors), the EMA, both Adam states and the
sampler, so ``--resume`` continues whichever phase was interrupted, bit-identically on CPU.

Under ``torchrun`` both phases are data-parallel like the pixel-loss loop: each rank draws
``batch / world`` patches from its own stream, G's and D's gradients are averaged across ranks
(DistributedDataParallel), so every rank holds the same G, D and EMA; rank 0 validates and
writes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import torch
from torch import nn

from edgesr.errors import ConfigError, EdgesrError
from edgesr.modelio import ModelInfo, build_from_recipe, load_state, save_model
from edgesr.recipe import GanSpec, Recipe
from edgesr.train.checkpoint import latest_checkpoint
from edgesr.train.losses import (
    VGG19_ENV,
    PerceptualLoss,
    phase_loss,
    pixel_loss,
    ragan_d_loss,
    ragan_g_loss,
    resolve_vgg19_weights,
)
from edgesr.train.progress import Progress
from edgesr.train.run import (
    DataSource,
    LrSchedule,
    Run,
    TrainResult,
    barrier,
    check_resumable,
    dist_env,
    gather_sampler_states,
    init_dist,
    load_train_images,
    lr_at,
    make_sampler,
    prepare_run_dir,
    psnr_text,
)

PRETRAIN_DIR = "pretrain"


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for every parameter; buffers are copied."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.mul_(decay).add_(p, alpha=1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def build_gan_discriminator(recipe: Recipe) -> nn.Module:
    """The recipe's discriminator, for the model's channels, initialised from ``train.seed``."""
    from edgesr.archs import build_discriminator

    gan = _gan(recipe)
    # A forked RNG: D's init (and its spectral-norm start vectors) depend on the seed only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.train.seed)
        return build_discriminator(
            gan.discriminator, num_channels=recipe.model.num_channels, **gan.disc_params
        )


def build_perceptual(gan: GanSpec) -> PerceptualLoss | None:
    """The perceptual loss (None when its weight is 0); weights only from a local file."""
    if gan.perceptual_weight == 0:
        return None
    return PerceptualLoss(
        gan.perceptual_layers,
        gan.perceptual_layer_weights,
        weights=resolve_vgg19_weights(gan.vgg19_weights),
    )


def train_gan(
    recipe: Recipe,
    data: DataSource | None = None,
    *,
    out: str | Path,
    val: DataSource | None = "recipe",
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
    pretrain: Callable[..., TrainResult],
) -> TrainResult:
    """Two-phase GAN training; arguments as :func:`edgesr.train.train`.

    ``pretrain`` is the pixel-loss loop that runs phase 1, called like ``train`` (passed in:
    :func:`edgesr.train.loop.train_pixel`). Returns the EMA generator's file and validation
    PSNR; ``steps`` and ``wall_time_s`` count both phases (``train_summary.json`` has them
    per phase).
    """
    stream = stream or sys.stderr
    gan = _gan(recipe)
    world, rank = dist_env()
    batch = gan.batch_size or recipe.data.batch_size
    if batch % world:
        raise ConfigError(
            f"the GAN batch ({batch}: gan.batch_size, else data.batch_size) must divide evenly "
            f"over {world} processes."
        )
    run_dir = Path(out)
    pre_dir = run_dir / PRETRAIN_DIR
    # The perceptual net first: a wrong weights path fails before anything is written.
    perceptual = build_perceptual(gan)
    mode = perceptual.source if perceptual is not None else "off"
    ckpt = _prepare_gan_dir(run_dir, recipe, resume=resume, force=force) if rank == 0 else None
    # Every rank decides below whether phase 1 is done, so rank 0 must have prepared the
    # directory first (init_dist is a no-op in a plain process and idempotent under torchrun).
    init_dist(world)
    barrier(world)
    if rank == 0:
        _say(stream, _notice(perceptual))
    spec = recipe.train

    # Phase 1: the ordinary pixel-loss loop, in its own run directory.
    if _finished_steps(pre_dir) != spec.steps:
        if ckpt is not None:
            raise ConfigError(
                f"the adversarial phase of {run_dir} already started from a "
                f"{_finished_steps(pre_dir)}-step pre-training; train.steps cannot change now. "
                "Start a new run with --out."
            )
        pre_ckpt = resume and latest_checkpoint(pre_dir) is not None
        if progress and rank == 0:
            _say(
                stream,
                f"edgesr: phase 1/2, pixel-loss pre-training ({spec.steps} steps) in {pre_dir}",
            )
        # Resuming a run whose phase 1 never checkpointed restarts phase 1 (nothing to keep).
        pretrain(
            dataclasses.replace(recipe, gan=None),
            data,
            out=pre_dir,
            val=val,
            resume=pre_ckpt,
            force=resume and not pre_ckpt,
            progress=progress,
            stream=stream,
        )
    pre_summary = json.loads((pre_dir / "train_summary.json").read_text())

    # Phase 2 ---------------------------------------------------------------------------------
    run = Run.join(run_dir, recipe, world=world, rank=rank)
    if rank != 0 and resume:
        ckpt = latest_checkpoint(run_dir)
    images, data_desc = load_train_images(data, recipe)
    # A data stream of its own per rank (phase 1 used seed * 1000 + rank).
    sampler = make_sampler(
        recipe, images, batch_size=batch // world, seed=spec.seed * 1000 + 500 + rank
    )
    run.load_validation(val)

    device = run.device
    g = load_state(build_from_recipe(recipe), pre_dir / "model.safetensors").to(device)
    d = build_gan_discriminator(recipe).to(device)
    ema = copy.deepcopy(g).requires_grad_(False)
    if perceptual is not None:
        perceptual = perceptual.to(device)
    betas = (float(gan.betas[0]), float(gan.betas[1]))
    opt_g = torch.optim.Adam(g.parameters(), lr=gan.g_lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=gan.d_lr, betas=betas)
    models = {"g": g, "d": d, "ema": ema}
    optimizers = {"g": opt_g, "d": opt_d}
    run.state.update(data=data_desc, perceptual=mode)  # both must match on a resume
    step = 0
    if ckpt is not None:
        step, samplers = run.restore(ckpt, model=models, optimizer=optimizers)
        sampler.load_state_dict(samplers[str(rank)])
        if run.state.get("perceptual") != mode:
            raise ConfigError(
                f"cannot resume {run_dir}: its perceptual loss used {run.state.get('perceptual')}, "
                f"now {mode}; set gan.vgg19_weights / ${VGG19_ENV} as before."
            )
    elif rank == 0:
        (run_dir / "log.jsonl").unlink(missing_ok=True)  # from a phase 2 that never checkpointed
    # Data-parallel wrappers for the two backward passes; the G step runs D unwrapped (frozen,
    # no gradients to reduce) and the EMA follows the plain G, identical on every rank.
    g_step, d_step = g, d
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        g_step = DistributedDataParallel(g, device_ids=ids)
        d_step = DistributedDataParallel(d, device_ids=ids)
    start_step = step
    if progress and rank == 0:
        _say(
            stream,
            f"edgesr: phase 2/2, adversarial training ({gan.steps} steps, D '{gan.discriminator}'"
            f"{f', from step {step}' if step else ''}) in {run_dir}",
        )

    # Both learning rates: a cosine to gan.lr_min over the GAN steps, no warmup.
    g_sched = LrSchedule(steps=gan.steps, lr=gan.g_lr, lr_min=gan.lr_min)
    d_sched = LrSchedule(steps=gan.steps, lr=gan.d_lr, lr_min=gan.lr_min)
    bar = Progress(total=gan.steps, start=start_step, stream=stream, enabled=progress and run.main)
    run.start_clock()

    def checkpoint() -> None:
        samplers = gather_sampler_states(sampler, world)  # collective: every rank calls it
        run.checkpoint(step, samplers, model=models, optimizer=optimizers)

    sums: dict[str, float] = defaultdict(float)
    count = 0
    g.train()
    d.train()
    try:
        with run.interruptible() as interrupt:
            while step < gan.steps:
                n = step + 1
                lr_g, lr_d = lr_at(n, g_sched), lr_at(n, d_sched)
                for group in opt_g.param_groups:
                    group["lr"] = lr_g
                for group in opt_d.param_groups:
                    group["lr"] = lr_d
                lr_batch, hr_batch = sampler.next_batch()
                values = _gan_step(
                    gan,
                    g_step,
                    d,
                    d_step,
                    ema,
                    opt_g,
                    opt_d,
                    perceptual,
                    lr_batch.to(device, non_blocking=True),
                    hr_batch.to(device, non_blocking=True),
                    recipe.model.scale,
                )
                if not all(math.isfinite(v) for v in values.values()):
                    raise EdgesrError(
                        f"GAN training diverged at step {n} ({values}); lower gan.g_lr/gan.d_lr "
                        "or gan.adversarial_weight, then resume from the last checkpoint."
                    )
                step = n
                for key, value in values.items():
                    sums[key] += value
                count += 1
                if step % spec.log_every == 0 or step == gan.steps:
                    run.log(
                        {
                            "step": step,
                            "phase": "gan",
                            **{k: v / count for k, v in sums.items()},
                            "lr_g": lr_g,
                            "lr_d": lr_d,
                            "elapsed_s": run.elapsed(),
                        }
                    )
                    sums.clear()
                    count = 0
                if step % gan.val_every == 0 and step != gan.steps:
                    run.validate(ema, step, phase="gan")
                bar.update(step, loss=values["loss_g"], psnr=run.val_psnr)
                if step % gan.ckpt_every == 0 and step != gan.steps:
                    checkpoint()
                if interrupt.requested:
                    checkpoint()
                    raise run.interrupted(step, "GAN step")
        run.validate(ema, step, phase="gan")
        checkpoint()
    finally:
        bar.close()

    gan_wall = run.elapsed()
    pre_wall = float(pre_summary["wall_time_s"])
    pre_steps = int(pre_summary["steps"])
    model_path = run_dir / "model.safetensors"
    psnr = run.val_psnr
    if run.main:
        save_model(
            ema.cpu(),
            model_path,
            ModelInfo.from_recipe(recipe),
            extra={
                "generator": f"EMA (decay {gan.ema_decay}) of the GAN-trained net",
                "steps": str(step),
                "pretrain_steps": str(pre_steps),
                "pretrain_model": f"{PRETRAIN_DIR}/model.safetensors",
                "perceptual": mode,
                "train_data": data_desc,
                "val_psnr_y": psnr_text(psnr),
                "wall_time_s": f"{pre_wall + gan_wall:.1f}",
                "world_size": str(world),
            },
        )
        run.write_summary(
            {
                "steps": pre_steps + step,
                "val_psnr_y": psnr,
                "wall_time_s": pre_wall + gan_wall,
                "pretrain": {
                    "steps": pre_steps,
                    "val_psnr_y": pre_summary.get("val_psnr_y"),
                    "wall_time_s": pre_wall,
                    "model": f"{PRETRAIN_DIR}/model.safetensors",
                },
                "gan": {
                    "steps": step,
                    "val_psnr_y_ema": psnr,
                    "wall_time_s": gan_wall,
                    "s_per_step": gan_wall / max(step, 1),
                    "discriminator": gan.discriminator,
                    "ema_decay": gan.ema_decay,
                },
                "perceptual": mode,
            }
        )
    barrier(world)  # rank 0 has written the model before any rank returns
    return TrainResult(
        run_dir=run_dir,
        model_path=model_path,
        steps=pre_steps + step,
        val_psnr=psnr,
        wall_time_s=pre_wall + gan_wall,
    )


def _gan_step(
    gan: GanSpec,
    g: nn.Module,
    d: nn.Module,
    d_train: nn.Module,
    ema: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    perceptual: PerceptualLoss | None,
    lr: torch.Tensor,
    hr: torch.Tensor,
    period: int,
) -> dict[str, float]:
    """One G update (D frozen), the EMA update, one D update; returns the step's numbers.

    ``d_train`` is ``d`` itself or its data-parallel wrapper, used for D's own update only;
    ``period`` is the generator's upscaling factor (the phase loss's period).
    """
    d.requires_grad_(False)  # G's step must not leave gradients in D
    sr = g(lr)
    l_pix = pixel_loss(gan.pixel_loss, sr, hr)
    l_per = perceptual(sr, hr) if perceptual is not None else sr.new_zeros(())
    with torch.no_grad():
        real_ref = d(hr)
    l_adv = ragan_g_loss(real_ref, d(sr))
    l_phase = phase_loss(sr, hr, period) if gan.phase_weight else sr.new_zeros(())
    loss_g = (
        gan.pixel_weight * l_pix
        + gan.perceptual_weight * l_per
        + gan.adversarial_weight * l_adv
        + gan.phase_weight * l_phase
    )
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    ema_update(ema, g, gan.ema_decay)

    d.requires_grad_(True)
    # One D pass over real and fake together: the same logits as two passes, cheaper on CPU.
    real_logits, fake_logits = d_train(torch.cat([hr, sr.detach()])).chunk(2)
    loss_d = ragan_d_loss(real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    return {
        "loss_g": float(loss_g.detach()),
        "pixel": float(l_pix.detach()),
        "perceptual": float(l_per.detach()),
        "adv_g": float(l_adv.detach()),
        "phase": float(l_phase.detach()),
        "d": float(loss_d.detach()),
        "d_real": float(real_logits.detach().mean()),
        "d_fake": float(fake_logits.detach().mean()),
    }


def _gan(recipe: Recipe) -> GanSpec:
    if recipe.gan is None:
        raise ConfigError(f"recipe '{recipe.name}' has no gan section; add one or use train().")
    return recipe.gan


def _say(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def _notice(perceptual: PerceptualLoss | None) -> str:
    if perceptual is None:
        return "edgesr: GAN training without perceptual loss (gan.perceptual_weight is 0)."
    if not perceptual.random_weights:
        return f"edgesr: GAN perceptual loss uses {perceptual.source}."
    return (
        "edgesr: GAN perceptual loss uses a fixed-seed RANDOM-weight VGG19: neither "
        "gan.vgg19_weights nor $EDGESR_VGG19_WEIGHTS names a weights file. Random deep "
        "features still work as a texture loss (Liu et al., CVPR 2021), but ImageNet weights "
        "are the stronger choice: point gan.vgg19_weights at a local copy of torchvision's "
        "vgg19-dcbb9e9d.pth (edgesr never downloads it)."
    )


def _finished_steps(run_dir: Path) -> int | None:
    """Steps of a finished pixel-loss run in ``run_dir`` (None if it has not finished)."""
    summary = run_dir / "train_summary.json"
    if not (run_dir / "model.safetensors").is_file() or not summary.is_file():
        return None
    return int(json.loads(summary.read_text())["steps"])


def _prepare_gan_dir(run_dir: Path, recipe: Recipe, *, resume: bool, force: bool) -> Path | None:
    """As :func:`prepare_run_dir`; a resume before phase 2's first checkpoint goes to phase 1."""
    if not resume or latest_checkpoint(run_dir) is not None:
        return prepare_run_dir(run_dir, recipe, resume=resume, force=force)
    if not (run_dir / "recipe.yaml").is_file():
        raise ConfigError(
            f"nothing to resume in {run_dir}: no GAN run there; drop --resume to start a new run."
        )
    check_resumable(run_dir, recipe)
    return None
