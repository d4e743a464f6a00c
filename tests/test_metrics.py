from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from edgesr.errors import ConfigError, DataError
from edgesr.metrics import (
    calculate_psnr,
    calculate_psnr_torch,
    calculate_ssim,
    calculate_ssim_torch,
    periodic_grid_db,
)


def _pair(shape=(40, 48, 3), seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0.1, 0.9, shape)
    img = np.clip(ref + rng.normal(0, 0.05, shape), 0, 1)
    return img, ref


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def test_psnr_of_a_known_error():
    _, ref = _pair()
    img = ref + 1 / 255  # every value off by exactly 1 in the 0..255 scale
    # MSE = 1 -> 10*log10(255^2) = 20*log10(255) = 48.1308 dB.
    expected = 20 * math.log10(255)
    assert calculate_psnr(img, ref, crop_border=0, test_y_channel=False) == pytest.approx(expected)
    assert expected == pytest.approx(48.13, abs=0.005)
    # On Y the offset is (65.481 + 128.553 + 24.966)/255 = 219/255 of a grey level, so
    # PSNR = 20*log10(255 * 255/219): this also shows the Y conversion is applied.
    y_expected = 20 * math.log10(255 * 255 / 219)
    assert calculate_psnr(img, ref, crop_border=0) == pytest.approx(y_expected)
    assert y_expected == pytest.approx(49.45, abs=0.005)
    # Grey images are measured as they are, whatever test_y_channel says.
    assert calculate_psnr(img[..., 0], ref[..., 0], crop_border=0) == pytest.approx(expected)
    # uint8 with data_range=255.
    u = np.full((20, 20, 3), 100, dtype=np.uint8)
    psnr_u8 = calculate_psnr(u + 1, u, crop_border=0, test_y_channel=False, data_range=255)
    assert psnr_u8 == pytest.approx(expected)


def test_identical_images_give_inf():
    _, ref = _pair()
    assert calculate_psnr(ref, ref.copy(), crop_border=2) == math.inf
    t = _nchw(ref)
    assert torch.isinf(calculate_psnr_torch(t, t.clone(), crop_border=2)).all()
    assert calculate_ssim(ref, ref.copy(), crop_border=0) == pytest.approx(1.0, abs=1e-12)
    assert calculate_ssim_torch(t, t.clone(), crop_border=0).item() == pytest.approx(1.0, abs=1e-12)


def test_crop_border():
    img, ref = _pair()
    img = ref.copy()
    img[:3] = 1 - img[:3]  # damage only the top 3 rows
    assert calculate_psnr(img, ref, crop_border=3) == math.inf
    assert calculate_psnr(img, ref, crop_border=2) < math.inf
    assert calculate_ssim(img, ref, crop_border=3) == pytest.approx(1.0, abs=1e-12)
    assert calculate_ssim(img, ref, crop_border=0) < 0.999
    # crop_border=4 equals measuring the cropped images.
    noisy, _ = _pair()
    c = (slice(4, -4), slice(4, -4))
    assert calculate_psnr(noisy, ref, crop_border=4) == calculate_psnr(
        noisy[c], ref[c], crop_border=0
    )
    assert calculate_ssim(noisy, ref, crop_border=4) == calculate_ssim(
        noisy[c], ref[c], crop_border=0
    )


@pytest.mark.parametrize("test_y", [True, False])
@pytest.mark.parametrize("crop", [0, 3])
def test_torch_matches_numpy(test_y, crop):
    img, ref = _pair()
    img2, ref2 = _pair(seed=1)
    a = torch.cat([_nchw(img), _nchw(img2)]).float()  # float32 input, as a model produces
    b = torch.cat([_nchw(ref), _nchw(ref2)]).float()
    kw = {"crop_border": crop, "test_y_channel": test_y}
    psnr = calculate_psnr_torch(a, b, **kw)
    ssim = calculate_ssim_torch(a, b, **kw)
    assert psnr.shape == ssim.shape == (2,)
    for n in range(2):
        x, y = (t[n].permute(1, 2, 0).numpy() for t in (a, b))
        assert abs(psnr[n].item() - calculate_psnr(x, y, **kw)) < 1e-4
        assert abs(ssim[n].item() - calculate_ssim(x, y, **kw)) < 1e-5


def test_ssim_matches_skimage():
    # A smooth-ish 0..255 image pair, large enough (96x80) for the comparison to be meaningful.
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:96, 0:80]
    ref = 127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(0, 5, (96, 80))
    img = ref + rng.normal(0, 12, ref.shape)
    ours = calculate_ssim(img, ref, crop_border=0, data_range=255)
    theirs = structural_similarity(
        img, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    # skimage filters the whole image (reflect padding, 11 taps from truncate=3.5) and then drops
    # a 5-pixel margin: exactly our 'valid' region, so the two agree to rounding error (measured
    # ~2e-16 with skimage 0.26). The 1e-9 tolerance is far tighter than the 1e-3 that would
    # still count as the same definition, yet loose enough for another filter implementation.
    assert 0.3 < ours < 0.95
    assert abs(ours - theirs) < 1e-9, (ours, theirs)


def test_ssim_averages_channels_when_not_on_y():
    img, ref = _pair()
    per_channel = [calculate_ssim(img[..., c], ref[..., c], crop_border=0) for c in range(3)]
    rgb = calculate_ssim(img, ref, crop_border=0, test_y_channel=False)
    assert rgb == pytest.approx(np.mean(per_channel), abs=1e-12)
    assert calculate_ssim(img, ref, crop_border=0) != pytest.approx(rgb, abs=1e-6)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(DataError, match=r"\(20, 20, 3\).*\(20, 21, 3\)"):
        calculate_psnr(np.zeros((20, 20, 3)), np.zeros((20, 21, 3)), crop_border=0)
    with pytest.raises(DataError, match=r"\(1, 3, 20, 20\).*\(1, 3, 20, 21\)"):
        calculate_ssim_torch(torch.zeros(1, 3, 20, 20), torch.zeros(1, 3, 20, 21), crop_border=0)


def test_bad_options():
    a = np.zeros((20, 20, 3))
    with pytest.raises(ConfigError, match="crop_border"):
        calculate_psnr(a, a, crop_border=-1)
    with pytest.raises(ConfigError, match="crop_border"):
        calculate_ssim(a, a, crop_border=1.5)
    with pytest.raises(ConfigError, match="data_range"):
        calculate_psnr(a, a, crop_border=0, data_range=0)
    with pytest.raises(DataError, match="crop_border"):
        calculate_psnr(a, a, crop_border=10)
    with pytest.raises(DataError, match="11x11"):
        calculate_ssim(a, a, crop_border=5)
    t = torch.zeros(1, 3, 20, 20)
    with pytest.raises(DataError, match="11x11"):
        calculate_ssim_torch(t, t, crop_border=5)


def _photo_like(size: int = 256, seed: int = 0) -> np.ndarray:
    """A 1/f ("pink") random field: the smooth, decaying spectrum of natural photos."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size)
    field = np.fft.ifft2(amp * np.exp(2j * np.pi * rng.random((size, size)))).real
    return (field - field.min()) / np.ptp(field)


def _grid(size: int, period: int, amplitude: float, seed: int = 1) -> np.ndarray:
    """A fixed random tile repeated every ``period`` pixels: what disagreeing PixelShuffle
    phases add to an upscaled frame."""
    tile = np.random.default_rng(seed).uniform(-amplitude, amplitude, (period, period))
    return np.tile(tile, (size // period + 1, size // period + 1))[:size, :size]


def test_grid_measure_is_near_zero_on_a_photo_like_image():
    for seed in range(3):
        assert abs(periodic_grid_db(_photo_like(seed=seed), period=4)) < 3.0


def test_grid_measure_finds_a_faint_grid_of_its_period_only():
    img = _photo_like()
    clean = periodic_grid_db(img, period=4)
    # Within +-2 grey levels (of 255) repeated every 4 pixels: faint, yet plain in the spectrum;
    # a stronger grid scores higher.
    faint = periodic_grid_db(img + _grid(img.shape[0], 4, 1 / 255), period=4)
    gridded = img + _grid(img.shape[0], 4, 2 / 255)
    assert faint > clean + 4
    assert periodic_grid_db(gridded, period=4) > faint + 4
    # A 3-pixel grid is not a 4-pixel one.
    other = img + _grid(img.shape[0], 3, 2 / 255)
    assert abs(periodic_grid_db(other, period=4) - clean) < 3.0
    assert periodic_grid_db(other, period=3) > periodic_grid_db(img, period=3) + 10
    # Channels are averaged, borders shaved, and the size need not be a multiple of the period.
    rgb = np.repeat(gridded[:250, :247, None], 3, axis=2)
    assert periodic_grid_db(rgb, period=4, crop_border=4) > clean + 10


def test_grid_measure_rejects_bad_input():
    with pytest.raises(ConfigError, match="period"):
        periodic_grid_db(_photo_like(64), period=1)
    with pytest.raises(ConfigError, match="crop_border"):
        periodic_grid_db(_photo_like(64), period=4, crop_border=-1)
    with pytest.raises(DataError, match="too small"):
        periodic_grid_db(_photo_like(64)[:20, :20], period=4)
    with pytest.raises(DataError, match="HxW"):
        periodic_grid_db(np.zeros(100), period=4)
