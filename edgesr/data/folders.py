"""Image folders, the DIV2K layout and HR/LR pairs.

A dataset in edgesr is a folder of HR images (LR is made on the fly) or, for benchmarks and
pre-made degradations, an HR folder plus an LR folder. Bad files in an HR training folder are
skipped with a :class:`DataWarning`; paired evaluation data is strict, because silently scoring
on a subset would make numbers incomparable.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgesr.data.io import IMAGE_EXTENSIONS, read_image
from edgesr.errors import ConfigError, DataError

__all__ = [
    "DataWarning",
    "Div2kPaths",
    "LoadedImage",
    "find_div2k",
    "list_images",
    "load_hr_folder",
    "load_images",
    "load_pairs",
    "mod_crop",
]

_EXT_WORDS = "png/jpg/bmp/tif/webp"
_MAX_REASONS = 5  # how many rejected files an error message lists


class DataWarning(UserWarning):
    """A data file was skipped or adjusted; the run goes on without it."""


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """One decoded image and where it came from.

    ``name`` identifies it in logs and reports (a path relative to its folder without the
    extension, or e.g. ``skimage/astronaut``); ``path`` is None for generated images.
    ``rgb`` is HxWx3 uint8.
    """

    name: str
    path: Path | None
    rgb: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


@dataclass(frozen=True)
class Div2kPaths:
    """Where a DIV2K split lives: the HR folder and, if present, the pre-made bicubic LR one."""

    hr_dir: Path
    lr_dir: Path | None
    split: str
    scale: int | None


def _is_hidden(name: str) -> bool:
    # Dot files cover macOS "._x.png" resource forks, .ipynb_checkpoints and editor temp files.
    return name.startswith(".")


def list_images(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Image files in ``folder`` (by extension, case-insensitive), sorted; hidden ones skipped."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(
            f"image folder {folder} does not exist; expected a folder of {_EXT_WORDS} images"
        )
    if not folder.is_dir():
        raise DataError(
            f"{folder} is a file, not a folder; expected a folder of {_EXT_WORDS} images"
        )
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
            found.extend(
                Path(dirpath) / f
                for f in filenames
                if not _is_hidden(f) and Path(f).suffix.lower() in IMAGE_EXTENSIONS
            )
    else:
        found = [
            p
            for p in folder.iterdir()
            if p.is_file() and not _is_hidden(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS
        ]
    if not found:
        where = "in it or its subfolders" if recursive else "in it"
        raise DataError(
            f"no images ({_EXT_WORDS}) found in {folder} ({where}); point to a "
            "folder that holds the images themselves"
        )
    return sorted(found)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of ``scale``, keeping the top-left corner.

    This is the standard SR evaluation protocol; it returns a view, not a copy.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    h, w = img.shape[:2]
    hh, ww = h - h % scale, w - w % scale
    if hh == 0 or ww == 0:
        raise DataError(
            f"a {h}x{w} image is smaller than the scale x{scale}; nothing is left after mod-crop"
        )
    return img[:hh, :ww]


def _common_folder(paths: Sequence[Path]) -> str:
    try:
        return os.path.commonpath([str(p.parent) for p in paths])
    except ValueError:  # different drives on Windows
        return ", ".join(str(p.parent) for p in paths[:3])


def _name_for(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).with_suffix("").as_posix()
        except ValueError:
            pass
    return path.stem


def load_images(
    paths: Iterable[str | os.PathLike],
    *,
    min_size: int = 0,
    on_bad: Literal["warn", "raise", "ignore"] = "warn",
    root: str | os.PathLike | None = None,
) -> list[LoadedImage]:
    """Decode ``paths`` to RGB uint8, skipping unusable ones.

    An image is bad if it cannot be read or either side is below ``min_size``. ``on_bad``:
    ``"warn"`` skips it with a DataWarning naming the file and reason, ``"ignore"`` skips it
    silently, ``"raise"`` raises DataError. If nothing usable remains, DataError lists why.
    Names are paths relative to ``root`` (without extension) when given, else file stems.
    """
    if on_bad not in ("warn", "raise", "ignore"):
        raise ConfigError(f"on_bad must be 'warn', 'raise' or 'ignore', not {on_bad!r}")
    if min_size < 0:
        raise ConfigError(f"min_size must be >= 0, got {min_size}")
    path_list = [Path(p) for p in paths]
    root_path = Path(root) if root is not None else None
    where = (
        str(root_path) if root_path is not None else _common_folder(path_list) if path_list else ""
    )
    if not path_list:
        raise DataError(f"no image files given to load{f' from {where}' if where else ''}")

    loaded: list[LoadedImage] = []
    rejected: list[str] = []
    for path in path_list:
        try:
            rgb = read_image(path)
            h, w = rgb.shape[:2]
            if min(h, w) < min_size:
                raise DataError(
                    f"image {path} is {h}x{w}, smaller than the minimum {min_size} px on a side"
                )
        except DataError as exc:
            if on_bad == "raise":
                raise
            rejected.append(str(exc))
            if on_bad == "warn":
                warnings.warn(f"skipping {exc}", DataWarning, stacklevel=2)
            continue
        loaded.append(LoadedImage(name=_name_for(path, root_path), path=path, rgb=rgb))

    if not loaded:
        shown = "; ".join(rejected[:_MAX_REASONS])
        more = f" (and {len(rejected) - _MAX_REASONS} more)" if len(rejected) > _MAX_REASONS else ""
        raise DataError(f"none of the {len(path_list)} images in {where} is usable: {shown}{more}")
    return loaded


_SPLITS = {"train": "train", "valid": "valid", "val": "valid"}


def find_div2k(
    root: str | os.PathLike, *, split: str = "train", scale: int | None = None
) -> Div2kPaths:
    """Locate DIV2K's ``DIV2K_{split}_HR`` and, with ``scale``, ``DIV2K_{split}_LR_bicubic/X{s}``.

    ``root`` may be the DIV2K root (or a folder holding ``DIV2K/``) or an HR folder itself; in the
    latter case its name decides the split. ``lr_dir`` is None when no pre-made LR exists
    (edgesr then degrades HR on the fly).
    """
    if split not in _SPLITS:
        raise ConfigError(f"DIV2K split must be 'train' or 'valid', not {split!r}")
    split = _SPLITS[split]
    if scale is not None and (isinstance(scale, bool) or int(scale) != scale or scale < 1):
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"DIV2K folder {root} does not exist; expected the folder that holds DIV2K_{split}_HR/"
        )

    m = re.fullmatch(r"DIV2K_(train|valid)_HR", root.name)
    if m:
        split, hr_dir = m.group(1), root
    else:
        candidates = [root / f"DIV2K_{split}_HR", root / "DIV2K" / f"DIV2K_{split}_HR"]
        hr_dir = next((c for c in candidates if c.is_dir()), None)
        if hr_dir is None:
            raise DataError(
                f"{root} is not a DIV2K folder: expected {candidates[0].name}/ inside "
                f"it (from DIV2K_{split}_HR.zip), or pass that HR folder itself"
            )

    lr_dir = None
    if scale is not None:
        lr = hr_dir.parent / f"DIV2K_{split}_LR_bicubic" / f"X{int(scale)}"
        lr_dir = lr if lr.is_dir() else None
    return Div2kPaths(hr_dir=hr_dir, lr_dir=lr_dir, split=split, scale=scale)


def _resolve_hr_folder(folder: Path) -> Path:
    # A DIV2K root holds train HR, valid HR and LR folders; reading it recursively would mix them.
    if (folder / "DIV2K_train_HR").is_dir():
        return folder / "DIV2K_train_HR"
    return folder


def load_hr_folder(folder: str | os.PathLike, *, min_size: int = 0) -> list[LoadedImage]:
    """All usable images under ``folder`` (a DIV2K root means its ``DIV2K_train_HR``).

    Loads everything into memory: full DIV2K train HR is about 6.5 GB as uint8.
    """
    folder = _resolve_hr_folder(Path(folder))
    return load_images(list_images(folder), min_size=min_size, root=folder)


def _lr_key(name: str, scale: int) -> str:
    """DIV2K names LR files ``0001x4``; map them to the HR name ``0001``."""
    suffix = f"x{scale}"
    return name[: -len(suffix)] if name.lower().endswith(suffix) else name


def load_pairs(
    hr_folder: str | os.PathLike, lr_folder: str | os.PathLike | None, scale: int
) -> list[tuple[LoadedImage, LoadedImage]]:
    """Matched (HR, LR) images for pre-made LR data, HR mod-cropped to a multiple of ``scale``.

    LR files pair with HR by DIV2K naming (``0001x4.png`` <-> ``0001.png``) or by the same name.
    ``lr_folder`` may be a DIV2K ``..._LR_bicubic`` folder (its ``X{scale}`` is used) or None to
    find it beside a DIV2K HR folder. Every HR image needs an LR partner whose size times
    ``scale`` equals the mod-cropped HR size; otherwise DataError says which and both sizes.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    hr_root = _resolve_hr_folder(Path(hr_folder))
    if lr_folder is None:
        try:
            paths = find_div2k(hr_root, scale=scale)
        except DataError as exc:
            raise DataError(
                f"no lr_folder given and the LR images cannot be found from {hr_root}: {exc}; "
                "pass lr_folder"
            ) from exc
        if paths.lr_dir is None:
            raise DataError(
                f"no pre-made LR folder for x{scale} beside {hr_root}; expected "
                f"{hr_root.parent}/DIV2K_{paths.split}_LR_bicubic/X{scale}/ "
                "or pass lr_folder"
            )
        hr_root, lr_root = paths.hr_dir, paths.lr_dir
    else:
        lr_root = Path(lr_folder)
        if (lr_root / f"X{scale}").is_dir():
            lr_root = lr_root / f"X{scale}"

    hr_paths = list_images(hr_root)
    lr_paths = list_images(lr_root)
    lr_names = [p.relative_to(lr_root).with_suffix("").as_posix() for p in lr_paths]
    lr_by_key: dict[str, Path] = dict(zip(lr_names, lr_paths, strict=True))
    for name, p in zip(lr_names, lr_paths, strict=True):
        # Exact names win over DIV2K-style "0001x4" ones.
        lr_by_key.setdefault(_lr_key(name, scale), p)

    matched: list[tuple[str, Path, Path]] = []
    missing: list[str] = []
    for hp in hr_paths:
        name = hp.relative_to(hr_root).with_suffix("").as_posix()
        lp = lr_by_key.get(name)
        if lp is None:
            missing.append(name)
        else:
            matched.append((name, hp, lp))
    # Checked before decoding anything, so a wrong folder fails fast.
    if missing:
        shown = ", ".join(missing[:_MAX_REASONS])
        more = f" and {len(missing) - _MAX_REASONS} more" if len(missing) > _MAX_REASONS else ""
        raise DataError(
            f"{len(missing)} HR images in {hr_root} have no LR partner in {lr_root}: {shown}{more} "
            f"(looked for NAMEx{scale}.* or NAME.*)"
        )

    pairs: list[tuple[LoadedImage, LoadedImage]] = []
    for name, hp, lp in matched:
        hr = mod_crop(read_image(hp), scale)
        lr = read_image(lp)
        want = (hr.shape[0] // scale, hr.shape[1] // scale)
        if lr.shape[:2] != want:
            raise DataError(
                f"LR image {lp} is {lr.shape[0]}x{lr.shape[1]} but HR {hp} is "
                f"{hr.shape[0]}x{hr.shape[1]} after mod-crop, so x{scale} LR should be "
                f"{want[0]}x{want[1]}; check the scale or the LR folder"
            )
        pairs.append(
            (
                LoadedImage(name=name, path=hp, rgb=np.ascontiguousarray(hr)),
                LoadedImage(name=name, path=lp, rgb=lr),
            )
        )
    return pairs
