"""VGG-style patch discriminator with spectral normalisation (training-only, not in ``ARCHS``).

A fully convolutional VGG-like stack: one realness logit per 8x8 patch instead of one per
image, so it accepts any patch size (the classic SRGAN/ESRGAN discriminator ends in linear
layers and needs a fixed 128x128 input). Cheaper than the U-Net: no decoder.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from edgesr.archs.espcn_arch import check_scale_channels


class VGGPatchDiscriminator(nn.Module):
    """Patch logits ``(N, 1, ceil(H/8), ceil(W/8))`` for ``(N, C, H, W)``.

    conv3x3(C->F); 3 x [SN conv3x3 stride 2 (channels x2), SN conv3x3]; conv3x3(->1).
    LeakyReLU(0.2) after every hidden conv.

    Args:
        num_channels: image channels, 1 (Y) or 3 (RGB).
        num_feat: channels F of the first level (the deepest has 8F).
    """

    def __init__(self, num_channels: int = 3, num_feat: int = 32) -> None:
        super().__init__()
        check_scale_channels(1, num_channels)
        check_scale_channels(1, num_feat)
        self.num_channels = num_channels
        f = num_feat
        self.conv_in = nn.Conv2d(num_channels, f, 3, padding=1)
        body: list[nn.Module] = []
        for i in range(3):
            c_in, c_out = f * 2**i, f * 2 ** (i + 1)
            body += [
                spectral_norm(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False)),
                nn.LeakyReLU(0.2),
                spectral_norm(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*body)
        self.conv_out = nn.Conv2d(8 * f, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.body(F.leaky_relu(self.conv_in(x), 0.2)))
