from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesr.data.color import (
    rgb_to_ycbcr,
    rgb_to_ycbcr_torch,
    to_float,
    to_uint8,
    ycbcr_to_rgb,
    ycbcr_to_rgb_torch,
)
from edgesr.errors import DataError


def test_known_values_match_matlab_rgb2ycbcr():
    colours = np.array(
        [[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=np.float64
    )
    out = rgb_to_ycbcr(colours) * 255
    np.testing.assert_allclose(out[0, 0], [235, 128, 128], atol=1e-9)  # white
    np.testing.assert_allclose(out[0, 1], [16, 128, 128], atol=1e-9)  # black
    # Pure red: Y = 16 + 65.481, Cb = 128 - 37.797, Cr = 128 + 112 = 240 (the Cr maximum).
    np.testing.assert_allclose(out[0, 2], [81.481, 90.203, 240], atol=1e-9)
    # Pure blue: Y = 16 + 24.966, Cb = 128 + 112 = 240, Cr = 128 - 18.214.
    np.testing.assert_allclose(out[0, 3], [40.966, 240, 109.786], atol=1e-9)
    y = rgb_to_ycbcr(colours, y_only=True)
    assert y.shape == (1, 4)
    np.testing.assert_array_equal(y, rgb_to_ycbcr(colours)[..., 0])


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_round_trip(dtype, tol):
    rgb = np.random.default_rng(0).random((7, 9, 3)).astype(dtype)
    ycc = rgb_to_ycbcr(rgb)
    assert ycc.dtype == dtype
    assert ycc[..., 0].min() >= 16 / 255 - tol and ycc[..., 0].max() <= 235 / 255 + tol
    back = ycbcr_to_rgb(ycc)
    assert back.dtype == dtype
    np.testing.assert_allclose(back, rgb, atol=tol)
    # The inverse scales Y by 255/219 for every channel (grey stays grey).
    np.testing.assert_allclose(ycbcr_to_rgb(np.array([[[235, 128, 128]]]) / 255.0), 1.0, atol=1e-12)


def test_torch_matches_numpy():
    rgb = torch.rand(2, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ycc = rgb_to_ycbcr_torch(rgb)
    y = rgb_to_ycbcr_torch(rgb, y_only=True)
    assert y.shape == (2, 1, 5, 6)
    for n in range(2):
        ref = rgb_to_ycbcr(rgb[n].permute(1, 2, 0).numpy())
        np.testing.assert_allclose(ycc[n].permute(1, 2, 0).numpy(), ref, atol=1e-12)
        np.testing.assert_allclose(y[n, 0].numpy(), ref[..., 0], atol=1e-12)
    torch.testing.assert_close(ycbcr_to_rgb_torch(ycc), rgb, atol=1e-12, rtol=0)
    y32 = rgb_to_ycbcr_torch(rgb.float(), y_only=True)
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32, y.float(), atol=1e-6, rtol=0)


def test_to_float_and_to_uint8():
    u8 = np.array([0, 128, 255], dtype=np.uint8)
    f = to_float(u8)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, [0, 128 / 255, 1], atol=1e-7)
    np.testing.assert_allclose(to_float(np.array([0, 65535], dtype=np.uint16)), [0, 1])
    assert np.array_equal(to_uint8(to_float(np.arange(256, dtype=np.uint8))), np.arange(256))
    # 126.5/255 -> 126.5: MATLAB rounds half away from zero (127); np.round would give 126.
    x = np.array([-0.2, 126.5 / 255, 127.5 / 255, 1.3])
    assert to_uint8(x).tolist() == [0, 127, 128, 255]
    assert to_uint8(u8) is u8


def test_bad_input_raises_data_error():
    with pytest.raises(DataError, match="to_float"):
        rgb_to_ycbcr(np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="channels-last"):
        rgb_to_ycbcr(np.zeros((3, 2, 2)))
    with pytest.raises(DataError, match="N, 3, H, W"):
        rgb_to_ycbcr_torch(torch.zeros(3, 2, 2))
    with pytest.raises(DataError, match="float"):
        ycbcr_to_rgb_torch(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(DataError, match="int32"):
        to_float(np.zeros(2, dtype=np.int32))
    with pytest.raises(DataError, match="float"):
        to_uint8(np.zeros(2, dtype=np.int64))
