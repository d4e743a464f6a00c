"""AnchorNet: edgesr's INT8-friendly compact SR net, plus its re-parameterisable conv block.

In the spirit of ABPN (anchor = nearest-neighbour upsampled input added before PixelShuffle),
QuickSRNet and ECBSR (multi-branch linear blocks that fold into one 3x3 conv for deployment),
but its own design: no BatchNorm anywhere, so every fold is exact, and the deployed graph is
plain conv3x3 + ReLU, one Add at LR resolution and one DepthToSpace.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgesr.archs.espcn_arch import check_scale_channels


class RepConv3x3(nn.Module):
    """Training-time 3x3 conv made of parallel linear branches that fold into one 3x3 conv.

    Branches, summed: conv3x3; conv1x1; conv1x1 expanding to ``expand_ratio * max(in, out)``
    channels followed by a 3x3 conv (no padding, see ``forward``; ``expand_ratio=0`` drops
    this branch); identity when in == out.
    All branches are linear and there is no BatchNorm, so :meth:`fuse` is exact. The block
    has no activation; the net applies it after the block.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        expand_ratio: width of the 1x1-expand branch relative to the wider of in/out; 0 for
            none (it multiplies the training cost about 5x on CPU).
        identity: add the identity branch when in == out.
    """

    def __init__(
        self, in_channels: int, out_channels: int, expand_ratio: int = 2, identity: bool = True
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        mid = expand_ratio * max(in_channels, out_channels)
        self.conv3x3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1)
        self.expand1x1 = nn.Conv2d(in_channels, mid, 1) if mid else None
        self.expand3x3 = nn.Conv2d(mid, out_channels, 3, padding=0) if mid else None
        self.has_identity = identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3x3(x) + self.conv1x1(x)
        # The fused 3x3 conv zero-pads x; the 1x1 expand applied to those zero pixels yields
        # exactly its bias. So the 1x1 output is padded with its bias values (pad without
        # bias, then add it everywhere), not zeros: with zero padding the border pixels
        # would miss the bias term and the fold would be exact only in the interior.
        if self.expand1x1 is not None:
            mid = F.pad(F.conv2d(x, self.expand1x1.weight), (1, 1, 1, 1))
            mid = mid + self.expand1x1.bias.view(1, -1, 1, 1)
            out = out + self.expand3x3(mid)
        if self.has_identity:
            out = out + x
        return out

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """The single ``nn.Conv2d(3x3, padding=1)`` computing the same function."""
        ref = self.conv3x3.weight
        # Fold in float64 so the fused weights carry no extra rounding beyond the final cast.
        w = self.conv3x3.weight.double().clone()
        b = self.conv3x3.bias.double().clone()
        # 1x1 branch: a 3x3 kernel that is zero except at the centre.
        w[:, :, 1, 1] += self.conv1x1.weight.double()[:, :, 0, 0]
        b += self.conv1x1.bias.double()
        # 1x1 -> 3x3 sequence: W[o,i] = sum_m K2[o,m] * K1[m,i]; the 1x1 bias flows through
        # every tap of the 3x3 kernel (exact at borders thanks to the bias padding).
        if self.expand1x1 is not None:
            k1 = self.expand1x1.weight.double()[:, :, 0, 0]  # (mid, in)
            b1 = self.expand1x1.bias.double()  # (mid,)
            k2 = self.expand3x3.weight.double()  # (out, mid, 3, 3)
            w += torch.einsum("omhw,mi->oihw", k2, k1)
            b += self.expand3x3.bias.double() + torch.einsum("omhw,m->o", k2, b1)
        if self.has_identity:
            idx = torch.arange(self.in_channels, device=w.device)
            w[idx, idx, 1, 1] += 1.0

        conv = nn.Conv2d(
            self.in_channels, self.out_channels, 3, padding=1, device=ref.device, dtype=ref.dtype
        )
        conv.weight.copy_(w.to(ref.dtype))
        conv.bias.copy_(b.to(ref.dtype))
        return conv


class AnchorNet(nn.Module):
    """AnchorNet: plain 3x3 conv stack at LR resolution, with a nearest-neighbour anchor.

    head conv3x3(C->F) ReLU, num_blocks x [conv3x3(F->F) ReLU], tail conv3x3(F->scale^2*C),
    + anchor (the input repeated scale^2 times along channels, which PixelShuffle turns into
    nearest-neighbour upsampling), then PixelShuffle(scale). The convs only learn the residual
    over nearest-neighbour upsampling, which keeps their output range small and INT8-friendly.

    Default sizing: at no more than ESPCN's cost (x4, C=1: 5*5*64 + 9*64*32 + 9*32*16 = 24,640
    MACs per LR pixel), F=32 with 2 body blocks costs 9*32 + 2*9*32*32 + 9*32*16 = 288 +
    18,432 + 4,608 = 23,328 MACs per LR pixel. Channel counts that are multiples of 16 map
    well onto vectorised CPU/GPU INT8 kernels. The x3/x4 recipes spend the same budget on depth
    instead: F=16 with 9 body blocks costs 144 + 20,736 + 144*scale^2 MACs per LR pixel (22,176
    at x3, ESPCN 22,624; 23,184 at x4) and trains to higher PSNR than F=32 with 2 (README).

    Args:
        scale: upscaling factor.
        num_channels: image channels, 1 (Y) or 3 (RGB).
        num_feat: feature channels F.
        num_blocks: body convs F->F.
        rep: build each conv as a :class:`RepConv3x3` (training); ``fuse()`` folds them.
        expand_ratio: the RepConv3x3 expand branch width (0: none); only with ``rep``.
    """

    def __init__(
        self,
        scale: int = 4,
        num_channels: int = 1,
        num_feat: int = 32,
        num_blocks: int = 2,
        rep: bool = True,
        expand_ratio: int = 0,
    ) -> None:
        super().__init__()
        check_scale_channels(scale, num_channels)
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(f"num_blocks must be a non-negative int, got {num_blocks!r}")
        if not isinstance(rep, bool):
            raise ValueError(f"rep must be true or false, got {rep!r}")
        self.scale = scale
        self.num_channels = num_channels
        self.num_feat = num_feat
        self.num_blocks = num_blocks
        self.rep = rep
        self.expand_ratio = expand_ratio

        if self.rep:
            conv = functools.partial(RepConv3x3, expand_ratio=expand_ratio)
        else:
            conv = _plain_conv3x3
        out_channels = scale * scale * num_channels
        self.head = conv(num_channels, num_feat)
        self.head_act = nn.ReLU()
        body: list[nn.Module] = []
        for _ in range(num_blocks):
            body += [conv(num_feat, num_feat), nn.ReLU()]
        self.body = nn.Sequential(*body)
        # The tail produces the residual over the anchor: an identity branch there (when
        # num_feat == scale^2 * C) would copy features into the output and swamp the anchor.
        self.tail = (
            RepConv3x3(num_feat, out_channels, expand_ratio, identity=False)
            if rep
            else conv(num_feat, out_channels)
        )
        self.upsampler = nn.PixelShuffle(scale)

        # Start close to nearest-neighbour upsampling: a small tail leaves the anchor dominant.
        with torch.no_grad():
            for module in self.tail.modules():
                if isinstance(module, nn.Conv2d):
                    module.weight.mul_(0.01)
                    module.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        feat = self.body(self.head_act(self.head(x)))
        return self.upsampler(self.tail(feat) + self.anchor(x))

    def anchor(self, x: Tensor) -> Tensor:
        """``x.repeat_interleave(scale**2, dim=1)``, written as Split + Concat.

        repeat_interleave exports to ONNX as Shape/Slice/Tile/Reshape, which TensorRT and
        INT8 quantizers handle poorly; Concat of the same tensor is a plain copy. The split's
        parts are picked by index, not by iterating it, which keeps the anchor traceable by
        torch.fx: that is how the INT8 stages find it
        (:func:`edgesr.compress.nncf_int8.image_copy_ops`).
        """
        r2 = self.scale * self.scale
        parts = x.split(1, dim=1)
        chans = [parts[c] for c in range(self.num_channels)] if self.num_channels > 1 else [x]
        return torch.cat([c for c in chans for _ in range(r2)], dim=1)

    def fuse(self) -> nn.Module:
        """An eval-mode ``AnchorNet(rep=False)`` with every RepConv3x3 folded into its conv."""
        if not self.rep:
            return copy.deepcopy(self).eval()
        fused = AnchorNet(
            scale=self.scale,
            num_channels=self.num_channels,
            num_feat=self.num_feat,
            num_blocks=self.num_blocks,
            rep=False,
        )
        fused.head = self.head.fuse()
        for i in range(0, len(self.body), 2):  # body is [conv, ReLU] * num_blocks
            fused.body[i] = self.body[i].fuse()
        fused.tail = self.tail.fuse()
        return fused.eval()


def _plain_conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)
