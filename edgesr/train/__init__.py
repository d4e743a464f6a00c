"""Training stage: ``edgesr train``.

:func:`train` is the one entry point; it picks the loop. The pixel-loss loop
(:mod:`edgesr.train.loop`) and the GAN loop (:mod:`edgesr.train.gan`) share their run
scaffolding (:mod:`edgesr.train.run`) and do not import each other.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TextIO

from edgesr.recipe import Recipe
from edgesr.train.gan import train_gan
from edgesr.train.loop import train_pixel
from edgesr.train.run import DataSource, TrainResult, lr_at

__all__ = ["TrainResult", "lr_at", "train"]


def train(
    recipe: Recipe,
    data: DataSource | None = None,
    *,
    out: str | Path,
    val: DataSource | None = "recipe",
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
) -> TrainResult:
    """Train the recipe's net on ``data`` (default: the recipe's ``data.train``).

    ``data`` is a folder (DIV2K layout or any images), ``"embedded"``, or any iterable of
    HxWx3 uint8 RGB arrays. ``val`` is ``"recipe"`` (the recipe's ``data.val``), a folder,
    ``"embedded"``, an iterable, or None. ``out`` is the run directory; an existing run there
    is an error unless ``resume`` (continue it) or ``force`` (replace it).

    A recipe with a ``gan`` section trains in two phases (see :mod:`edgesr.train.gan`).
    """
    # A GAN recipe pre-trains with the pixel loop first, then trains adversarially.
    loop = train_pixel if recipe.gan is None else partial(train_gan, pretrain=train_pixel)
    return loop(
        recipe, data, out=out, val=val, resume=resume, force=force, progress=progress, stream=stream
    )
