"""Mixed-precision INT8: keep the convs INT8 hurts most in float, chosen against a PSNR limit.

GAN generators lose far more in W8A8 than pixel-loss nets (their outputs carry high-frequency
texture that an 8-bit activation grid flattens), but the loss is concentrated in a few layers:
typically the first conv (it sees the raw 8-bit image) and the last (it produces the pixels).
Keeping just those in float recovers most of the drop at a small cost in speed.

The search uses NNCF PTQ models (fake-quantized torch, fast to build and evaluate):

1. all-INT8 drop; done if within the limit;
2. per-layer sensitivity: the drop with only that conv in float (one PTQ per conv);
3. greedy: add convs in order of sensitivity (smallest drop first) until the drop is within
   the limit, re-measuring the combination each time.

QAT afterwards usually recovers more, so a set chosen on PTQ drops is conservative.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesr.errors import ConfigError

__all__ = ["MixedPrecisionResult", "model_psnr", "select_float_layers"]


@dataclass(frozen=True)
class MixedPrecisionResult:
    """Convs kept in float and the PTQ measurements that chose them (Y-PSNR, dB)."""

    float_layers: tuple[str, ...]
    max_drop_db: float
    float_psnr: float
    all_int8_drop_db: float
    # PTQ drop of the chosen combination (== all_int8_drop_db when nothing is kept float).
    drop_db: float
    # Drop with only that conv in float, for every conv.
    sensitivity: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def met(self) -> bool:
        return self.drop_db <= self.max_drop_db

    def to_dict(self) -> dict[str, Any]:
        return {
            "float_layers": list(self.float_layers),
            "max_drop_db": self.max_drop_db,
            "float_psnr_y": self.float_psnr,
            "all_int8_ptq_drop_db": self.all_int8_drop_db,
            "chosen_ptq_drop_db": self.drop_db,
            "limit_met": self.met,
            "sensitivity_ptq_drop_db": self.sensitivity,
            "seconds": self.seconds,
        }


def model_psnr(model: nn.Module, pairs: Sequence[Any], *, scale: int, color: str) -> float:
    """Mean Y-PSNR of a torch net (float or NNCF fake-quantized) on SR pairs."""
    from edgesr.evaluate import evaluate_pairs_y

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    was_training = model.training
    model.eval()
    try:
        return evaluate_pairs_y(predict, pairs, scale=scale, color=color)
    finally:
        model.train(was_training)


def select_float_layers(
    model: nn.Module,
    calib: Iterable[np.ndarray],
    eval_pairs: Sequence[Any],
    *,
    max_drop_db: float,
    signed_activations: bool = False,
    weight_bits: int = 8,
    log: Callable[[str], None] | None = None,
) -> MixedPrecisionResult:
    """The smallest greedy set of convs to keep in float for a PTQ drop within ``max_drop_db``.

    Args:
        model: FP32 net (its deployable ``fuse()`` form is quantized; ``model`` is untouched).
        calib: calibration LR frames, as for :func:`edgesr.compress.nncf_int8.ptq_nncf`.
        eval_pairs: :class:`edgesr.data.pairs.SRPair` images the drop is measured on. Use
            validation images, not the benchmark the result is reported on.
        max_drop_db: allowed Y-PSNR drop of the INT8 model against the float one.
        signed_activations: quantize as for TensorRT (int8 activations) instead of ORT (u8).
        weight_bits: as for the target's PTQ (ORT-CPU: 7, TensorRT: 8).
    """
    from edgesr.compress.nncf_int8 import conv_layers, ptq_nncf

    if not (isinstance(max_drop_db, (int, float)) and max_drop_db >= 0):
        raise ConfigError(f"max_drop_db must be a number >= 0, got {max_drop_db!r}.")
    if not eval_pairs:
        raise ConfigError("mixed precision needs evaluation images to measure the drop on.")
    t0 = time.perf_counter()
    frames = list(calib)
    scale = int(model.scale)
    color = "y" if int(getattr(model, "num_channels", 1)) == 1 else "rgb"
    say = log or (lambda _text: None)

    def drop(float_layers: Sequence[str]) -> float:
        q = ptq_nncf(
            model,
            frames,
            signed_activations=signed_activations,
            float_layers=float_layers,
            weight_bits=weight_bits,
        )
        return base - model_psnr(q, eval_pairs, scale=scale, color=color)

    fp = model.fuse() if hasattr(model, "fuse") else model
    base = model_psnr(fp, eval_pairs, scale=scale, color=color)
    all_int8 = drop(())
    say(f"  mixed precision: all-INT8 PTQ drop {all_int8:.3f} dB (limit {max_drop_db:.3f})")
    if all_int8 <= max_drop_db:
        return MixedPrecisionResult(
            (), float(max_drop_db), base, all_int8, all_int8, {}, time.perf_counter() - t0
        )

    layers = conv_layers(model)
    sensitivity = {name: drop([name]) for name in layers}
    say(
        "  per-conv drop with that conv float: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sensitivity.items())
    )
    chosen: list[str] = []
    current = all_int8
    # At least one conv stays INT8: an all-float "INT8" model is not what was asked for.
    for name in sorted(layers, key=lambda k: sensitivity[k])[: len(layers) - 1]:
        chosen.append(name)
        current = drop(chosen) if len(chosen) > 1 else sensitivity[name]
        say(f"  float {', '.join(chosen)}: PTQ drop {current:.3f} dB")
        if current <= max_drop_db:
            break
    return MixedPrecisionResult(
        tuple(chosen),
        float(max_drop_db),
        base,
        all_int8,
        current,
        sensitivity,
        time.perf_counter() - t0,
    )
