"""INT8 with real NNCF and ONNX Runtime on a small trained ESPCN (no mocks)."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("nncf")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from conftest import grey_levels  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from edgesr.archs import ESPCN  # noqa: E402
from edgesr.compress import nncf_int8, ort_int8  # noqa: E402
from edgesr.compress.calibration import load_calibration  # noqa: E402
from edgesr.errors import ConfigError, DataError, ModelError  # noqa: E402
from edgesr.export import onnx_passes  # noqa: E402
from edgesr.runtime.runners import ort_session_options  # noqa: E402
from edgesr.runtime.saturation import int8_saturation  # noqa: E402

SCALE = 2


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def _run(path, x: np.ndarray) -> np.ndarray:
    """ORT's default (fused) session, with ORT's exact kernels only where edgesr's runner asks
    for them (weights that can saturate x86 CPUs without VNNI): the same on every CPU."""
    opts = ort_session_options(exact_int8=not int8_saturation(path).free)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def patches():
    from edgesr.data.embedded import embedded_images
    from edgesr.data.pairs import PatchSampler, make_pairs

    pairs = make_pairs(embedded_images(split="train", num_procedural=0)[:8], scale=SCALE)
    return PatchSampler(pairs, scale=SCALE, color="y", lr_patch=16, batch_size=16, seed=0)


def _trained(net: torch.nn.Module, patches, steps: int = 200) -> torch.nn.Module:
    """``net`` after a few seconds of L1 training: outputs real images, not noise."""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.random.fork_rng():
        for _ in range(steps):
            lr, hr = patches.next_batch()
            loss = torch.nn.functional.l1_loss(net(lr), hr)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def fp32(patches):
    """A small ReLU ESPCN x2, briefly trained."""
    torch.manual_seed(0)
    return _trained(
        ESPCN(scale=SCALE, num_channels=1, num_feat=16, num_feat2=8, act="relu"), patches
    )


@pytest.fixture(scope="module")
def calib():
    return load_calibration("embedded", scale=SCALE, color="y", num_images=8, crop=32)


@pytest.fixture(scope="module")
def real_image() -> np.ndarray:
    """The Y of a real photo (scikit-image's coffee, held out of calibration), as LR input."""
    from edgesr.data.embedded import embedded_images
    from edgesr.data.pairs import make_pairs, to_model_space

    pair = make_pairs(embedded_images(split="val", num_procedural=0)[:1], scale=SCALE)[0]
    return to_model_space(pair.lr_rgb, "y").transpose(2, 0, 1)[None].copy()


@pytest.fixture(scope="module")
def qmodel(fp32, calib):
    """8-bit weights: the TensorRT layout."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf_int8.ptq_nncf(fp32, calib)


@pytest.fixture(scope="module")
def qmodel7(fp32, calib):
    """7-bit weights: what the ORT-CPU model carries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf_int8.ptq_nncf(fp32, calib, weight_bits=ort_int8.ORT_CPU_WEIGHT_BITS)


@pytest.fixture(scope="module")
def fp32_onnx(fp32, tmp_path_factory):
    return nncf_int8.export_float_onnx(fp32, tmp_path_factory.mktemp("fp32") / "fp32.onnx")


def test_import_does_not_pull_in_nncf_or_ort():
    code = (
        "import sys, edgesr, edgesr.compress.nncf_int8, edgesr.compress.ort_int8,"
        " edgesr.export.onnx_passes, edgesr.compress.calibration\n"
        "bad = [m for m in ('nncf', 'onnxruntime') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_empty_calibration_is_a_data_error(fp32, fp32_onnx, tmp_path):
    with pytest.raises(DataError):
        nncf_int8.ptq_nncf(fp32, [])
    with pytest.raises(DataError):
        ort_int8.quantize_ort_static(fp32_onnx, tmp_path / "q.onnx", [])


def test_ptq_stays_close_to_fp32_on_a_real_image(fp32, qmodel, real_image):
    x = torch.from_numpy(real_image)
    with torch.no_grad():
        ref, out = fp32(x).numpy(), qmodel(x).numpy()
    # Measured 55 dB on this net: INT8 noise far below the SR error itself (~30 dB).
    assert _psnr(out, ref) > 45.0
    # The caller's model is not wrapped or changed by NNCF.
    assert not any("nncf" in name for name, _ in fp32.named_modules())


def test_strip_export_gives_tensorrt_style_qdq(qmodel, real_image, tmp_path):
    path = nncf_int8.export_qdq_onnx(qmodel, tmp_path / "nncf.onnx", scale=SCALE, color="y")
    proto = onnx.load(str(path))
    ops = [n.op_type for n in proto.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    weight_q = [
        n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in inits
    ]
    assert len(weight_q) == 3  # one per conv
    for node in weight_q:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        scales = inits[node.input[1]]
        assert axis == 0 and scales.shape == (inits[node.input[0]].shape[0],)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["edgesr.scale"] == str(SCALE) and meta["edgesr.color"] == "y_bt601"
    assert meta["edgesr.quantization"] == "nncf-qdq"
    with torch.no_grad():
        ref = qmodel(torch.from_numpy(real_image)).numpy()
    assert _psnr(_run(path, real_image), ref) > 60.0  # measured 78 dB
    # Unsigned activations (the CPU default) are not what TensorRT takes.
    with pytest.raises(ModelError, match="signed_activations"):
        nncf_int8.export_qdq_onnx(qmodel, tmp_path / "trt.onnx", require_int8_activations=True)


def test_signed_activations_export_for_tensorrt(fp32, calib, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = nncf_int8.ptq_nncf(fp32, calib[:4], signed_activations=True)
    path = nncf_int8.export_qdq_onnx(q, tmp_path / "trt.onnx", require_int8_activations=True)
    layout = nncf_int8._qdq_layout(onnx.load(str(path)))
    assert layout["activation_types"] == {"int8"} and layout["weight_quantizers"] == 3


def test_ort_static_runs_qlinearconv(fp32_onnx, calib, real_image, fp32, tmp_path):
    path = ort_int8.quantize_ort_static(fp32_onnx, tmp_path / "ort.onnx", calib)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    optimized = onnx_passes.ort_graph_ops(path)
    qconv = optimized["com.microsoft.QLinearConv"] + optimized["QLinearConv"]
    assert qconv == 3, optimized  # every conv in int8, none left in float
    assert optimized["Conv"] == 0
    assert onnx_passes.ort_graph_ops(fp32_onnx)["com.microsoft.QLinearConv"] == 0
    with torch.no_grad():
        ref = fp32(torch.from_numpy(real_image)).numpy()
    # Measured 41 dB with the default 7-bit weights (8-bit: 54 dB): INT8 noise still far below
    # the SR error itself (~30 dB); QAT, not this plain PTQ, is what wins the bit back.
    assert _psnr(_run(path, real_image), ref) > 36.0
    assert int8_saturation(path).free


def test_nncf_qdq_leaves_the_last_conv_in_float_on_ort(qmodel, tmp_path):
    # Why the ORT-CPU model is a separate artifact: without a QuantizeLinear after it, ORT
    # cannot fuse the last conv, which runs in float between DequantizeLinear nodes.
    path = nncf_int8.export_qdq_onnx(qmodel, tmp_path / "nncf.onnx")
    assert onnx_passes.ort_graph_ops(path)["Conv"] >= 1


def _scale_of(path, tensor: str) -> np.ndarray:
    proto = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    # Activations: the QuantizeLinear of the tensor; weights (stored as int8): their DQ.
    node = next(
        n
        for n in proto.graph.node
        if (n.op_type == "QuantizeLinear" and n.input[0] == tensor)
        or (n.op_type == "DequantizeLinear" and n.input[0] == f"{tensor}_quantized")
    )
    return inits[node.input[1]]


def test_range_overrides_set_the_scales(fp32_onnx, calib, tmp_path):
    proto = onnx.load(str(fp32_onnx))
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    act1, act2, out = convs[1].input[0], convs[2].input[0], convs[2].output[0]
    plain = ort_int8.quantize_ort_static(fp32_onnx, tmp_path / "plain.onnx", calib)
    ranges = {
        act1: (0.0, 8.0),
        act2: {"scale": 0.05, "zero_point": 0, "quant_type": "QUInt8"},
    }
    carried = ort_int8.quantize_ort_static(
        fp32_onnx, tmp_path / "carried.onnx", calib, ranges=ranges
    )
    assert _scale_of(carried, act1) == pytest.approx(8.0 / 255.0, rel=1e-6)
    assert _scale_of(carried, act2) == pytest.approx(0.05, rel=1e-6)
    assert _scale_of(plain, act1) != pytest.approx(8.0 / 255.0, rel=1e-3)
    # The output sits on the 8-bit image grid by default.
    assert _scale_of(plain, out) == pytest.approx(1.0 / 255.0, rel=1e-6)
    with pytest.raises(ModelError, match="does not have"):
        ort_int8.quantize_ort_static(fp32_onnx, tmp_path / "x.onnx", calib, ranges={"nope": (0, 1)})


def test_nncf_ranges_and_weights_carry_into_the_ort_model(
    qmodel7, calib, real_image, tmp_path, int8_paths
):
    qmodel = qmodel7
    fp32_path = tmp_path / "baked.onnx"
    out = ort_int8.qat_to_ort_int8(qmodel, tmp_path / "carried.onnx", calib, keep_fp32=fp32_path)
    ranges = nncf_int8.nncf_activation_ranges(qmodel, fp32_path)
    proto = onnx.load(str(fp32_path))
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert set(ranges) == {
        "lr",
        convs[1].input[0],
        convs[2].input[0],
        *(c.input[1] for c in convs),
        convs[2].output[0],
    }
    # The input quantizer is pinned to [0, 1]: u8 step 1/255.
    assert ranges["lr"][0]["scale"] == pytest.approx(1.0 / 255.0, rel=1e-6)
    # ORT's per-channel weight scales are NNCF's.
    for conv in convs:
        expected = [c["scale"] for c in ranges[conv.input[1]]]
        np.testing.assert_allclose(_scale_of(out, conv.input[1]), expected, rtol=1e-6)
    assert onnx_passes.ort_graph_ops(out)["com.microsoft.QLinearConv"] == 3
    # ORT computes what the NNCF model computes, up to int32 bias rounding: 8-bit outputs agree
    # almost everywhere, never by more than one level (1.4 % of pixels differ by one here; the
    # bias step grows with the 7-bit weight step).
    with torch.no_grad():
        ref = np.round(np.clip(qmodel(torch.from_numpy(real_image)).numpy(), 0, 1) * 255)
    got = np.round(np.clip(_run(out, real_image), 0, 1) * 255)
    assert np.abs(got - ref).max() <= 1 and np.mean(got != ref) < 0.03
    # 7-bit weights: no pair can saturate, and the model says so.
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["edgesr.int8_weight_bits"] == "7" and meta["edgesr.int8_portable"] == "true"
    assert int8_saturation(out).worst_pair <= 128
    # The same integers with ORT's fused kernels, its float reference and an AVX2-only CPU.
    reference = int8_paths.reference(out, real_image)
    assert grey_levels(int8_paths.fused(out, real_image), reference) <= 1
    assert grey_levels(int8_paths.no_vnni(out, real_image), reference) <= 1


def test_a_7_bit_image_grid_carries_8_bit_first_conv_weights_portably(
    fp32, calib, real_image, tmp_path, int8_paths
):
    """input_bits=7 + 8-bit first conv: the ORT model keeps both grids, computes what NNCF
    computes, and is exact on a CPU without VNNI (the image cannot reach 255)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = nncf_int8.ptq_nncf(
            fp32, calib, weight_bits=7, layer_weight_bits={"conv1": 8}, input_bits=7
        )
    bits = {p: int(w.num_bits) for p, w in nncf_int8.weight_quantizers(q).items()}
    assert bits == {"conv1": 8, "conv2": 7, "conv3": 7}
    out = ort_int8.qat_to_ort_int8(q, tmp_path / "u7.onnx", calib)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["edgesr.int8_input_levels"] == "127" and meta["edgesr.int8_portable"] == "true"
    report = int8_saturation(out)
    assert report.free and report.worst_pair > 128 and list(report.limits.values()) == [258]
    with torch.no_grad():
        ref = np.round(np.clip(q(torch.from_numpy(real_image)).numpy(), 0, 1) * 255)
    got = np.round(np.clip(_run(out, real_image), 0, 1) * 255)
    assert np.abs(got - ref).max() <= 1 and np.mean(got != ref) < 0.03
    reference = int8_paths.reference(out, real_image)
    assert grey_levels(int8_paths.no_vnni(out, real_image, session="plain"), reference) <= 1
    # 8-bit weights behind the full 8-bit image grid are refused for the portable model.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q8 = nncf_int8.ptq_nncf(fp32, calib, weight_bits=7, layer_weight_bits={"conv1": 8})
    with pytest.raises(ModelError, match="input_bits=7"):
        ort_int8.qat_to_ort_int8(q8, tmp_path / "u8.onnx", calib)
    assert not (tmp_path / "u8.onnx").exists()
    with pytest.raises(ConfigError, match="layer_weight_bits"):
        nncf_int8.ptq_nncf(fp32, calib, layer_weight_bits={"conv1": 6})


@pytest.fixture(scope="module")
def anchor_fp32(patches):
    """A small AnchorNet x2 trained for a few seconds: its input feeds the anchor too."""
    from edgesr.archs import AnchorNet

    torch.manual_seed(0)
    return _trained(AnchorNet(scale=SCALE, num_feat=16, num_blocks=2, rep=False), patches)


def test_the_tensorrt_layout_keeps_the_anchor_on_the_image_not_a_7_bit_grid(
    anchor_fp32, calib, real_image, tmp_path
):
    """int8 activations (zero point 0) would put AnchorNet's anchor, the image it adds onto
    the output, on a 7-bit grid: the int8-qdq model leaves the anchor and its Add in float."""
    from edgesr.archs import AnchorNet

    assert nncf_int8.image_copy_ops(anchor_fp32) == ["/cat/0", "/add/0"]
    assert nncf_int8.image_copy_ops(ESPCN(scale=2)) == []
    rgb = AnchorNet(scale=3, num_channels=3, num_feat=8, num_blocks=1)
    assert nncf_int8.image_copy_ops(rgb) == ["/cat/0", "/add/0"]
    first = nncf_int8.conv_layers(anchor_fp32)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = nncf_int8.ptq_nncf(anchor_fp32, calib, signed_activations=True, float_layers=(first,))
    path = nncf_int8.export_qdq_onnx(q, tmp_path / "trt.onnx", require_int8_activations=True)
    proto = onnx.load(str(path))
    graph_input = proto.graph.input[0].name
    nodes = {n.op_type: n for n in proto.graph.node if n.op_type in ("Concat", "Add")}
    assert set(nodes["Concat"].input) == {graph_input}  # the image itself, unrounded
    assert nodes["Concat"].output[0] in nodes["Add"].input
    # The body is still int8: every conv but the float first one reads a DequantizeLinear.
    producer = {o: n.op_type for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert [producer.get(c.input[0]) for c in convs[1:]] == ["DequantizeLinear"] * (len(convs) - 1)
    # An image with no residual to add comes through exactly: the anchor is the image.
    ref = torch.nn.functional.interpolate(torch.from_numpy(real_image), scale_factor=SCALE)
    anchor_only = copy.deepcopy(proto)
    for init in anchor_only.graph.initializer:
        if init.name.startswith("tail."):
            init.CopyFrom(numpy_helper.from_array(0 * numpy_helper.to_array(init), init.name))
    sess = ort.InferenceSession(anchor_only.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {graph_input: real_image})[0]
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-6)


def test_a_7_bit_input_grid_only_where_the_input_feeds_the_first_conv_alone():
    from edgesr.archs import AnchorNet

    assert nncf_int8.input_feeds_only(ESPCN(scale=2), "conv1")
    assert not nncf_int8.input_feeds_only(ESPCN(scale=2), "conv2")
    anchor = AnchorNet(scale=2)
    first = nncf_int8.conv_layers(anchor)[0]
    assert not nncf_int8.input_feeds_only(anchor, first)  # the anchor reads the image too


def test_8bit_weights_are_refused_for_the_portable_ort_model(qmodel, calib, tmp_path):
    with pytest.raises(ModelError, match="weight_bits=7"):
        ort_int8.qat_to_ort_int8(qmodel, tmp_path / "q.onnx", calib)
    assert not (tmp_path / "q.onnx").exists()
    # Asked for explicitly (a VNNI/ARM-only target): written, and marked as such.
    out = ort_int8.qat_to_ort_int8(qmodel, tmp_path / "vnni.onnx", calib, portable=False)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["edgesr.int8_weight_bits"] == "8" and meta["edgesr.int8_portable"] == "false"


def test_qat_loss_decreases_and_bakes(fp32, qmodel, patches, real_image):
    q = copy.deepcopy(qmodel)
    lr, hr = patches.next_batch()
    with torch.no_grad():
        before = q(lr).clone()
    losses = nncf_int8.qat_finetune(q, fp32, lambda: (lr, hr), steps=40, lr=1e-3, alpha=0.5)
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    with torch.no_grad():
        assert not torch.equal(q(lr), before)
    # The input quantizer stays pinned to [0, 1] through QAT.
    ranges_input = [m for n, m in nncf_int8._quantizers(q).items() if "x__0" in n]
    assert ranges_input and float(ranges_input[0].scale) == pytest.approx(1.0)
    baked = nncf_int8.bake_qat_weights(q)
    assert not any("nncf" in name for name, _ in baked.named_modules())
    x = torch.from_numpy(real_image)
    with torch.no_grad():
        assert _psnr(baked(x).numpy(), q(x).numpy()) > 35.0


def test_qat_argument_checks(qmodel, fp32):
    from edgesr.errors import ConfigError

    with pytest.raises(ConfigError):
        nncf_int8.qat_finetune(qmodel, None, lambda: None, steps=1, alpha=0.5)
    with pytest.raises(ConfigError):
        nncf_int8.qat_finetune(qmodel, fp32, object(), steps=1)
    with pytest.raises(ConfigError):
        nncf_int8.qat_finetune(qmodel, fp32, lambda: None, steps=1, loss="huber")


@pytest.mark.parametrize(("channels", "kernel"), [(1, 5), (3, 3)])
def test_im2col_first_conv_is_exact(channels, kernel, tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, kernel, padding=kernel // 2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 4, 3, padding=1),
    ).eval()
    path = tmp_path / "net.onnx"
    nncf_int8.export_float_onnx(net, path, scale=1, color="y" if channels == 1 else "rgb")
    proto = onnx.load(str(path))
    shared = onnx_passes.im2col_first_conv(proto)
    assert shared and sum(n.op_type == "Slice" for n in proto.graph.node) >= kernel * kernel
    first = next(n for n in proto.graph.node if n.op_type == "Conv")
    weight = next(i for i in proto.graph.initializer if i.name == first.input[1])
    assert tuple(weight.dims[2:]) == (1, 1) and weight.dims[1] % 16 == 0
    rewritten = tmp_path / "im2col.onnx"
    onnx.save(proto, str(rewritten))
    x = np.random.default_rng(0).random((2, channels, 19, 23), dtype=np.float32)
    np.testing.assert_allclose(_run(rewritten, x), _run(path, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("arch", "scale", "channels"), [("espcn", 4, 1), ("espcn", 2, 3), ("anchornet", 3, 3)]
)
def test_u8_pixel_shuffle_is_exact_and_only_where_it_pays(arch, scale, channels, tmp_path):
    from edgesr.archs import AnchorNet

    torch.manual_seed(0)
    if arch == "espcn":  # ends in a conv: ORT runs it in NHWC
        net = ESPCN(scale=scale, num_channels=channels, num_feat=16, num_feat2=8, act="relu")
    else:  # ends in the anchor Add, which ORT runs in NCHW
        net = AnchorNet(scale=scale, num_channels=3, num_feat=16, num_blocks=1)
    color = "y" if channels == 1 else "rgb"
    src = nncf_int8.export_float_onnx(net.eval(), tmp_path / "fp32.onnx", scale=scale, color=color)
    calib = load_calibration("embedded", scale=scale, color=color, num_images=4, crop=24)
    default = ort_int8.quantize_ort_static(src, tmp_path / "default.onnx", calib)
    plain = ort_int8.quantize_ort_static(src, tmp_path / "f32.onnx", calib, u8_pixel_shuffle=False)
    meta = {p.key: p.value for p in onnx.load(str(default)).metadata_props}
    ops, plain_ops = onnx_passes.ort_graph_ops(default), onnx_passes.ort_graph_ops(plain)
    assert plain_ops["DepthToSpace"] == 1
    if arch == "anchornet":  # the rewrite would add a Transpose: left as it was
        assert meta["edgesr.int8_pixel_shuffle"] == "float" and ops == plain_ops
        proto = onnx.load(str(default))
        assert onnx_passes.u8_pixel_shuffle(proto)  # it can be written, it just does not pay
        default = tmp_path / "forced.onnx"
        onnx.save(proto, str(default))
    else:
        assert meta["edgesr.int8_pixel_shuffle"] == "u8" and ops["DepthToSpace"] == 0
        # ORT's NHWC -> NCHW Transpose after the last QLinearConv cancels the shuffle's first.
        assert ops["Transpose"] == plain_ops["Transpose"]
    x = np.random.default_rng(1).random((2, channels, 19, 27), dtype=np.float32)
    got, ref = _run(default, x), _run(plain, x)
    assert got.shape == (2, channels, 19 * scale, 27 * scale)
    np.testing.assert_array_equal(got, ref)


def test_anchornet_carries_into_an_all_int8_ort_model(tmp_path):
    from edgesr.archs import AnchorNet

    torch.manual_seed(0)
    net = AnchorNet(scale=3, num_channels=3, num_feat=16, num_blocks=1).eval()
    with torch.no_grad():  # a residual of realistic size instead of the near-zero init
        for mod in net.tail.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.weight.mul_(30)
    calib = load_calibration("embedded", scale=3, color="rgb", num_images=4, crop=24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = nncf_int8.ptq_nncf(net, calib, weight_bits=7)
    baked = tmp_path / "baked.onnx"
    out = ort_int8.qat_to_ort_int8(q, tmp_path / "anchornet_int8.onnx", calib, keep_fp32=baked)
    ranges = nncf_int8.nncf_activation_ranges(q, baked)
    proto = onnx.load(str(baked))
    tail = [n for n in proto.graph.node if n.op_type == "Conv"][-1]
    add = next(n for n in proto.graph.node if n.op_type == "Add")
    assert tail.output[0] in ranges  # the residual's quantizer, carried
    assert ranges[add.output[0]][0]["scale"] == pytest.approx(1 / 255)  # output grid
    ops = onnx_passes.ort_graph_ops(out)
    assert ops["com.microsoft.QLinearConv"] == 3 and ops["Conv"] == 0
    # The anchor (Concat of the image's channels) stays on the image's own 1/255 grid.
    int8 = onnx.load(str(out))
    steps = {i.name: numpy_helper.to_array(i) for i in int8.graph.initializer}
    anchor = next(n for n in proto.graph.node if n.op_type == "Concat")
    (quant,) = [
        n
        for n in int8.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] == anchor.output[0]
    ]
    assert float(steps[quant.input[1]]) == pytest.approx(1 / 255)
    x = calib[0]
    with torch.no_grad():
        ref = np.clip(q(torch.from_numpy(x)).numpy(), 0, 1)
    assert np.abs(np.clip(_run(out, x), 0, 1) - ref).max() < 2.5 / 255


def test_ranges_refuse_an_onnx_of_another_net(qmodel, tmp_path):
    other = ESPCN(scale=SCALE, num_channels=1, num_feat=12, num_feat2=8, act="relu")
    path = nncf_int8.export_float_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(ModelError, match="does not match"):
        nncf_int8.nncf_activation_ranges(qmodel, path)
