"""The TensorRT INT8 reference (edgesr.export.trt_reference) against ONNX Runtime where the
arithmetic is the same, against integer arithmetic done by hand, and on a graph where an
unfused (dequantize, then FP16) emulation gives wrong answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_tensorrt import export, ort_quantize

from edgesr.errors import ConfigError, ModelError
from edgesr.export.onnx_export import verification_inputs
from edgesr.export.trt_reference import TrtInt8Reference, predict_tensorrt_psnr, quantize


@pytest.fixture(scope="module")
def espcn_int8(tmp_path_factory) -> Path:
    """ESPCN x4 (slim), quantized with TensorRT's settings: every conv INT8, and the last conv's
    output quantized too (Q -> DQ -> DepthToSpace)."""
    folder = tmp_path_factory.mktemp("ref")
    return ort_quantize(export(folder), folder / "espcn_int8.onnx")


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory, espcn_int8) -> dict[str, tuple[Path, str]]:
    """Every edgesr architecture's ops: ESPCN (Conv, Relu, DepthToSpace), FSRCNN (PRelu,
    ConvTranspose), AnchorNet (RGB; Split, Concat, residual Add)."""
    folder = tmp_path_factory.mktemp("archs")
    models = {"espcn": (espcn_int8, "y")}
    for arch, color in (("fsrcnn", "y"), ("anchornet", "rgb")):
        fp32 = export(folder, arch, color)
        models[arch] = (ort_quantize(fp32, folder / f"{arch}_int8.onnx", color=color), color)
    return models


ARCHS = ("espcn", "fsrcnn", "anchornet")


def ort_run(path: Path, x: np.ndarray, level) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"lr": x})[0]


def last_output_scale(path: Path) -> float:
    """The scale of the QuantizeLinear whose levels the SR output takes."""
    proto = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    q = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"][-1]
    return float(inits[q.input[1]])


def test_quantize_rounds_half_to_even_and_saturates() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 126.5, 127.6, -128.4, -500.0], np.float32)
    assert quantize(x, 1.0).tolist() == [0, 2, 2, 0, -2, 126, 127, -128, -128]
    per_channel = quantize(np.ones((2, 3), np.float32), np.array([0.5, 0.25], np.float32), axis=0)
    assert per_channel.tolist() == [[2, 2, 2], [4, 4, 4]]


@pytest.mark.parametrize("arch", ARCHS)
def test_unfused_fp32_is_onnx_runtime_op_by_op(int8_models, arch) -> None:
    """Without fusion and in FP32 the reference executes what ORT executes with its graph
    optimizations off: bit-identical outputs (the executor's ops are right)."""
    path, color = int8_models[arch]
    (x, *_), _ = verification_inputs(None, color)
    want = ort_run(path, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    got = TrtInt8Reference(path, float_precision="fp32", fuse=False).run(x)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_reference_agrees_with_onnx_runtime(int8_models, arch) -> None:
    """Fused INT8 kernels sum in integers and rescale once; ORT's float convs round each
    product. The arithmetic is the same up to FP32 rounding, so the outputs agree except
    for rare one-level flips at rounding ties: at most one output quantization step, on
    under 0.1 % of the values. On the fp16 route (every conv here is INT8) ESPCN, whose
    pointwise ops all fuse into its convs, is unchanged; FSRCNN's PReLUs (between their own
    DQ and Q) and AnchorNet's residual Add run in FP16, which moves the output by a small
    fraction of an 8-bit level on average."""
    path, color = int8_models[arch]
    (x, *_), _ = verification_inputs(None, color)
    reference = TrtInt8Reference(path, float_precision="fp32")
    assert len(reference.int8_convs) == sum(
        n.op_type in ("Conv", "ConvTranspose") for n in reference.graph.node
    )
    got = reference.run(x)
    step = last_output_scale(path)
    for level in (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL,  # ORT's own QLinearConv fusion
    ):
        diff = np.abs(got - ort_run(path, x, level))
        assert diff.max() <= step * 1.001
        assert (diff > 0).mean() < 1e-3
    half = TrtInt8Reference(path, float_precision="fp16").run(x)
    if arch == "espcn":
        np.testing.assert_array_equal(half, got)
    else:
        assert 0 < np.abs(half - got).mean() < 0.1 / 255


def qdq_conv_graph(xq_scale: float, wq: np.ndarray, w_scale: np.ndarray, y_scale: float):
    """lr -> Q -> DQ -> Conv(1x1, DQ(int8 W), float bias 0) -> Relu -> Q -> DQ -> sr."""
    out_c, in_c = wq.shape[:2]
    inits = [
        numpy_helper.from_array(np.array(xq_scale, np.float32), "sx"),
        numpy_helper.from_array(np.array(0, np.int8), "zx"),
        numpy_helper.from_array(wq, "wq"),
        numpy_helper.from_array(w_scale.astype(np.float32), "sw"),
        numpy_helper.from_array(np.zeros(out_c, np.int8), "zw"),
        numpy_helper.from_array(np.zeros(out_c, np.float32), "b"),
        numpy_helper.from_array(np.array(y_scale, np.float32), "sy"),
        numpy_helper.from_array(np.array(0, np.int8), "zy"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["lr", "sx", "zx"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["x"]),
        helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["w"], axis=0),
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["sr"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq_conv",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, in_c, "H", "W"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, out_c, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_fusion_matters_on_the_fp16_route() -> None:
    """TensorRT's fused INT8 conv sums int8 x int8 in INT32 and requantizes from FP32, so
    sums beyond FP16's range (65504) and FP16's 11-bit mantissa still give exact levels.
    Checked against the integer arithmetic done by hand; the unfused emulation (dequantize,
    FP16 conv, FP16 tensor, quantize) gets most of them wrong."""
    rng = np.random.default_rng(0)
    in_c, out_c = 64, 4
    xq = rng.integers(0, 128, (1, in_c, 6, 7)).astype(np.int8)  # post-ReLU activations
    wq = rng.integers(-127, 128, (out_c, in_c, 1, 1)).astype(np.int8)
    wq[:2] = np.abs(wq[:2])  # channels 0, 1: sums around 64 * 64 * 64 = 2.6e5 > 65504
    sx, sw, sy = 1.0, np.ones(out_c), 2.0**12  # levels = sum / 4096: inside int8 here
    model = qdq_conv_graph(sx, wq, sw, sy)
    x = xq.astype(np.float32) * np.float32(sx)  # lr that Q maps back to xq exactly

    acc = np.einsum("nchw,oc->nohw", xq.astype(np.int64), wq[:, :, 0, 0].astype(np.int64))
    levels = np.clip(np.rint(np.maximum(acc * sx * sw[0], 0) / sy), -128, 127)
    want = (levels * sy).astype(np.float32)
    # The case is what it claims: FP16-overflowing sums that still map to unsaturated levels.
    assert (acc > 65504).mean() > 0.4 and (levels[acc > 65504] < 127).all()

    for precision in ("fp32", "fp16"):
        np.testing.assert_array_equal(
            TrtInt8Reference(model, float_precision=precision).run(x), want
        )
    unfused = TrtInt8Reference(model, float_precision="fp16", fuse=False).run(x)
    assert (unfused != want).mean() > 0.4  # inf -> saturated 127 instead of ~64
    # ORT (FP32 float convs) agrees with the fused reference here: the sums are exact in FP32.
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"lr": x})[0], want)


def test_float_layers_round_to_fp16_on_the_fp16_route(tmp_path) -> None:
    """A conv left in float runs in FP16 on TensorRT 8.x --int8 --fp16: its FP16 output
    tensor is what the next Q sees. In FP32 (strongly typed) it is ONNX Runtime's result."""
    import torch

    from edgesr.export.onnx_export import export_onnx
    from edgesr.modelio import ModelInfo

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.PixelShuffle(2))
    net.scale, net.num_channels = 2, 1
    path = tmp_path / "float.onnx"
    export_onnx(net, path, info=ModelInfo(arch="t", scale=2, color="y"))
    (x, *_), _ = verification_inputs(None, "y")
    want = ort_run(path, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    np.testing.assert_allclose(TrtInt8Reference(path).run(x), want, rtol=0, atol=2e-7)
    half = TrtInt8Reference(path, float_precision="fp16").run(x)
    np.testing.assert_array_equal(half, half.astype(np.float16).astype(np.float32))
    assert 0 < np.abs(half - want).max() < 1e-3


def test_predicted_psnr_and_errors(tmp_path, espcn_int8) -> None:
    """predict_tensorrt_psnr scores real photo crops like edgesr's evaluation (8-bit output,
    shaved border, Y); the same pairs through ORT give the same PSNR within 0.02 dB."""
    from edgesr.metrics import calculate_psnr

    (x, *_), _ = verification_inputs(None, "y")
    lr = x[0, 0]
    hr = np.clip(np.kron(lr, np.ones((4, 4), np.float32)), 0, 1)  # any HR of the right size
    result = predict_tensorrt_psnr(espcn_int8, [(lr, hr)])
    sr = ort_run(espcn_int8, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)[0, 0]
    sr = np.round(np.clip(sr, 0, 1) * 255) / 255
    ort_db = calculate_psnr(sr, hr, crop_border=4)
    assert np.isfinite(result["psnr_db"]) and abs(result["psnr_db"] - ort_db) < 0.02
    assert result["per_image_db"] == [result["psnr_db"]] and result["float_precision"] == "fp32"
    with pytest.raises(ConfigError, match="at least one"):
        predict_tensorrt_psnr(espcn_int8, [])
    with pytest.raises(ConfigError, match="float_precision"):
        TrtInt8Reference(espcn_int8, float_precision="int8")
    proto = onnx.load(str(espcn_int8))
    proto.graph.node[-1].op_type = "Resize"
    with pytest.raises(ModelError, match="Resize"):
        TrtInt8Reference(proto)


def test_bench_trt_int8_runs_on_a_run_dir(tmp_path, espcn_int8) -> None:
    """bench_trt_int8.py end to end on a stand-in run (FP32 + int8-qdq ESPCN) and stand-in
    Set5/Set14 folders of procedural images; figures are not asserted, their structure is."""
    import json
    import shutil
    import subprocess
    import sys

    from conftest import write_standin_benchmarks

    root = write_standin_benchmarks(
        tmp_path / "bench",
        {"Set5": ["baby"], "Set14": ["comic", "lenna"]},
        kinds=("text", "dead_leaves"),
    )
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(espcn_int8.with_name("espcn.onnx"), run / "fp32.onnx")
    shutil.copy(espcn_int8, run / "int8-qdq.onnx")
    stages = [
        {"stage": "fp32", "onnx": "fp32.onnx", "target": "onnxruntime-cpu"},
        {"stage": "int8-qdq", "onnx": "int8-qdq.onnx", "target": "tensorrt"},
    ]
    (run / "manifest.json").write_text(json.dumps({"stages": stages}))
    out = tmp_path / "trt.json"
    bench = Path(__file__).parent / "benchmarks" / "bench_trt_int8.py"
    cmd = [sys.executable, str(bench), str(run), "--data-root", str(root), "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["sets"] == {"Set5": ["baby"], "Set14": ["comic", "lenna"]}
    routes = result["int8_qdq"]["int8-qdq"]
    assert list(routes) == ["ort", "trt-fp32", "trt-fp16"]
    for route in routes.values():
        assert set(route["psnr_y"]) == {"Set5", "Set14"}
        assert all(np.isfinite(v) for v in route["psnr_y"].values())
    assert "trt-fp16" in proc.stdout and "int8-qdq" in proc.stdout
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 5 and "exists" in again.stderr
