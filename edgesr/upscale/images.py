"""Upscaling image files and folders of them.

What is kept from the input: the format (by extension), grey vs colour, 16 bit and alpha.

* 8-bit images go through :meth:`Upscaler.upscale_rgb` (the model's output rounded to 8 bits).
* 16-bit images are upscaled in float (the net sees the 16-bit values scaled to [0, 1], not a
  rounded 8-bit copy) and written at 16 bit; JPEG/BMP/WebP hold only 8 bit, so a 16-bit image
  written to them is rounded.
* Alpha is upscaled with bicubic interpolation (OpenCV), clipped, never through the net.
* Grey images are replicated to RGB for the net and written grey again (the output's BT.601 luma).

Files are written to a temporary name in the target folder and renamed, so an interrupted run
never leaves a file that looks complete; an existing file is replaced only with ``force``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.data.io import IMAGE_EXTENSIONS
from edgesr.errors import ConfigError, DataError, OutputExistsError
from edgesr.outputs import refuse_existing

__all__ = [
    "MIN_SIDE",
    "Picture",
    "folder_targets",
    "read_picture",
    "upscale_file",
    "upscale_folder",
    "upscale_picture",
    "write_picture",
]

#: Images with a side below this many pixels are refused (skipped in a folder): a 1-pixel-wide
#: strip is almost always a broken or placeholder file, and the nets need neighbours.
MIN_SIDE = 4

_QUALITY = 95  # JPEG and WebP
_EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class Picture:
    """A decoded image: ``rgb`` HxWx3 uint8 or uint16, ``alpha`` HxW of the same dtype or None."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grey: bool = False

    @property
    def depth(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8


@dataclass
class FolderResult:
    """What :func:`upscale_folder` did."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0


def read_picture(path: str | os.PathLike) -> Picture:
    """Decode an image keeping bit depth and alpha; DataError naming the file otherwise."""
    import cv2

    from edgesr.data.io import decode_image_file

    path = Path(path)
    img = decode_image_file(path)
    if img.size == 0:
        raise DataError(f"cannot read image {path}: it has zero size {img.shape[:2]}")
    if img.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(img.dtype, np.floating):
            raise DataError(
                f"cannot read image {path}: pixel type {img.dtype} is not supported; "
                "convert it to 8- or 16-bit"
            )
        img = np.rint(np.clip(np.nan_to_num(img), 0.0, 1.0) * 65535.0).astype(np.uint16)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    alpha = None
    if img.ndim == 2:
        grey, rgb = True, np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 2:
        grey, rgb, alpha = True, np.repeat(img[:, :, :1], 3, axis=2), img[:, :, 1]
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        grey, rgb = False, cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_BGR2RGB)
        alpha = img[:, :, 3] if img.shape[2] == 4 else None
    else:
        raise DataError(f"cannot read image {path}: unsupported layout {img.shape}")
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise DataError(
            f"image {path} is {w}x{h} pixels; edgesr upscales images of at least "
            f"{MIN_SIDE}x{MIN_SIDE} (a side this thin is usually a broken or placeholder file)"
        )
    return Picture(
        rgb=np.ascontiguousarray(rgb),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        grey=grey,
    )


def upscale_picture(up: Any, pic: Picture) -> Picture:
    """Upscale colour (through the net) and alpha (bicubic); keeps depth and greyness."""
    import cv2

    s = up.scale
    h, w = pic.rgb.shape[:2]
    if pic.depth == 8:
        rgb = up.upscale_rgb(pic.rgb)
    else:
        out = up.upscale_float(pic.rgb.astype(np.float32) / np.float32(65535.0))
        rgb = np.floor(out * 65535.0 + 0.5).astype(np.uint16)
    alpha = None
    if pic.alpha is not None:
        a = cv2.resize(pic.alpha, (w * s, h * s), interpolation=cv2.INTER_CUBIC)
        alpha = a.astype(pic.alpha.dtype)  # cv2 saturates integer output, so no clipping needed
    return Picture(rgb=rgb, alpha=alpha, grey=pic.grey)


def _encode(path: Path, pic: Picture) -> bytes:
    import cv2

    ext = path.suffix.lower()
    rgb, alpha = pic.rgb, pic.alpha
    if ext in _EIGHT_BIT_ONLY and rgb.dtype == np.uint16:
        rgb = ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        alpha = None if alpha is None else ((alpha.astype(np.uint32) * 255 + 32767) // 65535)
        alpha = None if alpha is None else alpha.astype(np.uint8)
    if pic.grey:
        planes = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)]
    else:
        planes = list(cv2.split(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
    if alpha is not None and ext not in (".jpg", ".jpeg"):
        if pic.grey:  # grey + alpha is written as BGRA (OpenCV writes no grey+alpha)
            planes = planes * 3
        planes.append(alpha)
    arr = planes[0] if len(planes) == 1 else cv2.merge(planes)
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, _QUALITY]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, _QUALITY]
    try:
        ok, buf = cv2.imencode(ext, arr, params)
    except cv2.error as exc:
        raise DataError(f"cannot encode {path} as {ext}: {exc}") from exc
    if not ok:
        raise DataError(f"cannot encode {path} as {ext}; choose another output extension")
    return buf.tobytes()


def write_picture(path: str | os.PathLike, pic: Picture, *, force: bool = False) -> Path:
    """Encode by extension and write atomically (temp file in the same folder, then rename)."""
    from edgesr.modelio import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ConfigError(
            f"cannot write {path}: extension '{path.suffix}' is not an image format; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    refuse_existing(path, force=force)
    data = _encode(path, pic)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def default_image_output(src: Path, scale: int) -> Path:
    return src.with_name(f"{src.stem}_x{scale}{src.suffix}")


def upscale_file(
    up: Any, src: str | os.PathLike, dst: str | os.PathLike | None = None, *, force: bool = False
) -> Path:
    """One image file -> ``dst`` (default ``<stem>_x{scale}.<ext>`` beside it)."""
    src = Path(src)
    dst = Path(dst) if dst is not None else default_image_output(src, up.scale)
    if dst.is_dir():
        dst = dst / default_image_output(src, up.scale).name
    _check_not_input(src, dst)
    refuse_existing(dst, force=force)  # before the (slow) upscale
    pic = read_picture(src)
    return write_picture(dst, upscale_picture(up, pic), force=force)


def _check_not_input(src: Path, dst: Path) -> None:
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ConfigError(f"output {dst} is the input file; choose another --out.")


def folder_targets(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) for every image under ``src``; the output tree mirrors the input's."""
    from edgesr.data.folders import list_images

    return [(p, dst / p.relative_to(src)) for p in list_images(src)]


def upscale_folder(
    up: Any,
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> FolderResult:
    """Every image under ``src`` (recursive) into ``dst`` (default ``<src>_x{scale}/``).

    Unreadable, broken and tiny files are skipped with a warning naming each; DataError if
    none could be upscaled. Existing outputs are refused up front without ``force``.
    """
    src = Path(src)
    dst = Path(dst) if dst is not None else src.with_name(f"{src.name}_x{up.scale}")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ConfigError(
            f"output folder {dst} is inside the input folder {src}; a later run would upscale "
            "its own outputs. Choose an --out outside it."
        )
    pairs = folder_targets(src, dst)
    existing = [d for _, d in pairs if d.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(
            f"{existing[0]}{more} already exists; pass --force to replace, or choose another --out."
        )
    result = FolderResult()
    start = time.perf_counter()
    for i, (s, d) in enumerate(pairs, 1):
        try:
            pic = read_picture(s)
        except DataError as exc:
            result.skipped.append((s, str(exc)))
            log(f"upscale: warning: {exc}; skipped")
            continue
        write_picture(d, upscale_picture(up, pic), force=True)
        result.written.append(d)
        log(f"[{i}/{len(pairs)}] {s.relative_to(src)} -> {d}")
    result.seconds = time.perf_counter() - start
    if not result.written:
        reasons = "; ".join(r for _, r in result.skipped[:5])
        raise DataError(f"none of the {len(pairs)} images in {src} could be upscaled: {reasons}")
    return result
