"""Reading and writing images as RGB arrays.

Everything in edgesr works on HxWx3 RGB. ``read_image`` is the one place that turns whatever is
on disk (8/16-bit, grey, RGBA, palette, any format OpenCV decodes) into that, and it turns every
failure into a :class:`~edgesr.errors.DataError` that names the file and the reason.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import cv2
import numpy as np

from edgesr.errors import ConfigError, DataError

__all__ = ["IMAGE_EXTENSIONS", "WRITE_EXTENSIONS", "read_image", "write_image"]

#: Extensions treated as images when listing folders (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Extensions ``write_image`` accepts.
WRITE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_JPEG_QUALITY = 95

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def _truncation_reason(data: np.ndarray) -> str | None:
    """Say why a PNG/JPEG byte stream is cut short, or None.

    Some OpenCV/libjpeg builds only *warn* on a truncated file and return an image whose bottom
    is grey, which would then train or score silently; checking the end marker catches that.
    """
    raw = data.tobytes()
    if raw.startswith(_PNG_SIGNATURE) and _PNG_IEND not in raw:
        return "truncated PNG (no IEND chunk)"
    # Entropy-coded JPEG data never contains FF D9 or FF DA (0xFF is byte-stuffed), so the
    # end-of-image marker must follow the last start-of-scan marker.
    if raw.startswith(b"\xff\xd8") and raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda"):
        return "truncated JPEG (no end-of-image marker after the last scan)"
    return None


def _to_float01(img: np.ndarray, path: Path) -> np.ndarray:
    """Decoded pixels as float32 in [0, 1], any bit depth."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if img.dtype in (np.float32, np.float64):
        # Float TIFF/EXR: edgesr's convention is display-referred [0, 1].
        return np.clip(np.nan_to_num(img.astype(np.float32)), 0.0, 1.0)
    raise DataError(
        f"cannot read image {path}: unsupported pixel type {img.dtype}; "
        "convert it to 8- or 16-bit PNG"
    )


def _to_uint8(img: np.ndarray, path: Path) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        # Exact round-half-up of v * 255 / 65535 in integers.
        return ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.rint(_to_float01(img, path) * 255.0).astype(np.uint8)


def decode_image_file(path: str | os.PathLike) -> np.ndarray:
    """The file's pixels as OpenCV decodes them (IMREAD_UNCHANGED: BGR(A) order, bit depth and
    alpha kept), or DataError naming the file: missing, a folder, empty, truncated, undecodable.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"cannot read image {path}: the file does not exist")
    if path.is_dir():
        raise DataError(f"cannot read image {path}: it is a folder, not an image file")
    try:
        # np.fromfile + imdecode instead of cv2.imread: imread cannot open non-ASCII paths on
        # Windows and only warns (returns None) on errors.
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise DataError(f"cannot read image {path}: the file is empty (0 bytes)")
    reason = _truncation_reason(data)
    if reason is not None:
        raise DataError(f"cannot read image {path}: {reason}; re-download or re-export it")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DataError(f"cannot read image {path}: OpenCV failed to decode it ({exc})") from exc
    if img is None:
        raise DataError(
            f"cannot read image {path}: not a decodable image (corrupt, truncated or "
            f"not really a {path.suffix or 'image'} file)"
        )
    return img


def read_image(path: str | os.PathLike, *, dtype: type | np.dtype = np.uint8) -> np.ndarray:
    """Read an image file as HxWx3 RGB.

    ``dtype=np.uint8`` (default) gives 0..255, 16-bit files rounded from v*255/65535.
    ``dtype=np.float32`` (or float64) gives [0, 1] and keeps 16-bit precision.
    Grey is replicated to 3 channels. Alpha is dropped, not composited: SR restores colour
    detail, and compositing would invent a background colour that is not in the photo.
    Raises DataError for missing, empty, truncated, undecodable or zero-size images.
    """
    path = Path(path)
    out_dtype = np.dtype(dtype)
    if out_dtype not in (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64)):
        raise ConfigError(f"read_image dtype must be uint8, float32 or float64, not {out_dtype}")
    img = decode_image_file(path)
    if img.size == 0 or img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(f"cannot read image {path}: it has zero size {img.shape[:2]}")

    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
    else:
        raise DataError(
            f"cannot read image {path}: unsupported layout {img.shape}; expected grey, RGB or RGBA"
        )

    if out_dtype == np.uint8:
        out = _to_uint8(img, path)
    else:
        out = _to_float01(img, path).astype(out_dtype, copy=False)
    return np.ascontiguousarray(out)


def _encode_array(img: np.ndarray, path: Path) -> np.ndarray:
    """Validate and convert to what cv2.imencode wants: uint8 grey or BGR."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise DataError(
            f"cannot write {path}: expected an HxW or HxWx3 image, got shape {img.shape}"
        )
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(f"cannot write {path}: the image has zero size {img.shape[:2]}")
    if img.dtype == np.uint8:
        pass
    elif np.issubdtype(img.dtype, np.floating):
        img = np.rint(np.clip(np.nan_to_num(img, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise DataError(
            f"cannot write {path}: pixel type {img.dtype} is not supported; "
            "pass uint8 (0..255) or float in [0, 1]"
        )
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(img)


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write uint8 RGB/grey, or float RGB/grey in [0, 1] (clipped and rounded), atomically.

    The bytes go to a temporary file in the same folder, then ``os.replace`` moves it over
    ``path``, so a crash never leaves a half-written image that a later run would trip over.
    Missing parent folders are created. JPEG is written at quality 95.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXTENSIONS:
        raise ConfigError(
            f"cannot write image {path}: extension '{path.suffix}' is not supported; "
            f"use one of {', '.join(WRITE_EXTENSIONS)}"
        )
    arr = _encode_array(img, path)
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise DataError(f"cannot write image {path}: OpenCV failed to encode it as {ext}")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # os.open with 0o666 lets the umask set the final permissions (mkstemp would force 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(buf.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write image {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
