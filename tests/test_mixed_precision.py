"""Mixed-precision INT8 with real NNCF and ONNX Runtime: float convs stay float end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nncf")
pytest.importorskip("onnxruntime")

import onnxruntime as ort  # noqa: E402

from edgesr.archs import AnchorNet  # noqa: E402
from edgesr.compress import nncf_int8, ort_int8  # noqa: E402
from edgesr.compress.calibration import load_calibration  # noqa: E402
from edgesr.compress.mixed import model_psnr, select_float_layers  # noqa: E402
from edgesr.errors import ConfigError  # noqa: E402
from edgesr.export import onnx_passes  # noqa: E402
from edgesr.runtime.runners import ORT_SESSION_CONFIG, ort_session_options  # noqa: E402

SCALE = 2


@pytest.fixture(scope="module")
def net():
    """A small RGB AnchorNet x2 trained for a few seconds on embedded photos."""
    from edgesr.data.embedded import embedded_images
    from edgesr.data.pairs import PatchSampler, make_pairs

    pairs = make_pairs(embedded_images(split="train", num_procedural=0)[:6], scale=SCALE)
    sampler = PatchSampler(pairs, scale=SCALE, color="rgb", lr_patch=16, batch_size=8, seed=0)
    torch.manual_seed(0)
    model = AnchorNet(scale=SCALE, num_channels=3, num_feat=16, num_blocks=2, rep=False)
    # A full-size tail (AnchorNet starts it near zero): after a short training the convs then
    # carry most of the output, so quantizing them has a measurable cost.
    model.tail.reset_parameters()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.random.fork_rng():
        for _ in range(150):
            lr, hr = sampler.next_batch()
            loss = torch.nn.functional.l1_loss(model(lr), hr)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def outlier_net(net):
    """``net`` with one input channel of ``body.2`` and of ``tail`` 256x larger, and the
    channels feeding them 256x smaller.

    The same float function (exact through ReLU), but each of those convs' per-channel weight
    step is now set by one channel, so INT8 costs a clear amount whatever the CPU's float
    rounding (the kind of net mixed precision exists for; shipped ESPCN x4 has a 7x channel).
    """
    import copy

    model = copy.deepcopy(net)
    with torch.no_grad():
        for producer, consumer, channel in (("body.0", "body.2", 1), ("body.2", "tail", 0)):
            prod, cons = model.get_submodule(producer), model.get_submodule(consumer)
            prod.weight[channel] /= 256
            prod.bias[channel] /= 256
            cons.weight[:, channel] *= 256
    return model.eval()


@pytest.fixture(scope="module")
def calib():
    return load_calibration("embedded", scale=SCALE, color="rgb", num_images=6, crop=32)


@pytest.fixture(scope="module")
def val_pairs():
    from edgesr.data.embedded import embedded_images
    from edgesr.data.pairs import make_pairs

    return make_pairs(embedded_images(split="val", num_procedural=0)[:2], scale=SCALE)


def test_float_layers_get_no_weight_quantizer(net, calib):
    q = nncf_int8.ptq_nncf(net, calib, float_layers=("head", "tail"))
    assert sorted(nncf_int8.weight_quantizers(q)) == ["body.0", "body.2"]
    assert nncf_int8.conv_layers(net) == ["head", "body.0", "body.2", "tail"]


def test_unknown_float_layer_is_a_config_error(net, calib):
    with pytest.raises(ConfigError, match="not convs of this net.*valid: head"):
        nncf_int8.ptq_nncf(net, calib, float_layers=("body.1",))
    with pytest.raises(ConfigError, match="list of module paths"):
        nncf_int8.ptq_nncf(net, calib, float_layers="tail")


def test_float_conv_stays_float_on_onnxruntime(net, calib, tmp_path):
    q = nncf_int8.ptq_nncf(net, calib, float_layers=("tail",), weight_bits=7)
    path = ort_int8.qat_to_ort_int8(q, tmp_path / "mixed.onnx", calib, scale=SCALE, color="rgb")
    ops = onnx_passes.ort_graph_ops(path)
    assert ops["com.microsoft.QLinearConv"] == 3
    # The float conv runs as ORT's float kernel (Conv, FusedConv or its NCHWc variant).
    assert sum(n for op, n in ops.items() if op.endswith("Conv") and "QLinear" not in op) == 1
    # Without edgesr's session setting ORT re-quantizes the float conv's weights per tensor.
    plain = ort.SessionOptions()
    plain.optimized_model_filepath = str(tmp_path / "plain_opt.onnx")
    plain.log_severity_level = 3
    ort.InferenceSession(str(path), plain, providers=["CPUExecutionProvider"])
    import onnx

    fused = [n.op_type for n in onnx.load(str(tmp_path / "plain_opt.onnx")).graph.node]
    assert fused.count("QLinearConv") == 4
    # edgesr's session options carry the setting.
    opts = ort_session_options(1)
    for key, value in ORT_SESSION_CONFIG.items():
        assert opts.get_session_config_entry(key) == value


def test_float_layer_output_matches_its_fake_quant_model(net, calib, tmp_path):
    """The ORT model with a float conv computes what the NNCF model with that conv ignored does."""
    q = nncf_int8.ptq_nncf(net, calib, float_layers=("head",), weight_bits=7)
    path = ort_int8.qat_to_ort_int8(q, tmp_path / "mixed.onnx", calib, scale=SCALE, color="rgb")
    x = calib[0][:, :, :24, :24].copy()
    sess = ort.InferenceSession(
        str(path), ort_session_options(1), providers=["CPUExecutionProvider"]
    )
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = q(torch.from_numpy(x)).numpy()
    # Same integer grids; only rounding of the final output differs (8-bit output grid).
    assert np.abs(np.clip(got, 0, 1) - np.clip(want, 0, 1)).mean() < 2.0 / 255


def test_selection_meets_a_reachable_limit_and_reports_it(outlier_net, calib, val_pairs):
    net = outlier_net
    loose = select_float_layers(net, calib, val_pairs, max_drop_db=100.0, weight_bits=7)
    assert loose.float_layers == () and loose.met and loose.sensitivity == {}
    assert loose.all_int8_drop_db == loose.drop_db
    # The outlier channels make INT8 cost: 0.19 dB measured (a plain trained net: 0.0004 dB,
    # whose sign then depends on the CPU's float rounding).
    assert loose.all_int8_drop_db > 0.05

    limit = loose.all_int8_drop_db / 2
    tight = select_float_layers(net, calib, val_pairs, max_drop_db=limit, weight_bits=7)
    assert set(tight.sensitivity) == {"head", "body.0", "body.2", "tail"}
    assert 1 <= len(tight.float_layers) <= 3  # at least one conv stays INT8
    # The first conv chosen is the one whose float copy alone helped most.
    assert tight.float_layers[0] == min(tight.sensitivity, key=tight.sensitivity.get)
    # The reported drop is what that combination really measures.
    q = nncf_int8.ptq_nncf(net, calib, float_layers=tight.float_layers, weight_bits=7)
    measured = tight.float_psnr - model_psnr(q, val_pairs, scale=SCALE, color="rgb")
    assert measured == pytest.approx(tight.drop_db, abs=1e-6)
    assert tight.met == (tight.drop_db <= limit)


def test_selection_argument_checks(net, calib, val_pairs):
    with pytest.raises(ConfigError, match="max_drop_db"):
        select_float_layers(net, calib, val_pairs, max_drop_db=-1)
    with pytest.raises(ConfigError, match="evaluation images"):
        select_float_layers(net, calib, [], max_drop_db=0.1)
