"""Tests of the compact SR nets, their registry, the re-parameterisation fold and MAC counts."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.archs import (
    ARCHS,
    ESPCN,
    FSRCNN,
    AnchorNet,
    RepConv3x3,
    arch_params,
    build_arch,
    complexity,
    count_macs,
    count_params,
)
from edgesr.errors import ConfigError
from edgesr.modelio import build_from_recipe
from edgesr.recipe import load_recipe

ODD_H, ODD_W = 17, 23


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _perturb(model: nn.Module, rel: float = 0.5) -> None:
    """Add noise to every parameter (biases included) so no branch is trivially zero."""
    with torch.no_grad():
        for p in model.parameters():
            spread = p.abs().mean().clamp_min(0.02)
            p.add_(torch.randn_like(p) * spread * rel)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", sorted(ARCHS))
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_odd_input(name: str, scale: int, channels: int) -> None:
    net = build_arch(name, scale=scale, num_channels=channels)
    assert net.scale == scale and net.num_channels == channels
    x = torch.rand(2, channels, ODD_H, ODD_W)
    expected = (2, channels, scale * ODD_H, scale * ODD_W)
    with torch.no_grad():
        assert net(x).shape == expected
        fused = net.fuse()
        assert not fused.training
        assert fused(x).shape == expected
        assert fused.scale == scale and fused.num_channels == channels


def test_anchornet_starts_near_nearest_upsampling() -> None:
    net = AnchorNet(scale=3, num_channels=3)
    x = torch.rand(1, 3, ODD_H, ODD_W)
    with torch.no_grad():
        diff = net(x) - F.interpolate(x, scale_factor=3, mode="nearest")
    assert diff.abs().max() < 0.05


@pytest.mark.parametrize("channels", [1, 3])
def test_anchor_is_repeat_interleave(channels: int) -> None:
    net = AnchorNet(scale=3, num_channels=channels)
    x = torch.rand(2, channels, 5, 7)
    assert torch.equal(net.anchor(x), x.repeat_interleave(9, dim=1))


# ---------------------------------------------------------------- params and MACs


def test_espcn_x4_params_and_macs_hand_derived() -> None:
    net = ESPCN(scale=4, num_channels=1)
    # conv1 5x5 1->64, conv2 3x3 64->32, conv3 3x3 32->16: weights + biases.
    params = (5 * 5 * 1 * 64 + 64) + (3 * 3 * 64 * 32 + 32) + (3 * 3 * 32 * 16 + 16)
    assert params == 24_752
    assert count_params(net) == params
    per_pixel = 5 * 5 * 1 * 64 + 3 * 3 * 64 * 32 + 3 * 3 * 32 * 16
    assert per_pixel == 24_640
    assert count_macs(net, (1, 1, ODD_H, ODD_W)) == per_pixel * ODD_H * ODD_W
    # Batch of 2 counts twice.
    assert count_macs(net, (2, 1, 8, 8)) == 2 * per_pixel * 64
    info = complexity(net, lr_size=(ODD_H, ODD_W))
    assert info["params"] == params
    assert info["macs"] == per_pixel * ODD_H * ODD_W
    assert info["macs_per_lr_pixel"] == per_pixel
    assert info["gmacs"] == pytest.approx(per_pixel * ODD_H * ODD_W / 1e9)


def test_fsrcnn_x4_params_and_macs_hand_derived() -> None:
    d, s, m = 56, 12, 4
    net = FSRCNN(scale=4, num_channels=1, d=d, s=s, m=m)
    conv_weights = 5 * 5 * 1 * d + d * s + m * 3 * 3 * s * s + s * d
    deconv_weights = d * 1 * 9 * 9
    biases = d + s + m * s + d + 1
    prelu = d + s + m * s + d  # one slope per channel
    params = conv_weights + deconv_weights + biases + prelu
    assert params == 12_809
    assert count_params(net) == params
    # Deconv: in*out*k*k MACs per *input* (LR) pixel.
    per_pixel = conv_weights + deconv_weights
    assert per_pixel == 1400 + 672 + 5184 + 672 + 4536 == 12_464
    assert count_macs(net, (1, 1, ODD_H, ODD_W)) == per_pixel * ODD_H * ODD_W


def test_count_macs_grouped_deconv_and_linear() -> None:
    grouped = nn.Conv2d(8, 16, 3, padding=1, groups=4)
    # 16 outputs per pixel, each from 8/4 = 2 input channels x 3x3 taps.
    assert count_macs(grouped, (1, 8, 5, 7)) == 5 * 7 * 16 * 2 * 9
    deconv = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2)
    # Per input pixel: 6 * 4/2 * 4*4.
    assert count_macs(deconv, (1, 6, 5, 7)) == 5 * 7 * 6 * 2 * 16
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_macs(linear, (3, 12)) == 3 * 12 * 5


def test_anchornet_default_cost_within_espcn() -> None:
    anchor = AnchorNet(scale=4, num_channels=1)
    espcn = ESPCN(scale=4, num_channels=1)
    shape = (1, 1, ODD_H, ODD_W)
    deployed = count_macs(anchor.fuse(), shape)
    assert deployed == (9 * 32 + 2 * 9 * 32 * 32 + 9 * 32 * 16) * ODD_H * ODD_W  # 23,328/px
    assert deployed <= count_macs(espcn, shape)
    # complexity() measures the deployed (fused) net by default.
    assert complexity(anchor, (ODD_H, ODD_W))["macs"] == deployed
    assert complexity(anchor, (ODD_H, ODD_W), deploy=False)["macs"] > deployed


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_anchornet_recipes_cost_no_more_than_espcn(scale: int) -> None:
    # AnchorNet's promise is ESPCN's cost or less at every scale, whatever width and depth each
    # recipe picks; the deployed (fused) form is what a device runs.
    shape = (1, 1, ODD_H, ODD_W)
    anchor = build_from_recipe(load_recipe(f"anchornet_x{scale}"))
    espcn = build_from_recipe(load_recipe(f"espcn_x{scale}"))
    assert count_macs(anchor.fuse(), shape) <= count_macs(espcn.fuse(), shape)


# ---------------------------------------------------------------- re-parameterisation


@pytest.mark.parametrize("expand_ratio", [0, 2])
@pytest.mark.parametrize("in_ch,out_ch", [(1, 32), (32, 32), (32, 16), (16, 16)])
def test_repconv_fold_exact(in_ch: int, out_ch: int, expand_ratio: int) -> None:
    block = RepConv3x3(in_ch, out_ch, expand_ratio=expand_ratio)
    assert block.has_identity == (in_ch == out_ch)
    _perturb(block)
    x = torch.rand(2, in_ch, ODD_H, ODD_W) * 2 - 1
    fused = block.fuse()
    assert type(fused) is nn.Conv2d
    assert fused.kernel_size == (3, 3) and fused.padding == (1, 1)
    with torch.no_grad():
        ref, out = block(x), fused(x)
    assert ref.abs().max() > 0.1  # non-trivial output
    # Max-abs over the whole map, so the borders (where bias padding matters) are checked too.
    assert (ref - out).abs().max().item() < 1e-5


@pytest.mark.parametrize("expand_ratio", [0, 2])
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_anchornet_fuse_matches_training_module(
    scale: int, channels: int, expand_ratio: int
) -> None:
    net = AnchorNet(scale=scale, num_channels=channels, expand_ratio=expand_ratio)
    _perturb(net)
    net.train()
    x = torch.rand(1, channels, ODD_H, ODD_W)
    with torch.no_grad():
        ref = net(x)
        out = net.fuse()(x)
    assert (ref - F.interpolate(x, scale_factor=scale, mode="nearest")).abs().max() > 0.1
    assert (ref - out).abs().max().item() < 1e-5


def test_fused_anchornet_is_plain() -> None:
    net = AnchorNet(scale=4, num_channels=3, num_feat=16, num_blocks=3)
    fused = net.fuse()
    assert isinstance(fused, AnchorNet) and not fused.rep
    assert not any(isinstance(m, RepConv3x3) for m in fused.modules())
    convs = [m for m in fused.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 + 1
    assert all(type(m) is nn.Conv2d and m.kernel_size == (3, 3) for m in convs)
    plain = AnchorNet(scale=4, num_channels=3, num_feat=16, num_blocks=3, rep=False)
    assert count_params(fused) == count_params(plain)
    assert fused.state_dict().keys() == plain.state_dict().keys()
    assert count_params(net) > count_params(plain)


# ---------------------------------------------------------------- registry


def test_build_arch_unknown_name() -> None:
    with pytest.raises(ConfigError) as info:
        build_arch("edsr")
    msg = str(info.value)
    assert "edsr" in msg
    assert all(name in msg for name in ("espcn", "fsrcnn", "anchornet"))


def test_build_arch_unknown_param() -> None:
    with pytest.raises(ConfigError) as info:
        build_arch("fsrcnn", scale=3, num_feat=64)
    msg = str(info.value)
    assert "num_feat" in msg
    for valid in ("scale=4", "num_channels=1", "d=56", "s=12", "m=4"):
        assert valid in msg


def test_build_arch_bad_value() -> None:
    with pytest.raises(ConfigError, match="act"):
        build_arch("espcn", act="gelu")
    with pytest.raises(ConfigError, match="scale"):
        build_arch("anchornet", scale=0)
    with pytest.raises(ConfigError, match="rep"):
        build_arch("anchornet", rep="no")


def test_build_arch_and_params() -> None:
    assert arch_params("espcn") == {
        "scale": 4,
        "num_channels": 1,
        "num_feat": 64,
        "num_feat2": 32,
        "act": "tanh",
    }
    assert arch_params("anchornet")["rep"] is True
    net = build_arch("espcn", scale=3, act="relu")
    assert isinstance(net, ESPCN) and net.scale == 3
    assert isinstance(net.act1, nn.ReLU)


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_gradients_flow(name: str) -> None:
    net = build_arch(name, scale=2)
    net.train()
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(2, 1, 9, 11)
    target = torch.rand(2, 1, 18, 22)
    loss = F.l1_loss(net(x), target)
    loss.backward()
    opt.step()
    for k, v in net.named_parameters():
        assert v.grad is not None and torch.isfinite(v.grad).all(), k
        assert not torch.equal(before[k], v.detach()), f"{k} did not change"


# ---------------------------------------------------------------- ONNX


# dynamo=False (TorchScript exporter) is deliberate: it is what the export stage uses.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "name,params",
    [
        ("espcn", {"scale": 3, "act": "relu"}),
        ("fsrcnn", {"scale": 3}),
        ("anchornet", {"scale": 4, "num_channels": 1}),
        ("anchornet", {"scale": 3, "num_channels": 3}),
    ],
)
def test_fused_onnx_export_dynamic(name: str, params: dict) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = build_arch(name, **params)
    _perturb(net, rel=0.2)
    fused = net.fuse()
    c = fused.num_channels
    buf = io.BytesIO()
    torch.onnx.export(
        fused,
        (torch.rand(1, c, 16, 16),),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["lr"],
        output_names=["sr"],
        dynamic_axes={"lr": {2: "h", 3: "w"}, "sr": {2: "sh", 3: "sw"}},
    )
    model = onnx.load_from_string(buf.getvalue())
    ops = {node.op_type for node in model.graph.node}
    if name in ("espcn", "anchornet"):
        assert "DepthToSpace" in ops
    if name == "anchornet":
        # Deployable graph: no Shape/Reshape/Tile from the anchor.
        assert ops <= {"Conv", "Relu", "Concat", "Split", "Constant", "Add", "DepthToSpace"}
    x = torch.rand(1, c, ODD_H, ODD_W)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"lr": x.numpy()})
    with torch.no_grad():
        want = fused(x).numpy()
    assert got.shape == want.shape == (1, c, fused.scale * ODD_H, fused.scale * ODD_W)
    assert np.abs(got - want).max() < 1e-4


def test_anchornet_tail_has_no_identity_when_widths_match() -> None:
    """num_feat == scale^2 * C (48 for RGB x4): the tail must still start near zero."""
    torch.manual_seed(0)
    net = AnchorNet(scale=4, num_channels=3, num_feat=48, num_blocks=2)
    assert not net.tail.has_identity and net.body[0].has_identity
    x = torch.rand(1, 3, 12, 12)
    anchor_only = torch.nn.functional.pixel_shuffle(net.anchor(x), 4)
    assert (net(x) - anchor_only).abs().mean() < 0.02
    assert torch.allclose(net.fuse()(x), net(x), atol=1e-5)
