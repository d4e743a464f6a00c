"""Realistic camera degradations: random blur, resize, sensor noise and JPEG, twice over.

A second-order pipeline in the spirit of Real-ESRGAN (Wang et al., 2021), written for edgesr:

1. blur (Gaussian iso/aniso, generalized Gaussian, plateau or 2-D sinc) -> random resize
   (up/down/keep, area/bilinear/bicubic) -> noise (Gaussian, Poisson or Poisson-Gaussian);
2. with ``second_order_prob``: JPEG -> blur (``second_blur_prob``) -> resize relative to the
   LR size -> noise;
3. in random order: [resize to exactly (H/scale, W/scale) + sinc (``final_sinc_prob``)] and
   [JPEG]; clipped and rounded to 8-bit levels, as a camera's LR frame would be.

So with the second stage skipped the chain is the first-order blur -> resize -> noise -> JPEG.
All functions take float32 HxWx3 RGB in [0, 1] (numpy/cv2 only, no torch) and draw every
random number from the ``numpy.random.Generator`` they are given: same seed, same output.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edgesr.errors import DataError

if TYPE_CHECKING:
    from edgesr.recipe import CameraDegradation

__all__ = [
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "apply_kernel",
    "degrade",
    "gaussian_kernel",
    "gaussian_noise",
    "generalized_gaussian_kernel",
    "jpeg_compress",
    "plateau_kernel",
    "poisson_gaussian_noise",
    "poisson_noise",
    "random_kernel",
    "random_noise",
    "random_resize",
    "resize",
    "sinc_kernel",
]

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
RESIZE_MODES = ("area", "bilinear", "bicubic")
_CV2_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
# BT.601 luma weights: gray noise follows the brightness a sensor would see.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Expected photon count below which shot noise is drawn from the exact Poisson law.
_EXACT_POISSON_BELOW = 64.0


# --------------------------------------------------------------------------------------------
# Kernels


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T S^-1 x on a size x size grid for S = R(theta) diag(sx^2, sy^2) R(theta)^T."""
    if size < 1 or size % 2 == 0:
        raise DataError(f"a blur kernel needs an odd size, got {size}.")
    r = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(r, r)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinates along the kernel's principal axes
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalized(k: np.ndarray) -> np.ndarray:
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> np.ndarray:
    """Anisotropic Gaussian (isotropic when sigma_x == sigma_y), rotated by ``theta`` radians."""
    return _normalized(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> np.ndarray:
    """exp(-0.5 q^beta): beta < 1 gives heavy tails, beta > 1 a flatter top than a Gaussian."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalized(np.exp(-0.5 * q**beta))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> np.ndarray:
    """1 / (1 + q^beta): a flat top with slowly decaying tails (defocus-like)."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalized(1.0 / (1.0 + q**beta))


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1 by Bessel's integral (1/2pi) int_0^2pi cos(t - x sin t) dt.

    The integrand is smooth and periodic, so the trapezoid rule converges exponentially; 128
    nodes are exact to float precision for x < ~90 (kernel radii here give x < 50). Avoids a
    SciPy dependency for one special function.
    """
    t = np.linspace(0.0, 2.0 * np.pi, 128, endpoint=False)
    return np.cos(t[None, :] - x.reshape(-1, 1) * np.sin(t)[None, :]).mean(axis=1).reshape(x.shape)


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Ideal circular low-pass with ``cutoff`` in radians/pixel (0, pi], truncated to size.

    The truncation is deliberate: it produces the ringing and overshoot of sharpened or
    codec-filtered camera frames.
    """
    if size < 1 or size % 2 == 0:
        raise DataError(f"a sinc kernel needs an odd size, got {size}.")
    if not 0.0 < cutoff <= math.pi:
        raise DataError(f"sinc cutoff must be in (0, pi], got {cutoff}.")
    r = np.arange(size, dtype=np.float64) - size // 2
    rad = np.hypot(*np.meshgrid(r, r))
    uniq, inv = np.unique(rad, return_inverse=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        vals = cutoff * _bessel_j1(cutoff * uniq) / (2.0 * np.pi * uniq)
    vals[uniq == 0] = cutoff**2 / (4.0 * np.pi)  # the limit at r = 0
    return _normalized(vals[inv].reshape(size, size))


def _odd_size(rng: np.random.Generator, size_range: tuple[int, ...]) -> int:
    lo, hi = int(size_range[0]), int(size_range[1])
    sizes = np.arange(lo | 1, hi + 1, 2)  # the odd sizes in [lo, hi]
    if sizes.size == 0:
        raise DataError(f"kernel_size {list(size_range)} holds no odd size; widen it.")
    return int(sizes[rng.integers(sizes.size)])


def _weights(probs: tuple[float, ...]) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return p / p.sum()


def random_kernel(
    rng: np.random.Generator, spec: CameraDegradation, *, second: bool = False
) -> np.ndarray:
    """One random blur kernel as ``spec`` describes (``second``: the stage-2 sigma range)."""
    size = _odd_size(rng, spec.kernel_size)
    if rng.random() < spec.sinc_prob:
        return sinc_kernel(size, math.pi * rng.uniform(*spec.sinc_cutoff))
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=_weights(spec.kernel_probs)))]
    lo, hi = spec.blur_sigma2 if second else spec.blur_sigma
    sx = rng.uniform(lo, hi)
    if kind.endswith("aniso"):
        sy, theta = rng.uniform(lo, hi), rng.uniform(-math.pi, math.pi)
    else:
        sy, theta = sx, 0.0
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, sx, sy, theta, rng.uniform(*spec.generalized_beta))
    if kind.startswith("plateau"):
        return plateau_kernel(size, sx, sy, theta, rng.uniform(*spec.plateau_beta))
    return gaussian_kernel(size, sx, sy, theta)


def apply_kernel(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter each channel with reflected borders (kernels here are point-symmetric, so
    cv2's correlation equals convolution)."""
    # A narrow Gaussian in a 21x21 support is mostly zeros; dropping the rings below 1e-6 of
    # the peak changes no 8-bit value and makes the filter several times cheaper.
    c = kernel.shape[0] // 2
    rows, cols = np.nonzero(np.abs(kernel) > 1e-6 * np.abs(kernel).max())
    r = int(max(np.abs(rows - c).max(), np.abs(cols - c).max()))
    if r < c:
        kernel = kernel[c - r : c + r + 1, c - r : c + r + 1]
        kernel = kernel / kernel.sum()
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


# --------------------------------------------------------------------------------------------
# Noise


def gaussian_noise(
    img: np.ndarray, sigma: float, *, rng: np.random.Generator, gray: bool = False
) -> np.ndarray:
    """Add N(0, sigma^2) noise (sigma in [0, 1] units), per channel or the same in all."""
    shape = (*img.shape[:2], 1) if gray else img.shape
    return (img + sigma * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def poisson_gaussian_noise(
    img: np.ndarray,
    a: float,
    b: float,
    *,
    rng: np.random.Generator,
    gray: bool = False,
    linear: bool = False,
) -> np.ndarray:
    """Sensor noise with variance ``a*x + b``: photon shot noise (Poisson with x/a counts, times
    a) plus Gaussian read noise of variance b. ``gray``: computed on luma, added to all
    channels. ``linear``: applied in linear light (sRGB decoded first and encoded after), as on
    a sensor, so shadows end up relatively noisier than highlights; otherwise in the given
    values, where the variance law holds exactly.
    """
    x = np.clip(img, 0.0, 1.0)
    if linear:
        x = _srgb_to_linear(x)
    base = (x @ _LUMA)[..., None] if gray else x
    # Photon counts: exact Poisson draws where few are expected (there its skew and
    # discreteness show); above, a Gaussian of the same mean and variance, indistinguishable
    # after 8-bit rounding and a third of the cost.
    lam = base / np.float32(a)
    counts = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    few = lam < _EXACT_POISSON_BELOW
    if few.any():
        counts[few] = rng.poisson(lam[few].astype(np.float64))
    noise = counts * np.float32(a) - base
    if b > 0:
        noise = noise + np.float32(math.sqrt(b)) * rng.standard_normal(base.shape, dtype=np.float32)
    out = (x + noise).astype(np.float32)
    if linear:
        out = _linear_to_srgb(np.clip(out, 0.0, 1.0))
    return out


def poisson_noise(
    img: np.ndarray, a: float, *, rng: np.random.Generator, gray: bool = False
) -> np.ndarray:
    """Pure shot noise, variance ``a*x`` (Poisson-Gaussian with b = 0, in the given values)."""
    return poisson_gaussian_noise(img, a, 0.0, rng=rng, gray=gray)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _log_uniform(rng: np.random.Generator, span: tuple[float, ...]) -> float:
    return math.exp(rng.uniform(math.log(span[0]), math.log(span[1])))


def random_noise(img: np.ndarray, rng: np.random.Generator, spec: CameraDegradation) -> np.ndarray:
    """One noise model drawn by ``spec.noise_probs``, with its strength from ``spec``."""
    kind = int(rng.choice(3, p=_weights(spec.noise_probs)))
    gray = bool(rng.random() < spec.gray_noise_prob)
    if kind == 0:
        return gaussian_noise(img, rng.uniform(*spec.gaussian_sigma) / 255.0, rng=rng, gray=gray)
    if kind == 1:
        return poisson_noise(img, _log_uniform(rng, spec.poisson_a), rng=rng, gray=gray)
    a, b = _log_uniform(rng, spec.sensor_a), _log_uniform(rng, spec.sensor_b)
    return poisson_gaussian_noise(img, a, b, rng=rng, gray=gray, linear=spec.sensor_linear)


# --------------------------------------------------------------------------------------------
# JPEG and resizing


def _quantize(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to 8-bit levels, staying float32 (exactly uint8/255)."""
    return np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.float32) / np.float32(255.0)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG (OpenCV's libjpeg, 4:2:0 chroma) at ``quality`` 1..100."""
    u8 = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError(f"OpenCV could not JPEG-encode a {u8.shape} image at quality {quality}.")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out.astype(np.float32) / np.float32(255.0)


def resize(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize to ``size`` = (height, width) with cv2 ``mode`` in :data:`RESIZE_MODES`."""
    h, w = max(1, int(size[0])), max(1, int(size[1]))
    if (h, w) == img.shape[:2]:
        return img
    return cv2.resize(img, (w, h), interpolation=_CV2_INTERP[mode])


def _random_mode(rng: np.random.Generator, spec: CameraDegradation) -> str:
    return RESIZE_MODES[int(rng.choice(len(RESIZE_MODES), p=_weights(spec.resize_mode_probs)))]


def random_resize(
    img: np.ndarray,
    rng: np.random.Generator,
    spec: CameraDegradation,
    *,
    probs: tuple[float, ...],
    scale_range: tuple[float, ...],
    base: tuple[int, int] | None = None,
) -> np.ndarray:
    """Up (scale in [1, max]), down ([min, 1]) or keep, by ``probs``; sizes relative to
    ``base`` (default: the image's own size), never below 2 pixels."""
    direction = int(rng.choice(3, p=_weights(probs)))
    lo, hi = scale_range
    if direction == 0:
        factor = rng.uniform(1.0, max(1.0, hi))
    elif direction == 1:
        factor = rng.uniform(min(1.0, lo), 1.0)
    else:
        factor = 1.0
    mode = _random_mode(rng, spec)
    bh, bw = base if base is not None else img.shape[:2]
    size = (max(2, round(bh * factor)), max(2, round(bw * factor)))
    return resize(img, size, mode)


# --------------------------------------------------------------------------------------------
# The pipeline


def degrade(
    hr: np.ndarray, *, scale: int, rng: np.random.Generator, spec: CameraDegradation
) -> np.ndarray:
    """A realistic LR frame of ``hr`` (float32 HxWx3 RGB in [0, 1], or uint8).

    Returns float32 (H/scale)x(W/scale)x3 in [0, 1] on the 1/255 grid. H and W must be
    multiples of ``scale`` (mod-crop first) so LR and HR stay pixel-aligned.
    """
    if hr.ndim != 3 or hr.shape[2] != 3:
        raise DataError(f"degrade expects an HxWx3 RGB image, got shape {hr.shape}.")
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise DataError(
            f"degrade needs H and W divisible by the scale x{scale}, got {w}x{h}; mod-crop first."
        )
    x = hr.astype(np.float32) / np.float32(255.0) if hr.dtype == np.uint8 else hr
    x = np.ascontiguousarray(x, dtype=np.float32)
    out_size = (h // scale, w // scale)

    x = apply_kernel(x, random_kernel(rng, spec))
    x = random_resize(x, rng, spec, probs=spec.resize_probs, scale_range=spec.resize_range)
    # Noise values are clipped and rounded: the camera's stored intermediate is 8-bit.
    x = _quantize(random_noise(x, rng, spec))
    if rng.random() < spec.second_order_prob:
        x = jpeg_compress(x, int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1)))
        if rng.random() < spec.second_blur_prob:
            x = apply_kernel(x, random_kernel(rng, spec, second=True))
        x = random_resize(
            x, rng, spec, probs=spec.resize_probs2, scale_range=spec.resize_range2, base=out_size
        )
        x = _quantize(random_noise(x, rng, spec))

    def to_lr_size(img: np.ndarray) -> np.ndarray:
        img = resize(img, out_size, _random_mode(rng, spec))
        if rng.random() < spec.final_sinc_prob:
            cutoff = math.pi * rng.uniform(*spec.sinc_cutoff)
            img = apply_kernel(img, sinc_kernel(_odd_size(rng, spec.kernel_size), cutoff))
        return img

    quality = int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1))
    # Both orders occur in practice: a resized/sharpened frame that is then encoded, or a
    # decoded stream that is scaled for display.
    if rng.random() < 0.5:
        x = jpeg_compress(to_lr_size(x), quality)
    else:
        x = to_lr_size(jpeg_compress(x, quality))
    return _quantize(x)
