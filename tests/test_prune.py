"""Tests of structured channel pruning: real channel removal, exactness, importance, ONNX."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from edgesr.archs import ESPCN, FSRCNN, AnchorNet, count_params
from edgesr.compress.prune import PRUNERS, kept_width, prune_channels
from edgesr.errors import ConfigError

H, W = 11, 13


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # One intra-op thread: on a shared 2-core box, tiny convs with 2 threads spin-wait ~100x
    # slower than with 1.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _perturb(model: nn.Module, rel: float = 0.5) -> nn.Module:
    """Noise on every parameter (biases, PReLU slopes too) so nothing is trivially zero."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * p.abs().mean().clamp_min(0.02) * rel)
    return model


def _build(arch: str, scale: int, channels: int = 1, **kw) -> nn.Module:
    if arch == "espcn":
        return _perturb(ESPCN(scale=scale, num_channels=channels, **kw))
    if arch == "fsrcnn":
        return _perturb(FSRCNN(scale=scale, num_channels=channels, **kw))
    kw.setdefault("rep", False)
    return _perturb(AnchorNet(scale=scale, num_channels=channels, **kw))


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def _last_out_channels(model: nn.Module) -> int:
    last = {ESPCN: "conv3", FSRCNN: "deconv", AnchorNet: "tail"}[type(model)]
    return model.get_submodule(last).out_channels


ARCHS = ["espcn", "fsrcnn", "anchornet"]


# ---------------------------------------------------------------- exactness


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ratio_zero_is_exact_copy(arch: str, scale: int) -> None:
    # AnchorNet in its training form (RepConv blocks): pruning works on net.fuse().
    kw = {"rep": True, "expand_ratio": 1} if arch == "anchornet" else {}
    net = _build(arch, scale, **kw)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    res = prune_channels(net, ratio=0.0)
    x = torch.rand(2, 1, H, W)
    assert (_run(res.model, x) - _run(net.fuse(), x)).abs().max() < 1e-6
    assert res.widths_after == res.widths_before
    assert res.params_after == res.params_before == count_params(net.fuse())
    assert res.macs_after == res.macs_before
    # The input net is left alone.
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("scale,channels", [(2, 3), (3, 1), (4, 1)])
def test_half_ratio_halves_hidden_widths(arch: str, scale: int, channels: int) -> None:
    net = _build(arch, scale, channels)
    res = prune_channels(net, ratio=0.5)
    pruned = res.model
    expected = {
        "espcn": {"conv1": 32, "conv2": 16},
        # s = 12 keeps 6, rounded up to a multiple of 4.
        "fsrcnn": {"feature.0": 28, "expand.0": 28}
        | {n: 8 for n in ("shrink.0", "mapping.0", "mapping.2", "mapping.4", "mapping.6")},
        "anchornet": {"head": 16, "body.0": 16, "body.2": 16},
    }[arch]
    assert res.widths_after == expected
    assert res.params_after < 0.5 * res.params_before
    assert res.macs_after < 0.5 * res.macs_before
    assert count_params(pruned) == res.params_after
    assert type(pruned) is type(net)
    assert pruned.scale == scale and pruned.num_channels == channels
    assert _last_out_channels(pruned) == (channels if arch == "fsrcnn" else scale**2 * channels)
    x = torch.rand(1, channels, H, W)
    assert _run(pruned, x).shape == (1, channels, scale * H, scale * W)
    # Every conv's attributes agree with its weights (ONNX export and repr rely on them).
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.shape[:2] == (m.out_channels, m.in_channels)
        elif isinstance(m, nn.ConvTranspose2d):
            assert m.weight.shape[:2] == (m.in_channels, m.out_channels)
    # arch_params rebuild the pruned shape: a saved pruned net can be loaded by constructor.
    rebuilt = type(net)(scale=scale, num_channels=channels, **res.arch_params)
    rebuilt.load_state_dict(pruned.state_dict())
    assert torch.equal(_run(rebuilt, x), _run(pruned, x))
    # fuse() of the pruned net is an identity copy.
    assert torch.equal(_run(pruned.fuse(), x), _run(pruned, x))


@pytest.mark.parametrize(
    "n,ratio,kw,expected",
    [
        (64, 0.5, {}, 32),
        (12, 0.5, {}, 8),  # 6 rounded up to a multiple of 4
        (12, 0.9, {}, 4),  # floor: min_channels
        (3, 0.5, {}, 3),  # never more than n
        (10, 0.3, {"round_to": 1}, 7),  # 0.3 * 10 removes 3, not 2 (float rounding)
        (56, 0.75, {"round_to": 8}, 16),
        (32, 0.99, {"min_channels": 8}, 8),
        (40, 0.0, {"round_to": 16}, 40),  # ratio 0 keeps all, even off the rounding grid
    ],
)
def test_kept_width_rounding(n: int, ratio: float, kw: dict, expected: int) -> None:
    assert kept_width(n, ratio, **kw) == expected


def test_rep_anchornet_prunes_like_its_fused_form() -> None:
    net = _build("anchornet", 4, rep=True, expand_ratio=1)
    a = prune_channels(net, ratio=0.5)
    b = prune_channels(net.fuse(), ratio=0.5)
    assert a.kept == b.kept
    assert not a.model.rep and a.model.num_feat == 16
    assert a.arch_params == {"rep": False, "num_feat": 16}
    x = torch.rand(1, 1, H, W)
    assert torch.equal(_run(a.model, x), _run(b.model, x))
    # Pruning a pruned net again works (its chain still matches).
    again = prune_channels(a.model, ratio=0.5)
    assert again.widths_after == {"head": 8, "body.0": 8, "body.2": 8}


# ---------------------------------------------------------------- importance


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("side", ["producer", "consumer"])
@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_pruning_removes_exactly_the_channels_that_contribute_nothing(
    arch: str, side: str, criterion: str
) -> None:
    """Silence as many channels per layer as 50% pruning removes: the output must not change.

    ``producer``: the channel's filter and bias are zero (it is never produced).
    ``consumer``: the next layer's input slice is zero (it is produced but never read), which
    only the product criterion catches; a filter-norm criterion would keep those channels.
    """
    net = _build(arch, 3)
    x = torch.rand(2, 1, H, W)
    chain = PRUNERS[type(net)](net)
    live: dict[str, list[int]] = {}
    with torch.no_grad():
        for link in chain.links:
            prod = net.get_submodule(link.producer)
            cons = net.get_submodule(link.consumer)
            n = prod.out_channels
            dead = torch.randperm(n)[: n - kept_width(n, 0.5)]
            live[link.producer] = sorted(set(range(n)) - set(dead.tolist()))
            if side == "producer":
                prod.weight[dead] = 0
                prod.bias[dead] = 0  # act(0) = 0 for ReLU, tanh and PReLU
            elif isinstance(cons, nn.ConvTranspose2d):
                cons.weight[dead] = 0
            else:
                cons.weight[:, dead] = 0
    res = prune_channels(net, ratio=0.5, criterion=criterion)
    assert res.kept == live
    assert res.params_after < res.params_before
    # Identical up to float summation order: the removed channels added exact zeros.
    assert (_run(res.model, x) - _run(net, x)).abs().max() < 1e-5


def test_prelu_sliced_per_channel() -> None:
    net = _build("fsrcnn", 2)
    res = prune_channels(net, ratio=0.5)
    for producer, kept in res.kept.items():
        act_name = producer.rsplit(".", 1)[0] + "." + str(int(producer.rsplit(".", 1)[1]) + 1)
        before, after = net.get_submodule(act_name), res.model.get_submodule(act_name)
        assert after.num_parameters == len(kept)
        assert torch.equal(after.weight, before.weight[kept])


def test_single_slope_prelu_is_kept_whole() -> None:
    net = _build("fsrcnn", 2)
    with torch.no_grad():
        for seq in (net.feature, net.shrink, net.expand):
            seq[1] = nn.PReLU(init=0.1)
        for i in range(1, len(net.mapping), 2):
            net.mapping[i] = nn.PReLU(init=0.2)
    res = prune_channels(net, ratio=0.5)
    assert res.model.feature[1].num_parameters == 1
    assert res.model.feature[1].weight.item() == pytest.approx(0.1)
    assert _run(res.model, torch.rand(1, 1, H, W)).shape == (1, 1, 2 * H, 2 * W)


def test_activation_criterion_finds_dead_relu_channels() -> None:
    """Channels with large weights that ReLU always zeroes: l1 keeps them, activation not."""
    net = _build("espcn", 2, act="relu")
    x = torch.rand(2, 1, H, W)
    live = {}
    with torch.no_grad():
        for conv in (net.conv1, net.conv2):
            n = conv.out_channels
            dead = torch.randperm(n)[: n // 2]
            live[conv] = sorted(set(range(n)) - set(dead.tolist()))
            # Inputs are >= 0 (image in [0, 1], zero padding, ReLU outputs), so with
            # non-positive weights the pre-activation is <= -1 everywhere.
            conv.weight[dead] = -conv.weight[dead].abs() * 10
            conv.bias[dead] = -1.0
            # ... and with non-negative weights and bias the live ones are always active.
            conv.weight[live[conv]] = conv.weight[live[conv]].abs()
            conv.bias[live[conv]] = 0.1
    batches = [torch.rand(2, 1, 16, 16) for _ in range(3)]
    res = prune_channels(net, ratio=0.5, criterion="activation", data=batches)
    assert res.kept == {"conv1": live[net.conv1], "conv2": live[net.conv2]}
    assert (_run(res.model, x) - _run(net, x)).abs().max() < 1e-5
    assert prune_channels(net, ratio=0.5, criterion="l1").kept["conv1"] != live[net.conv1]


# ---------------------------------------------------------------- ONNX


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_onnx_has_smaller_convs_and_runs(arch: str) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import numpy_helper

    net = _build(arch, 4)
    pruned = prune_channels(net, ratio=0.5).model
    buf = io.BytesIO()
    # dynamo=False: the TorchScript exporter, as the export stage uses.
    torch.onnx.export(
        pruned,
        (torch.rand(1, 1, 16, 16),),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["lr"],
        output_names=["sr"],
        dynamic_axes={"lr": {2: "h", 3: "w"}, "sr": {2: "sh", 3: "sw"}},
    )
    model = onnx.load_from_string(buf.getvalue())
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    conv_shapes = sorted(
        inits[node.input[1]].shape
        for node in model.graph.node
        if node.op_type in ("Conv", "ConvTranspose")
    )
    want = sorted(
        tuple(m.weight.shape)
        for m in pruned.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    )
    full = sorted(
        tuple(m.weight.shape)
        for m in net.fuse().modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    )
    assert conv_shapes == want
    assert sum(map(math.prod, conv_shapes)) < 0.5 * sum(map(math.prod, full))
    x = torch.rand(1, 1, H, W)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"lr": x.numpy()})
    assert got.shape == (1, 1, 4 * H, 4 * W)
    assert np.abs(got - _run(pruned, x).numpy()).max() < 1e-4


def test_layer_ratios_override_the_ratio_per_width() -> None:
    net = _build("espcn", 4)
    res = prune_channels(net, ratio=0.5, layer_ratios={"num_feat": 0.625, "num_feat2": 0.25})
    assert res.widths_after == {"conv1": 24, "conv2": 24}
    assert (res.arch_params["num_feat"], res.arch_params["num_feat2"]) == (24, 24)
    # A width left out keeps the common ratio; the pruned net still runs and reloads.
    res = prune_channels(net, ratio=0.5, layer_ratios={"num_feat2": 0.0})
    assert res.widths_after == {"conv1": 32, "conv2": 32}
    x = torch.rand(1, 1, H, W)
    rebuilt = ESPCN(scale=4, **res.arch_params)
    rebuilt.load_state_dict(res.model.state_dict())
    assert torch.equal(_run(rebuilt, x), _run(res.model, x))
    # AnchorNet's body layers share one width: one name prunes them together.
    res = prune_channels(_build("anchornet", 3), ratio=0.0, layer_ratios={"num_feat": 0.5})
    assert set(res.widths_after.values()) == {16}


def test_bad_layer_ratios_raise_naming_the_widths() -> None:
    with pytest.raises(ConfigError, match=r"no prunable width named 'conv2'.*num_feat, num_feat2"):
        prune_channels(ESPCN(), ratio=0.5, layer_ratios={"conv2": 0.5})
    with pytest.raises(ConfigError, match=r"pruning ratio must be in \[0, 1\)"):
        prune_channels(ESPCN(), ratio=0.5, layer_ratios={"num_feat2": 1.0})


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan"), True, "0.5", None])
def test_bad_ratio_raises(ratio) -> None:
    with pytest.raises(ConfigError, match=r"pruning ratio must be in \[0, 1\)"):
        prune_channels(ESPCN(), ratio=ratio)


def test_bad_options_raise() -> None:
    with pytest.raises(ConfigError, match="criterion"):
        prune_channels(ESPCN(), ratio=0.5, criterion="random")
    with pytest.raises(ConfigError, match="round_to"):
        prune_channels(ESPCN(), ratio=0.5, round_to=0)
    with pytest.raises(ConfigError, match="min_channels"):
        prune_channels(ESPCN(), ratio=0.5, min_channels=-1)
    with pytest.raises(ConfigError, match="needs data"):
        prune_channels(ESPCN(), ratio=0.5, criterion="activation")


def test_unknown_model_raises_naming_supported() -> None:
    with pytest.raises(ConfigError, match="AnchorNet, ESPCN, FSRCNN"):
        prune_channels(nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU()), ratio=0.5)


def test_bias_compensation_folds_constant_channels() -> None:
    """Channels whose filters are zero but whose ReLU(bias) is a positive constant are dropped
    by pruning; with compensation their constant is folded into the next bias, so the interior
    of the output (away from zero padding) is unchanged; without it, it is not."""
    from edgesr.archs import ESPCN
    from edgesr.compress.prune import prune_channels

    torch.manual_seed(0)
    net = ESPCN(scale=2, num_channels=1, act="relu").eval()
    with torch.no_grad():
        # Make half of conv1's channels constant positive after ReLU and small to the criterion.
        net.conv1.weight[32:] = 0.0
        net.conv1.bias[32:] = 0.5
        net.conv1.bias[:32] = 0.1
        net.conv2.weight[:, 32:] *= 1e-3
        # conv2's second half feeds nothing, so pruning it is exact and only conv1's link counts.
        net.conv3.weight[:, 16:] = 0.0
        net.conv3.weight[:, :16] = torch.randn_like(net.conv3.weight[:, :16]) * 0.1
    x = torch.rand(2, 1, 20, 20)
    batches = [x]
    with torch.no_grad():
        ref = net(x)
        comp = prune_channels(
            net, ratio=0.5, criterion="activation", data=batches, compensate=True
        ).model(x)
        plain = prune_channels(
            net, ratio=0.5, criterion="activation", data=batches, compensate=False
        ).model(x)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    err_comp = (comp - ref)[inner].abs().max().item()
    err_plain = (plain - ref)[inner].abs().max().item()
    assert err_comp < 1e-5, err_comp
    assert err_plain > 100 * max(err_comp, 1e-7)
