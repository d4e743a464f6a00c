"""ESPCN: efficient sub-pixel convolutional network (Shi et al., CVPR 2016)."""

from __future__ import annotations

import copy

from torch import Tensor, nn

_ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def check_scale_channels(scale: int, num_channels: int) -> None:
    """Shared argument checks; bool is rejected because YAML ``yes`` would pass as 1."""
    for name, value in (("scale", scale), ("num_channels", num_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


class ESPCN(nn.Module):
    """ESPCN: three convs at LR resolution, then one PixelShuffle.

    conv5x5(C->num_feat) act, conv3x3(num_feat->num_feat2) act, conv3x3(num_feat2->scale^2*C),
    PixelShuffle(scale).

    Args:
        scale: upscaling factor.
        num_channels: image channels, 1 (Y) or 3 (RGB).
        num_feat: channels of the first conv.
        num_feat2: channels of the second conv.
        act: "tanh" (as in the paper) or "relu" (trains faster and quantizes better: its
            output range is one-sided and needs no saturation handling).
    """

    def __init__(
        self,
        scale: int = 4,
        num_channels: int = 1,
        num_feat: int = 64,
        num_feat2: int = 32,
        act: str = "tanh",
    ) -> None:
        super().__init__()
        check_scale_channels(scale, num_channels)
        if act not in _ACTS:
            raise ValueError(f"act must be one of {sorted(_ACTS)}, got {act!r}")
        self.scale = scale
        self.num_channels = num_channels
        self.act_name = act

        self.conv1 = nn.Conv2d(num_channels, num_feat, 5, padding=2)
        self.act1 = _ACTS[act]()
        self.conv2 = nn.Conv2d(num_feat, num_feat2, 3, padding=1)
        self.act2 = _ACTS[act]()
        self.conv3 = nn.Conv2d(num_feat2, scale * scale * num_channels, 3, padding=1)
        self.upsampler = nn.PixelShuffle(scale)
        self._init_weights()

    def _init_weights(self) -> None:
        # Variance-preserving init for the chosen activation; the last layer starts small so
        # early outputs are near zero instead of large random textures.
        for conv in (self.conv1, self.conv2):
            if self.act_name == "relu":
                nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.xavier_normal_(conv.weight, gain=nn.init.calculate_gain("tanh"))
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.conv3.weight, std=1e-3)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        return self.upsampler(self.conv3(x))

    def fuse(self) -> nn.Module:
        """Nothing to fold: an eval-mode copy."""
        return copy.deepcopy(self).eval()
