"""Self-describing model files: safetensors weights whose header says how to rebuild the net.

Every weights file edgesr writes carries the architecture, its keyword parameters, the scale,
the colour convention and the recipe it came from, so ``--model PATH`` needs no recipe. Loading
never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgesr import __version__
from edgesr.errors import ModelError
from edgesr.outputs import atomic_write_bytes

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelInfo:
    """What is needed to rebuild a net and to pre/post-process its frames."""

    arch: str
    scale: int
    color: str  # "y" or "rgb"
    params: dict[str, Any] = field(default_factory=dict)
    recipe: str = ""
    recipe_hash: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return 1 if self.color == "y" else 3

    @classmethod
    def from_recipe(cls, recipe: Any) -> ModelInfo:
        return cls(
            arch=recipe.model.arch,
            scale=recipe.model.scale,
            color=recipe.model.color,
            params=dict(recipe.model.params),
            recipe=recipe.name,
            recipe_hash=recipe.hash(),
        )


def build_model(info: ModelInfo) -> nn.Module:
    from edgesr.archs import build_arch

    return build_arch(info.arch, scale=info.scale, num_channels=info.num_channels, **info.params)


def build_from_recipe(recipe: Any) -> nn.Module:
    return build_model(ModelInfo.from_recipe(recipe))


def save_model(
    model: nn.Module, path: str | Path, info: ModelInfo, *, extra: dict[str, Any] | None = None
) -> Path:
    """Save weights + the ModelInfo header atomically; returns the path."""
    from safetensors.torch import save

    path = Path(path)
    meta = {
        "format": "edgesr.model/1",
        "edgesr_version": __version__,
        "arch": info.arch,
        "scale": str(info.scale),
        "color": info.color,
        "params": json.dumps(dict(info.params), sort_keys=True),
        "recipe": info.recipe,
        "recipe_hash": info.recipe_hash,
    }
    for key, value in {**info.extra, **(extra or {})}.items():
        meta[f"extra.{key}"] = value if isinstance(value, str) else json.dumps(value)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata=meta))
    return path


def read_info(path: str | Path) -> ModelInfo:
    """Read only the header of an edgesr weights file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"model file {path} does not exist; pass a .safetensors written by edgesr, a run directory, or an .onnx file."
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ModelError(
            f"{path} is not a readable safetensors file ({exc}); pass weights written by edgesr."
        ) from exc
    if meta.get("format") != "edgesr.model/1":
        raise ModelError(
            f"{path} has no edgesr header (arch/scale/colour unknown); load it with --recipe so the "
            "net can be built, or re-save it with edgesr."
        )
    try:
        return ModelInfo(
            arch=meta["arch"],
            scale=int(meta["scale"]),
            color=meta["color"],
            params=json.loads(meta.get("params", "{}")),
            recipe=meta.get("recipe", ""),
            recipe_hash=meta.get("recipe_hash", ""),
            extra={k[6:]: v for k, v in meta.items() if k.startswith("extra.")},
        )
    except (KeyError, ValueError) as exc:
        raise ModelError(
            f"{path}: the edgesr header is damaged ({exc}); re-export the model."
        ) from exc


def load_state(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights into ``model``; shapes must match exactly."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path} is not a readable safetensors file ({exc}).") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit the net it is loaded into: {exc}") from exc
    return model


def load_model(path: str | Path, *, recipe: Any = None) -> tuple[nn.Module, ModelInfo]:
    """Build and load a net from an edgesr weights file (or a run directory).

    Files without an edgesr header need ``recipe`` to say what net they hold.
    """
    path = resolve_weights(path)
    info = (
        ModelInfo.from_recipe(recipe)
        if recipe is not None and not _has_header(path)
        else read_info(path)
    )
    model = load_state(build_model(info), path)
    return model.eval(), info


def _has_header(path: Path) -> bool:
    try:
        read_info(path)
    except ModelError:
        return False
    return True


def resolve_weights(path: str | Path) -> Path:
    """A weights file, or a train/compress run directory holding ``model.safetensors``."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "model.safetensors"
        if candidate.is_file():
            return candidate
        raise ModelError(
            f"{path} is a folder without model.safetensors; pass the weights file or a finished run directory."
        )
    if not path.exists():
        raise ModelError(f"model {path} does not exist.")
    return path


def shipped_weights(recipe: Any) -> Path | None:
    """The weights shipped with edgesr for this recipe, or None if it has none."""
    name = recipe.model.weights
    if not name:
        return None
    path = WEIGHTS_DIR / name
    if not path.is_file():
        raise ModelError(
            f"recipe '{recipe.name}' names shipped weights '{name}', which are not in {WEIGHTS_DIR}; "
            "reinstall edgesr or train them with `edgesr train`."
        )
    return path


def load_pretrained(recipe: Any) -> tuple[nn.Module, ModelInfo]:
    path = shipped_weights(recipe)
    if path is None:
        raise ModelError(
            f"recipe '{recipe.name}' ships no weights; train it first: edgesr train --recipe {recipe.name}"
        )
    return load_model(path)
