"""The embedded default dataset: no download, deterministic, built in about a second.

When no dataset is given, edgesr trains and validates on the photos that ship inside
scikit-image (read from its package folder; its network fetchers are never called) plus
procedurally generated images of what an SR net must learn to restore: dead-leaves texture,
text, zone plates and gratings, slanted edges, sharp shapes, smooth gradients and filtered-noise
textures. Procedural images are rendered at 3-4x and reduced with area averaging (or made
band-limited by construction) so they carry no aliasing that the net would learn as "detail".

It is small: enough for smoke runs, demos and CI, not for a model anyone should ship.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np

from edgesr.data.folders import LoadedImage
from edgesr.data.io import read_image
from edgesr.errors import ConfigError, DataError

__all__ = [
    "EMBEDDED_DESCRIPTION",
    "PROCEDURAL_KINDS",
    "SKIMAGE_TRAIN",
    "SKIMAGE_VAL",
    "add_sensor_noise",
    "embedded_images",
    "procedural_image",
]

# Photos (and a few clean synthetic figures) from skimage/data. Left out on purpose:
# chessboard_* (200 px of flat squares; the procedural targets cover edges better),
# clock_motion (motion-blurred, so a poor HR target), microaneurysms (102 px), lfw_subset
# (tiny faces) and the multipage TIFF/GIF files. (page.png makes libpng print a harmless iCCP
# warning on stderr when decoded.)
SKIMAGE_TRAIN: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coins.png",
    "color.png",
    "grass.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "phantom.png",
    "retina.jpg",
    "text.png",
)
# Held out for validation: a colour photo, a JPEG photo and a natural texture. Neither is a
# near-duplicate of a training image (the motorcycle stereo pair stays together in train).
SKIMAGE_VAL: tuple[str, ...] = ("coffee.png", "rocket.jpg", "gravel.png")

PROCEDURAL_KINDS: tuple[str, ...] = (
    "dead_leaves",
    "text",
    "zone_plate",
    "grating",
    "slanted_edge",
    "shapes",
    "gradient",
    "texture",
)

_DEFAULT_NUM_PROCEDURAL = {"train": 32, "val": 8}
_SPLIT_STREAM = {"train": 0, "val": 1}  # separate seed streams keep the splits disjoint
_NOISE_FRACTION = 0.25  # share of procedural images that get mild sensor noise
_SIZES = (256, 320, 384, 448, 512)

EMBEDDED_DESCRIPTION = (
    "edgesr embedded default set (no download): "
    f"{len(SKIMAGE_TRAIN)} train / {len(SKIMAGE_VAL)} validation images shipped with "
    "scikit-image (astronaut, chelsea, coffee, rocket, motorcycle, brick, grass, gravel, camera, "
    "moon, page, text, Hubble deep field, retina, microscopy and others; validation holds out "
    + ", ".join(n.rsplit(".", 1)[0] for n in SKIMAGE_VAL)
    + "), plus procedurally generated 256-512 px anti-aliased images - dead-leaves texture, "
    "text in several fonts and angles, zone plates, sinusoidal/square gratings, slanted edges, "
    "sharp shapes, smooth gradients and multi-scale filtered-noise textures, a quarter with mild "
    "Poisson-Gaussian sensor noise. Small and synthetic-heavy: for smoke tests, demos and CI, "
    "not for production-quality models."
)


# ---------------------------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------------------------


def _downscale(hi: np.ndarray, size: int) -> np.ndarray:
    """Area-average a supersampled float render to ``size`` x ``size`` (the anti-aliasing step)."""
    return cv2.resize(hi, (size, size), interpolation=cv2.INTER_AREA)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.random(3).astype(np.float32)


def _contrasting_pair(rng: np.random.Generator, min_diff: float = 0.35) -> tuple[np.ndarray, ...]:
    """Two colours whose luminance differs by at least ``min_diff`` (so the pattern is visible)."""
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    for _ in range(20):
        a, b = _colour(rng), _colour(rng)
        if abs(float(lum @ a) - float(lum @ b)) >= min_diff:
            return a, b
    return np.full(3, 0.1, np.float32), np.full(3, 0.9, np.float32)


def _blend(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel mix of colours a (t=0) and b (t=1); t is HxW in [0, 1]."""
    return a[None, None, :] + (b - a)[None, None, :] * t[:, :, None]


def _grid(n: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (row vector x, column vector y) of an n x n grid, times scale.

    With scale = 1/ss they are in output pixels, so patterns are specified at output size.
    """
    c = (np.arange(n, dtype=np.float32) + 0.5) * scale
    return c[None, :], c[:, None]


def _smooth_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A flat, linear-gradient or blotchy background in float RGB, output resolution."""
    choice = rng.integers(3)
    if choice == 0:
        return np.broadcast_to(_colour(rng), (size, size, 3)).copy()
    x, y = _grid(size, 1.0 / size)
    if choice == 1:
        theta = rng.uniform(0, 2 * np.pi)
        t = np.cos(theta) * (x - 0.5) + np.sin(theta) * (y - 0.5) + 0.5
        return _blend(_colour(rng), _colour(rng), np.clip(t, 0, 1))
    low = rng.random((4, 4, 3)).astype(np.float32)
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


# ---------------------------------------------------------------------------------------------
# Procedural kinds. Each takes the output size and an rng and returns float32 RGB in [0, 1].
# ---------------------------------------------------------------------------------------------


def _dead_leaves(size: int, rng: np.random.Generator) -> np.ndarray:
    """Occluding discs and rotated rectangles, radius density ~ 1/r^3 (scale-invariant)."""
    ss = 3
    n = size * ss
    img = np.empty((n, n, 3), np.float32)
    img[:] = _colour(rng)
    rmin, rmax = 1.0 * ss, size * ss / 5.0
    # Enough shapes to cover the canvas ~3 times, so the first background barely shows:
    # E[r^2] of the r^-3 law on [rmin, rmax] is 2 ln(rmax/rmin) / (rmin^-2 - rmax^-2).
    mean_r2 = 2 * np.log(rmax / rmin) / (rmin**-2 - rmax**-2)
    count = int(3.0 * n * n / (np.pi * mean_r2))
    u = rng.random(count)
    radii = (rmin**-2 - u * (rmin**-2 - rmax**-2)) ** -0.5  # inverse CDF of the r^-3 law
    centres = rng.uniform(-0.05 * n, 1.05 * n, (count, 2))
    colours = rng.random((count, 3))
    is_rect = rng.random(count) < 0.3
    # Rotated-rectangle corners for all shapes at once: cv2.boxPoints per shape is slower.
    ang = rng.uniform(0, np.pi, (count, 1))
    ux, uy = np.cos(ang), np.sin(ang)
    sx = np.array([1, -1, -1, 1]) * radii[:, None]
    sy = np.array([1, 1, -1, -1]) * radii[:, None] * rng.uniform(0.4, 1.0, (count, 1))
    corners = np.stack(
        [centres[:, :1] + sx * ux - sy * uy, centres[:, 1:] + sx * uy + sy * ux], axis=-1
    )
    corners = np.round(corners).astype(np.int32)
    # Python lists: indexing numpy scalars in a 20k-iteration loop is the slow part.
    for i, ((cx, cy), r, col, rect) in enumerate(
        zip(centres.tolist(), radii.tolist(), colours.tolist(), is_rect.tolist(), strict=True)
    ):
        if rect:
            cv2.fillConvexPoly(img, corners[i], col)
        else:
            cv2.circle(img, (round(cx), round(cy)), max(1, round(r)), col, -1)
    return _downscale(img, size)


_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789      .,:;-+=/()%&?!"


def _text(size: int, rng: np.random.Generator) -> np.ndarray:
    """Lines of random text, several fonts, sizes, weights and angles, on a varied background."""
    ss = 3
    n = size * ss
    bg = _smooth_background(size, rng)
    img = cv2.resize(bg, (n, n), interpolation=cv2.INTER_LINEAR)
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    bg_lum = float(lum @ bg.reshape(-1, 3).mean(0))
    chars = np.array(list(_CHARS))
    for _ in range(int(rng.integers(10, 24))):
        font = int(rng.choice(_FONTS))
        # Cap heights from ~5 to ~40 output px: small text is where SR nets fail first.
        scale_out = float(np.exp(rng.uniform(np.log(0.25), np.log(1.5))))
        scale = scale_out * ss
        # Stroke width in output px, from hairline to bold, never below a third of a pixel.
        thick = max(1, round(ss * max(0.34, scale_out * float(rng.uniform(0.8, 2.5)))))
        line = "".join(rng.choice(chars, int(rng.integers(6, 40))))
        (tw, th), base = cv2.getTextSize(line, font, scale, thick)
        # Draw the line on a tight canvas and rotate only that: a full-size mask per line
        # would cost ten times more.
        pad = thick + 2
        cw, ch = min(tw + 2 * pad, 2 * n), th + base + 2 * pad
        mask8 = np.zeros((ch, cw), np.uint8)  # putText draws on 8-bit images only
        cv2.putText(mask8, line, (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
        angle = 0.0 if rng.random() < 0.5 else float(rng.uniform(-45, 45))
        if angle:
            rot = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, 1.0)
            cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
            rw, rh = int(ch * sin + cw * cos) + 2, int(ch * cos + cw * sin) + 2
            rot[:, 2] += (rw - cw) / 2, (rh - ch) / 2
            mask8 = cv2.warpAffine(mask8, rot, (rw, rh), flags=cv2.INTER_LINEAR)
        mh, mw = mask8.shape
        x0, y0 = int(rng.integers(-mw // 4, n - mw // 2)), int(rng.integers(-mh // 2, n - mh // 2))
        # Clip the line's box to the canvas.
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + mw, n), min(y0 + mh, n)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        m = mask8[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].astype(np.float32)[:, :, None] / 255.0
        # Ink contrasts with the background so every line is legible.
        ink = _colour(rng) * 0.35 + (0.0 if bg_lum > 0.5 else 0.65)
        roi = img[iy0:iy1, ix0:ix1]
        roi += (ink[None, None, :] - roi) * m
    return _downscale(img, size)


def _zone_plate(size: int, rng: np.random.Generator) -> np.ndarray:
    """Circular chirp cos(k r^2) whose local frequency rises towards Nyquist, then fades out."""
    ss = 3
    n = size * ss
    x, y = _grid(n, 1.0 / ss)
    cx, cy = rng.uniform(0.3, 0.7, 2) * size
    r2 = (x - cx) ** 2 + (y - cy) ** 2
    rmax = float(np.sqrt(2) * size * 0.7)
    f_top = float(rng.uniform(0.3, 0.45))  # cycles per output pixel at rmax
    k = np.pi * f_top / rmax  # local frequency f(r) = k r / pi
    f_local = k * np.sqrt(r2) / np.pi
    # Taper above 0.4 cycles/px so nothing beyond Nyquist survives the area downscale.
    amp = np.clip((0.48 - f_local) / 0.08, 0.0, 1.0)
    t = 0.5 + 0.5 * amp * np.cos(k * r2 + rng.uniform(0, 2 * np.pi))
    a, b = _contrasting_pair(rng, 0.5)
    # Blending is linear, so downscale the one-channel pattern first (3x less work).
    return _blend(a, b, _downscale(t.astype(np.float32), size))


def _tiles(size: int, ss: int, tiles: int) -> list[tuple[slice, slice, int, int]]:
    """Tile slices of a supersampled canvas, cut on whole output pixels so each tile downscales
    on its own; returns (rows, cols, out_h, out_w) per tile."""
    cuts = np.linspace(0, size, tiles + 1).astype(int)
    return [
        (
            slice(cuts[i] * ss, cuts[i + 1] * ss),
            slice(cuts[j] * ss, cuts[j + 1] * ss),
            int(cuts[i + 1] - cuts[i]),
            int(cuts[j + 1] - cuts[j]),
        )
        for i in range(tiles)
        for j in range(tiles)
    ]


def _grating(size: int, rng: np.random.Generator) -> np.ndarray:
    """A grid of sinusoidal and square-wave gratings, each with its own angle and frequency."""
    ss = 3
    x, y = _grid(size * ss, 1.0 / ss)
    out = np.empty((size, size, 3), np.float32)
    for ys, xs, h, w in _tiles(size, ss, int(rng.choice([2, 3]))):
        theta = rng.uniform(0, np.pi)
        square = rng.random() < 0.35
        # Square waves carry odd harmonics, so keep their fundamental lower.
        log_f = rng.uniform(np.log(0.02), np.log(0.12 if square else 0.4))
        freq = np.exp(log_f)  # cycles per output pixel
        phase = np.cos(theta) * x[:, xs] + np.sin(theta) * y[ys, :]
        wave = np.cos(2 * np.pi * freq * phase + rng.uniform(0, 2 * np.pi))
        if square:
            wave = np.sign(wave)
        t = (0.5 + 0.5 * rng.uniform(0.3, 1.0) * wave).astype(np.float32)
        a, b = _contrasting_pair(rng, 0.3)
        # Blending is linear: downscale the one-channel pattern, then colour it.
        out[ys.start // ss : ys.stop // ss, xs.start // ss : xs.stop // ss] = _blend(
            a, b, cv2.resize(t, (w, h), interpolation=cv2.INTER_AREA)
        )
    return out


def _slanted_edge(size: int, rng: np.random.Generator) -> np.ndarray:
    """ISO 12233-style targets: tiles with a straight edge a few degrees off the pixel grid."""
    ss = 4
    x, y = _grid(size * ss, 1.0 / ss)
    out = np.empty((size, size, 3), np.float32)
    for ys, xs, h, w in _tiles(size, ss, int(rng.choice([1, 2, 3]))):
        # Mostly the classic ~5 degree slant off vertical/horizontal, sometimes any angle.
        base = rng.choice([0.0, 90.0]) if rng.random() < 0.7 else rng.uniform(0, 180)
        theta = np.deg2rad(base + rng.uniform(2, 10) * rng.choice([-1, 1]))
        cx = (xs.start + xs.stop) / 2 / ss + rng.uniform(-0.1, 0.1) * w
        cy = (ys.start + ys.stop) / 2 / ss + rng.uniform(-0.1, 0.1) * h
        side = (np.cos(theta) * (x[:, xs] - cx) + np.sin(theta) * (y[ys, :] - cy)) > 0
        a, b = _contrasting_pair(rng, 0.3)
        t = cv2.resize(side.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        out[ys.start // ss : ys.stop // ss, xs.start // ss : xs.stop // ss] = _blend(a, b, t)
    return out


def _shapes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Sharp lines of every width, polygons and a Siemens star over a smooth background."""
    ss = 3
    n = size * ss
    img = cv2.resize(_smooth_background(size, rng), (n, n), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(4, 10))):
        pts = (rng.uniform(0, n, (int(rng.integers(3, 7)), 2))).astype(np.int32)
        cv2.fillPoly(img, [cv2.convexHull(pts)], _colour(rng).tolist())
    if rng.random() < 0.6:
        # Siemens star: radial edges at every angle, frequency rising towards the centre.
        # Computed only inside its bounding box (render pixels).
        cx, cy = rng.uniform(0.3, 0.7, 2) * n
        radius = rng.uniform(0.12, 0.28) * n  # stays inside the canvas
        spokes = int(rng.integers(8, 25))
        x0, x1 = int(cx - radius), int(cx + radius) + 1
        y0, y1 = int(cy - radius), int(cy + radius) + 1
        x = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
        y = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
        r2 = x**2 + y**2
        inside = r2 < radius**2
        t = (np.cos(spokes * np.arctan2(y, x)) > 0).astype(np.float32)
        # Near the hub the spokes are finer than 2 output px: show their average there, as an
        # ideal low-pass would, instead of aliasing.
        t[r2 < (spokes * ss / np.pi) ** 2] = 0.5
        a, b = _contrasting_pair(rng, 0.5)
        roi = img[y0:y1, x0:x1]
        roi[inside] = _blend(a, b, t)[inside]
    for _ in range(int(rng.integers(10, 30))):
        p1 = tuple(int(v) for v in rng.uniform(0, n, 2))
        p2 = tuple(int(v) for v in rng.uniform(0, n, 2))
        width = max(1, round(float(np.exp(rng.uniform(np.log(0.4), np.log(6)))) * ss))
        cv2.line(img, p1, p2, _colour(rng).tolist(), width)
    return _downscale(img, size)


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth linear, radial and low-frequency colour ramps: SR must add nothing here."""
    x, y = _grid(size, 1.0 / size)
    theta = rng.uniform(0, 2 * np.pi)
    lin = np.clip((np.cos(theta) * (x - 0.5) + np.sin(theta) * (y - 0.5)) * 1.2 + 0.5, 0, 1)
    out = _blend(_colour(rng), _colour(rng), lin)
    cx, cy = rng.uniform(0, 1, 2)
    rad = np.clip(np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / rng.uniform(0.4, 1.2), 0, 1)
    out = out * (1 - 0.5 * rad[:, :, None]) + 0.5 * rad[:, :, None] * _colour(rng)
    freq = rng.uniform(0.5, 2.5, 2)
    wave = np.sin(2 * np.pi * (freq[0] * x + freq[1] * y) + rng.uniform(0, 2 * np.pi))
    out += 0.08 * wave[:, :, None] * (rng.random(3).astype(np.float32) - 0.5)
    # Analytic and far below Nyquist, so it needs no supersampling.
    return np.clip(out, 0, 1).astype(np.float32)


def _texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Colour noise shaped in frequency (power law, random anisotropy) plus a blurred-noise octave.

    Made in the Fourier domain at the output size, so it is band-limited by construction and
    needs no supersampling.
    """
    fy = np.fft.fftfreq(size).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(size).astype(np.float32)[None, :]
    theta = rng.uniform(0, np.pi)
    stretch = rng.uniform(1.0, 4.0) if rng.random() < 0.5 else 1.0
    u = np.cos(theta) * fx + np.sin(theta) * fy
    v = -np.sin(theta) * fx + np.cos(theta) * fy
    f = np.sqrt(u**2 + (v * stretch) ** 2)
    f[0, 0] = 1.0
    beta = rng.uniform(0.8, 2.0)  # amplitude ~ f^-beta: from fine grain to cloudy
    amp = f**-beta
    amp[0, 0] = 0.0
    mix = rng.normal(0, 1, (3, 3)).astype(np.float32) + np.eye(3, dtype=np.float32) * 1.5
    channels = []
    for _ in range(3):
        spec = amp * (rng.normal(size=amp.shape) + 1j * rng.normal(size=amp.shape))
        channels.append(np.fft.irfft2(spec, s=(size, size)).astype(np.float32))
    noise = np.stack(channels, -1) @ mix.T
    noise /= noise.std() + 1e-8
    if rng.random() < 0.5:  # a second, blurred-noise octave at a random scale
        sigma = float(np.exp(rng.uniform(np.log(0.7), np.log(6))))
        extra = cv2.GaussianBlur(rng.normal(size=(size, size, 3)).astype(np.float32), (0, 0), sigma)
        noise += extra / (extra.std() + 1e-8) * rng.uniform(0.3, 1.0)
        noise /= noise.std() + 1e-8
    base = _colour(rng) * 0.6 + 0.2
    return np.clip(base + noise * rng.uniform(0.08, 0.22), 0, 1).astype(np.float32)


_RENDERERS = {
    "dead_leaves": _dead_leaves,
    "text": _text,
    "zone_plate": _zone_plate,
    "grating": _grating,
    "slanted_edge": _slanted_edge,
    "shapes": _shapes,
    "gradient": _gradient,
    "texture": _texture,
}
assert tuple(_RENDERERS) == PROCEDURAL_KINDS


def procedural_image(kind: str, *, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one ``size`` x ``size`` procedural image of ``kind`` as uint8 RGB.

    Deterministic for the rng state. ``kind`` is one of :data:`PROCEDURAL_KINDS`.
    """
    if kind not in _RENDERERS:
        raise ConfigError(
            f"unknown procedural kind {kind!r}; choose from {', '.join(PROCEDURAL_KINDS)}"
        )
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ConfigError(f"procedural image size must be an integer >= 16, got {size!r}")
    return _to_uint8(_RENDERERS[kind](int(size), rng))


def add_sensor_noise(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    shot: float | None = None,
    read: float | None = None,
) -> np.ndarray:
    """Add mild Poisson-Gaussian noise to uint8 RGB: variance = shot * x + read^2 (x in [0, 1]).

    Defaults draw shot in [1e-4, 2e-3] and read std in [0.5, 3]/255: visible grain, not a
    denoising task.
    """
    x = img.astype(np.float32) / 255.0
    shot = float(np.exp(rng.uniform(np.log(1e-4), np.log(2e-3)))) if shot is None else shot
    read = float(rng.uniform(0.5, 3.0)) / 255.0 if read is None else read
    sigma = np.sqrt(shot * x + read**2)
    return _to_uint8(x + sigma * rng.standard_normal(x.shape, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


def _skimage_dir() -> Path:
    # Importing skimage.data only locates the package; no fetcher runs.
    import skimage.data

    return Path(os.path.dirname(skimage.data.__file__))


@functools.lru_cache(maxsize=2)
def _skimage_images(names: tuple[str, ...]) -> tuple[LoadedImage, ...]:
    """The photos, read once per process and shared (read-only) by every seed's set."""
    folder = _skimage_dir()
    out = []
    for fname in names:
        path = folder / fname
        if not path.is_file():  # some distributions trim skimage/data; use what is there
            continue
        rgb = read_image(path)
        rgb.flags.writeable = False
        out.append(LoadedImage(name=f"skimage/{path.stem}", path=path, rgb=rgb))
    return tuple(out)


def _procedural_set(split: str, seed: int, count: int) -> list[LoadedImage]:
    prefix = "procedural/" if split == "train" else "procedural/val_"
    out = []
    for i in range(count):
        # One independent stream per image: image i is the same whatever `count` is.
        rng = np.random.default_rng([seed, _SPLIT_STREAM[split], i])
        kind = PROCEDURAL_KINDS[i % len(PROCEDURAL_KINDS)]
        size = int(rng.choice(_SIZES))
        img = procedural_image(kind, size=size, rng=rng)
        name = f"{prefix}{kind}_{i:04d}"
        if kind != "gradient" and rng.random() < _NOISE_FRACTION:
            img = add_sensor_noise(img, rng)
            name += "_noisy"
        out.append(LoadedImage(name=name, path=None, rgb=img))
    return out


@functools.lru_cache(maxsize=8)
def _build(split: str, seed: int, num_procedural: int) -> tuple[LoadedImage, ...]:
    photos = _skimage_images(SKIMAGE_TRAIN if split == "train" else SKIMAGE_VAL)
    images = list(photos) + _procedural_set(split, seed, num_procedural)
    if not images:
        raise DataError(
            f"the embedded {split} set is empty: no scikit-image photos were found in "
            f"{_skimage_dir()} and num_procedural is 0; reinstall scikit-image or pass a dataset"
        )
    for im in images:
        im.rgb.flags.writeable = False  # the cached copy must never change
    return tuple(images)


def _clear_caches() -> None:
    """Forget built sets (tests use it after swapping the skimage folder)."""
    _build.cache_clear()
    _skimage_images.cache_clear()


def embedded_images(
    *, split: str = "train", seed: int = 0, num_procedural: int | None = None
) -> list[LoadedImage]:
    """The embedded default set for ``split`` ("train" or "val"), deterministic for ``seed``.

    Train: the scikit-image photos in :data:`SKIMAGE_TRAIN` plus ``num_procedural`` (default 32)
    procedural images. Val: :data:`SKIMAGE_VAL` plus 8 procedural images from a separate seed
    stream, so no name or image is shared with train. Names say where each came from
    (``skimage/astronaut``, ``procedural/dead_leaves_0000``, ``procedural/val_text_0001_noisy``).
    Built once per (split, seed, num_procedural) and cached; each call returns fresh writable
    copies of the arrays.
    """
    if split in ("valid", "validation"):
        split = "val"
    if split not in _SPLIT_STREAM:
        raise ConfigError(f"embedded split must be 'train' or 'val', not {split!r}")
    if num_procedural is None:
        num_procedural = _DEFAULT_NUM_PROCEDURAL[split]
    if num_procedural < 0:
        raise ConfigError(f"num_procedural must be >= 0, got {num_procedural}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    cached = _build(split, int(seed), int(num_procedural))
    return [LoadedImage(name=im.name, path=im.path, rgb=im.rgb.copy()) for im in cached]
