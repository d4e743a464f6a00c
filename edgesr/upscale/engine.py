"""Opening a model for ``edgesr upscale``: a recipe, checkpoint, ONNX file or TensorRT engine on
a backend, wrapped in an :class:`edgesr.runtime.upscaler.Upscaler`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, ModelError
from edgesr.pipeline.models import BACKENDS, ENGINE_SUFFIXES
from edgesr.runtime.upscaler import FrameTimes, Upscaler, to_u8

__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "FrameTimes", "Upscaler", "open_upscaler", "to_u8"]


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
    from edgesr.pipeline.models import open_runner

    if model is None and recipe is None:
        raise ConfigError("upscale needs --recipe NAME (shipped weights) or --model PATH.")
    rec = None
    if recipe is not None:
        from edgesr.recipe import load_recipe

        rec = load_recipe(recipe, list(overrides))
    elif overrides:
        raise ConfigError("--set overrides need --recipe.")

    # The net shares the cores with decoding and encoding threads: ORT's spinning idle workers
    # would take them (bench_upscale, INT8 ESPCN x4, 2 threads, raw output, on the 2-vCPU VM
    # while other jobs ran: 21.8 -> 31.3 fps).
    runner, cleanup = open_runner(model, rec, backend=backend, threads=threads, spin=False)
    try:
        up = Upscaler(runner, tile=tile, overlap=overlap)
    except BaseException:
        for item in cleanup:
            item.cleanup()
        raise
    up._cleanup.extend(cleanup)
    if rec is not None and model is not None:
        _check_matches(up, rec, Path(model))
    return up


def _check_matches(up: Upscaler, rec: Any, path: Path) -> None:
    if up.scale != rec.model.scale or up.color != rec.model.color:
        raise ModelError(
            f"{path} upscales x{up.scale} ({up.color}), but recipe {rec.name} is "
            f"x{rec.model.scale} ({rec.model.color}); pass a matching --recipe or drop it "
            "(the model file says its own scale and colour)."
        )
