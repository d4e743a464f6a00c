"""The ONNX export stage: round trip on real photos, metadata, dynamic/odd sizes, FP16 with FP32
fallback, INT8 Q/DQ against a fake-quant twin, and every error path leaving nothing behind.

Everything runs for real: PyTorch, the TorchScript exporter, onnxslim, onnx.checker and ONNX
Runtime sessions on files in tmp_path. Nets are slimmed (few channels) to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.archs import build_arch
from edgesr.data.embedded import embedded_images
from edgesr.data.pairs import to_model_space
from edgesr.errors import ConfigError, DataError, ModelError, OutputExistsError
from edgesr.export import (
    check_onnx_model,
    convert_to_fp16,
    export_onnx,
    read_onnx_metadata,
    stamp_onnx_metadata,
    verify_onnx,
    write_export_report,
)
from edgesr.export.onnx_export import (
    compare_with_reference,
    emulate_fp16,
    load_onnx,
    verification_inputs,
)
from edgesr.modelio import ModelInfo
from edgesr.recipe import load_recipe
from edgesr.runtime.runners import OnnxRuntimeRunner

SLIM = {
    "espcn": {"num_feat": 16, "num_feat2": 8, "act": "relu"},
    "fsrcnn": {"d": 16, "s": 8, "m": 1},
    "anchornet": {"num_feat": 8, "num_blocks": 1, "expand_ratio": 1},
}


def make(arch: str, color: str = "y", scale: int = 4, seed: int = 0) -> tuple[nn.Module, ModelInfo]:
    torch.manual_seed(seed)
    info = ModelInfo(
        arch=arch,
        scale=scale,
        color=color,
        params=SLIM[arch],
        recipe=f"{arch}_x{scale}",
        recipe_hash="0123456789abcdef",
    )
    return build_arch(arch, scale=scale, num_channels=info.num_channels, **SLIM[arch]), info


def torch_run(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def other_photo(color: str, h: int, w: int) -> np.ndarray:
    """An NCHW crop of a second embedded photo (the export verified on the first one)."""
    img = embedded_images(split="val", num_procedural=0)[-1].rgb[:h, :w]
    return to_model_space(img, color).transpose(2, 0, 1)[None].copy()


@pytest.fixture(scope="module")
def espcn_export(tmp_path_factory: pytest.TempPathFactory):
    net, info = make("espcn")
    path = tmp_path_factory.mktemp("espcn") / "espcn_x4.onnx"
    report = export_onnx(net, path, info=info)
    return net, info, path, report


# --------------------------------------------------------------------------------------------
# Round trip


@pytest.mark.parametrize(
    ("arch", "color"), [("espcn", "y"), ("fsrcnn", "rgb"), ("anchornet", "y"), ("anchornet", "rgb")]
)
def test_round_trip_on_real_photos(tmp_path, arch: str, color: str) -> None:
    net, info = make(arch, color)
    path = tmp_path / f"{arch}.onnx"
    report = export_onnx(net, path, info=info)

    assert path.is_file() and report.verified and report.path == str(path)
    assert report.psnr_db >= 60 and report.max_abs_diff < 1e-3
    c = info.num_channels
    assert report.input_shapes == [[1, c, 96, 128], [1, c, 77, 101], [2, c, 96, 128]]
    assert report.sample.startswith("skimage/")  # a real photo, not a procedural image
    assert report.file_size == path.stat().st_size and len(report.sha256) == 64
    # Independently of the export's own check: the project's ONNX Runtime runner on a crop of
    # another photo, against the deployable PyTorch net.
    x = other_photo(color, 64, 90)
    with OnnxRuntimeRunner(path) as runner:
        got = runner.infer(x)
    assert psnr(got, torch_run(net.fuse(), x)) > 60


def test_export_report_json(tmp_path, espcn_export) -> None:
    *_, report = espcn_export
    out = write_export_report(report, tmp_path / "export_report.json")
    data = json.loads(out.read_text())
    assert data["precision"] == "fp32" and data["opset"] == 17
    assert data["psnr_db"] is None or data["psnr_db"] >= 60  # null: bit-identical
    assert data["ops"] == {"Conv": 3, "Relu": 2, "DepthToSpace": 1}
    assert data["metadata"]["edgesr.scale"] == "4"
    assert set(data["versions"]) == {"edgesr", "torch", "onnx", "onnxruntime"}
    with pytest.raises(OutputExistsError):
        write_export_report(report, out)


def test_metadata_and_io_convention(espcn_export) -> None:
    net, info, path, _ = espcn_export
    meta = read_onnx_metadata(path)
    assert meta["edgesr.scale"] == "4" and meta["edgesr.color"] == "y_bt601"
    assert meta["edgesr.recipe"] == "espcn_x4" and meta["edgesr.recipe_hash"] == "0123456789abcdef"
    assert meta["edgesr.precision"] == "fp32" and meta["edgesr.arch"] == "espcn"
    assert "rgb2ycbcr" in meta["edgesr.io"] and meta["edgesr.version"]
    assert json.loads(meta["edgesr.params"]) == SLIM["espcn"]

    summary = check_onnx_model(path)
    assert summary.to_model_info() == info
    assert summary.input_shape == ["N", 1, "H", "W"] and summary.output_shape == [
        "N",
        1,
        "sH",
        "sW",
    ]
    assert summary.dynamic_batch and summary.dynamic_hw and not summary.has_qdq
    assert summary.opset >= 17

    proto = load_onnx(path)
    d2s = [n for n in proto.graph.node if n.op_type == "DepthToSpace"]
    assert len(d2s) == 1
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in d2s[0].attribute}
    assert attrs == {"blocksize": 4, "mode": b"CRD"}
    assert not {"Reshape", "Transpose", "Identity"} & {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 5, 3), (2, 1, 17, 9), (3, 1, 33, 64)])
def test_dynamic_batch_and_odd_sizes(espcn_export, shape) -> None:
    net, _, path, _ = espcn_export
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    got = session.run(None, {"lr": x})[0]
    assert got.shape == (shape[0], 1, shape[2] * 4, shape[3] * 4)
    np.testing.assert_allclose(got, torch_run(net.fuse(), x), atol=1e-5)


def test_repconv_is_folded_before_export(tmp_path) -> None:
    """AnchorNet trains with multi-branch RepConv blocks; the ONNX holds the folded plain convs."""
    net, info = make("anchornet")
    assert net.rep
    report = export_onnx(net, tmp_path / "a.onnx", info=info)
    assert report.ops["Conv"] == 3 and report.psnr_db >= 60  # head, one body block, tail


class UnshuffleNet(nn.Module):
    """Space-to-depth front end, conv at half resolution, PixelShuffle back up: x2 overall."""

    scale, num_channels = 2, 1

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.PixelUnshuffle(2)
        self.conv = nn.Conv2d(4, 16, 3, padding=1)
        self.up = nn.PixelShuffle(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv(self.down(x)))


def test_pixel_unshuffle_export(tmp_path) -> None:
    info = ModelInfo(arch="unshuffle", scale=2, color="y")
    # The default odd verification size cannot go through PixelUnshuffle: a clear ModelError.
    with pytest.raises(ModelError, match="divisible"):
        export_onnx(UnshuffleNet(), tmp_path / "odd.onnx", info=info)
    assert not list(tmp_path.iterdir())

    net = UnshuffleNet()
    path = tmp_path / "unshuffle.onnx"
    report = export_onnx(net, path, info=info, verify_sizes=((96, 128), (50, 66)))
    assert report.psnr_db >= 60 and report.ops["DepthToSpace"] == 1
    assert json.loads(read_onnx_metadata(path)["edgesr.verify_sizes"]) == [[96, 128], [50, 66]]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((2, 1, 38, 26), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"lr": x})[0], torch_run(net.eval(), x), atol=1e-5)


# --------------------------------------------------------------------------------------------
# FP16


def test_fp16_export(tmp_path) -> None:
    net, info = make("anchornet")
    path = tmp_path / "anchor_fp16.onnx"
    report = export_onnx(net, path, info=info, precision="fp16")
    assert report.precision == "fp16" and report.fp32_nodes == []
    assert report.psnr_db >= 45 and report.reference == "PyTorch FP32"
    proto = load_onnx(path)
    halves = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert halves and all(i.data_type != onnx.TensorProto.FLOAT for i in proto.graph.initializer)
    assert report.ops["Cast"] == 2  # float32 in, float32 out
    summary = check_onnx_model(path)
    assert summary.has_fp16 and summary.precision == "fp16"
    assert summary.input_shape == ["N", 1, "H", "W"]  # the I/O convention holds


class HotNet(nn.Module):
    """x2 net whose weights fit FP16 but whose middle activations do not: conv1 peaks near 4500,
    conv2 near 8e5 (FP16 max 65504); conv3 brings the output back to [0, 1]."""

    scale, num_channels = 2, 1

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.PixelShuffle(2)
        with torch.no_grad():
            for conv, value in ((self.conv1, 500.0), (self.conv2, 5.0), (self.conv3, 4e-8)):
                conv.weight.fill_(value)
                conv.bias.zero_()
            self.conv3.weight[1::2].mul_(0.5)  # the four sub-pixels differ

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.up(self.conv3(x))


HOT_INFO = ModelInfo(arch="hot", scale=2, color="y")


def test_fp16_keeps_overflowing_layers_in_fp32(tmp_path) -> None:
    net = HotNet()
    path = tmp_path / "hot_fp16.onnx"
    report = export_onnx(net, path, info=HOT_INFO, precision="fp16")
    # conv2's output (and so relu2 and conv3's input) would overflow; conv1 and the
    # DepthToSpace stay FP16.
    assert report.fp32_nodes == ["/conv2/Conv", "/Relu_1", "/conv3/Conv"]
    assert report.psnr_db >= 45
    assert json.loads(read_onnx_metadata(path)["edgesr.fp32_nodes"]) == report.fp32_nodes
    types = {i.name: i.data_type for i in load_onnx(path).graph.initializer}
    assert types["conv1.weight__fp16"] == onnx.TensorProto.FLOAT16
    assert types["conv2.weight"] == types["conv3.weight"] == onnx.TensorProto.FLOAT


def test_fp16_without_fallback_overflows_and_is_caught(tmp_path) -> None:
    """Ranges measured on unrepresentative (dark) inputs miss the overflow; the FP16 storage
    emulation then gives Inf on the real photo and the check refuses: the FP16-NaN failure of SR
    engines. (ONNX Runtime's CPU FP16 path alone would not show it: it computes in FP32.)"""
    net = HotNet()
    fp32 = tmp_path / "hot.onnx"
    export_onnx(net, fp32, info=HOT_INFO)
    inputs, _ = verification_inputs(None, "y")
    dark = [x * 1e-3 for x in inputs]
    half, fp32_nodes, ranges = convert_to_fp16(load_onnx(fp32), dark)
    assert fp32_nodes == [] and ranges["/conv2/Conv_output_0"] < 8188
    emulation = emulate_fp16(load_onnx(fp32), fp32_nodes)
    with pytest.raises(ModelError, match="non-finite"):
        compare_with_reference(
            emulation.SerializeToString(),
            lambda x: torch_run(net.eval(), x),
            inputs,
            scale=2,
            min_psnr_db=45,
        )
    # With the fallback measured on the real photo, the same emulation is finite and faithful.
    _, fp32_nodes, _ = convert_to_fp16(load_onnx(fp32), inputs)
    result = compare_with_reference(
        emulate_fp16(load_onnx(fp32), fp32_nodes).SerializeToString(),
        lambda x: torch_run(net.eval(), x),
        inputs,
        scale=2,
        min_psnr_db=45,
    )
    assert result.passed


def test_fp16_keep_fp32_by_name(tmp_path) -> None:
    net, info = make("espcn")
    report = export_onnx(
        net, tmp_path / "e.onnx", info=info, precision="fp16", keep_fp32=["/conv3/Conv"]
    )
    assert report.fp32_nodes == ["/conv3/Conv"]
    with pytest.raises(ConfigError, match="does not have"):
        export_onnx(net, tmp_path / "f.onnx", info=info, precision="fp16", keep_fp32=["conv9"])


# --------------------------------------------------------------------------------------------
# INT8 Q/DQ against its fake-quant twin


class FakeQuantConv(nn.Module):
    """Symmetric INT8 fake-quant conv: per-tensor activations, per-channel weights (axis 0)."""

    def __init__(self, conv: nn.Conv2d, act_amax: float) -> None:
        super().__init__()
        self.conv, self.act_scale = conv, act_amax / 127
        w = conv.weight.detach()
        self.register_buffer("w_scale", (w.abs().amax(dim=(1, 2, 3)) / 127).clamp_min(1e-8))
        self.register_buffer("w_zero", torch.zeros(w.shape[0], dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.fake_quantize_per_tensor_affine(x, self.act_scale, 0, -128, 127)
        w = torch.fake_quantize_per_channel_affine(
            self.conv.weight, self.w_scale, self.w_zero, 0, -128, 127
        )
        c = self.conv
        return F.conv2d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)


def fake_quant_twin(net: nn.Module, inputs: list[np.ndarray]) -> nn.Module:
    """The fused net with every conv fake-quantized, activation ranges calibrated on ``inputs``."""
    twin = net.fuse()
    convs = {n: m for n, m in twin.named_modules() if isinstance(m, nn.Conv2d)}
    amax: dict[str, float] = {}

    def hook(name):
        return lambda mod, inp, out: amax.__setitem__(
            name, max(amax.get(name, 0.0), inp[0].abs().max().item())
        )

    handles = [m.register_forward_hook(hook(n)) for n, m in convs.items()]
    with torch.no_grad():
        for x in inputs:
            twin(torch.from_numpy(x))
    for h in handles:
        h.remove()
    for name, conv in convs.items():
        parent, _, attr = name.rpartition(".")
        setattr(
            twin.get_submodule(parent) if parent else twin, attr, FakeQuantConv(conv, amax[name])
        )
    return twin.eval()


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory: pytest.TempPathFactory):
    net, info = make("espcn", seed=5)
    with torch.no_grad():
        net.conv3.weight.mul_(100)  # an output with real contrast, so INT8 error is visible
    inputs, _ = verification_inputs(None, "y")
    twin = fake_quant_twin(net, inputs)
    path = tmp_path_factory.mktemp("int8") / "espcn_int8.onnx"
    report = export_onnx(twin, path, info=info, precision="int8-qdq")
    return net, twin, path, report


def test_int8_qdq_export_matches_fake_quant_twin(int8_export) -> None:
    net, twin, path, report = int8_export
    assert report.precision == "int8-qdq" and report.reference == "PyTorch fake-quant twin"
    assert report.psnr_db >= 40
    assert report.ops["QuantizeLinear"] == report.ops["DequantizeLinear"] == 6  # 3 acts + 3 weights
    proto = load_onnx(path)
    inits = {i.name: i for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        zero = onnx.numpy_helper.to_array(inits[node.input[2]])
        assert zero.dtype == np.int8 and not zero.any()  # symmetric signed INT8
    assert check_onnx_model(path).has_qdq
    # The stated tolerance, checked again on another photo's crops through verify_onnx.
    result = verify_onnx(path, twin, min_psnr_db=40, inputs=[other_photo("y", 64, 80)])
    assert result.passed and result.psnr_db >= 40


def test_int8_departing_from_its_twin_fails(int8_export) -> None:
    """A twin whose activation scales differ from the ONNX's (calibrated on darker images) is
    not its twin: the departure is far beyond the 40 dB tolerance. And the INT8 model is not
    within an FP32 tolerance of the float net."""
    net, _, path, _ = int8_export
    inputs, _ = verification_inputs(None, "y")
    other_twin = fake_quant_twin(net, [x * 0.3 for x in inputs])
    with pytest.raises(ModelError, match="disagrees"):
        verify_onnx(path, other_twin, min_psnr_db=40)
    with pytest.raises(ModelError, match="disagrees"):
        verify_onnx(path, net.fuse(), min_psnr_db=60)


def test_int8_needs_fake_quant_and_fp32_refuses_it(tmp_path, int8_export) -> None:
    net, twin, _, _ = int8_export
    _, info = make("espcn")
    with pytest.raises(ConfigError, match="fake-quant"):
        export_onnx(net, tmp_path / "a.onnx", info=info, precision="int8-qdq")
    with pytest.raises(ConfigError, match="int8-qdq"):
        export_onnx(twin, tmp_path / "b.onnx", info=info, precision="fp32")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# Error paths: clear errors, nothing half-written


class Upsample2x(nn.Module):
    """A net whose output is 2x its input, claimed to be x4."""

    scale, num_channels = 4, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


def test_output_not_scale_times_input(tmp_path) -> None:
    info = ModelInfo(arch="upsample", scale=4, color="y")
    with pytest.raises(ModelError, match=r"exactly x4"):
        export_onnx(Upsample2x(), tmp_path / "m.onnx", info=info)
    assert not list(tmp_path.iterdir())


def test_scale_mismatch_with_recipe(tmp_path) -> None:
    info = ModelInfo.from_recipe(load_recipe("espcn_x4"))
    net = build_arch("espcn", scale=2, num_channels=1, **SLIM["espcn"])
    with pytest.raises(ModelError, match="scale=2"):
        export_onnx(net, tmp_path / "m.onnx", info=info)
    rgb = build_arch("espcn", scale=4, num_channels=3, **SLIM["espcn"])
    with pytest.raises(ModelError, match="num_channels=3"):
        export_onnx(rgb, tmp_path / "m.onnx", info=info)
    assert not list(tmp_path.iterdir())


def test_refuses_to_overwrite_without_force(tmp_path) -> None:
    net, info = make("espcn")
    path = tmp_path / "m.onnx"
    path.write_bytes(b"earlier run")
    with pytest.raises(OutputExistsError, match="--force"):
        export_onnx(net, path, info=info)
    assert path.read_bytes() == b"earlier run"
    export_onnx(net, path, info=info, force=True)
    assert check_onnx_model(path).scale == 4


def test_unwritable_output_directory(tmp_path) -> None:
    net, info = make("espcn")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the output folder"):
        export_onnx(net, blocker / "out" / "m.onnx", info=info)
    if os.geteuid() != 0:  # root writes anywhere; the mode check needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="not writable"):
            export_onnx(net, locked / "m.onnx", info=info)


def test_failed_verification_leaves_nothing(tmp_path) -> None:
    net, info = make("espcn")
    with pytest.raises(ModelError, match="PSNR"):
        export_onnx(net, tmp_path / "m.onnx", info=info, min_psnr_db=1000.0)
    assert not list(tmp_path.iterdir())  # no model, no temp file


def test_bad_options(tmp_path) -> None:
    net, info = make("espcn")
    with pytest.raises(ConfigError, match="precision"):
        export_onnx(net, tmp_path / "m.onnx", info=info, precision="int4")
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(net, tmp_path / "m.onnx", info=info, opset=11)
    with pytest.raises(ConfigError, match=r"\.onnx"):
        export_onnx(net, tmp_path / "m.pt", info=info)
    with pytest.raises(DataError, match="sample"):
        export_onnx(net, tmp_path / "m.onnx", info=info, sample=np.zeros((8, 8), np.uint8))
    assert not list(tmp_path.iterdir())


def test_own_sample_image(tmp_path) -> None:
    net, info = make("espcn")
    rgb = embedded_images(split="val", num_procedural=0)[1].rgb
    report = export_onnx(net, tmp_path / "m.onnx", info=info, sample=rgb)
    assert report.sample == "sample" and report.psnr_db >= 60


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, not a model\n",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        b"\x08\x07\x12\x00",
    ],
    ids=["empty", "text", "png", "protobuf-ish"],
)
def test_not_an_onnx_file(tmp_path, content) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    for fn in (read_onnx_metadata, check_onnx_model):
        with pytest.raises(ModelError, match="not an ONNX model"):
            fn(path)
    with pytest.raises(ModelError, match="does not exist"):
        check_onnx_model(tmp_path / "missing.onnx")


def test_checkpoint_is_not_onnx(tmp_path) -> None:
    from edgesr.modelio import save_model

    net, info = make("espcn")
    ckpt = save_model(net, tmp_path / "model.safetensors", info)
    with pytest.raises(ModelError, match="not an ONNX model"):
        check_onnx_model(ckpt)


def plain_export(net: nn.Module, path, names=("lr", "sr")) -> None:
    """A torch export without edgesr metadata (as a user or another tool would make)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _plain_export(net, path, names)


def _plain_export(net: nn.Module, path, names) -> None:
    torch.onnx.export(
        net.eval(),
        (torch.rand(1, 1, 16, 16),),
        str(path),
        input_names=[names[0]],
        output_names=[names[1]],
        opset_version=17,
        dynamic_axes={names[0]: {0: "n", 2: "h", 3: "w"}, names[1]: {0: "n", 2: "h4", 3: "w4"}},
        dynamo=False,
    )


def test_missing_metadata_and_stamping(tmp_path) -> None:
    net, info = make("espcn")
    raw = tmp_path / "raw.onnx"
    plain_export(net, raw, names=("input", "output"))
    with pytest.raises(ModelError, match="no usable edgesr metadata"):
        read_onnx_metadata(raw)
    assert read_onnx_metadata(raw, require_edgesr=False) == {}
    with pytest.raises(ModelError, match="edgesr.scale"), OnnxRuntimeRunner(raw):
        pass

    stamped = stamp_onnx_metadata(raw, info=info, precision="fp32", dst=tmp_path / "stamped.onnx")
    summary = check_onnx_model(stamped)
    assert summary.scale == 4 and summary.color == "y" and summary.input_shape[1] == 1
    result = verify_onnx(stamped, net.fuse(), min_psnr_db=60)
    assert result.passed
    with pytest.raises(OutputExistsError):
        stamp_onnx_metadata(raw, info=info, precision="fp32")  # in place needs force


def test_verify_onnx_catches_wrong_output_size(tmp_path) -> None:
    """A foreign ONNX claiming x4 whose output is x2: verify_onnx refuses it on the ORT side."""
    raw = tmp_path / "up2.onnx"
    plain_export(Upsample2x(), raw)
    stamped = stamp_onnx_metadata(
        raw,
        info=ModelInfo(arch="up", scale=4, color="y"),
        precision="fp32",
        dst=tmp_path / "s.onnx",
    )
    with pytest.raises(ModelError, match="exactly scale x its input"):
        verify_onnx(
            stamped,
            lambda x: np.zeros((x.shape[0], 1, x.shape[2] * 4, x.shape[3] * 4), np.float32),
            min_psnr_db=0,
        )


def test_import_is_lazy() -> None:
    import subprocess

    code = (
        "import sys, edgesr.export\n"
        "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'tensorrt_rtx') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert callable(edgesr.export.export_onnx) and 'tensorrt' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_fold_constant_identities_keeps_the_outputs(tmp_path) -> None:
    """Zero points routed through Identity (as torch exports some Q/DQ) become constants, and
    the model computes exactly the same."""
    from onnx import TensorProto, helper, numpy_helper

    from edgesr.export.onnx_passes import fold_constant_identities

    scale = numpy_helper.from_array(np.array(0.02, np.float32), "s")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["zp"], ["zp_id"]),
            helper.make_node("QuantizeLinear", ["x", "s", "zp_id"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "zp_id"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[scale, zp],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = np.array([[0.013, -0.5, 1.0, 3.0]], np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert fold_constant_identities(model) == 1
    assert [n.op_type for n in model.graph.node] == ["QuantizeLinear", "DequantizeLinear"]
    assert "zp_id" in {t.name for t in model.graph.initializer}
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(before, after)
    assert fold_constant_identities(model) == 0


def test_failed_export_of_a_compress_run_leaves_nothing(tmp_path) -> None:
    """A stage model TensorRT cannot take: export fails with a clear error and the output
    folder holds nothing that looks like an export."""
    from edgesr.export.stage import export

    run = tmp_path / "run"
    run.mkdir()
    (run / "bad.onnx").write_bytes(b"not an onnx model")
    stage = {"stage": "pruned-int8-qdq", "onnx": "bad.onnx", "psnr_y": 30.0}
    (run / "manifest.json").write_text(json.dumps({"stages": [stage]}))
    out = tmp_path / "out"
    with pytest.raises((ModelError, DataError)):
        export(load_recipe("espcn_x4"), target="tensorrt", out=out, from_=run)
    assert not out.exists()
    out.mkdir()
    with pytest.raises((ModelError, DataError)):
        export(load_recipe("espcn_x4"), target="tensorrt", out=out, from_=run)
    assert out.is_dir() and not list(out.iterdir())
