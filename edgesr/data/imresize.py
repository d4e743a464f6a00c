"""MATLAB-compatible ``imresize(..., 'bicubic')``.

Every published SR benchmark number uses MATLAB's bicubic to make LR inputs (and the bicubic
baseline), so this module reproduces it rather than OpenCV/PIL/torch interpolation, which all
differ (no antialiasing, other kernel constant or other pixel-centre convention):

* Keys cubic kernel with a = -0.5, support 4; on downscale with ``antialias`` the kernel is
  stretched by 1/scale and scaled by scale (a low-pass filter), support 4/scale;
* output pixel x (1-based) samples input coordinate u = x/scale + 0.5*(1 - 1/scale);
* weights normalised to sum 1 per output pixel; out-of-range taps mirrored symmetrically
  (index -1 -> 0: the edge pixel is repeated);
* separable, the dimension with the smaller scale first (MATLAB's order);
* integer images are rounded half away from zero and saturated after *each* 1-D pass, because
  MATLAB's imresizemex returns the input class from every pass.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Integral, Real

import numpy as np
import torch

from edgesr.errors import ConfigError, DataError

__all__ = ["imresize", "imresize_rows", "imresize_torch", "resize_weights"]

_KERNEL_WIDTH = 4.0
_INT_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = -0.5, as MATLAB's ``cubic``."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=64)
def _contributions(
    in_len: int, out_len: int, scale: float, antialias: bool
) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: per output pixel, tap weights (out, P) and 0-based indices."""
    if scale < 1 and antialias:
        width = _KERNEL_WIDTH / scale

        def kernel(d: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * d)
    else:
        width = _KERNEL_WIDTH
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, as MATLAB
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric mirror: the sequence 1..n, n..1 repeated (so 0 -> 1, -1 -> 2, n+1 -> n).
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, aux.size)]
    # Dropping all-zero tap columns only saves work (MATLAB does it too).
    keep = np.any(weights != 0, axis=0)
    weights, idx0 = weights[:, keep], idx0[:, keep]
    weights.flags.writeable = False
    idx0.flags.writeable = False
    return weights, idx0


def _check_len(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_scale(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(
            f"scale must be a finite positive number (e.g. 0.25 to shrink x4, 4 to enlarge x4), "
            f"got {value!r}."
        )
    return float(value)


def resize_weights(
    in_len: int, out_len: int, scale: float, *, antialias: bool = True
) -> np.ndarray:
    """Dense (out_len, in_len) float64 matrix W such that a 1-D MATLAB bicubic resize is W @ x.

    Mirrored border taps are folded into the matrix; rows sum to 1. Cached and read-only.
    """
    return _dense_weights(
        _check_len("in_len", in_len),
        _check_len("out_len", out_len),
        _check_scale(scale),
        bool(antialias),
    )


@lru_cache(maxsize=64)
def _dense_weights(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    weights, idx = _contributions(in_len, out_len, scale, antialias)
    dense = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_len)[:, None], idx.shape)
    np.add.at(dense, (rows, idx), weights)  # add.at: a mirrored tap may hit a pixel twice
    dense.flags.writeable = False
    return dense


def _plan(
    in_hw: tuple[int, int], scale: float | None, output_shape: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output size and per-dimension scale, following MATLAB's rules."""
    if (scale is None) == (output_shape is None):
        raise ConfigError(
            "imresize needs exactly one of scale= or output_shape=, "
            f"got scale={scale!r}, output_shape={output_shape!r}."
        )
    if scale is not None:
        s = _check_scale(scale)
        # MATLAB: output size = ceil(scale * input size); the given scale (not out/in) is used.
        out = (math.ceil(s * in_hw[0]), math.ceil(s * in_hw[1]))
        return out, (s, s)
    try:
        oh, ow = output_shape  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ConfigError(
            f"output_shape must be a (height, width) pair of positive integers, got {output_shape!r}."
        ) from None
    oh, ow = _check_len("output_shape height", oh), _check_len("output_shape width", ow)
    return (oh, ow), (oh / in_hw[0], ow / in_hw[1])


def _order(scales: tuple[float, float]) -> tuple[int, int]:
    # MATLAB: [~, order] = sort(scale), a stable sort, so ties resize rows (dim 0) first.
    return (1, 0) if scales[1] < scales[0] else (0, 1)


def _round_saturate(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    # Saturate first; then x >= 0, where floor(x + 0.5) is MATLAB's round half away from zero.
    return np.floor(np.clip(x, 0.0, _INT_RANGES[dtype]) + 0.5).astype(dtype)


def _resize_dim(x: np.ndarray, dim: int, weights: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """One 1-D pass along ``dim`` (0 or 1) of a float64 (H, W, C) array: sum over taps."""
    xt = np.moveaxis(x, dim, 0)
    out = np.zeros((weights.shape[0], *xt.shape[1:]), dtype=np.float64)
    # A loop over the (few) taps keeps memory at one output-sized buffer, unlike a gather of
    # every tap at once or a dense matmul, which costs in_len/taps times more arithmetic.
    for k in range(weights.shape[1]):
        out += weights[:, k, None, None] * xt[idx[:, k]]
    return np.moveaxis(out, 0, dim)


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    *,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """Resize an HxW or HxWxC image exactly like MATLAB ``imresize(img, scale, 'bicubic')``.

    Give exactly one of ``scale`` (output size ceil(in * scale)) or ``output_shape`` (H, W).
    uint8/uint16 in -> same dtype out (rounded and saturated as MATLAB); float in -> the same
    float dtype out (computed in float64, not clipped).
    """
    if not isinstance(img, np.ndarray):
        raise DataError(f"imresize expects a numpy array, got {type(img).__name__}.")
    if img.ndim not in (2, 3):
        raise DataError(
            f"imresize expects an HxW or HxWxC image, got shape {img.shape}. "
            "Resize batches one image at a time or use imresize_torch on (N, C, H, W)."
        )
    if img.size == 0:
        raise DataError(
            f"imresize got an empty image of shape {img.shape}; check how it was loaded."
        )
    dtype = img.dtype
    is_int = dtype in _INT_RANGES
    if not is_int and not np.issubdtype(dtype, np.floating):
        raise DataError(
            f"imresize supports uint8, uint16 and float images, got dtype {dtype}. "
            "Convert it first (e.g. img.astype(np.float32))."
        )
    out_hw, scales = _plan(img.shape[:2], scale, output_shape)
    antialias = bool(antialias)

    x = img if img.ndim == 3 else img[:, :, None]
    for dim in _order(scales):
        weights, idx = _contributions(x.shape[dim], out_hw[dim], scales[dim], antialias)
        y = _resize_dim(x.astype(np.float64, copy=False), dim, weights, idx)
        x = _round_saturate(y, dtype) if is_int else y
    if img.ndim == 2:
        x = x[:, :, 0]
    return x if is_int else x.astype(dtype, copy=False)


def imresize_rows(img: np.ndarray, scale: float, rows: tuple[int, int]) -> np.ndarray:
    """Output rows ``rows[0]:rows[1]`` of ``imresize(img, scale)``, bit-identical to slicing it.

    Reads only the input rows those output rows need, so a huge image can be resized strip by
    strip (the whole-image float64 passes of a 64-megapixel photo take gigabytes).
    """
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or img.size == 0:
        raise DataError(f"imresize_rows expects a non-empty HxW or HxWxC array, got {img!r:.80}")
    dtype = img.dtype
    is_int = dtype in _INT_RANGES
    out_hw, scales = _plan(img.shape[:2], scale, None)
    a, b = int(rows[0]), int(rows[1])
    if not 0 <= a < b <= out_hw[0]:
        raise ConfigError(f"rows {rows} are outside the {out_hw[0]} output rows")
    x = img if img.ndim == 3 else img[:, :, None]
    rw, ridx = _contributions(x.shape[0], out_hw[0], scales[0], True)
    rw, ridx = rw[a:b], ridx[a:b]
    lo, hi = int(ridx.min()), int(ridx.max()) + 1
    x, ridx = x[lo:hi], ridx - lo
    for dim in _order(scales):
        if dim == 0:
            weights, idx = rw, ridx
        else:
            weights, idx = _contributions(img.shape[1], out_hw[1], scales[1], True)
        y = _resize_dim(x.astype(np.float64, copy=False), dim, weights, idx)
        x = _round_saturate(y, dtype) if is_int else y
    if img.ndim == 2:
        x = x[:, :, 0]
    return x if is_int else x.astype(dtype, copy=False)


def imresize_torch(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """MATLAB bicubic resize of a float (N, C, H, W) tensor via the :func:`resize_weights` matrices.

    Same arithmetic as :func:`imresize` for float input (no rounding, no clipping); device and
    dtype are preserved (half precision is computed in float32); differentiable.
    """
    if not isinstance(x, torch.Tensor):
        raise DataError(f"imresize_torch expects a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != 4:
        raise DataError(
            f"imresize_torch expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}. "
            "Add a batch axis with x[None]."
        )
    if x.numel() == 0:
        raise DataError(f"imresize_torch got an empty tensor of shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise DataError(
            f"imresize_torch expects a float tensor, got dtype {x.dtype}; convert with x.float()."
        )
    out_hw, scales = _plan(tuple(x.shape[-2:]), scale, output_shape)
    compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    y = x.to(compute)
    for dim in _order(scales):
        w = resize_weights(y.shape[2 + dim], out_hw[dim], scales[dim], antialias=antialias)
        wt = torch.from_numpy(np.array(w)).to(device=x.device, dtype=compute)
        y = torch.einsum("oh,nchw->ncow" if dim == 0 else "ow,nchw->ncho", wt, y)
    return y.to(x.dtype)
