"""U-Net discriminator with spectral normalisation, for GAN training of compact generators.

A U-Net gives one realness logit per pixel (global structure from the encoder, local texture
from the decoder): the idea of Schonfeld et al. (CVPR 2020), used for SR by Real-ESRGAN (Wang
et al., ICCVW 2021). Spectral normalisation (Miyato et al., ICLR 2018) bounds each hidden
conv's Lipschitz constant, which stabilises D without a gradient penalty. Training-only: it
is never exported, so it is not in ``ARCHS``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from edgesr.archs.espcn_arch import check_scale_channels


def _sn_conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Module:
    """Bias-free 3x3 conv with spectral norm; stride 2 gives ceil(H/2) x ceil(W/2)."""
    return spectral_norm(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False))


class UNetDiscriminator(nn.Module):
    """U-Net discriminator: per-pixel realness logits ``(N, 1, H, W)`` for ``(N, C, H, W)``.

    conv3x3(C->F); encoder 3 x [SN conv3x3 stride 2, channels x2]; decoder 3 x [SN conv3x3
    halving channels, bilinear upsample to the skip's size (+ skip)]; SN conv3x3(F->F);
    conv3x3(F->1). LeakyReLU(0.2) after every hidden conv. Any H, W (odd included).

    Cost is kept low for CPU training: the decoder convolves *before* upsampling (at a quarter
    of the pixels), the encoder uses 3x3 rather than 4x4 strided convs and one conv refines at
    full size. With F=32 that is 0.62 GMACs per 128x128 patch; upsample-then-conv with 4x4
    strided convs and two refining convs would cost 1.6.

    Args:
        num_channels: image channels, 1 (Y) or 3 (RGB).
        num_feat: channels F of the first level (the deepest has 8F).
        skip: add the encoder features to the decoder at each level (U-Net); False gives a
            plain encoder-decoder.
    """

    def __init__(self, num_channels: int = 3, num_feat: int = 32, skip: bool = True) -> None:
        super().__init__()
        check_scale_channels(1, num_channels)
        check_scale_channels(1, num_feat)
        self.num_channels = num_channels
        self.skip = skip
        f = num_feat
        # The first and last convs stay unnormalised: the hidden ones carry the Lipschitz
        # bound, and the ends keep D free to pick its input and logit scales.
        self.conv_in = nn.Conv2d(num_channels, f, 3, padding=1)
        self.down = nn.ModuleList([_sn_conv3x3(f << i, f << (i + 1), 2) for i in range(3)])
        self.up = nn.ModuleList([_sn_conv3x3(f << (i + 1), f << i) for i in reversed(range(3))])
        self.refine = _sn_conv3x3(f, f)
        self.conv_out = nn.Conv2d(f, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [F.leaky_relu(self.conv_in(x), 0.2)]
        for conv in self.down:
            feats.append(F.leaky_relu(conv(feats[-1]), 0.2))
        y = feats.pop()
        for conv in self.up:
            skip = feats.pop()
            y = F.leaky_relu(conv(y), 0.2)
            # Upsample to the skip's exact size: odd sides do not halve evenly.
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            if self.skip:
                y = y + skip
        return self.conv_out(F.leaky_relu(self.refine(y), 0.2))
