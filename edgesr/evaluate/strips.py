"""Scoring one large image strip by strip, with a tiled model: bounded memory, same numbers.

The whole-image path holds several float64 copies of the HR image (Y of HR, of bicubic and of
SR, SSIM's filtered maps) and runs the net on the whole LR frame: a 12000x12000 photo needed
16 GB. Here the net runs tile by tile (:mod:`edgesr.runtime.tiling`, bit-identical to the whole
frame), the SR output is kept as float32 (the values the whole-image path computes, it only
widens them to float64), and the bicubic reference, Y conversions and metrics are computed on
strips of HR rows. PSNR sums squared errors per strip; SSIM computes each strip's map with the
Gaussian window's 5 rows of context above and below, so every map value is the whole-image one;
only the order of the final sums differs (a relative 1e-15).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgesr.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from edgesr.data.imresize import imresize_rows
from edgesr.data.pairs import SRPair, to_model_space
from edgesr.metrics import SSIM_MARGIN, ssim_map

#: HR rows per strip.
STRIP_ROWS = 512


def _y(rgb_u8: np.ndarray) -> np.ndarray:
    return np.asarray(
        rgb_to_ycbcr(rgb_u8.astype(np.float64) / 255.0, y_only=True), dtype=np.float64
    ).reshape(rgb_u8.shape[:2])


class _Sums:
    """Running sums for PSNR and SSIM over the cropped region."""

    def __init__(self) -> None:
        self.sse = 0.0
        self.ssim = 0.0
        self.pixels = 0
        self.ssim_pixels = 0

    def psnr(self) -> float:
        mse = self.sse / self.pixels
        return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def score_in_strips(
    upscaler: Any | None,
    pair: SRPair,
    *,
    scale: int,
    want_rgb: bool = False,
    strip_rows: int = STRIP_ROWS,
) -> tuple[tuple[float, float], tuple[float, float], np.ndarray | None]:
    """((psnr, ssim) of the model, (psnr, ssim) of bicubic, SR uint8 RGB if ``want_rgb``).

    ``upscaler``: an :class:`edgesr.runtime.upscaler.Upscaler` or None (bicubic only; the model
    score is then the bicubic one).
    """
    hr, lr = pair.hr_rgb, pair.lr_rgb
    h, w = hr.shape[:2]
    c = scale  # crop_border
    if 2 * c >= min(h, w) or min(h, w) - 2 * c < 11:
        from edgesr.errors import DataError

        raise DataError(f"{pair.name}: {w}x{h} is too small to score at x{scale}")

    sr = None  # float32 [H, W, C] on the 8-bit grid /255, as the whole-image path makes it
    if upscaler is not None:
        x = to_model_space(lr, upscaler.color).transpose(2, 0, 1)
        out = upscaler.infer(np.ascontiguousarray(x))
        np.clip(out, 0.0, 1.0, out=out)
        out *= np.float32(255.0)
        np.round(out, out=out)
        out /= np.float32(255.0)
        sr = out.transpose(1, 2, 0)
        del x

    model, bic = _Sums(), _Sums()
    rgb_out = np.empty((h, w, 3), np.uint8) if want_rgb and sr is not None else None
    # Rows [c, h - c) are scored; SSIM's valid rows are [c + 5, h - c - 5).
    lo, hi = c, h - c
    for a in range(lo, hi, strip_rows):
        b = min(hi, a + strip_rows)
        # Rows this strip reads: its own plus SSIM context, kept inside the cropped region.
        ra, rb = max(lo, a - SSIM_MARGIN), min(hi, b + SSIM_MARGIN)
        hr_y = _y(hr[ra:rb, c : w - c]) * 255.0
        bic_rgb = imresize_rows(lr, float(scale), (ra, rb))
        bic_y = _y(bic_rgb[:, c : w - c]) * 255.0
        planes = [(bic, bic_y)]
        if sr is not None:
            if upscaler.color == "y":
                sr_y = sr[ra:rb, c : w - c, 0].astype(np.float64) * 255.0
            else:
                sr_y = _y(np.round(sr[ra:rb, c : w - c] * 255.0).astype(np.uint8)) * 255.0
            planes.append((model, sr_y))
        for sums, plane in planes:
            own = slice(a - ra, b - ra)
            sums.sse += float(np.sum((plane[own] - hr_y[own]) ** 2))
            sums.pixels += plane[own].size
            # SSIM map rows for output rows [a, b) that have full context.
            sa, sb = max(a, lo + SSIM_MARGIN), min(b, hi - SSIM_MARGIN)
            if sb > sa:
                m = ssim_map(
                    plane[sa - SSIM_MARGIN - ra : sb + SSIM_MARGIN - ra],
                    hr_y[sa - SSIM_MARGIN - ra : sb + SSIM_MARGIN - ra],
                )
                sums.ssim += float(np.sum(m))
                sums.ssim_pixels += m.size
        if rgb_out is not None:
            _compose_rows(rgb_out, sr, lr, scale, upscaler.color, (a, b))
    if rgb_out is not None:
        # The scored loop covers rows [c, h - c); the border rows are composed here.
        for rows in ((0, c), (h - c, h)):
            if rows[1] > rows[0]:
                _compose_rows(rgb_out, sr, lr, scale, upscaler.color, rows)
    b_score = (bic.psnr(), bic.ssim / bic.ssim_pixels)
    m_score = b_score if sr is None else (model.psnr(), model.ssim / model.ssim_pixels)
    return m_score, b_score, rgb_out


def _compose_rows(
    out: np.ndarray,
    sr: np.ndarray,
    lr: np.ndarray,
    scale: int,
    color: str,
    rows: tuple[int, int],
) -> None:
    """SR rows as uint8 RGB, as :func:`edgesr.evaluate.super_resolve` composes them."""
    a, b = rows
    if color == "rgb":
        out[a:b] = np.round(sr[a:b] * 255.0).astype(np.uint8)
        return
    up = imresize_rows(lr, float(scale), (a, b)).astype(np.float64) / 255.0
    ycc = rgb_to_ycbcr(up)
    ycc[..., 0] = sr[a:b, :, 0]
    out[a:b] = np.clip(np.round(ycbcr_to_rgb(ycc) * 255.0), 0, 255).astype(np.uint8)
