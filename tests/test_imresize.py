from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgesr.data.color import rgb_to_ycbcr
from edgesr.data.imresize import imresize, imresize_torch, resize_weights
from edgesr.errors import ConfigError, DataError

# ---------------------------------------------------------------------------------------------
# An independent brute-force reference: one output pixel at a time, straight from the MATLAB
# definition (no tap matrix, no mirror lookup table).


def _cubic_scalar(d: float) -> float:
    a = abs(d)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _mirror(j: int, n: int) -> int:
    """0-based symmetric reflection that repeats the edge pixel: -1 -> 0, n -> n - 1."""
    while j < 0 or j >= n:
        j = -j - 1 if j < 0 else 2 * n - 1 - j
    return j


def _ref_resize_axis0(x: np.ndarray, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    n = x.shape[0]
    shrink = scale < 1 and antialias
    half = (4 / scale if shrink else 4) / 2
    out = np.zeros((out_len, *x.shape[1:]))
    for i in range(1, out_len + 1):  # 1-based, as MATLAB
        u = i / scale + 0.5 * (1 - 1 / scale)
        taps = range(math.floor(u - half), math.ceil(u + half) + 1)
        w = [
            scale * _cubic_scalar(scale * (u - j)) if shrink else _cubic_scalar(u - j) for j in taps
        ]
        total = sum(w)
        for j, wj in zip(taps, w, strict=True):
            out[i - 1] += wj / total * x[_mirror(j - 1, n)]
    return out


def _ref_imresize(
    x: np.ndarray, out_hw: tuple[int, int], scales: tuple[float, float], antialias=True
):
    x = x.astype(np.float64)
    dims = [0, 1] if scales[0] <= scales[1] else [1, 0]  # smaller scale first, rows on ties
    for d in dims:
        x = np.moveaxis(
            _ref_resize_axis0(np.moveaxis(x, d, 0), out_hw[d], scales[d], antialias), 0, d
        )
    return x


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7, 1.5])
@pytest.mark.parametrize("shape", [(17, 23, 3), (12, 9)])
def test_matches_brute_force_reference(scale, shape):
    rng = np.random.default_rng(0)
    img = rng.random(shape)
    out = imresize(img, scale)
    out_hw = (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale))
    assert out.shape == out_hw + shape[2:]
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, _ref_imresize(img, out_hw, (scale, scale)), atol=1e-12)


def test_brute_force_without_antialias_and_output_shape():
    rng = np.random.default_rng(1)
    img = rng.random((21, 15, 2))
    out = imresize(img, 1 / 3, antialias=False)
    np.testing.assert_allclose(out, _ref_imresize(img, (7, 5), (1 / 3, 1 / 3), False), atol=1e-12)
    # Unequal scales: MATLAB resizes the dimension with the smaller scale (here width) first.
    out = imresize(img, output_shape=(30, 6))
    np.testing.assert_allclose(out, _ref_imresize(img, (30, 6), (30 / 21, 6 / 15)), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Hand-derived values.
#
# Cubic kernel (a = -0.5): |d| <= 1: 1.5|d|^3 - 2.5|d|^2 + 1; 1 < |d| <= 2: -0.5|d|^3 + 2.5|d|^2 - 4|d| + 2
#   c(0.25) = 1.5*0.015625 - 2.5*0.0625 + 1           =  0.0234375 - 0.15625 + 1    =  0.8671875
#   c(0.75) = 1.5*0.421875 - 2.5*0.5625 + 1           =  0.6328125 - 1.40625 + 1    =  0.2265625
#   c(1.25) = -0.5*1.953125 + 2.5*1.5625 - 5 + 2      = -0.9765625 + 3.90625 - 3    = -0.0703125
#   c(1.75) = -0.5*5.359375 + 2.5*3.0625 - 7 + 2      = -2.6796875 + 7.65625 - 5    = -0.0234375
# 2*(c(.25) + c(.75) + c(1.25) + c(1.75)) = 2*1.0 = 2, so at x1/2 (h(d) = c(d/2)/2) the eight
# weights already sum to 1 and normalisation changes nothing.
C025, C075, C125, C175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375


def test_half_scale_weights_by_hand():
    w = resize_weights(16, 8, 0.5)
    assert w.shape == (8, 16)
    # Output 4 (1-based): u = 4/0.5 + 0.5*(1 - 2) = 7.5; inputs j = 4..11 (1-based) lie at
    # u - j = 3.5, 2.5, 1.5, 0.5, -0.5, ..., -3.5, i.e. the cubic at 1.75, 1.25, 0.75, 0.25, ... / 2.
    interior = np.zeros(16)
    interior[3:11] = np.array([C175, C125, C075, C025, C025, C075, C125, C175]) / 2
    np.testing.assert_allclose(w[3], interior, atol=1e-15)
    # Output 1: u = 1.5, taps j = -2..5; mirrored j = 0 -> 1, -1 -> 2, -2 -> 3 (1-based), so
    # column 1 gets c(.25)+c(.75), column 2 c(.25)+c(1.25), column 3 c(.75)+c(1.75) (all / 2).
    border = np.zeros(16)
    border[:5] = np.array([C025 + C075, C025 + C125, C075 + C175, C125, C175]) / 2
    np.testing.assert_allclose(w[0], border, atol=1e-15)
    assert border[:3].tolist() == [0.546875, 0.3984375, 0.1015625]
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-15)


def test_double_scale_weights_by_hand():
    w = resize_weights(8, 16, 2.0)
    # Output 5 (1-based): u = 5/2 + 0.5*(1 - 1/2) = 2.75; inputs 1..4 at distances
    # 1.75, 0.75, -0.25, -1.25 (no widening on upscale).
    expected = np.zeros(8)
    expected[:4] = [C175, C075, C025, C125]
    np.testing.assert_allclose(w[4], expected, atol=1e-15)


def test_weights_cached_and_read_only():
    a = resize_weights(40, 10, 0.25)
    assert resize_weights(40, 10, 0.25) is a
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    # The matrix is the 1-D resize.
    x = np.random.default_rng(2).random((40, 1))
    np.testing.assert_allclose(a @ x, imresize(x, output_shape=(10, 1)), atol=1e-12)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 3])
def test_constant_images_stay_constant(scale):
    f = np.full((13, 10, 3), 0.3, dtype=np.float32)
    out = imresize(f, scale)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.3, atol=1e-6)
    u = np.full((13, 10), 200, dtype=np.uint8)
    assert np.array_equal(imresize(u, scale), np.full_like(imresize(u, scale), 200))


def test_uint8_rounds_half_away_from_zero_and_saturates():
    # Row [0, 0, 192, 0, 0, 0] enlarged x2 along the width (height 1 -> 1 is an exact identity).
    # Output 5 takes inputs 1..4 with weights c(1.75), c(.75), c(.25), c(1.25) (see above), so it
    # is 192 * 0.8671875 = 166.5 exactly: MATLAB gives 167, banker's rounding would give 166.
    row = np.array([[0, 0, 192, 0, 0, 0]], dtype=np.uint8)
    assert imresize(row.astype(np.float64), output_shape=(1, 12))[0, 4] == 166.5
    out = imresize(row, output_shape=(1, 12))
    assert out.dtype == np.uint8
    assert out[0, 4] == 167
    # Overshoot above 255 and below 0 saturates instead of wrapping.
    step = np.array([[0, 0, 0, 255, 255, 255]], dtype=np.uint8)
    f = imresize(step.astype(np.float64), output_shape=(1, 12))
    assert f.max() > 255 and f.min() < 0
    u = imresize(step, output_shape=(1, 12))
    assert u.max() == 255 and u.min() == 0
    np.testing.assert_array_equal(u, np.floor(np.clip(f, 0, 255) + 0.5))


def test_integer_images_round_after_each_pass_like_matlab():
    # MATLAB's imresizemex returns the input class from each 1-D pass, so uint8 is rounded
    # between the height and the width pass.
    img = np.random.default_rng(3).integers(0, 256, (19, 14, 3), dtype=np.uint8)
    wh, ww = resize_weights(19, 5, 0.25), resize_weights(14, 4, 0.25)
    rows = np.floor(np.clip(np.einsum("oh,hwc->owc", wh, img.astype(np.float64)), 0, 255) + 0.5)
    both = np.einsum("ow,hwc->hoc", ww, rows)
    expected = np.floor(np.clip(both, 0, 255) + 0.5).astype(np.uint8)
    # ... which is not the same as rounding once at the end (so this test can tell them apart).
    once = np.einsum("ow,hwc->hoc", ww, np.einsum("oh,hwc->owc", wh, img.astype(np.float64)))
    assert not np.array_equal(np.floor(np.clip(once, 0, 255) + 0.5).astype(np.uint8), expected)
    np.testing.assert_array_equal(imresize(img, 0.25), expected)
    img16 = img.astype(np.uint16) * 257
    out16 = imresize(img16, 0.25)
    assert out16.dtype == np.uint16
    assert np.abs(out16.astype(int) - expected.astype(int) * 257).max() <= 257


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 2, 3])
def test_torch_matches_numpy(scale):
    x = torch.rand(2, 3, 18, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out = imresize_torch(x, scale)
    assert out.dtype == torch.float64 and out.device == x.device
    for n in range(2):
        ref = imresize(x[n].permute(1, 2, 0).numpy(), scale)
        np.testing.assert_allclose(out[n].permute(1, 2, 0).numpy(), ref, atol=1e-12)
    out32 = imresize_torch(x.float(), scale)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, out.float(), atol=1e-5, rtol=0)


def test_torch_output_shape_and_gradient():
    x = torch.rand(1, 2, 10, 12, requires_grad=True)
    y = imresize_torch(x, output_shape=(5, 30))
    assert y.shape == (1, 2, 5, 30)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"scale": 2, "output_shape": (4, 4)}, "exactly one"),
        ({"scale": 0}, "scale"),
        ({"scale": -2}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"scale": "2"}, "scale"),
        ({"scale": True}, "scale"),
        ({"output_shape": (0, 4)}, "output_shape"),
        ({"output_shape": (4,)}, "output_shape"),
        ({"output_shape": (4.5, 4)}, "output_shape"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        imresize(np.zeros((4, 4)), **kwargs)


def test_bad_images_raise_data_error():
    with pytest.raises(DataError, match="empty"):
        imresize(np.zeros((0, 5)), 2)
    with pytest.raises(DataError, match="HxW"):
        imresize(np.zeros((2, 4, 4, 3)), 2)
    with pytest.raises(DataError, match="int32"):
        imresize(np.zeros((4, 4), dtype=np.int32), 2)
    with pytest.raises(DataError, match="float"):
        imresize_torch(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 2)
    with pytest.raises(DataError, match="N, C, H, W"):
        imresize_torch(torch.zeros(1, 4, 4), 2)
    with pytest.raises(DataError, match="empty"):
        imresize_torch(torch.zeros(1, 1, 0, 4), 2)
    with pytest.raises(ConfigError, match="in_len"):
        resize_weights(0, 4, 2.0)
    with pytest.raises(ConfigError, match="scale"):
        resize_weights(4, 4, 0.0)


# ---------------------------------------------------------------------------------------------
# The protocol check: the bicubic baseline on Set5 must reproduce the published numbers.

PUBLISHED_SET5_BICUBIC = {2: 33.66, 3: 30.39, 4: 28.42}


def _y_psnr(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    # Written out here (not edgesr.metrics) so this check does not depend on that module.
    y_sr, y_hr = (rgb_to_ycbcr(a.astype(np.float64) / 255, y_only=True) * 255 for a in (sr, hr))
    diff = (y_sr - y_hr)[border:-border, border:-border]
    return 10 * math.log10(255**2 / np.mean(diff**2))


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "scale", [2, 3, 4], ids=[f"x{s}-published-{v}" for s, v in PUBLISHED_SET5_BICUBIC.items()]
)
def test_set5_bicubic_baseline_matches_papers(set5: Path, scale: int):
    paths = sorted(set5.glob("*.png"))
    assert len(paths) == 5, f"expected the 5 Set5 images in {set5}, found {len(paths)}"
    psnrs = []
    for path in paths:
        hr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # always 3 channels: grey is replicated
        assert hr is not None, f"cannot read {path}"
        hr = cv2.cvtColor(hr, cv2.COLOR_BGR2RGB)
        h, w = hr.shape[:2]
        hr = hr[: h - h % scale, : w - w % scale]
        lr = imresize(hr, 1 / scale)
        sr = imresize(lr, scale)
        assert lr.dtype == sr.dtype == np.uint8 and sr.shape == hr.shape
        psnrs.append(_y_psnr(sr, hr, scale))
    mean = float(np.mean(psnrs))
    print(f"Set5 bicubic x{scale}: {mean:.4f} dB (published {PUBLISHED_SET5_BICUBIC[scale]})")
    assert abs(mean - PUBLISHED_SET5_BICUBIC[scale]) <= 0.05, (
        f"Set5 bicubic x{scale} mean Y-PSNR {mean:.4f} dB, published "
        f"{PUBLISHED_SET5_BICUBIC[scale]} dB; per image {np.round(psnrs, 3).tolist()}"
    )
