"""Named calibration sets: the LR frames INT8 quantization measures activation ranges on.

A calibration set is a small YAML file (``calibration/<name>.yaml``)::

    name: embedded
    description: what the frames are and where they come from
    source: embedded          # or a folder of images (absolute, ~/..., or relative to the YAML)
    domain: hr                # hr: images are HR, LR made by bicubic (like training)
                              # lr: images are used as LR inputs as they are (camera frames)
    num_images: 32            # frames drawn from the source (deterministic for the seed)
    crop: 96                  # side of the square crop, in LR pixels (null: whole frame)
    seed: 0

:func:`load_calibration` also accepts a folder path directly (defaults: domain ``hr``, 32
images, 96 px crops). Frames come back as float32 ``(1, C, h, w)`` arrays in the model's
colour space, exactly what the model sees at inference, so activation ranges measured on them
are the ranges met in deployment.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import ConfigError, DataError
from edgesr.recipe import read_yaml_file

__all__ = [
    "CalibrationSet",
    "available_calibration_sets",
    "calibration_dir",
    "load_calibration",
    "load_calibration_set",
]

_DOMAINS = ("hr", "lr")
_KEYS = ("name", "description", "source", "domain", "num_images", "crop", "seed")
_FOLDER_DEFAULTS = {"num_images": 32, "crop": 96, "seed": 0, "domain": "hr"}
# Procedural images added to the embedded photos: enough variety (text, edges, gratings,
# textures) to exercise every activation range without making calibration slow.
_EMBEDDED_PROCEDURAL = 16


@dataclass(frozen=True)
class CalibrationSet:
    """One named calibration set (a parsed ``calibration/*.yaml``)."""

    name: str
    source: str  # "embedded" or a folder
    description: str = ""
    domain: str = "hr"
    num_images: int = 32
    crop: int | None = 96
    seed: int = 0
    # The YAML it was read from; relative folder sources resolve against its folder.
    path: Path | None = None

    def folder(self) -> Path:
        """The source folder (only for non-embedded sets)."""
        folder = Path(os.path.expanduser(self.source))
        if not folder.is_absolute() and self.path is not None:
            folder = self.path.parent / folder
        return folder


def calibration_dir() -> Path:
    """``calibration/`` of a source checkout, or its copy installed as ``edgesr/_calibration``."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "_calibration"
    return installed if installed.is_dir() else package.parent / "calibration"


def available_calibration_sets() -> list[str]:
    """Names of the calibration sets shipped with edgesr."""
    return sorted(p.stem for p in calibration_dir().glob("*.yaml"))


def _positive_int(value: Any, key: str, where: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}.")
    return value


def _parse(raw: Any, where: str, path: Path | None) -> CalibrationSet:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a calibration set must be a YAML mapping with keys {_KEYS}.")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(_KEYS)}.")
    for key in ("name", "source"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ConfigError(f"{where}: '{key}' is required and must be a non-empty string.")
    domain = raw.get("domain", "hr")
    if domain not in _DOMAINS:
        raise ConfigError(
            f"{where}: domain must be 'hr' (HR images, LR made by bicubic) or 'lr' "
            f"(frames used as LR inputs), got {domain!r}."
        )
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: seed must be an integer >= 0, got {seed!r}.")
    return CalibrationSet(
        name=raw["name"],
        source=raw["source"],
        description=str(raw.get("description", "")),
        domain=domain,
        num_images=_positive_int(raw.get("num_images", 32), "num_images", where),
        crop=_positive_int(raw.get("crop", 96), "crop", where, allow_none=True),
        seed=seed,
        path=path,
    )


def load_calibration_set(name_or_path: str | os.PathLike) -> CalibrationSet:
    """A shipped set by name (``embedded``), a YAML file, or a folder of images."""
    text = os.fspath(name_or_path)
    candidate = Path(os.path.expanduser(text))
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"calibration set file {candidate} does not exist.")
        path = candidate
    elif candidate.is_dir() and not (calibration_dir() / f"{text}.yaml").is_file():
        return CalibrationSet(name=candidate.name, source=str(candidate), **_FOLDER_DEFAULTS)
    else:
        path = calibration_dir() / f"{text}.yaml"
        if not path.is_file():
            looks_like_path = "/" in text or "\\" in text or text.startswith((".", "~"))
            what = "calibration folder" if looks_like_path else "calibration set"
            raise DataError(
                f"{what} '{text}' does not exist. Pass a shipped set "
                f"({', '.join(available_calibration_sets()) or 'none found'}), a calibration "
                "YAML file, or an existing folder of images (e.g. frames from your camera)."
            )
    raw = read_yaml_file(path)
    return _parse(raw, str(path), path)


def _embedded_rgb(cset: CalibrationSet) -> list[tuple[str, np.ndarray]]:
    # The embedded *train* split (scikit-image photos + procedural images): never the
    # benchmark sets, and not the embedded validation images either, so validation and
    # benchmark numbers stay untouched by calibration.
    from edgesr.data.embedded import embedded_images

    images = embedded_images(split="train", seed=cset.seed, num_procedural=_EMBEDDED_PROCEDURAL)
    return [(im.name, im.rgb) for im in images]


def _folder_rgb(
    cset: CalibrationSet, count: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    from edgesr.data.folders import list_images
    from edgesr.data.io import read_image

    folder = cset.folder()
    fix = (
        "put the frames (png/jpg/bmp/tif/webp) directly in that folder, or use the shipped "
        "'embedded' calibration set (see calibration/README.md)"
    )
    if not folder.is_dir():
        raise DataError(f"calibration folder {folder} does not exist; {fix}.")
    try:
        paths = list_images(folder)
    except DataError as exc:
        raise DataError(f"calibration folder {folder} holds no images ({exc}); {fix}.") from exc
    # Decode only what is needed, in a seed-determined order: camera folders can be large.
    order = rng.permutation(len(paths))
    out: list[tuple[str, np.ndarray]] = []
    rejected: list[str] = []
    for i in order:
        try:
            rgb = read_image(paths[i])
        except DataError as exc:
            rejected.append(str(exc))
            continue
        out.append((paths[i].relative_to(folder).with_suffix("").as_posix(), rgb))
        if len(out) >= count:
            break
    if not out:
        reasons = "; ".join(rejected[:3]) + (
            f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
        )
        raise DataError(
            f"none of the {len(paths)} images in calibration folder {folder} can be read: "
            f"{reasons}; {fix}."
        )
    if rejected:
        from edgesr.data.folders import DataWarning

        warnings.warn(
            f"calibration folder {folder}: skipped {len(rejected)} unreadable file(s): "
            + "; ".join(rejected[:3]),
            DataWarning,
            stacklevel=3,
        )
    return out


def _lr_frame(
    rgb: np.ndarray, *, scale: int, domain: str, crop: int | None, rng: np.random.Generator
) -> np.ndarray | None:
    """One uint8 RGB LR frame (cropped); None if an HR image is too small for the scale."""
    from edgesr.data.imresize import imresize

    unit = scale if domain == "hr" else 1  # HR crops are cut on the scale grid
    h, w = (rgb.shape[0] // unit) * unit, (rgb.shape[1] // unit) * unit
    if h == 0 or w == 0:
        return None
    if crop is not None:
        # Crop before the bicubic reduction: a 4K camera frame is reduced in a fraction of the
        # time, and the few border pixels that differ do not matter for range statistics.
        ch, cw = min(h, crop * unit), min(w, crop * unit)
        y = int(rng.integers(0, (h - ch) // unit + 1)) * unit
        x = int(rng.integers(0, (w - cw) // unit + 1)) * unit
        rgb = rgb[y : y + ch, x : x + cw]
    else:
        rgb = rgb[:h, :w]
    if domain == "lr":
        return np.ascontiguousarray(rgb)
    return imresize(np.ascontiguousarray(rgb), 1.0 / scale)


def load_calibration(
    name_or_dir: str | os.PathLike | CalibrationSet = "embedded",
    *,
    scale: int,
    color: str,
    num_images: int | None = None,
    crop: int | None = None,
    domain: str | None = None,
    seed: int | None = None,
) -> list[np.ndarray]:
    """Calibration LR frames: float32 ``(1, C, h, w)`` in the model's colour space.

    Args:
        name_or_dir: a shipped set (:func:`available_calibration_sets`), a calibration YAML,
            a folder of images, or a :class:`CalibrationSet`.
        scale: the model's upscaling factor (HR images are reduced by it with MATLAB bicubic).
        color: the model's colour convention, ``"y"`` or ``"rgb"``.
        num_images, crop, domain, seed: override the set's values (None: keep them).
            ``crop`` is in LR pixels, 0 for whole frames; a frame smaller than it is used whole.

    Deterministic: the same arguments give the same frames. An empty or unreadable folder
    raises DataError naming the folder and the fix.
    """
    from edgesr.data.pairs import to_model_space

    cset = (
        name_or_dir
        if isinstance(name_or_dir, CalibrationSet)
        else load_calibration_set(name_or_dir)
    )
    where = f"calibration set '{cset.name}'"
    overrides: dict[str, Any] = {}
    if num_images is not None:
        overrides["num_images"] = _positive_int(num_images, "num_images", where)
    if crop is not None:
        overrides["crop"] = None if crop == 0 else _positive_int(crop, "crop", where)
    if domain is not None:
        if domain not in _DOMAINS:
            raise ConfigError(f"{where}: domain must be 'hr' or 'lr', got {domain!r}.")
        overrides["domain"] = domain
    if seed is not None:
        overrides["seed"] = seed
    cset = replace(cset, **overrides)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}.")
    if color not in ("y", "rgb"):
        raise ConfigError(f"color must be 'y' or 'rgb', got {color!r}.")

    rng = np.random.default_rng(cset.seed)
    if cset.source == "embedded":
        sources = _embedded_rgb(cset)
        sources = [sources[i] for i in rng.permutation(len(sources))]
    else:
        sources = _folder_rgb(cset, cset.num_images, rng)

    frames: list[np.ndarray] = []
    # With crops, cycle over the images when more frames than images are asked (each pass
    # takes new crops); whole frames are used once each.
    attempts = cset.num_images * 4 if cset.crop is not None else len(sources)
    for k in range(attempts):
        if len(frames) >= cset.num_images:
            break
        _, rgb = sources[k % len(sources)]
        lr = _lr_frame(rgb, scale=scale, domain=cset.domain, crop=cset.crop, rng=rng)
        if lr is None:
            continue
        x_model = to_model_space(lr, color)
        frames.append(np.ascontiguousarray(x_model.transpose(2, 0, 1)[None], dtype=np.float32))
    if not frames:
        raise DataError(
            f"{where}: no image is large enough for x{scale} (an HR side must be >= {scale} px); "
            "use larger frames or domain 'lr' for frames that are already LR."
        )
    return frames
