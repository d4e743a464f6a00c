"""PSNR and SSIM with the super-resolution evaluation conventions made explicit.

The conventions behind published SR tables (e.g. BasicSR's ``metrics/psnr_ssim.py``, which
follows the original MATLAB evaluation scripts):

* ``crop_border``: shave that many pixels off every side first (usually the SR scale);
* ``test_y_channel``: measure on the BT.601 studio-range Y channel of RGB images
  (:func:`edgesr.data.color.rgb_to_ycbcr`), not on RGB;
* values in the 0..255 scale: inputs are divided by ``data_range`` (1.0 for [0, 1] floats,
  255 for uint8) and multiplied by 255, so PSNR is the conventional dB and SSIM uses L = 255;
* SSIM: Wang et al. (2004), 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, averaged
  over the 'valid' region only (no padding), mean over channels when not on Y.

NumPy functions take channels-last HxW / HxWxC arrays (RGB order) and return floats; the torch
ones take (N, C, H, W) tensors and return one value per image, shape (N,).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from edgesr.data.color import rgb_to_ycbcr, rgb_to_ycbcr_torch
from edgesr.errors import ConfigError, DataError

__all__ = [
    "calculate_psnr",
    "calculate_psnr_torch",
    "calculate_ssim",
    "calculate_ssim_torch",
    "periodic_grid_db",
    "ssim_map",
]

_SSIM_WIN = 11
SSIM_MARGIN = (_SSIM_WIN - 1) // 2  # pixels per side the 'valid' SSIM region drops
_SSIM_SIGMA = 1.5
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2


def _gaussian_1d() -> np.ndarray:
    # Same as cv2.getGaussianKernel(11, 1.5): exp(-d^2 / (2 sigma^2)), normalised to sum 1.
    d = np.arange(_SSIM_WIN, dtype=np.float64) - (_SSIM_WIN - 1) / 2
    g = np.exp(-(d**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _check_options(crop_border: object, data_range: object) -> tuple[int, float]:
    if isinstance(crop_border, bool) or not isinstance(crop_border, Integral) or crop_border < 0:
        raise ConfigError(
            f"crop_border must be a non-negative integer (usually the SR scale), got {crop_border!r}."
        )
    if (
        isinstance(data_range, bool)
        or not isinstance(data_range, Real)
        or not math.isfinite(data_range)
        or data_range <= 0
    ):
        raise ConfigError(
            f"data_range must be a positive number (1.0 for [0, 1] floats, 255 for uint8), "
            f"got {data_range!r}."
        )
    return int(crop_border), float(data_range)


def _prepare_numpy(
    img: np.ndarray, ref: np.ndarray, crop_border: int, test_y_channel: bool, data_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, crop, scale to 0..255 float64 HxWxC, optionally reduce to Y (HxWx1)."""
    for name, a in (("img", img), ("ref", ref)):
        if not isinstance(a, np.ndarray):
            raise DataError(f"{name} must be a numpy array, got {type(a).__name__}.")
    if img.shape != ref.shape:
        raise DataError(
            f"img and ref must have the same shape, got img {img.shape} and ref {ref.shape}. "
            "Mod-crop the ground truth to the SR output size first."
        )
    if img.ndim not in (2, 3):
        raise DataError(f"expected HxW or HxWxC (channels last) images, got shape {img.shape}.")
    h, w = img.shape[:2]
    if 2 * crop_border >= min(h, w):
        raise DataError(
            f"crop_border={crop_border} leaves nothing of a {h}x{w} image; "
            "use a smaller crop_border or a larger image."
        )
    out = []
    for a in (img, ref):
        a = a if a.ndim == 3 else a[:, :, None]
        if crop_border:
            a = a[crop_border:-crop_border, crop_border:-crop_border]
        a = a.astype(np.float64) / data_range  # now [0, 1]-scaled
        if test_y_channel and a.shape[2] == 3:
            a = rgb_to_ycbcr(a, y_only=True)[:, :, None]
        out.append(a * 255.0)
    return out[0], out[1]


def calculate_psnr(
    img: np.ndarray,
    ref: np.ndarray,
    *,
    crop_border: int,
    test_y_channel: bool = True,
    data_range: float = 1.0,
) -> float:
    """PSNR in dB (0..255 scale) between two HxW / HxWxC RGB images; inf if identical."""
    crop_border, data_range = _check_options(crop_border, data_range)
    a, b = _prepare_numpy(img, ref, crop_border, test_y_channel, data_range)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * math.log10(255.0**2 / mse)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two 2-D 0..255 float64 images over the 'valid' filtered region (each
    side loses ``SSIM_MARGIN`` pixels); its mean is the SSIM of the pair."""
    g = _gaussian_1d()
    m = SSIM_MARGIN

    def filt(x: np.ndarray) -> np.ndarray:
        # Separable Gaussian; the border mode is irrelevant as the margin is dropped.
        return cv2.sepFilter2D(x, cv2.CV_64F, g, g)[m:-m, m:-m]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return num / den


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(ssim_map(a, b)))


def calculate_ssim(
    img: np.ndarray,
    ref: np.ndarray,
    *,
    crop_border: int,
    test_y_channel: bool = True,
    data_range: float = 1.0,
) -> float:
    """SSIM (Wang et al., 11x11 Gaussian sigma 1.5, 0..255 scale) of two HxW / HxWxC images."""
    crop_border, data_range = _check_options(crop_border, data_range)
    a, b = _prepare_numpy(img, ref, crop_border, test_y_channel, data_range)
    if min(a.shape[:2]) < _SSIM_WIN:
        raise DataError(
            f"SSIM needs at least {_SSIM_WIN}x{_SSIM_WIN} pixels after cropping, got "
            f"{a.shape[0]}x{a.shape[1]}; use a smaller crop_border or a larger image."
        )
    return float(np.mean([_ssim_channel(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))


def _prepare_torch(
    img: torch.Tensor,
    ref: torch.Tensor,
    crop_border: int,
    test_y_channel: bool,
    data_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, crop, scale to 0..255 (float64 where supported), optionally reduce to Y."""
    for name, t in (("img", img), ("ref", ref)):
        if not isinstance(t, torch.Tensor):
            raise DataError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
    if img.shape != ref.shape:
        raise DataError(
            f"img and ref must have the same shape, got img {tuple(img.shape)} and "
            f"ref {tuple(ref.shape)}. Mod-crop the ground truth to the SR output size first."
        )
    if img.ndim != 4:
        raise DataError(f"expected (N, C, H, W) tensors, got shape {tuple(img.shape)}.")
    h, w = img.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise DataError(
            f"crop_border={crop_border} leaves nothing of a {h}x{w} image; "
            "use a smaller crop_border or a larger image."
        )
    # float64 so the numbers match the numpy reference; MPS has no float64.
    dtype = torch.float32 if img.device.type == "mps" else torch.float64
    out = []
    for t in (img, ref):
        if crop_border:
            t = t[..., crop_border:-crop_border, crop_border:-crop_border]
        t = t.to(dtype) / data_range
        if test_y_channel and t.shape[1] == 3:
            t = rgb_to_ycbcr_torch(t, y_only=True)
        out.append(t * 255.0)
    return out[0], out[1]


def calculate_psnr_torch(
    img: torch.Tensor,
    ref: torch.Tensor,
    *,
    crop_border: int,
    test_y_channel: bool = True,
    data_range: float = 1.0,
) -> torch.Tensor:
    """Per-image PSNR in dB, shape (N,), of (N, C, H, W) tensors; inf where identical."""
    crop_border, data_range = _check_options(crop_border, data_range)
    a, b = _prepare_torch(img, ref, crop_border, test_y_channel, data_range)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 gives +inf


def calculate_ssim_torch(
    img: torch.Tensor,
    ref: torch.Tensor,
    *,
    crop_border: int,
    test_y_channel: bool = True,
    data_range: float = 1.0,
) -> torch.Tensor:
    """Per-image SSIM, shape (N,), of (N, C, H, W) tensors; same conventions as calculate_ssim."""
    crop_border, data_range = _check_options(crop_border, data_range)
    a, b = _prepare_torch(img, ref, crop_border, test_y_channel, data_range)
    if min(a.shape[-2:]) < _SSIM_WIN:
        raise DataError(
            f"SSIM needs at least {_SSIM_WIN}x{_SSIM_WIN} pixels after cropping, got "
            f"{a.shape[-2]}x{a.shape[-1]}; use a smaller crop_border or a larger image."
        )
    c = a.shape[1]
    g = torch.as_tensor(_gaussian_1d(), dtype=a.dtype, device=a.device)
    window = torch.outer(g, g).expand(c, 1, _SSIM_WIN, _SSIM_WIN)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=c)  # no padding: the 'valid' region directly

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    # Mean over pixels per channel, then over channels (equal-size channels: same as flat mean).
    return (num / den).mean(dim=(1, 2, 3))


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def periodic_grid_db(img: np.ndarray, *, period: int, crop_border: int = 0) -> float:
    """How much a texture repeating every ``period`` pixels stands out of an image's spectrum, in dB.

    A sub-pixel-convolution (PixelShuffle) upsampler by ``period`` builds each output pixel from
    one of ``period``**2 filter phases; when the phases disagree (checkerboard initialisation, a
    discriminator rewarding a fixed pattern) the output carries a grid with exactly that period.
    Its energy sits on the spectral bins at multiples of 1/``period`` cycles per pixel, where a
    natural image's spectrum is smooth. For each such bin (except DC) this takes the power there
    over the mean power of the bins around it (a 9x9 block minus the centre 3x3), and returns
    10*log10 of the mean ratio: about 0 dB for a photo, several dB for a visible grid.

    Args:
        img: HxW (e.g. Y) or HxWxC image, any range; channels are averaged first.
        period: the upsampling factor whose grid to look for (>= 2).
        crop_border: pixels shaved off every side first (the SR convention).
    """
    if isinstance(period, bool) or not isinstance(period, Integral) or period < 2:
        raise ConfigError(f"period must be an integer >= 2, got {period!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, Integral) or crop_border < 0:
        raise ConfigError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 3:
        x = x.mean(axis=2)
    if x.ndim != 2:
        raise DataError(f"expected an HxW or HxWxC image, got shape {np.shape(img)}")
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
    # Whole periods only, so the grid's harmonics fall exactly on FFT bins.
    h, w = (n // period * period for n in x.shape)
    if min(h, w) < 8 * period:
        raise DataError(f"image {x.shape} is too small to measure a {period}-pixel grid")
    x = x[:h, :w] - x[:h, :w].mean()
    # A periodic Hann window keeps the image's edges from smearing energy across the spectrum.
    x = x * np.outer(_hann(h), _hann(w))
    power = np.abs(np.fft.fft2(x)) ** 2
    ratios = []
    for ky in range(period):
        for kx in range(period):
            if ky == kx == 0:
                continue
            cy, cx = ky * h // period, kx * w // period
            ys = np.arange(cy - 4, cy + 5) % h
            xs = np.arange(cx - 4, cx + 5) % w
            block = power[np.ix_(ys, xs)]
            # The centre 3x3 holds the peak and the Hann window's spread of it; for an exact-bin
            # sinusoid the window leaks nothing further, so the ring is the local background.
            ring = np.concatenate(
                [
                    block[:3].ravel(),
                    block[6:].ravel(),
                    block[3:6, :3].ravel(),
                    block[3:6, 6:].ravel(),
                ]
            )
            ratios.append(block[4, 4] / max(float(ring.mean()), 1e-30))
    return float(10.0 * math.log10(float(np.mean(ratios))))
