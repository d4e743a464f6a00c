"""The one error taxonomy of edgesr.

Library code raises these; the CLI maps each class to an exit code and prints the message
without a traceback. Every message names the problem and, where there is one, the fix.
"""

from __future__ import annotations

from types import ModuleType


class EdgesrError(Exception):
    """Base class of every error edgesr raises on purpose."""

    exit_code = 1


class ConfigError(EdgesrError):
    """A recipe, override, budget file or command-line option is wrong."""

    exit_code = 2


class DataError(EdgesrError):
    """A dataset, image or calibration folder cannot be used."""

    exit_code = 3


class ModelError(EdgesrError):
    """A checkpoint, ONNX file or engine is missing, corrupt or does not fit the recipe."""

    exit_code = 4


class OutputExistsError(EdgesrError):
    """An output would overwrite an earlier run's results."""

    exit_code = 5


class DependencyError(EdgesrError):
    """An optional package (NNCF, TensorRT, ...) is needed for this step but not installed."""

    exit_code = 6


def require(module: str, *, purpose: str, install: str) -> ModuleType:
    """Import an optional module or raise a DependencyError that says how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{purpose} needs the '{module}' package, which is not importable ({exc}). "
            f"Install it with: {install}"
        ) from exc
