"""Colour conversion with the SR evaluation conventions.

YCbCr is ITU-R BT.601 studio range, exactly MATLAB's ``rgb2ycbcr`` for double input: RGB in
[0, 1] maps to Y in [16, 235]/255 and Cb, Cr in [16, 240]/255. Published SR numbers are
measured on this Y channel, so the coefficients must not be "improved" (e.g. to full range).

NumPy functions take channels-last HxWx3 arrays, the torch ones (N, 3, H, W) tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from edgesr.errors import DataError

__all__ = [
    "rgb_to_ycbcr",
    "rgb_to_ycbcr_torch",
    "to_float",
    "to_uint8",
    "ycbcr_to_rgb",
    "ycbcr_to_rgb_torch",
]

# Rows: Y, Cb, Cr; columns: R, G, B (MATLAB rgb2ycbcr, multiplied out for [0, 1] input).
_RGB2YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)
_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
# The exact inverse (as MATLAB's ycbcr2rgb computes it), not rounded published coefficients.
_YCBCR2RGB = np.linalg.inv(_RGB2YCBCR)


def _check_float_rgb(img: np.ndarray, what: str, *, last: int = 3) -> None:
    if not isinstance(img, np.ndarray):
        raise DataError(f"{what} expects a numpy array, got {type(img).__name__}.")
    if img.ndim < 1 or img.shape[-1] != last:
        raise DataError(
            f"{what} expects a channels-last ...x{last} array, got shape {img.shape}. "
            "Move the channel axis last (np.moveaxis) before converting."
        )
    if not np.issubdtype(img.dtype, np.floating):
        raise DataError(
            f"{what} expects a float image in [0, 1], got dtype {img.dtype}. "
            "Convert it first with edgesr.data.color.to_float()."
        )


def rgb_to_ycbcr(img: np.ndarray, *, y_only: bool = False) -> np.ndarray:
    """RGB (..., 3) float in [0, 1] -> YCbCr (..., 3) in [0, 1], or Y (...) if ``y_only``.

    Computed in float64, returned in the input float dtype.
    """
    _check_float_rgb(img, "rgb_to_ycbcr")
    x = img.astype(np.float64, copy=False)
    if y_only:
        out = (x @ _RGB2YCBCR[0] + _OFFSET[0]) / 255.0
    else:
        out = (x @ _RGB2YCBCR.T + _OFFSET) / 255.0
    return out.astype(img.dtype, copy=False)


def ycbcr_to_rgb(img: np.ndarray) -> np.ndarray:
    """YCbCr (..., 3) in [0, 1] -> RGB (..., 3): the exact inverse of :func:`rgb_to_ycbcr`.

    Not clipped, so a round trip is lossless; clip (or use :func:`to_uint8`) for display.
    """
    _check_float_rgb(img, "ycbcr_to_rgb")
    x = img.astype(np.float64, copy=False) * 255.0 - _OFFSET
    return (x @ _YCBCR2RGB.T).astype(img.dtype, copy=False)


def _check_float_nchw(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{what} expects a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != 4 or x.shape[1] != 3:
        raise DataError(
            f"{what} expects an (N, 3, H, W) tensor, got shape {tuple(x.shape)}. "
            "Add a batch axis with x[None] or reorder channels first."
        )
    if not x.is_floating_point():
        raise DataError(
            f"{what} expects a float tensor in [0, 1], got dtype {x.dtype}. "
            "Convert it first, e.g. x.float() / 255."
        )


def _matrix(m: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(m, dtype=x.dtype, device=x.device)


def rgb_to_ycbcr_torch(x: torch.Tensor, *, y_only: bool = False) -> torch.Tensor:
    """(N, 3, H, W) RGB float in [0, 1] -> YCbCr (N, 3, H, W), or Y (N, 1, H, W) if ``y_only``.

    Computed in the input dtype, on its device; differentiable.
    """
    _check_float_nchw(x, "rgb_to_ycbcr_torch")
    m = _matrix(_RGB2YCBCR[:1] if y_only else _RGB2YCBCR, x)
    off = _matrix(_OFFSET[:1] if y_only else _OFFSET, x).view(1, -1, 1, 1)
    return (torch.einsum("oc,nchw->nohw", m, x) + off) / 255.0


def ycbcr_to_rgb_torch(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) YCbCr in [0, 1] -> RGB, the exact inverse of :func:`rgb_to_ycbcr_torch`."""
    _check_float_nchw(x, "ycbcr_to_rgb_torch")
    off = _matrix(_OFFSET, x).view(1, 3, 1, 1)
    return torch.einsum("oc,nchw->nohw", _matrix(_YCBCR2RGB, x), x * 255.0 - off)


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 / uint16 image -> float32 in [0, 1]; a float image is only cast to float32."""
    if not isinstance(img, np.ndarray):
        raise DataError(f"to_float expects a numpy array, got {type(img).__name__}.")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float32, copy=False)
    raise DataError(
        f"to_float supports uint8, uint16 and float images, got dtype {img.dtype}. "
        "Convert the image to one of those first."
    )


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8: clipped, then rounded half away from zero (as MATLAB)."""
    if not isinstance(img, np.ndarray):
        raise DataError(f"to_uint8 expects a numpy array, got {type(img).__name__}.")
    if img.dtype == np.uint8:
        return img
    if not np.issubdtype(img.dtype, np.floating):
        raise DataError(
            f"to_uint8 expects a float image in [0, 1] (or uint8), got dtype {img.dtype}."
        )
    # After clipping everything is >= 0, so floor(x + 0.5) is round-half-away-from-zero
    # (np.round would round half to even and differ from MATLAB's im2uint8 on ties).
    x = np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0
    return np.floor(x + 0.5).astype(np.uint8)
