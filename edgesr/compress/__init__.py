"""The compress stage: channel pruning, distillation and INT8 (NNCF PTQ + QAT, ORT-CPU and
TensorRT layouts). :func:`compress` runs them in order (:mod:`edgesr.compress.stages`); it is
loaded on first use, so ``import edgesr.compress`` imports neither torch nor NNCF."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CompressResult", "Latency", "StageResult", "compress"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("edgesr.compress.stages"), name)
    raise AttributeError(f"module 'edgesr.compress' has no attribute {name!r}")
