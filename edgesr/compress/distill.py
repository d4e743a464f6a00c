"""Knowledge distillation: fine-tune a compressed student against its FP32 teacher.

loss = alpha * L(student(lr), teacher(lr)) + (1 - alpha) * L(student(lr), hr)

The teacher's output is a dense, noise-free target that the pruned (or fake-quantized) student
can match far more easily than the HR image alone; the HR term keeps it anchored to the truth
and lets it correct the teacher's own errors. The student is trained in place; anything with
forward/backward works (plain nets, NNCF-wrapped nets).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from edgesr.errors import ConfigError, DataError, EdgesrError, ModelError
from edgesr.train.losses import pixel_loss
from edgesr.train.run import LrSchedule, lr_at

__all__ = ["DistillResult", "distill"]


@dataclass(frozen=True)
class DistillResult:
    """The fine-tuned student and its per-step losses ``(step, total, kd, hr)``.

    ``hr`` is NaN for steps whose batch had no HR target (only allowed with ``alpha=1``).
    """

    model: nn.Module
    history: list[tuple[int, float, float, float]]
    steps: int
    wall_time_s: float


def _check(steps: int, lr: float, alpha: float, loss: str, lr_min: float, log_every: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"distillation steps must be a positive int, got {steps!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ConfigError(f"distillation alpha must be in [0, 1], got {alpha!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"distillation lr must be a positive number, got {lr!r}")
    if not (isinstance(lr_min, (int, float)) and 0 <= lr_min <= lr):
        raise ConfigError(f"distillation lr_min must be in [0, lr], got {lr_min!r}")
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ConfigError(f"log_every must be a positive int, got {log_every!r}")
    pixel_loss(loss, torch.zeros(1), torch.zeros(1))  # raises ConfigError for an unknown name


def _batches(data: Any) -> Iterator[Any]:
    """Endless batches: ``data.next_batch()``, or passes over a re-iterable ``data``."""
    if hasattr(data, "next_batch"):
        while True:
            yield data.next_batch()
    while True:
        empty = True
        for item in data:
            empty = False
            yield item
        if empty:
            raise DataError(
                "the distillation data ran out of batches; pass a PatchSampler, a list of "
                "(lr, hr) pairs (reused as needed) or an iterable with enough batches for steps"
            )


def _split(item: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(item, Tensor):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise DataError(
        f"a distillation batch must be an (lr, hr) pair or an LR tensor, got {type(item).__name__}"
    )


def distill(
    student: nn.Module,
    teacher: nn.Module,
    data: Any,
    *,
    steps: int,
    lr: float = 1e-4,
    alpha: float = 0.5,
    loss: str = "l1",
    lr_min: float = 1e-6,
    batch_fn: Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor | None]] | None = None,
    log_every: int = 50,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    threads: int | None = None,
) -> DistillResult:
    """Fine-tune ``student`` for ``steps`` steps to match ``teacher`` and the HR targets.

    ``data``: an object with ``next_batch() -> (lr, hr)`` (e.g. ``PatchSampler``) or an
    iterable of ``(lr, hr)`` pairs, passed over again when exhausted. With ``alpha=1`` the HR
    target is unused and batches may be bare LR tensors (distillation on unlabelled frames).
    ``batch_fn(lr, hr) -> (lr, hr)`` transforms every batch first (device move, noise, ...).
    ``loss`` is ``l1``, ``mse`` or ``charbonnier`` for both terms. Adam with a cosine schedule
    from ``lr`` to ``lr_min``. The teacher runs in eval mode without gradients; both nets get
    their train/eval mode back at the end. ``on_log`` receives
    ``{"step", "loss", "kd", "hr", "lr"}`` every ``log_every`` steps and at the last one
    (losses averaged over the steps since the previous entry).

    Raises EdgesrError if the loss becomes non-finite (before that step is applied).
    """
    _check(steps, lr, alpha, loss, lr_min, log_every)
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise ModelError("the student has no trainable parameters to distill into")
    device = params[0].device
    teacher_device = next(teacher.parameters(), params[0]).device
    schedule = LrSchedule(steps=steps, lr=lr, lr_min=lr_min)
    optimizer = torch.optim.Adam(params, lr=lr)
    modes = (student.training, teacher.training)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    history: list[tuple[int, float, float, float]] = []
    t0 = time.perf_counter()
    window: list[tuple[float, float, float]] = []
    try:
        student.train()
        teacher.eval()
        batches = _batches(data)
        for step in range(1, steps + 1):
            lr_batch, hr_batch = _split(next(batches))
            if batch_fn is not None:
                lr_batch, hr_batch = batch_fn(lr_batch, hr_batch)
            lr_batch = lr_batch.to(device)
            with torch.no_grad():
                target = teacher(lr_batch.to(teacher_device)).to(device)
            sr = student(lr_batch)
            if sr.shape != target.shape:
                raise ModelError(
                    f"student output {tuple(sr.shape)} and teacher output {tuple(target.shape)} "
                    "differ; distill a student of the teacher's scale and colour channels"
                )
            kd = pixel_loss(loss, sr, target)
            # Only the weighted terms enter the graph, so alpha=1 (0) really ignores hr (teacher).
            if hr_batch is None:
                if alpha != 1:
                    raise DataError("batches without an HR target need alpha=1")
                hr_loss = None
            elif alpha == 1:
                with torch.no_grad():
                    hr_loss = pixel_loss(loss, sr, hr_batch.to(device))
            else:
                hr_loss = pixel_loss(loss, sr, hr_batch.to(device))
            if alpha == 1:
                total = kd
            elif alpha == 0:
                total = hr_loss
                kd = kd.detach()
            else:
                total = alpha * kd + (1 - alpha) * hr_loss
            value = float(total.detach())
            if not math.isfinite(value):
                raise EdgesrError(
                    f"distillation diverged at step {step} (loss {value}); lower lr (now {lr:g}), "
                    "check that the student and teacher give finite outputs on this data, or "
                    "start from a less perturbed student."
                )
            current_lr = lr_at(step, schedule)
            for group in optimizer.param_groups:
                group["lr"] = current_lr
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()

            entry = (
                value,
                float(kd.detach()),
                math.nan if hr_loss is None else float(hr_loss.detach()),
            )
            history.append((step, *entry))
            window.append(entry)
            if on_log is not None and (step % log_every == 0 or step == steps):
                means = [sum(col) / len(window) for col in zip(*window, strict=True)]
                on_log(
                    {
                        "step": step,
                        "loss": means[0],
                        "kd": means[1],
                        "hr": means[2],
                        "lr": current_lr,
                    }
                )
            if step % log_every == 0:
                window = []
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
        if threads is not None:
            torch.set_num_threads(old_threads)
    return DistillResult(
        model=student, history=history, steps=steps, wall_time_s=time.perf_counter() - t0
    )
