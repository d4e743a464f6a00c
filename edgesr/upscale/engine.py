"""Opening a model for ``edgesr upscale``: a recipe, checkpoint, ONNX file or TensorRT engine on
a backend, wrapped in an :class:`edgesr.runtime.upscaler.Upscaler`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, ModelError
from edgesr.runtime.upscaler import FrameTimes, Upscaler, to_u8

__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "FrameTimes", "Upscaler", "open_upscaler", "to_u8"]

BACKENDS = ("torch", "onnxruntime", "c", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


# -- opening a model -----------------------------------------------------------------------------
def open_upscaler(
    *,
    model: str | Path | None = None,
    recipe: str | None = None,
    backend: str = "onnxruntime",
    threads: int | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    overrides: Sequence[str] = (),
) -> Upscaler:
    """Load a model on a backend and wrap it in an :class:`Upscaler`.

    ``model``: an edgesr run directory or checkpoint, an ``.onnx`` exported by edgesr (scale and
    colour from its metadata) or a TensorRT engine (``.engine``/``.plan``). Without it, the
    ``recipe``'s shipped weights. With both, the model must have the recipe's scale and colour.
    ``backend``: ``torch``, ``onnxruntime``, ``c`` (libedgesr) or ``tensorrt``; a checkpoint on
    onnxruntime/c is exported to ONNX in a temporary folder first (removed by ``close()``).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if model is None and recipe is None:
        raise ConfigError("upscale needs --recipe NAME (shipped weights) or --model PATH.")
    rec = None
    if recipe is not None:
        from edgesr.recipe import load_recipe

        rec = load_recipe(recipe, list(overrides))
    elif overrides:
        raise ConfigError("--set overrides need --recipe.")

    path = Path(model).expanduser() if model is not None else None
    kind = _model_kind(path)
    cleanup: list[Any] = []
    if kind == "engine":
        if backend != "tensorrt":
            raise ConfigError(
                f"{path} is a TensorRT engine; run it with --backend tensorrt (or pass the .onnx)."
            )
        runner = _tensorrt_runner(path)
    elif kind == "onnx":
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
        runner = _onnx_runner(path, backend=backend, threads=threads)
    else:
        net, info, name = _load_torch(path, rec)
        if backend == "torch":
            from edgesr.runtime.runners import TorchRunner

            if threads:
                import torch

                torch.set_num_threads(threads)
            fuse = getattr(net, "fuse", None)
            net = fuse() if callable(fuse) else net.eval()
            runner = TorchRunner(net, scale=info.scale, color=info.color, name=name)
        elif backend == "tensorrt":
            raise ConfigError(
                "--backend tensorrt runs a built engine: `edgesr export --target tensorrt` "
                "writes one; pass it with --model PATH.engine."
            )
        else:
            from edgesr.export.onnx_export import export_onnx

            tmp = tempfile.TemporaryDirectory(prefix="edgesr-upscale-")
            cleanup.append(tmp)
            onnx_path = Path(tmp.name) / f"{Path(name.split(' ')[0]).stem or 'model'}.onnx"
            try:
                export_onnx(net, onnx_path, info=info, verify=False, force=True)
            except BaseException:
                tmp.cleanup()
                raise
            runner = _onnx_runner(onnx_path, backend=backend, threads=threads, name=name)
    try:
        up = Upscaler(runner, tile=tile, overlap=overlap)
    except BaseException:
        for item in cleanup:
            item.cleanup()
        raise
    up._cleanup.extend(cleanup)
    if rec is not None and path is not None:
        _check_matches(up, rec, path)
    return up


def _model_kind(path: Path | None) -> str:
    if path is None:
        return "recipe"
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    return "torch"


def _check_matches(up: Upscaler, rec: Any, path: Path) -> None:
    if up.scale != rec.model.scale or up.color != rec.model.color:
        raise ModelError(
            f"{path} upscales x{up.scale} ({up.color}), but recipe {rec.name} is "
            f"x{rec.model.scale} ({rec.model.color}); pass a matching --recipe or drop it "
            "(the model file says its own scale and colour)."
        )


def _load_torch(path: Path | None, rec: Any) -> tuple[Any, Any, str]:
    from edgesr.modelio import load_model, load_pretrained

    if path is None:
        net, info = load_pretrained(rec)
        return net, info, f"{rec.name} (shipped weights)"
    net, info = load_model(path, recipe=rec)
    return net, info, path.name


def _onnx_runner(path: Path, *, backend: str, threads: int | None, name: str = "") -> Any:
    if not path.is_file():
        raise ModelError(f"ONNX model {path} does not exist.")
    if backend == "c":
        from edgesr.runtime.capi import CRunner

        return CRunner(path, threads=threads, name=name)
    from edgesr.runtime.runners import OnnxRuntimeRunner

    # The net shares the cores with decoding and encoding threads: ORT's spinning idle workers
    # would take them (bench_upscale, INT8 ESPCN x4, 2 threads, raw output, on the 2-vCPU VM
    # while other jobs ran: 21.8 -> 31.3 fps).
    return OnnxRuntimeRunner(path, threads=threads, spin=False, name=name)


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
