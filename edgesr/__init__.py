"""edgesr: edge deployment toolkit for image super-resolution.

The pipeline, each stage usable alone: ``train`` -> ``compress`` -> ``export`` -> ``runtime``
-> ``profile``/``check``. Heavy or optional packages (NNCF, TensorRT, onnxruntime) are imported
lazily by the stage that needs them, so ``import edgesr`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

from edgesr.errors import (
    ConfigError,
    DataError,
    DependencyError,
    EdgesrError,
    ModelError,
    OutputExistsError,
)

__all__ = [
    "ConfigError",
    "DataError",
    "DependencyError",
    "EdgesrError",
    "ModelError",
    "OutputExistsError",
    "__version__",
]
