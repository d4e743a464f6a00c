"""Where a net comes from, and how it is opened on a backend.

A model reference is a checkpoint or run directory (``--from``/``--model``), an ``.onnx`` exported
by edgesr, a TensorRT engine, or none (the recipe's shipped weights). compress, upscale,
evaluate and tune all resolve references here, so they agree on what each one means.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesr.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from torch import nn

    from edgesr.modelio import ModelInfo
    from edgesr.recipe import Recipe

BACKENDS = ("torch", "onnxruntime", "c", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass
class SourceModel:
    """An FP32 net, what it is, and where it came from (for the run's manifest)."""

    model: nn.Module
    info: ModelInfo
    source: str


def resolve_model(
    recipe: Recipe,
    from_: str | Path | None = None,
    *,
    data: Any = None,
    train_out: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> SourceModel:
    """``from_``, else the recipe's shipped weights, else (with ``train_out``) train the recipe.

    A ``from_`` that holds another net than the recipe's is refused: a pruned checkpoint of the
    wrong recipe would otherwise be compressed under the recipe's name.
    """
    from edgesr.modelio import load_model, load_pretrained, shipped_weights

    if from_ is not None:
        model, info = load_model(from_, recipe=recipe)
        want = (recipe.model.arch, recipe.model.scale, recipe.model.color)
        if (info.arch, info.scale, info.color) != want:
            raise ModelError(
                f"{from_} holds {info.arch} x{info.scale} ({info.color}), but recipe {recipe.name} is "
                f"{recipe.model.arch} x{recipe.model.scale} ({recipe.model.color}); pass the matching --recipe."
            )
        return SourceModel(model, info, str(from_))
    if shipped_weights(recipe) is not None:
        model, info = load_pretrained(recipe)
        return SourceModel(model, info, f"shipped weights ({recipe.model.weights})")
    if train_out is None:
        raise ModelError(
            f"recipe {recipe.name} ships no weights; train it first (`edgesr train --recipe "
            f"{recipe.name}`) and pass the run with --from."
        )
    if log is not None:
        log(
            f"recipe {recipe.name} ships no weights: training it first ({recipe.train.steps} steps)"
        )
    from edgesr.train import train

    result = train(recipe, data, out=train_out, progress=False)
    model, info = load_model(result.model_path)
    return SourceModel(model, info, str(result.model_path))


def model_kind(path: Path | None) -> str:
    """``recipe`` (shipped weights), ``onnx``, ``engine`` or ``torch`` (a checkpoint/run dir)."""
    if path is None:
        return "recipe"
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    return "torch"


def open_runner(
    model: str | Path | None,
    recipe: Recipe | None,
    *,
    backend: str = "onnxruntime",
    threads: int | None = None,
    spin: bool = True,
) -> tuple[Any, list[Any]]:
    """A runner for ``model`` (or ``recipe``'s shipped weights) on ``backend``.

    Returns the runner and the temporary folders it needs (call ``cleanup()`` on each when done):
    a checkpoint run on onnxruntime or c is exported to ONNX in one first. ``spin=False`` keeps
    ORT's idle workers from spinning, for runners that share the cores with other threads.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    path = Path(model).expanduser() if model is not None else None
    if path is None and recipe is None:
        raise ConfigError("a model needs --recipe NAME (shipped weights) or --model PATH.")
    kind = model_kind(path)
    if path is not None and kind == "engine":
        if backend != "tensorrt":
            raise ConfigError(
                f"{path} is a TensorRT engine; run it with --backend tensorrt (or pass the .onnx)."
            )
        return _tensorrt_runner(path), []
    if path is not None and kind == "onnx":
        if backend == "torch":
            raise ConfigError(
                f"{path} is an ONNX model; the torch backend needs a checkpoint or --recipe. "
                "Use --backend onnxruntime or c for an .onnx file."
            )
        if backend == "tensorrt":
            raise ConfigError(
                f"--backend tensorrt needs an engine; build one from {path} with "
                "`edgesr export --target tensorrt --from ...` and pass the .engine."
            )
        return _onnx_runner(path, backend=backend, threads=threads, spin=spin), []

    net, info, name = _load_torch(path, recipe)
    if backend == "torch":
        from edgesr.runtime.runners import TorchRunner

        if threads:
            import torch

            torch.set_num_threads(threads)
        fuse = getattr(net, "fuse", None)
        net = fuse() if callable(fuse) else net.eval()
        return TorchRunner(net, scale=info.scale, color=info.color, name=name), []
    if backend == "tensorrt":
        raise ConfigError(
            "--backend tensorrt runs a built engine: `edgesr export --target tensorrt` "
            "writes one; pass it with --model PATH.engine."
        )
    from edgesr.export.onnx_export import export_onnx

    tmp = tempfile.TemporaryDirectory(prefix="edgesr-model-")
    try:
        onnx_path = Path(tmp.name) / f"{Path(name.split(' ')[0]).stem or 'model'}.onnx"
        export_onnx(net, onnx_path, info=info, verify=False, force=True)
        runner = _onnx_runner(onnx_path, backend=backend, threads=threads, spin=spin, name=name)
    except BaseException:
        tmp.cleanup()
        raise
    return runner, [tmp]


def _load_torch(path: Path | None, recipe: Recipe | None) -> tuple[Any, Any, str]:
    from edgesr.modelio import load_model, load_pretrained

    if path is None:
        assert recipe is not None
        net, info = load_pretrained(recipe)
        return net, info, f"{recipe.name} (shipped weights)"
    net, info = load_model(path, recipe=recipe)
    return net, info, path.name


def _onnx_runner(
    path: Path, *, backend: str, threads: int | None, spin: bool, name: str = ""
) -> Any:
    if not path.is_file():
        raise ModelError(f"ONNX model {path} does not exist.")
    if backend == "c":
        from edgesr.runtime.capi import CRunner

        return CRunner(path, threads=threads, name=name)
    from edgesr.runtime.runners import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, threads=threads, spin=spin, name=name)


def _tensorrt_runner(path: Path) -> Any:
    from edgesr.errors import require

    if not path.is_file():
        raise ModelError(f"TensorRT engine {path} does not exist.")
    require(
        "tensorrt",
        purpose="--backend tensorrt",
        install="pip install tensorrt (on a machine with an NVIDIA GPU), or use --backend onnxruntime",
    )
    from edgesr.profile.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(path)
