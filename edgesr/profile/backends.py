"""The backends ``edgesr profile`` runs a model on, looked up by name.

``torch``, ``onnxruntime``, ``c`` (the C runtime's binding, ``edgesr.runtime.capi.CRunner``) and
``tensorrt`` (``edgesr.profile.tensorrt_runner.TensorRTRunner``); each factory imports its
runner only when used. ``register_backend`` adds one.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, DependencyError, ModelError
from edgesr.profile.errors import edgesr_errors

__all__ = ["BACKENDS", "RunnerFactory", "make_runner", "register_backend"]

RunnerFactory = Callable[..., Any]


def _onnxruntime_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    from edgesr.runtime.runners import OnnxRuntimeRunner

    if path.suffix.lower() != ".onnx":
        raise ConfigError(f"--backend onnxruntime runs .onnx files, not {path.name}.")
    return OnnxRuntimeRunner(path, threads=threads, providers=list(providers) or None)


def _torch_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    from edgesr.modelio import load_model
    from edgesr.runtime.runners import TorchRunner

    if path.suffix.lower() == ".onnx":
        raise ConfigError(
            f"--backend torch runs edgesr weights (.safetensors or a run directory), not {path.name}; "
            "use --backend onnxruntime for ONNX files."
        )
    model, info = load_model(path)
    return TorchRunner(model, scale=info.scale, color=info.color, name=path.name)


def _c_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    if importlib.util.find_spec("edgesr.runtime.capi") is None:
        raise DependencyError(
            "--backend c needs the C runtime's Python binding (edgesr.runtime.capi), which this "
            "install does not have; build the C runtime (see runtime/README) or use "
            "--backend onnxruntime."
        )
    try:
        capi = importlib.import_module("edgesr.runtime.capi")
    except (ImportError, OSError) as exc:  # the shared library is missing or does not load
        raise DependencyError(
            f"the C runtime binding cannot be loaded ({exc}); build the C runtime library first."
        ) from exc
    if not hasattr(capi, "CRunner"):
        raise DependencyError("edgesr.runtime.capi has no CRunner; update the C runtime binding.")
    from edgesr.profile.minimal import ENGINE_SUFFIXES

    # libedgesr runs ONNX files on its ONNX Runtime path and serialized plans on TensorRT.
    engine = "tensorrt" if path.suffix.lower() in ENGINE_SUFFIXES else "onnxruntime"
    return capi.CRunner(path, threads=threads, engine_backend=engine)


def _tensorrt_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    from edgesr.profile.minimal import ENGINE_SUFFIXES
    from edgesr.profile.tensorrt_runner import TensorRTRunner

    if path.suffix.lower() not in ENGINE_SUFFIXES:
        raise ConfigError(
            f"--backend tensorrt runs a serialized engine ({', '.join(ENGINE_SUFFIXES)}), not "
            f"{path.name}; build one on the device with the TensorRT engine builder first."
        )
    return TensorRTRunner(path)


BACKENDS: dict[str, RunnerFactory] = {
    "torch": _torch_runner,
    "onnxruntime": _onnxruntime_runner,
    "c": _c_runner,
    "tensorrt": _tensorrt_runner,
}


def register_backend(name: str, factory: RunnerFactory) -> None:
    """Add a backend: ``factory(path, *, threads, providers) -> BaseRunner``."""
    BACKENDS[name] = factory


def make_runner(
    backend: str, model: str | Path, *, threads: int | None = None, providers: Sequence[str] = ()
) -> Any:
    """A (not yet activated) runner for ``model`` on ``backend``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}.")
    path = Path(model)
    if not path.exists():
        raise ModelError(f"model {path} does not exist.")
    with edgesr_errors():
        return BACKENDS[backend](path, threads=threads, providers=providers)
