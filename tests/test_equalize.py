"""Cross-layer channel equalization: exact in float, smaller weight-range spread, better INT8."""

from __future__ import annotations

import warnings

import pytest
import torch

from edgesr.archs import ESPCN, FSRCNN, AnchorNet
from edgesr.compress.equalize import choose_equalization, equalize_channels
from edgesr.errors import ConfigError


def _outlier(net: torch.nn.Module, consumer: str, channel: int, factor: float = 12.0) -> None:
    """Give one input channel of ``consumer`` large weights, as training does to ESPCN x4."""
    with torch.no_grad():
        w = net.get_submodule(consumer).weight
        dim = 0 if isinstance(net.get_submodule(consumer), torch.nn.ConvTranspose2d) else 1
        w.select(dim, channel).mul_(factor)


@pytest.mark.parametrize(
    ("make", "consumer"),
    [
        (lambda: ESPCN(scale=4, num_channels=1, num_feat=16, num_feat2=8, act="relu"), "conv3"),
        (lambda: FSRCNN(scale=3, num_channels=1, d=16, s=8, m=2), "deconv"),
        (lambda: AnchorNet(scale=2, num_channels=3, num_feat=12, num_blocks=2), "tail"),
    ],
    ids=["espcn-relu", "fsrcnn-prelu-deconv", "anchornet-rep"],
)
def test_equalization_keeps_the_function_and_evens_weight_ranges(make, consumer):
    torch.manual_seed(0)
    net = make().eval()
    if isinstance(net, AnchorNet):
        net = net.fuse()  # the outlier goes into the deployable tail conv
    _outlier(net, consumer, channel=1)
    before = {n: p.clone() for n, p in net.state_dict().items()}
    result = equalize_channels(net)
    x = torch.rand(2, net.num_channels, 13, 17)
    with torch.no_grad():
        ref, got = net(x), result.model(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    # The input is untouched, the weights really changed, every link got scales.
    assert all(torch.equal(before[n], p) for n, p in net.state_dict().items())
    assert any(
        not torch.equal(before[n], p) for n, p in result.model.state_dict().items() if n in before
    )
    for spread_before, spread_after in result.spread.values():
        assert spread_after <= spread_before + 1e-6
    last_producer = list(result.spread)[-1]
    before_last, after_last = result.spread[last_producer]
    assert after_last < 0.5 * before_last  # power 0.5 takes the square root of the spread


def test_equalization_refuses_what_it_cannot_do():
    tanh = ESPCN(scale=2, num_channels=1, num_feat=8, num_feat2=4, act="tanh")
    with pytest.raises(ConfigError, match="ReLU/PReLU"):
        equalize_channels(tanh)
    relu = ESPCN(scale=2, num_channels=1, num_feat=8, num_feat2=4, act="relu")
    for power in (0, 1.5, -1, True):
        with pytest.raises(ConfigError, match="power"):
            equalize_channels(relu, power=power)
    with pytest.raises(ConfigError, match="cannot equalize"):
        equalize_channels(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)))
    # "auto" quantizes a net it cannot equalize as it is, and says why; "always" refuses.
    model, report = choose_equalization(tanh, [], [], mode="auto")
    assert model is tanh and report["applied"] is False and "ReLU/PReLU" in report["reason"]
    with pytest.raises(ConfigError, match="ReLU/PReLU"):
        choose_equalization(tanh, [], [], mode="always")
    with pytest.raises(ConfigError, match="equalize must be one of"):
        choose_equalization(relu, [], [], mode="on")
    model, report = choose_equalization(relu, [], [], mode="never")
    assert model is relu and report == {"mode": "never", "applied": False}


def test_auto_equalization_cuts_the_ptq_drop_of_the_shipped_espcn_x4():
    """Real weights, real NNCF PTQ: the drop on the embedded validation images shrinks."""
    pytest.importorskip("nncf")
    from edgesr.compress.calibration import load_calibration
    from edgesr.evaluate import resolve_eval_data
    from edgesr.modelio import load_pretrained
    from edgesr.recipe import load_recipe

    net, info = load_pretrained(load_recipe("espcn_x4"))
    calib = load_calibration("embedded", scale=4, color="y", num_images=16)
    val = resolve_eval_data("embedded", scale=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, report = choose_equalization(net, calib, val, mode="auto")
    assert report["applied"] is True and model is not net
    psnr = report["ptq_psnr_y"]
    # measured with 16 calibration frames: 30.20 plain, 30.55 equalized (float 31.20)
    assert psnr["equalized"] > psnr["plain"] + 0.1
    conv1_before, conv1_after = report["weight_range_spread"]["conv1"]
    assert conv1_before > 10 and conv1_after < 5
