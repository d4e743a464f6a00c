"""Compact SR networks and their registry.

Every net maps LR ``(N, C, H, W)`` in [0, 1] to ``(N, C, scale*H, scale*W)`` for any H, W,
has ``scale`` and ``num_channels`` attributes, and ``fuse()`` returning the deployable,
inference-only equivalent. Recipes build nets by name with :func:`build_arch`.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from edgesr.archs.anchornet_arch import AnchorNet, RepConv3x3
from edgesr.archs.complexity import complexity, count_macs, count_params
from edgesr.archs.espcn_arch import ESPCN
from edgesr.archs.fsrcnn_arch import FSRCNN
from edgesr.errors import ConfigError

ARCHS: dict[str, type[nn.Module]] = {
    "espcn": ESPCN,
    "fsrcnn": FSRCNN,
    "anchornet": AnchorNet,
}


def _arch_class(name: str) -> type[nn.Module]:
    try:
        return ARCHS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown arch {name!r}; valid names: {', '.join(sorted(ARCHS))}"
        ) from None


def arch_params(name: str) -> dict[str, Any]:
    """The keyword hyper-parameters of arch ``name`` with their defaults."""
    sig = inspect.signature(_arch_class(name).__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def build_arch(name: str, **params: Any) -> nn.Module:
    """Build arch ``name`` with ``params``; wrong names or values raise ConfigError."""
    cls = _arch_class(name)
    valid = arch_params(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in valid.items())
        raise ConfigError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for arch {name!r}; "
            f"valid parameters (with defaults): {listing}"
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid parameters for arch {name!r}: {exc}") from exc


__all__ = [
    "ARCHS",
    "ESPCN",
    "FSRCNN",
    "AnchorNet",
    "RepConv3x3",
    "arch_params",
    "build_arch",
    "complexity",
    "count_macs",
    "count_params",
]
