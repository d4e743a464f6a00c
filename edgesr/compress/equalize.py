"""Cross-layer channel equalization before INT8: the same function, weights that quantize better.

ReLU and PReLU are positively homogeneous, ``act(s * x) = s * act(x)`` for ``s > 0``, so
scaling output channel ``i`` of a producer conv (weights and bias) by ``s_i`` and input channel
``i`` of its consumer by ``1 / s_i`` leaves the net's function unchanged (Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", ICCV 2019).

It matters for the consumer: INT8 weights are quantized per output channel, so one input
channel with large weights sets the step for all the others. The shipped ESPCN x4 is such a
net: input channel 4 of its last conv has weights up to 0.94, the other 31 stay below 0.41,
and quantizing that conv's weights alone cost 0.13 dB on Set5 (every other quantizer alone
0.03 dB or less). Equalization takes ``s_i = (r_i / median(r)) ** power`` with ``r_i`` the
largest consumer weight of input channel ``i``; ``power=1`` would make all ``r_i`` equal but
multiplies the producer's activation range for the large channels by as much, which the
per-tensor activation quantizer pays for; ``power=0.5`` halves the spread on both sides.
Measured on the shipped ESPCN x4 with NNCF PTQ (embedded validation images, from which the
power was chosen among 0.4/0.5/0.6 and activation-range terms): -1.01 dB -> -0.66 dB;
on Set5: -0.18 dB -> -0.07 dB.

Data-free and deterministic: only weights are read. It does not help every net: AnchorNet and
FSRCNN, whose ranges are more even (spread 2-7x against 9-16x for ESPCN x2/x4), lost 0.01-0.12 dB
more in PTQ with it. :func:`choose_equalization` therefore measures both on validation images.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgesr.compress.prune import PRUNERS, chain_for, check_link, weight_dims
from edgesr.errors import ConfigError

__all__ = ["EQUALIZE_MODES", "EqualizeResult", "choose_equalization", "equalize_channels"]

EQUALIZE_MODES: tuple[str, ...] = ("auto", "always", "never")


# Activations that commute with a positive per-channel scale.
_HOMOGENEOUS = (nn.ReLU, nn.PReLU, nn.LeakyReLU, nn.Identity)


@dataclass
class EqualizeResult:
    """The equalized net and what equalization did, keyed by producer layer.

    ``spread``: (before, after) of the largest / smallest input-channel weight range of the
    consumer.
    """

    model: nn.Module
    scales: dict[str, list[float]]
    spread: dict[str, tuple[float, float]]
    power: float


def _in_ranges(conv: nn.Module) -> torch.Tensor:
    """Largest |weight| of each input channel of ``conv``."""
    in_dim = weight_dims(conv)[1]
    w = conv.weight.detach().abs().transpose(0, in_dim)
    return w.flatten(1).amax(dim=1)


@torch.no_grad()
def equalize_channels(model: nn.Module, *, power: float = 0.5) -> EqualizeResult:
    """Rescale every hidden channel of ``model``'s deployable form for INT8 (see module doc).

    Args:
        model: an ESPCN, FSRCNN or AnchorNet; not modified. Its ``fuse()`` form is equalized
            (a RepConv AnchorNet comes out folded, as for pruning).
        power: how far each consumer input channel's weight range moves to the median one,
            in (0, 1]; 0.5 measured best (module doc).

    Returns the equalized net (float function unchanged up to rounding) and its scales.
    """
    if not isinstance(power, (int, float)) or isinstance(power, bool) or not 0 < power <= 1:
        raise ConfigError(f"equalization power must be in (0, 1], got {power!r}")
    if not any(cls in PRUNERS for cls in type(model).__mro__):
        supported = ", ".join(sorted(c.__name__ for c in PRUNERS))
        raise ConfigError(
            f"cannot equalize a {type(model).__name__}; channel equalization supports {supported}"
        )
    net = model.fuse() if hasattr(model, "fuse") else copy.deepcopy(model)
    net.eval()
    scales: dict[str, list[float]] = {}
    spread: dict[str, tuple[float, float]] = {}
    links = chain_for(net).links
    for link in links:
        check_link(net, link)
        act = net.get_submodule(link.act) if link.act is not None else None
        if act is not None and not isinstance(act, _HOMOGENEOUS):
            raise ConfigError(
                f"cannot equalize across {link.act} ({type(act).__name__}): scaling a channel "
                "only commutes with ReLU/PReLU; set compress.equalize: never for this net"
            )
    for link in links:
        prod, cons = net.get_submodule(link.producer), net.get_submodule(link.consumer)
        ranges = _in_ranges(cons).double().clamp_min(1e-12)
        s = (ranges / ranges.median()) ** power
        out_dim, _ = weight_dims(prod)
        _, in_dim = weight_dims(cons)
        shape_p = [1] * prod.weight.dim()
        shape_p[out_dim] = -1
        shape_c = [1] * cons.weight.dim()
        shape_c[in_dim] = -1
        prod.weight.mul_(s.to(prod.weight).view(shape_p))
        if prod.bias is not None:
            prod.bias.mul_(s.to(prod.bias))
        cons.weight.div_(s.to(cons.weight).view(shape_c))
        after = _in_ranges(cons).double()
        spread[link.producer] = (
            float(ranges.max() / ranges.min()),
            float(after.max() / after.min().clamp_min(1e-12)),
        )
        scales[link.producer] = [float(v) for v in s]
    return EqualizeResult(model=net, scales=scales, spread=spread, power=float(power))


def choose_equalization(
    model: nn.Module,
    calib: Sequence[Any],
    eval_pairs: Sequence[Any],
    *,
    mode: str = "auto",
    power: float = 0.5,
    signed_activations: bool = False,
    weight_bits: int = 8,
    log: Callable[[str], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The net to quantize: ``model`` or its equalized form, and a report for the manifest.

    ``mode="auto"`` runs NNCF PTQ on both and keeps the one with the higher Y-PSNR on
    ``eval_pairs`` (validation images, never the benchmark reported on); "always"/"never"
    decide without measuring. ``signed_activations`` and ``weight_bits`` as for the target's
    PTQ (TensorRT: signed, 8 bits; ORT-CPU: unsigned, 7 bits).
    """
    if mode not in EQUALIZE_MODES:
        raise ConfigError(f"equalize must be one of {list(EQUALIZE_MODES)}, got {mode!r}")
    if mode == "never":
        return model, {"mode": mode, "applied": False}
    try:
        eq = equalize_channels(model, power=power)
    except ConfigError as err:
        if mode == "always":
            raise
        # "auto" on a net it cannot apply to: quantize the net as it is, and say why.
        if log is not None:
            log(f"  equalization: not applicable ({err})")
        return model, {"mode": mode, "applied": False, "reason": str(err)}
    report: dict[str, Any] = {
        "mode": mode,
        "power": eq.power,
        "weight_range_spread": {k: list(v) for k, v in eq.spread.items()},
    }
    if mode == "always":
        return eq.model, {**report, "applied": True}
    from edgesr.compress.mixed import model_psnr
    from edgesr.compress.nncf_int8 import ptq_nncf

    if not eval_pairs:
        raise ConfigError("equalize: auto needs validation images to measure PTQ on.")
    scale = int(model.scale)
    color = "y" if int(getattr(model, "num_channels", 1)) == 1 else "rgb"
    t0 = time.perf_counter()
    psnr = {
        name: model_psnr(
            ptq_nncf(net, calib, signed_activations=signed_activations, weight_bits=weight_bits),
            eval_pairs,
            scale=scale,
            color=color,
        )
        for name, net in (("plain", model), ("equalized", eq.model))
    }
    applied = psnr["equalized"] > psnr["plain"]
    if log is not None:
        log(
            f"  equalization: PTQ Y-PSNR on validation {psnr['plain']:.3f} dB plain, "
            f"{psnr['equalized']:.3f} dB equalized -> {'equalized' if applied else 'plain'}"
        )
    report.update(
        applied=applied,
        signed_activations=signed_activations,
        weight_bits=weight_bits,
        ptq_psnr_y={k: float(v) for k, v in psnr.items()},
        seconds=time.perf_counter() - t0,
    )
    return (eq.model if applied else model), report
