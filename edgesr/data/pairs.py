"""LR/HR pairs made the standard way, and random training patches cut from them.

LR images are made once per image with MATLAB-compatible bicubic on the uint8 RGB HR (then
rounded to uint8, as a saved LR file would be) and only then converted to the model's colour
space. Training and evaluation share this code, so a model is trained on exactly the inputs
it is measured on.

With ``degradation="camera"`` the LR of every training patch is instead made afresh by the
random blur/resize/noise/JPEG pipeline of :mod:`edgesr.data.degradations`, and
:func:`make_degraded_pairs` makes fixed, seeded pairs of that kind to evaluate on.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from edgesr.data.color import rgb_to_ycbcr
from edgesr.data.folders import DataWarning, LoadedImage, mod_crop
from edgesr.data.imresize import imresize
from edgesr.errors import ConfigError, DataError
from edgesr.recipe import CameraDegradation, camera_problems


@dataclass(frozen=True)
class SRPair:
    """One evaluation/training image: HR mod-cropped to the scale, LR by bicubic, both uint8 RGB."""

    name: str
    hr_rgb: np.ndarray
    lr_rgb: np.ndarray


def to_model_space(rgb: np.ndarray, color: str) -> np.ndarray:
    """HxWx3 RGB (uint8, or float in [0,1]) -> float32 HxWxC in [0,1]: BT.601 studio Y, or RGB."""
    x = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    if color == "y":
        y = rgb_to_ycbcr(x, y_only=True)
        return np.asarray(y, dtype=np.float32).reshape(rgb.shape[0], rgb.shape[1], 1)
    if color == "rgb":
        return x
    raise DataError(f"unknown colour convention '{color}'; use 'y' or 'rgb'.")


def bicubic_lr(hr: np.ndarray, scale: int, *, strip_rows: int = 128) -> np.ndarray:
    """``imresize(hr, 1/scale)``; a large image strip by strip (same pixels, bounded memory:
    the whole-image passes hold float64 copies of the HR, 1.5 GB for 64 megapixels)."""
    if hr.shape[0] * hr.shape[1] <= 2048 * 2048:
        return imresize(hr, 1.0 / scale)
    from edgesr.data.imresize import imresize_rows

    out_h = -(-hr.shape[0] // scale)  # ceil, as imresize sizes its output
    return np.concatenate(
        [
            imresize_rows(hr, 1.0 / scale, (a, min(out_h, a + strip_rows)))
            for a in range(0, out_h, strip_rows)
        ]
    )


def make_pairs(
    images: Iterable[LoadedImage], *, scale: int, rescales: Sequence[float] = ()
) -> list[SRPair]:
    """Mod-crop each HR and make its LR with MATLAB bicubic (the published-numbers protocol).

    ``rescales`` adds, per image, copies of the HR downscaled by each factor (MATLAB bicubic,
    named ``name@factor``) as further pairs: the scale augmentation of FSRCNN (Dong et al. 2016:
    0.9, 0.8, 0.7, 0.6), which shows the net each structure at several sizes.
    """
    pairs = []
    for img in images:
        versions = [img]
        versions += [
            LoadedImage(f"{img.name}@{f:g}", img.path, imresize(img.rgb, float(f)))
            for f in rescales
        ]
        for version in versions:
            if _too_small(version, scale):
                continue
            hr = mod_crop(version.rgb, scale)
            pairs.append(SRPair(version.name, hr, bicubic_lr(hr, scale)))
    return pairs


def make_degraded_pairs(
    images: Iterable[LoadedImage], *, scale: int, spec: CameraDegradation, seed: int = 0
) -> list[SRPair]:
    """Mod-cropped HR with a camera-degraded uint8 LR each, to evaluate on realistic frames.

    Image i is degraded with its own generator seeded by (seed, i): exactly repeatable, and a
    pair depends only on its image, its index and the seed.
    """
    from edgesr.data.degradations import degrade

    _check_camera(spec)
    pairs = []
    for i, img in enumerate(images):
        if _too_small(img, scale):
            continue
        hr = mod_crop(img.rgb, scale)
        rng = np.random.default_rng([seed, i])
        lr = degrade(hr, scale=scale, rng=rng, spec=spec)
        pairs.append(SRPair(img.name, hr, np.rint(lr * 255.0).astype(np.uint8)))
    return pairs


def _too_small(img: LoadedImage, scale: int) -> bool:
    """Warn (naming the file) and say True when an image has a side shorter than the scale:
    nothing is left of it after mod-crop, and one such file must not abort a whole run."""
    h, w = img.rgb.shape[:2]
    if h >= scale and w >= scale:
        return False
    warnings.warn(
        f"skipping {img.path or img.name}: {w}x{h} pixels is too small for x{scale} "
        f"(each side needs at least {scale} pixels)",
        DataWarning,
        stacklevel=3,
    )
    return True


def _check_camera(spec: CameraDegradation) -> None:
    problems = camera_problems(spec, prefix="camera")
    if problems:
        raise ConfigError("; ".join(problems) + ".")


def as_loaded_images(data: Iterable[Any]) -> list[LoadedImage]:
    """Accept LoadedImage objects or bare HxWx3 uint8 arrays (any iterable)."""
    out = []
    for i, item in enumerate(data):
        if isinstance(item, LoadedImage):
            out.append(item)
        elif (
            isinstance(item, np.ndarray)
            and item.ndim == 3
            and item.shape[2] == 3
            and item.dtype == np.uint8
        ):
            out.append(LoadedImage(name=f"image_{i:04d}", path=None, rgb=item))
        else:
            raise DataError(
                f"item {i} of the dataset is {type(item).__name__}; give HxWx3 uint8 RGB arrays, "
                "edgesr LoadedImage objects, or a folder path."
            )
    return out


class PatchSampler:
    """Random aligned LR/HR patches with the 8 flips/rotations, reproducible and resumable.

    Images are drawn with probability proportional to their number of patch positions, so a
    large photo is not under-sampled next to a small one. The generator state is part of the
    training checkpoint: a resumed run draws the same batches as an uninterrupted one.

    ``degradation="bicubic"`` cuts patches from the pairs' LR/HR. ``"camera"`` keeps only the
    uint8 HR and makes each patch's LR afresh with :func:`edgesr.data.degradations.degrade`
    (knobs: ``camera``), drawing from the same generator, so resuming stays exact.
    """

    def __init__(
        self,
        pairs: Sequence[SRPair],
        *,
        scale: int,
        color: str,
        lr_patch: int,
        batch_size: int,
        augment: bool = True,
        seed: int = 0,
        degradation: str = "bicubic",
        camera: CameraDegradation | None = None,
    ) -> None:
        self.scale, self.lr_patch, self.batch_size, self.augment = (
            scale,
            lr_patch,
            batch_size,
            augment,
        )
        if degradation not in ("bicubic", "camera"):
            raise ConfigError(f"unknown degradation '{degradation}'; use 'bicubic' or 'camera'.")
        self.degradation, self.color = degradation, color
        self.camera = camera if camera is not None else CameraDegradation()
        if degradation == "camera":
            _check_camera(self.camera)
            to_model_space(np.zeros((1, 1, 3), np.uint8), color)  # fail early on a bad colour
        # bicubic: LR/HR in model space; camera: HR in model space is made per patch, and
        # self.hr holds the uint8 RGB HR (a view of the pair's array, no copy).
        self.lr: list[np.ndarray] = []
        self.hr: list[np.ndarray] = []
        sizes: list[tuple[int, int]] = []
        for pair in pairs:
            h, w = pair.lr_rgb.shape[:2]
            if h < lr_patch or w < lr_patch:
                warnings.warn(
                    f"{pair.name}: LR {w}x{h} is smaller than the {lr_patch}px patch; skipped",
                    DataWarning,
                    stacklevel=2,
                )
                continue
            sizes.append((h, w))
            if degradation == "camera":
                self.hr.append(pair.hr_rgb[: h * scale, : w * scale])
            else:
                self.lr.append(to_model_space(pair.lr_rgb, color))
                self.hr.append(to_model_space(pair.hr_rgb, color))
        if not sizes:
            raise DataError(
                f"no training image is large enough for an LR patch of {lr_patch}px at x{scale} "
                f"(HR side >= {lr_patch * scale}px); use larger images or a smaller data.lr_patch."
            )
        self._sizes = sizes
        positions = np.array(
            [(h - lr_patch + 1) * (w - lr_patch + 1) for h, w in sizes], dtype=np.float64
        )
        self.weights = positions / positions.sum()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self._sizes)

    def with_seed(self, seed: int) -> PatchSampler:
        """The same images (shared, not copied) drawn by a new stream seeded with ``seed``."""
        twin = copy.copy(self)
        twin.rng = np.random.default_rng(seed)
        return twin

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.degradation == "camera":
            return self._next_camera_batch()
        p, s = self.lr_patch, self.scale
        idx = self.rng.choice(len(self.lr), size=self.batch_size, p=self.weights)
        lr_batch, hr_batch = [], []
        for i in idx:
            lr, hr = self.lr[i], self.hr[i]
            y = int(self.rng.integers(0, lr.shape[0] - p + 1))
            x = int(self.rng.integers(0, lr.shape[1] - p + 1))
            lr_patch = lr[y : y + p, x : x + p]
            hr_patch = hr[y * s : (y + p) * s, x * s : (x + p) * s]
            if self.augment:
                k = int(self.rng.integers(0, 8))
                lr_patch, hr_patch = _dihedral(lr_patch, k), _dihedral(hr_patch, k)
            lr_batch.append(lr_patch)
            hr_batch.append(hr_patch)
        return _to_nchw(lr_batch), _to_nchw(hr_batch)

    def _next_camera_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        from edgesr.data.degradations import degrade

        p, s = self.lr_patch, self.scale
        idx = self.rng.choice(len(self._sizes), size=self.batch_size, p=self.weights)
        lr_batch, hr_batch = [], []
        for i in idx:
            h, w = self._sizes[i]
            y = int(self.rng.integers(0, h - p + 1))
            x = int(self.rng.integers(0, w - p + 1))
            hr = self.hr[i][y * s : (y + p) * s, x * s : (x + p) * s]
            if self.augment:
                # Before degrading, so the LR is the degraded view of exactly this HR.
                hr = _dihedral(hr, int(self.rng.integers(0, 8)))
            hr = hr.astype(np.float32) / np.float32(255.0)
            lr = degrade(hr, scale=s, rng=self.rng, spec=self.camera)
            lr_batch.append(to_model_space(lr, self.color))
            hr_batch.append(to_model_space(hr, self.color))
        return _to_nchw(lr_batch), _to_nchw(hr_batch)

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def _to_nchw(patches: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(patches).transpose(0, 3, 1, 2)))


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of an HxWxC patch (k in 0..7)."""
    if k & 4:
        a = a.transpose(1, 0, 2)
    if k & 2:
        a = a[::-1]
    if k & 1:
        a = a[:, ::-1]
    return a
