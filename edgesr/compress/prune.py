"""Structured channel pruning: hidden channels are physically removed, not zeroed.

Each supported net is described as an ordered chain of links ``producer conv -> optional
element-wise activation -> consumer conv``. Pruning a link drops output channels of the producer
(weight rows, bias entries, per-channel PReLU slopes) and the matching input channels of the
consumer, so the pruned net is a smaller net of the same class, plain convs only, whose ONNX
export has smaller Conv weights and really runs faster. The last layer (conv before
PixelShuffle, or FSRCNN's deconv) is only ever a consumer: it keeps its ``scale**2 * C``
(resp. ``C``) outputs.

Nets are pruned in their deployable form (``model.fuse()``), so a RepConv AnchorNet is folded
first and comes out as an ``AnchorNet(rep=False)`` of smaller ``num_feat``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from edgesr.archs import ESPCN, FSRCNN, AnchorNet, complexity
from edgesr.errors import ConfigError, DataError, ModelError

__all__ = [
    "CRITERIA",
    "PRUNERS",
    "Chain",
    "Link",
    "PruneResult",
    "chain_for",
    "channel_importance",
    "check_link",
    "kept_width",
    "prune_channels",
    "weight_dims",
]

CRITERIA: tuple[str, ...] = ("l1", "l2", "activation")


@dataclass(frozen=True)
class Link:
    """One prunable hidden tensor: ``producer`` makes it, ``act`` maps it, ``consumer`` reads it.

    ``param`` is the constructor keyword of the net that sets this width, so a pruned net can be
    rebuilt (e.g. from a saved weights file) as ``cls(**params, **result.arch_params)``.
    """

    producer: str
    act: str | None
    consumer: str
    param: str


@dataclass(frozen=True)
class Chain:
    """A net's prunable links, plus constructor keywords that its pruned form always needs."""

    links: tuple[Link, ...]
    fixed_params: dict[str, Any] = field(default_factory=dict)


def _espcn_chain(model: ESPCN) -> Chain:
    return Chain(
        (
            Link("conv1", "act1", "conv2", "num_feat"),
            Link("conv2", "act2", "conv3", "num_feat2"),
        )
    )


def _fsrcnn_chain(model: FSRCNN) -> Chain:
    convs = ["feature.0", "shrink.0"]
    convs += [f"mapping.{i}" for i in range(0, len(model.mapping), 2)]
    convs += ["expand.0", "deconv"]
    params = ["d"] + ["s"] * (len(convs) - 3) + ["d"]
    # Every conv of FSRCNN sits in a Sequential with its PReLU right after it.
    links = tuple(
        Link(p, _next_sibling(p), c, param)
        for p, c, param in zip(convs[:-1], convs[1:], params, strict=True)
    )
    return Chain(links)


def _anchornet_chain(model: AnchorNet) -> Chain:
    convs = ["head"] + [f"body.{i}" for i in range(0, len(model.body), 2)] + ["tail"]
    acts = ["head_act"] + [f"body.{i + 1}" for i in range(0, len(model.body), 2)]
    links = tuple(
        Link(p, a, c, "num_feat") for p, a, c in zip(convs[:-1], acts, convs[1:], strict=True)
    )
    return Chain(links, fixed_params={"rep": False})


def _next_sibling(name: str) -> str:
    parent, _, idx = name.rpartition(".")
    return f"{parent}.{int(idx) + 1}"


# Dispatch by class (subclasses too). A net is added by describing its chain, nothing else.
PRUNERS: dict[type[nn.Module], Callable[[Any], Chain]] = {
    ESPCN: _espcn_chain,
    FSRCNN: _fsrcnn_chain,
    AnchorNet: _anchornet_chain,
}


@dataclass
class PruneResult:
    """A pruned net and what pruning did to it.

    ``widths_before``/``widths_after`` and ``kept`` are keyed by producer layer name.
    ``macs_*`` are MACs per LR pixel (``edgesr.archs.complexity`` convention; multiply by
    H*W for a frame), ``params_*`` parameter counts, both of the deployable (fused) net.
    """

    model: nn.Module
    ratio: float
    criterion: str
    widths_before: dict[str, int]
    widths_after: dict[str, int]
    kept: dict[str, list[int]]
    arch_params: dict[str, Any]
    params_before: int
    params_after: int
    macs_before: float
    macs_after: float

    def summary(self, lr_size: tuple[int, int] = (270, 480)) -> str:
        """Human-readable table of widths, params and MACs (GMACs for an ``lr_size`` frame)."""
        pixels = lr_size[0] * lr_size[1]
        lines = [
            f"{type(self.model).__name__}: {self.criterion} pruning, ratio {self.ratio:g}",
            *(
                f"  {name}: {self.widths_before[name]} -> {self.widths_after[name]}"
                for name in self.widths_before
            ),
            f"  params: {self.params_before} -> {self.params_after} "
            f"({self.params_after / self.params_before:.1%})",
            f"  MACs/LR px: {self.macs_before:.0f} -> {self.macs_after:.0f} "
            f"({self.macs_after / self.macs_before:.1%}); "
            f"GMACs at {lr_size[0]}x{lr_size[1]}: {self.macs_before * pixels / 1e9:.2f} -> "
            f"{self.macs_after * pixels / 1e9:.2f}",
        ]
        return "\n".join(lines)


def kept_width(n: int, ratio: float, *, min_channels: int = 4, round_to: int = 4) -> int:
    """Channels kept of ``n`` when ``ratio`` of them are removed.

    ``floor(ratio * n)`` are removed, the rest is rounded *up* to a multiple of ``round_to``
    (so rounding never prunes more than asked), then clamped to ``[min(min_channels, n), n]``.
    """
    keep = n - math.floor(ratio * n + 1e-9)  # epsilon: 0.3 * 10 must remove 3, not 2
    keep = math.ceil(keep / round_to) * round_to
    return min(n, max(keep, min(min_channels, n)))


def _check_args(ratio: float, criterion: str, min_channels: int, round_to: int) -> None:
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, (int, float))
        or not (0.0 <= float(ratio) < 1.0)
    ):
        raise ConfigError(f"pruning ratio must be in [0, 1), got {ratio!r}")
    if criterion not in CRITERIA:
        raise ConfigError(
            f"unknown pruning criterion {criterion!r}; choose from {', '.join(CRITERIA)}"
        )
    for name, value in (("min_channels", min_channels), ("round_to", round_to)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")


def chain_for(model: nn.Module) -> Chain:
    """The prunable links of ``model`` (ConfigError for a net without a chain)."""
    for cls in type(model).__mro__:
        if cls in PRUNERS:
            return PRUNERS[cls](model)
    supported = ", ".join(sorted(c.__name__ for c in PRUNERS))
    raise ConfigError(
        f"cannot prune a {type(model).__name__}; channel pruning supports {supported}"
    )


def check_layer_ratios(model: nn.Module, layer_ratios: Mapping[str, float]) -> None:
    """ConfigError unless every key of ``layer_ratios`` names a prunable width of ``model``."""
    widths = {link.param for link in chain_for(model).links}
    if unknown := sorted(set(layer_ratios) - widths):
        raise ConfigError(
            f"no prunable width named {', '.join(map(repr, unknown))} in a "
            f"{type(model).__name__}; its widths are {', '.join(sorted(widths))}"
        )


# Weight layout (out_dim, in_dim): Conv2d is (out, in, kh, kw), ConvTranspose2d (in, out, kh, kw).
def weight_dims(conv: nn.Module) -> tuple[int, int]:
    return (1, 0) if isinstance(conv, nn.ConvTranspose2d) else (0, 1)


def _norm_except(w: Tensor, dim: int, p: int) -> Tensor:
    """Per-index L``p`` norm of ``w`` over every dimension but ``dim``."""
    return w.detach().double().transpose(0, dim).flatten(1).norm(p=p, dim=1)


def check_link(model: nn.Module, link: Link) -> None:
    """ModelError unless ``link`` is producer conv -> per-channel activation -> consumer conv."""
    prod, cons = model.get_submodule(link.producer), model.get_submodule(link.consumer)
    for name, conv in ((link.producer, prod), (link.consumer, cons)):
        if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) or conv.groups != 1:
            raise ModelError(f"{name} must be an ungrouped Conv2d/ConvTranspose2d to be pruned")
    if prod.out_channels != cons.in_channels:
        raise ModelError(
            f"{link.producer} makes {prod.out_channels} channels but {link.consumer} reads "
            f"{cons.in_channels}; the net does not match its pruning chain"
        )
    if link.act is not None:
        act = model.get_submodule(link.act)
        # Only element-wise activations keep channel i tied to channel i; PReLU is sliced.
        if not isinstance(act, nn.PReLU) and any(True for _ in act.parameters()):
            raise ModelError(f"{link.act} ({type(act).__name__}) cannot be pruned per channel")


def _activation_means(
    model: nn.Module, links: Iterable[Link], data: Any, batches: int, *, absolute: bool = True
) -> dict[str, Tensor]:
    """Mean |activation| (or mean activation) per channel of each link's hidden tensor, after
    its activation."""
    if data is None:
        raise ConfigError(
            "the 'activation' pruning criterion needs data: pass data=PatchSampler or LR batches"
        )
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []

    def make_hook(key: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            a = output.detach().double()
            a = a.abs() if absolute else a
            sums[key] = sums.get(key, 0) + a.sum(dim=(0, 2, 3))
            counts[key] = counts.get(key, 0) + a.numel() // a.shape[1]

        return hook

    for link in links:
        watched = model.get_submodule(link.act if link.act is not None else link.producer)
        hooks.append(watched.register_forward_hook(make_hook(link.producer)))
    ref = next(model.parameters())
    seen = 0
    try:
        with torch.no_grad():
            for lr in _lr_batches(data, batches):
                model(lr.to(device=ref.device, dtype=ref.dtype))
                seen += 1
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise DataError("the pruning data yielded no batches")
    return {k: sums[k] / counts[k] for k in sums}


def _lr_batches(data: Any, batches: int) -> Iterable[Tensor]:
    """Up to ``batches`` LR tensors from a sampler (``next_batch()``) or an iterable."""
    if hasattr(data, "next_batch"):
        for _ in range(batches):
            yield data.next_batch()[0]
        return
    for i, item in enumerate(data):
        if i >= batches:
            return
        yield item[0] if isinstance(item, (tuple, list)) else item


@torch.no_grad()
def channel_importance(
    model: nn.Module,
    link: Link,
    criterion: str = "l1",
    act_mean: Tensor | None = None,
) -> Tensor:
    """Importance of each channel of ``link``'s hidden tensor (see :func:`prune_channels`)."""
    prod, cons = model.get_submodule(link.producer), model.get_submodule(link.consumer)
    p = 2 if criterion == "l2" else 1
    consumed = _norm_except(cons.weight, weight_dims(cons)[1], p)
    if criterion == "activation":
        if act_mean is None:
            raise ConfigError("the 'activation' criterion needs activation statistics")
        return act_mean.to(consumed) * consumed
    produced = _norm_except(prod.weight, weight_dims(prod)[0], p)
    return produced * consumed


def _sliced_conv(conv: nn.Module, out_idx: Tensor | None, in_idx: Tensor | None) -> nn.Module:
    # deepcopy keeps every conv setting (stride, padding, output_padding, dilation, mode).
    new = copy.deepcopy(conv)
    out_dim, in_dim = weight_dims(conv)
    w = conv.weight.detach()
    if out_idx is not None:
        w = w.index_select(out_dim, out_idx)
        new.out_channels = len(out_idx)
        if conv.bias is not None:
            new.bias = nn.Parameter(conv.bias.detach()[out_idx].clone())
    if in_idx is not None:
        w = w.index_select(in_dim, in_idx)
        new.in_channels = len(in_idx)
    new.weight = nn.Parameter(w.clone(), requires_grad=conv.weight.requires_grad)
    return new


def _sliced_act(act: nn.Module, idx: Tensor) -> nn.Module:
    if isinstance(act, nn.PReLU) and act.num_parameters > 1:
        new = copy.deepcopy(act)
        new.weight = nn.Parameter(act.weight.detach()[idx].clone())
        new.num_parameters = len(idx)
        return new
    return act  # single-slope PReLU, ReLU, Tanh: nothing per channel


@torch.no_grad()
def _compensate_bias(consumer: nn.Module, kept: Tensor, mean: Tensor) -> None:
    """Fold the mean contribution of the channels not in ``kept`` into ``consumer``'s bias."""
    dropped = torch.ones(len(mean), dtype=torch.bool, device=mean.device)
    dropped[kept.to(mean.device)] = False
    if not dropped.any():
        return
    w = consumer.weight.detach().double()
    m = (mean * dropped).to(w)
    if isinstance(consumer, nn.ConvTranspose2d):
        # weight (in, out, kh, kw); each output pixel gets about (k/s)^2 of the k^2 taps.
        stride = consumer.stride[0] * consumer.stride[1]
        shift = torch.einsum("iokl,i->o", w, m) / stride
    else:
        shift = torch.einsum("oikl,i->o", w, m)
    if consumer.bias is None:
        consumer.bias = nn.Parameter(
            torch.zeros(w.shape[1 if isinstance(consumer, nn.ConvTranspose2d) else 0]).to(
                consumer.weight
            )
        )
    consumer.bias.add_(shift.to(consumer.bias))


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def prune_channels(
    model: nn.Module,
    *,
    ratio: float,
    layer_ratios: Mapping[str, float] | None = None,
    criterion: str = "l1",
    min_channels: int = 4,
    round_to: int = 4,
    data: Any = None,
    batches: int = 8,
    compensate: bool = True,
) -> PruneResult:
    """Remove ``ratio`` of every hidden layer's channels, keeping the most important ones.

    The input model is not modified: its deployable form (``model.fuse()``) is pruned and
    returned in eval mode, as a net of the same class that still has ``scale``,
    ``num_channels`` and ``fuse()``; fine-tune it afterwards (see ``edgesr.compress.distill``).
    Kept widths follow :func:`kept_width` (rounded up to ``round_to``, at least
    ``min_channels``). ``ratio=0`` returns an exact functional copy. ``layer_ratios`` overrides
    ``ratio`` per width, named by the net's hyper-parameter (ESPCN: ``num_feat``, ``num_feat2``):
    the layers do not cost or carry the same, so a uniform ratio is rarely the best trade.

    Importance criterion, for channel ``c`` of a hidden tensor made by conv ``P`` and read by
    conv ``Q`` (all computed on the unpruned net):

    - ``"l1"`` (default): ``||P.weight[c]||_1 * ||Q.weight[:, c]||_1``, the L1 norm of the
      output filter times the L1 norm of its input slice in the next layer, so a channel that
      is produced strongly but consumed weakly (or the reverse) ranks low. Biases are not
      counted: a removed channel's constant ``act(bias)`` contribution is dropped.
    - ``"l2"``: the same with L2 norms.
    - ``"activation"``: mean ``|act(P(x))[c]|`` over ``batches`` batches of ``data`` (a
      ``PatchSampler`` or an iterable of LR tensors / (lr, hr) pairs), times
      ``||Q.weight[:, c]||_1``: data-driven, so it also catches channels that a ReLU keeps
      dead or a tanh saturates.

    Bias compensation (``compensate`` and ``data`` given): a removed channel still fed its
    mean activation ``m_c`` into the next conv; that mean is folded into the consumer's bias
    (``m_c * sum of Q.weight[:, c]`` over the kernel; for a stride-s deconv divided by s^2, the
    taps one output pixel receives on average). Without it a trained net whose dropped ReLU
    channels carried a large positive bias loses its output level entirely before
    fine-tuning (ESPCN x4 at 50 %: Set5 7.5 dB).

    Raises ConfigError for a ratio outside [0, 1), a width the net does not have, an unknown
    criterion or an unsupported net.
    """
    _check_args(ratio, criterion, min_channels, round_to)
    layer_ratios = dict(layer_ratios or {})
    for value in layer_ratios.values():
        _check_args(value, criterion, min_channels, round_to)
    check_layer_ratios(model, layer_ratios)  # also fails on an unsupported class
    net = model.fuse() if hasattr(model, "fuse") else copy.deepcopy(model)
    net.eval()
    chain = chain_for(net)
    for link in chain.links:
        check_link(net, link)
    before = complexity(net, deploy=False)

    means = _activation_means(net, chain.links, data, batches) if criterion == "activation" else {}
    keep: dict[str, Tensor] = {}
    widths_before: dict[str, int] = {}
    for link in chain.links:
        n = net.get_submodule(link.producer).out_channels
        r = float(layer_ratios.get(link.param, ratio))
        k = kept_width(n, r, min_channels=min_channels, round_to=round_to)
        imp = channel_importance(net, link, criterion, means.get(link.producer))
        # Stable sort: ties (e.g. several all-zero filters) resolve to the lowest index.
        top = torch.argsort(imp, descending=True, stable=True)[:k]
        keep[link.producer] = top.sort().values.to(net.get_submodule(link.producer).weight.device)
        widths_before[link.producer] = n

    if compensate and data is not None:
        signed = _activation_means(net, chain.links, data, batches, absolute=False)
        for link in chain.links:
            _compensate_bias(
                net.get_submodule(link.consumer), keep[link.producer], signed[link.producer]
            )

    # Slice every conv once, with both its kept outputs and its kept inputs.
    in_keep = {link.consumer: keep[link.producer] for link in chain.links}
    for name in dict.fromkeys([*keep, *in_keep]):
        conv = net.get_submodule(name)
        _replace(net, name, _sliced_conv(conv, keep.get(name), in_keep.get(name)))
    for link in chain.links:
        if link.act is not None:
            act = net.get_submodule(link.act)
            _replace(net, link.act, _sliced_act(act, keep[link.producer]))

    widths_after = {name: len(idx) for name, idx in keep.items()}
    arch_params = dict(chain.fixed_params)
    for link in chain.links:
        arch_params.setdefault(link.param, widths_after[link.producer])
        if arch_params[link.param] != widths_after[link.producer]:
            raise ModelError(f"layers sharing {link.param!r} were pruned to different widths")
    for key, value in arch_params.items():
        if hasattr(net, key):  # e.g. AnchorNet.num_feat, so the attribute tells the truth
            setattr(net, key, value)
    after = complexity(net, deploy=False)
    return PruneResult(
        model=net.eval(),
        ratio=float(ratio),
        criterion=criterion,
        widths_before=widths_before,
        widths_after=widths_after,
        kept={name: idx.tolist() for name, idx in keep.items()},
        arch_params=arch_params,
        params_before=int(before["params"]),
        params_after=int(after["params"]),
        macs_before=float(before["macs_per_lr_pixel"]),
        macs_after=float(after["macs_per_lr_pixel"]),
    )
