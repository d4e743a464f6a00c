"""FSRCNN: fast SR convolutional network with a learned deconvolution (Dong et al., ECCV 2016)."""

from __future__ import annotations

import copy
import math

from torch import Tensor, nn

from edgesr.archs.espcn_arch import check_scale_channels


class FSRCNN(nn.Module):
    """FSRCNN: feature extraction, shrinking, mapping, expanding, deconvolution.

    conv5x5(C->d) PReLU, conv1x1(d->s) PReLU, m x [conv3x3(s->s) PReLU], conv1x1(s->d) PReLU,
    ConvTranspose2d(d->C, 9, stride=scale, padding=4, output_padding=scale-1). The output size
    is (H-1)*scale - 8 + 9 + scale-1 = scale*H exactly, for any H.

    Args:
        scale: upscaling factor.
        num_channels: image channels, 1 (Y) or 3 (RGB).
        d: feature (LR) dimension.
        s: shrunk dimension of the mapping layers.
        m: number of mapping layers.
    """

    def __init__(
        self, scale: int = 4, num_channels: int = 1, d: int = 56, s: int = 12, m: int = 4
    ) -> None:
        super().__init__()
        check_scale_channels(scale, num_channels)
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ValueError(f"m must be a non-negative int, got {m!r}")
        self.scale = scale
        self.num_channels = num_channels

        # Per-channel PReLU as in the paper.
        self.feature = nn.Sequential(nn.Conv2d(num_channels, d, 5, padding=2), nn.PReLU(d))
        self.shrink = nn.Sequential(nn.Conv2d(d, s, 1), nn.PReLU(s))
        layers: list[nn.Module] = []
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        self.mapping = nn.Sequential(*layers)
        self.expand = nn.Sequential(nn.Conv2d(s, d, 1), nn.PReLU(d))
        self.deconv = nn.ConvTranspose2d(
            d, num_channels, 9, stride=scale, padding=4, output_padding=scale - 1
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # Paper: He (PReLU) Gaussian init for the convs, N(0, 1e-3) for the deconv, zero biases.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.normal_(module.weight, std=math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.deconv.weight, std=1e-3)
        nn.init.zeros_(self.deconv.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.expand(self.mapping(self.shrink(self.feature(x))))
        return self.deconv(x)

    def fuse(self) -> nn.Module:
        """Nothing to fold: an eval-mode copy."""
        return copy.deepcopy(self).eval()
