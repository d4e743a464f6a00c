"""The model-level INT8 saturation check, proven against real ONNX Runtime arithmetic."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import grey_levels
from onnx import TensorProto, helper, numpy_helper

from edgesr.runtime.saturation import PAIR_LIMIT, int8_saturation

C, K = 3, 3  # an RGB "x1" net: K*K*C = 27 products per output pixel


def _conv_model(
    weights: np.ndarray, *, float_weights: bool = False, input_levels: int = 255
) -> onnx.ModelProto:
    """u8 input (scale 1/input_levels) -> s8 per-channel weights -> conv -> u8 output (1/255).

    The weight scale makes an all-white input give output 1.0 per channel when no pair clips.
    """
    out_ch = weights.shape[0]
    w_scale = 1.0 / np.maximum(np.abs(weights.reshape(out_ch, -1).astype(np.float64)).sum(1), 1)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_x", "z_in"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_x", "z_in"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "s_w", "z_w"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("QuantizeLinear", ["y", "s_in", "z_in"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "s_in", "z_in"], ["sr"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "s_in"),
        numpy_helper.from_array(np.array(1 / input_levels, np.float32), "s_x"),
        numpy_helper.from_array(np.array(0, np.uint8), "z_in"),
        numpy_helper.from_array(w_scale.astype(np.float32), "s_w"),
        numpy_helper.from_array(np.zeros(out_ch, np.int8), "z_w"),
    ]
    if float_weights:  # NNCF's export: float weights -> QuantizeLinear -> DequantizeLinear
        nodes.insert(2, helper.make_node("QuantizeLinear", ["w", "s_w", "z_w"], ["wq"], axis=0))
        real = weights * w_scale.reshape(-1, 1, 1, 1)
        inits.append(numpy_helper.from_array(real.astype(np.float32), "w"))
    else:
        inits.append(numpy_helper.from_array(weights.astype(np.int8), "wq"))
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 8, 8])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, out_ch, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (("edgesr.scale", "1"), ("edgesr.color", "rgb")):  # for OnnxRuntimeRunner
        model.metadata_props.add(key=key, value=value)
    return model


def _weights(value: int, *, out_ch: int = 3) -> np.ndarray:
    return np.full((out_ch, C, K, K), value, np.int32)


def test_worst_pair_is_the_two_largest_of_one_sign():
    w = _weights(0)
    w[0, 0, 0, 0], w[0, 2, 1, 1] = 64, 64  # 128: cannot clip
    w[1, 0, 0, 0], w[1, 1, 0, 0] = 127, -127  # opposite signs never add up
    w[2, 1, 2, 2] = -90  # a lone weight
    report = int8_saturation(_conv_model(w))
    assert report.convs == 1 and report.worst_pair == PAIR_LIMIT and report.free
    w = _weights(0)
    w[2, 0, 0, 0], w[2, 2, 2, 1] = -65, -64  # 129: can clip
    report = int8_saturation(_conv_model(w))
    assert not report.free and report.at_risk == {"conv": 129}
    assert "without VNNI" in report.summary()


def test_float_weights_behind_quantizelinear_are_checked():
    assert not int8_saturation(_conv_model(_weights(127), float_weights=True)).free
    assert int8_saturation(_conv_model(_weights(64), float_weights=True)).free


def test_float_convs_are_not_int8():
    model = _conv_model(_weights(127))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    conv.input[1] = "wf"  # a float weight, as a mixed-precision conv has
    model.graph.initializer.append(numpy_helper.from_array(np.ones((3, C, K, K), np.float32), "wf"))
    assert int8_saturation(model).convs == 0


@pytest.mark.parametrize("value", [64, 127])
def test_check_predicts_what_a_cpu_without_vnni_computes(value, tmp_path, int8_paths):
    """The check against real arithmetic: ORT's fused kernels on an emulated AVX2 CPU."""
    path = tmp_path / f"w{value}.onnx"
    onnx.save(_conv_model(_weights(value)), str(path))
    x = np.ones((1, C, 8, 8), np.float32)  # u8 255 everywhere: the worst case
    reference = int8_paths.reference(path, x)
    assert np.allclose(reference[:, :, 1:-1, 1:-1], 1.0)  # interior: every tap on
    free = int8_saturation(path).free
    assert free == (value <= 64)
    # edgesr's runner asks ORT for its exact kernels where the check finds a risk...
    assert grey_levels(int8_paths.no_vnni(path, x), reference) <= 1
    # ...and a plain ORT session, as a user's own code makes one, clips exactly then.
    got = int8_paths.no_vnni(path, x, session="plain")
    assert (grey_levels(got, reference) <= 1) == free


def test_an_image_input_on_a_7_bit_grid_lets_8_bit_weights_pass():
    """Pixels are in [0, 1]: quantized with scale 1/127 they stay <= 127, so pairs of 127s fit."""
    report = int8_saturation(_conv_model(_weights(127), input_levels=127))
    assert report.free and report.limits == {"conv": 258}
    assert report.worst_pair == 254 and "exact on every CPU" in report.summary()
    # A 1/130 grid reaches 130: 130 * 254 > 32767, so pairs of 127s can clip again.
    assert not int8_saturation(_conv_model(_weights(127), input_levels=130)).free
    # Only the image is known to be bounded: an input through a non-moving op is not.
    model = _conv_model(_weights(127), input_levels=127)
    model.graph.node.insert(0, helper.make_node("Relu", ["x"], ["xr"]))
    model.graph.node[1].input[0] = "xr"
    assert not int8_saturation(model).free


def test_a_7_bit_image_grid_is_exact_on_a_cpu_without_vnni(tmp_path, int8_paths):
    """What the check promises, against ORT's default kernels on an emulated AVX2 CPU: 8-bit
    weights (127 everywhere, the worst case) on a 1/127 image grid compute the exact result."""
    path = tmp_path / "u7.onnx"
    onnx.save(_conv_model(_weights(127), input_levels=127), str(path))
    x = np.ones((1, C, 8, 8), np.float32)
    reference = int8_paths.reference(path, x)
    assert np.allclose(reference[:, :, 1:-1, 1:-1], 1.0)
    assert grey_levels(int8_paths.no_vnni(path, x, session="plain"), reference) <= 1
    # The same weights on the full 8-bit grid clip there (the control).
    path8 = tmp_path / "u8.onnx"
    onnx.save(_conv_model(_weights(127)), str(path8))
    assert (
        grey_levels(int8_paths.no_vnni(path8, x, session="plain"), int8_paths.reference(path8, x))
        > 1
    )


def test_the_c_runtime_asks_for_exact_kernels_where_the_model_says_so(tmp_path, int8_paths):
    """libedgesr reads edgesr.int8_portable: "false" gets ORT's exact kernels, as in Python."""
    capi = pytest.importorskip("edgesr.runtime.capi")
    if capi.find_library() is None:
        pytest.skip("libedgesr is not built (bash deploy/runtime/build.sh)")
    x = np.ones((1, C, 8, 8), np.float32)
    model = _conv_model(_weights(127))
    unmarked = tmp_path / "unmarked.onnx"
    onnx.save(model, str(unmarked))
    model.metadata_props.add(key="edgesr.int8_portable", value="false")
    marked = tmp_path / "marked.onnx"
    onnx.save(model, str(marked))
    reference = int8_paths.reference(marked, x)
    assert grey_levels(int8_paths.no_vnni(marked, x, session="c"), reference) <= 1
    # Without the mark the C runtime runs ORT's default kernels, which clip there.
    assert grey_levels(int8_paths.no_vnni(unmarked, x, session="c"), reference) > 1


def test_cpu_detection_sees_the_emulated_cpu(int8_paths):
    """VNNI is read with CPUID (through NumPy), so an AVX2-only CPU is seen as one."""
    import subprocess
    import sys

    if int8_paths.qemu is None:
        pytest.skip("needs qemu-user (apt-get install qemu-user) to emulate AVX2")
    code = "from edgesr.runtime.saturation import cpu_int8_is_exact as f; print(f())"
    out = subprocess.run(
        [int8_paths.qemu, "-cpu", "Haswell", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
