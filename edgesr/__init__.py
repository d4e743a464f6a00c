"""edgesr: edge deployment toolkit for image super-resolution.

The pipeline, each stage usable alone: ``train`` -> ``compress`` -> ``export`` -> ``runtime``
-> ``profile``/``check``, with ``upscale`` (the camera pipeline) on top. The public API is
re-exported here flat where a name does not clash with a stage's package (``edgesr.load_recipe``,
``edgesr.run_compress``, ``edgesr.open_upscaler``); a stage's own function sits in its package
(``edgesr.train.train``, ``edgesr.compress.compress``, ``edgesr.evaluate.evaluate``). All are loaded
on first use: heavy or optional packages (torch, NNCF, TensorRT, ONNX Runtime) are imported only by the
stage that needs them, so ``import edgesr`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import Any

from edgesr.errors import (
    ConfigError,
    DataError,
    DependencyError,
    EdgesrError,
    ModelError,
    OutputExistsError,
)

# name -> the module that defines it, in pipeline order.
_API = {
    "load_recipe": "edgesr.recipe",
    "TrainResult": "edgesr.train",
    "CompressResult": "edgesr.compress.stages",
    "export_onnx": "edgesr.export.onnx_export",
    "Upscaler": "edgesr.runtime.upscaler",
    "int8_saturation": "edgesr.runtime.saturation",
    "profile_model": "edgesr.profile",
    "load_budget": "edgesr.check.budget",
    "check_budget": "edgesr.check.budget",
    "open_upscaler": "edgesr.upscale.engine",
    "run_compress": "edgesr.pipeline.compress",
}

__all__ = [
    "ConfigError",
    "DataError",
    "DependencyError",
    "EdgesrError",
    "ModelError",
    "OutputExistsError",
    "__version__",
    *_API,
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'edgesr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
