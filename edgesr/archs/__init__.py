"""Compact SR networks and their registry.

Every net maps LR ``(N, C, H, W)`` in [0, 1] to ``(N, C, scale*H, scale*W)`` for any H, W,
has ``scale`` and ``num_channels`` attributes, and ``fuse()`` returning the deployable,
inference-only equivalent. Recipes build nets by name with :func:`build_arch`.

``DISCRIMINATORS`` are training-only GAN critics (``recipe.gan.discriminator``), kept apart
from ``ARCHS`` because they are never deployed; build them with :func:`build_discriminator`.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from edgesr.archs.anchornet_arch import AnchorNet, RepConv3x3
from edgesr.archs.complexity import complexity, count_macs, count_params
from edgesr.archs.espcn_arch import ESPCN
from edgesr.archs.fsrcnn_arch import FSRCNN
from edgesr.archs.unet_discriminator_arch import UNetDiscriminator
from edgesr.archs.vgg_discriminator_arch import VGGPatchDiscriminator
from edgesr.errors import ConfigError

ARCHS: dict[str, type[nn.Module]] = {
    "espcn": ESPCN,
    "fsrcnn": FSRCNN,
    "anchornet": AnchorNet,
}

DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "unet": UNetDiscriminator,
    "vgg": VGGPatchDiscriminator,
}


def _arch_class(name: str, registry: dict[str, type[nn.Module]] = ARCHS) -> type[nn.Module]:
    try:
        return registry[name]
    except (KeyError, TypeError):
        kind = "discriminator" if registry is DISCRIMINATORS else "arch"
        raise ConfigError(
            f"unknown {kind} {name!r}; valid names: {', '.join(sorted(registry))}"
        ) from None


def arch_params(name: str) -> dict[str, Any]:
    """The keyword hyper-parameters of arch ``name`` with their defaults."""
    return _init_params(_arch_class(name))


def discriminator_params(name: str) -> dict[str, Any]:
    """The keyword hyper-parameters of discriminator ``name`` with their defaults."""
    return _init_params(_arch_class(name, DISCRIMINATORS))


def _init_params(cls: type[nn.Module]) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def build_arch(name: str, **params: Any) -> nn.Module:
    """Build arch ``name`` with ``params``; wrong names or values raise ConfigError."""
    return _build(name, ARCHS, params)


def build_discriminator(name: str, **params: Any) -> nn.Module:
    """Build GAN discriminator ``name`` with ``params``; wrong names or values raise ConfigError."""
    return _build(name, DISCRIMINATORS, params)


def _build(name: str, registry: dict[str, type[nn.Module]], params: dict[str, Any]) -> nn.Module:
    cls = _arch_class(name, registry)
    kind = "discriminator" if registry is DISCRIMINATORS else "arch"
    valid = _init_params(cls)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in valid.items())
        raise ConfigError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {kind} {name!r}; "
            f"valid parameters (with defaults): {listing}"
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid parameters for {kind} {name!r}: {exc}") from exc


__all__ = [
    "ARCHS",
    "DISCRIMINATORS",
    "ESPCN",
    "FSRCNN",
    "AnchorNet",
    "RepConv3x3",
    "UNetDiscriminator",
    "VGGPatchDiscriminator",
    "arch_params",
    "build_arch",
    "build_discriminator",
    "complexity",
    "count_macs",
    "count_params",
    "discriminator_params",
]
