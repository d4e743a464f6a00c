"""``edgesr profile``: latency percentiles, throughput, power and energy per frame.

A profile is an ``edgesr.profile/1`` JSON document (:mod:`edgesr.profile.schema`: the model's
identity, backend, frame size, latency statistics, power and the environment); ``edgesr
check`` reads it, on the machine that made it or another one. :mod:`edgesr.profile.profiler`
writes it (``profile_model``), on the backends of :mod:`edgesr.profile.backends` (``torch``,
``onnxruntime``, ``c``, ``tensorrt``, each imported only when used). A device without torch
runs the single-file profiler ``edgesr/profile/minimal.py`` instead, which writes the same
document (the profiler imports its core from there).

This module only re-exports those names, lazily, so importing it (or running ``python -m
edgesr.profile.minimal``) loads nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgesr.profile.backends import BACKENDS, make_runner, register_backend
    from edgesr.profile.errors import edgesr_errors
    from edgesr.profile.minimal import ProfileOptions
    from edgesr.profile.profiler import evaluate_quality, profile_model, write_profile_json
    from edgesr.profile.schema import SCHEMA, identify, load_profile_json, validate_profile

# name -> the submodule that defines it.
_API = {
    "BACKENDS": "edgesr.profile.backends",
    "make_runner": "edgesr.profile.backends",
    "register_backend": "edgesr.profile.backends",
    "edgesr_errors": "edgesr.profile.errors",
    "SCHEMA": "edgesr.profile.schema",
    "ProfileOptions": "edgesr.profile.minimal",
    "evaluate_quality": "edgesr.profile.profiler",
    "profile_model": "edgesr.profile.profiler",
    "write_profile_json": "edgesr.profile.profiler",
    "identify": "edgesr.profile.schema",
    "load_profile_json": "edgesr.profile.schema",
    "validate_profile": "edgesr.profile.schema",
}

__all__ = [
    "BACKENDS",
    "SCHEMA",
    "ProfileOptions",
    "edgesr_errors",
    "evaluate_quality",
    "identify",
    "load_profile_json",
    "make_runner",
    "profile_model",
    "register_backend",
    "validate_profile",
    "write_profile_json",
]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m edgesr.profile.minimal` does not find the module pre-imported.
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'edgesr.profile' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
