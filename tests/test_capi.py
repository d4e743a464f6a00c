"""libedgesr (deploy/runtime) from Python: bit-identical to ONNX Runtime, errors as edgesr errors.

The library is found (deploy/runtime/build, $EDGESR_CAPI_LIB) or built here with cmake; without
a C toolchain these tests skip and say why. Models are exported in a fixture the way
`edgesr export` writes them (input ``lr``, output ``sr``, dynamic N/H/W, edgesr metadata).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgesr.errors import DataError, ModelError

capi = pytest.importorskip("edgesr.runtime.capi")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- models ------------------------------------------------------------------------------------


def _export(net, path: Path, *, scale: int, color: str, precision: str = "fp32") -> Path:
    import onnx
    import torch

    c = 3 if color == "rgb" else 1
    torch.onnx.export(
        net.fuse(),
        torch.rand(1, c, 16, 16),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["lr"],
        output_names=["sr"],
        dynamic_axes={"lr": {0: "N", 2: "H", 3: "W"}, "sr": {0: "N", 2: "sH", 3: "sW"}},
    )
    _stamp(path, scale=scale, color=color, precision=precision)
    assert onnx.load(str(path)).graph.input[0].name == "lr"
    return path


def _stamp(path: Path, *, scale: int, color: str, precision: str) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    meta = {
        "edgesr.scale": str(scale),
        "edgesr.color": "rgb" if color == "rgb" else "y_bt601",
        "edgesr.version": "test",
        "edgesr.recipe": "test",
        "edgesr.recipe_hash": "0",
        "edgesr.precision": precision,
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _net(arch: str, scale: int, channels: int, seed: int):
    """A small net with non-trivial weights (ESPCN's last layer starts near zero)."""
    import torch

    from edgesr.archs import build_arch

    torch.manual_seed(seed)
    params = {"num_feat": 16, "num_feat2": 8} if arch == "espcn" else {}
    net = build_arch(arch, scale=scale, num_channels=channels, **params).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 4:
                p.normal_(0.0, (2.0 / p[0].numel()) ** 0.5)
        last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias.fill_(0.3)
    return net


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """An embedded validation photo (coffee), cropped to keep the test fast; HxWx3 uint8."""
    from edgesr.data.embedded import embedded_images

    images = embedded_images(split="val", num_procedural=0)
    rgb = next(im.rgb for im in images if "coffee" in im.name)
    return np.ascontiguousarray(rgb[100:172, 200:296])  # 72 x 96


@pytest.fixture(scope="module")
def models(tmp_path_factory, photo) -> dict[str, Path]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from edgesr.data.color import rgb_to_ycbcr, to_float

    out = tmp_path_factory.mktemp("capi_models")
    paths = {
        "y_fp32": _export(_net("espcn", 2, 1, 0), out / "y_fp32.onnx", scale=2, color="y"),
        "rgb_fp32": _export(_net("fsrcnn", 3, 3, 1), out / "rgb_fp32.onnx", scale=3, color="rgb"),
    }

    y = rgb_to_ycbcr(to_float(photo), y_only=True)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            crops = [y[i : i + 32, j : j + 32] for i in (0, 20, 40) for j in (0, 30, 60)]
            self.items = iter([{"lr": c[None, None].astype(np.float32)} for c in crops])

        def get_next(self):
            return next(self.items, None)

    int8 = out / "y_int8.onnx"
    quantize_static(
        str(paths["y_fp32"]),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    _stamp(int8, scale=2, color="y", precision="int8-qdq")
    paths["y_int8"] = int8
    return paths


def _ort(path: Path, x: np.ndarray, threads: int) -> np.ndarray:
    from edgesr.runtime.runners import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, threads=threads) as runner:
        return runner.infer(x)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _y_plane(photo: np.ndarray) -> np.ndarray:
    from edgesr.data.color import rgb_to_ycbcr, to_float, to_uint8

    return to_uint8(rgb_to_ycbcr(to_float(photo), y_only=True))


# -- bit-identical to ONNX Runtime from Python ---------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["y_fp32", "y_int8", "rgb_fp32"])
def test_float_path_bit_identical_to_python_ort(clib, models, photo, name, threads):
    from edgesr.data.color import rgb_to_ycbcr, to_float

    if name.startswith("rgb"):
        x = to_float(photo).transpose(2, 0, 1)[None]
    else:
        x = rgb_to_ycbcr(to_float(photo), y_only=True)[None, None]
    x = np.ascontiguousarray(np.concatenate([x, x[..., ::-1]]), dtype=np.float32)  # batch 2
    expected = _ort(models[name], x, threads)
    with capi.CEngine(models[name], threads=threads, library=clib) as engine:
        got = engine.upscale_f32(x)
    assert _same_bits(got, expected)


@pytest.mark.parametrize("name", ["y_fp32", "y_int8"])
def test_y_plane_path_matches_python_pre_and_post_processing(clib, models, photo, name):
    from edgesr.data.color import to_float, to_uint8

    y = _y_plane(photo)
    expected = to_uint8(_ort(models[name], to_float(y)[None, None], 1)[0, 0])
    with capi.CEngine(models[name], threads=1, library=clib) as engine:
        got = engine.upscale_y_u8(y)
        # A strided view (rows wider than the frame) gives the same pixels.
        wide = np.zeros((y.shape[0], y.shape[1] + 13), np.uint8)
        wide[:, : y.shape[1]] = y
        got_strided = engine.upscale_y_u8(wide[:, : y.shape[1]])
    assert _same_bits(got, expected)
    assert _same_bits(got_strided, expected)


def test_rgb_frame_on_rgb_model_matches_python(clib, models, photo):
    from edgesr.data.color import to_float, to_uint8

    expected = to_uint8(
        _ort(models["rgb_fp32"], to_float(photo).transpose(2, 0, 1)[None].copy(), 1)[0].transpose(
            1, 2, 0
        )
    )
    with capi.CEngine(models["rgb_fp32"], threads=1, library=clib) as engine:
        got = engine.upscale_rgb_u8(photo)
    assert _same_bits(got, expected)


def _bilinear_uv_reference(uv: np.ndarray, s: int) -> np.ndarray:
    """The documented NV12 chroma filter, written independently in integers."""
    ch, cw = uv.shape[0], uv.shape[1] // 2
    pairs = uv.reshape(ch, cw, 2).astype(np.int64)
    d = 2 * s

    def taps(n_out: int, n_in: int):
        num = 2 * np.arange(n_out) + 1 - s
        i0 = np.floor_divide(num, d)
        frac = num - i0 * d
        return np.clip(i0, 0, n_in - 1), np.clip(i0 + 1, 0, n_in - 1), frac

    x0, x1, fx = taps(cw * s, cw)
    y0, y1, fy = taps(ch * s, ch)
    fx, fy = fx[None, :, None], fy[:, None, None]
    top = (d - fx) * pairs[y0][:, x0] + fx * pairs[y0][:, x1]
    bot = (d - fx) * pairs[y1][:, x0] + fx * pairs[y1][:, x1]
    out = ((d - fy) * top + fy * bot + d * d // 2) // (d * d)
    return out.astype(np.uint8).reshape(ch * s, cw * s * 2)


def test_nv12_luma_through_model_and_chroma_bilinear(clib, models, photo):
    from edgesr.data.color import rgb_to_ycbcr, to_float, to_uint8

    ycc = to_uint8(rgb_to_ycbcr(to_float(photo)))
    y = np.ascontiguousarray(ycc[..., 0])
    uv = np.ascontiguousarray(ycc[::2, ::2, 1:].reshape(y.shape[0] // 2, y.shape[1]))
    with capi.CEngine(models["y_fp32"], threads=1, library=clib) as engine:
        y_out, uv_out = engine.upscale_nv12(y, uv)
        assert _same_bits(y_out, engine.upscale_y_u8(y))
    assert _same_bits(uv_out, _bilinear_uv_reference(uv, 2))


def test_no_allocation_after_first_frame_of_a_size(clib, models, photo):
    y = _y_plane(photo)
    with capi.CEngine(models["y_fp32"], threads=1, library=clib) as engine:
        engine.upscale_y_u8(y)
        count = engine.allocation_count
        for _ in range(3):
            engine.upscale_y_u8(y)
        assert engine.allocation_count == count
        # The float path wraps the caller's buffers: reusing them allocates nothing either.
        x = np.random.default_rng(0).random((1, 1, 20, 24), dtype=np.float32)
        out = np.empty((1, 1, 40, 48), np.float32)
        engine.upscale_f32(x, out)
        count = engine.allocation_count
        engine.upscale_f32(x, out)
        assert engine.allocation_count == count


# -- errors surface as edgesr errors -----------------------------------------------------------------


def test_model_errors_are_model_errors(clib, models, tmp_path):
    import onnx

    with pytest.raises(ModelError, match="does not exist"):
        capi.CEngine(tmp_path / "missing.onnx", library=clib)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(models["y_fp32"].read_bytes()[:300])
    with pytest.raises(ModelError, match="cannot be loaded"):
        capi.CEngine(corrupt, library=clib)
    with pytest.raises(ModelError):
        capi.CEngine(b"definitely not a protobuf", library=clib)
    bare = onnx.load(str(models["y_fp32"]))
    del bare.metadata_props[:]
    nometa = tmp_path / "nometa.onnx"
    onnx.save(bare, str(nometa))
    with pytest.raises(ModelError, match="edgesr export"):
        capi.CEngine(nometa, library=clib)
    with capi.CEngine(models["rgb_fp32"], library=clib) as engine, pytest.raises(ModelError):
        engine.upscale_y_u8(np.zeros((8, 8), np.uint8))


def test_bad_frames_are_data_errors(clib, models):
    with capi.CEngine(models["y_fp32"], threads=1, library=clib) as engine:
        with pytest.raises(DataError, match="even"):
            engine.upscale_nv12(np.zeros((7, 8), np.uint8), np.zeros((3, 8), np.uint8))
        with pytest.raises(DataError, match="zero"):
            engine.upscale_y_u8(np.zeros((0, 8), np.uint8))
        with pytest.raises(DataError, match="overflow"):
            engine.output_size(2**63, 3)
        assert engine.output_size(480, 270) == (960, 540)


def test_crunner_matches_onnxruntime_runner_and_times(clib, models):
    from edgesr.profile.latency import time_runner
    from edgesr.runtime.runners import OnnxRuntimeRunner

    x = np.random.default_rng(1).random((1, 1, 30, 40), dtype=np.float32)
    with (
        capi.CRunner(models["y_int8"], threads=1, library=clib) as c_runner,
        OnnxRuntimeRunner(models["y_int8"], threads=1) as py_runner,
    ):
        assert (c_runner.scale, c_runner.color) == (py_runner.scale, py_runner.color) == (2, "y")
        assert _same_bits(c_runner.infer(x), py_runner.infer(x))
        stats = time_runner(c_runner, size=(30, 40), warmup=1, runs=3)
    assert stats.runs == 3 and stats.p50_ms > 0
    assert clib.version.startswith("0.2.0 (abi 1;")


# -- one model, several streams; camera formats; introspection; log ----------------------------


def test_streams_of_one_model_match_their_own_engines(clib, models, photo):
    """Two streams of one CModel on two threads give the bytes a lone engine gives."""
    from concurrent.futures import ThreadPoolExecutor

    y = _y_plane(photo)
    with capi.CEngine(models["y_fp32"], threads=1, library=clib) as engine:
        expected = engine.upscale_y_u8(y)
    with capi.CModel(models["y_fp32"], threads=1, library=clib) as model:
        streams = [model.stream(), model.stream()]
    # The model reference is dropped: the streams keep the C model alive.
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda st: [st.upscale_y_u8(y) for _ in range(3)], streams))
    for stream in streams:
        stream.close()
    assert all(_same_bits(o, expected) for per_stream in outs for o in per_stream)


def test_nv21_and_i420_match_nv12(clib, models, photo):
    from edgesr.data.color import rgb_to_ycbcr, to_float, to_uint8

    ycc = to_uint8(rgb_to_ycbcr(to_float(photo)))
    y = np.ascontiguousarray(ycc[..., 0])
    u, v = np.ascontiguousarray(ycc[::2, ::2, 1]), np.ascontiguousarray(ycc[::2, ::2, 2])
    uv = np.stack([u, v], axis=-1)  # (H/2, W/2, 2)
    with capi.CEngine(models["y_fp32"], threads=1, library=clib) as engine:
        y12, uv12 = engine.upscale_nv12(y, uv)
        y21, vu21 = engine.upscale_yuv("nv21", [y, uv[..., ::-1].copy()])
        y420, u420, v420 = engine.upscale_yuv("i420", [y, u, v])
        # Full range: a different luma mapping, so other luma bytes; chroma untouched.
        yf, uvf = engine.upscale_yuv("nv12", [y, uv], yuv_range="full", matrix="bt709")
    assert _same_bits(y21, y12) and _same_bits(y420, y12)
    assert _same_bits(vu21[..., ::-1], uv12)
    assert _same_bits(u420, uv12[..., 0].copy()) and _same_bits(v420, uv12[..., 1].copy())
    assert _same_bits(uvf, uv12) and not _same_bits(yf, y12)


def test_yuv_frame_on_rgb_model_uses_its_matrix(clib, models, photo):
    from edgesr.data.color import rgb_to_ycbcr, to_float, to_uint8

    ycc = to_uint8(rgb_to_ycbcr(to_float(photo)))
    y = np.ascontiguousarray(ycc[..., 0])
    uv = np.ascontiguousarray(ycc[::2, ::2, 1:])
    with capi.CEngine(models["rgb_fp32"], threads=1, library=clib) as engine:
        y601, uv601 = engine.upscale_yuv("nv12", [y, uv], matrix="bt601")
        y709, _ = engine.upscale_yuv("nv12", [y, uv], matrix="bt709")
        with pytest.raises(ModelError, match="GRAY8"):
            engine.upscale_y_u8(y)
    assert y601.shape == (y.shape[0] * 3, y.shape[1] * 3) and uv601.shape[2] == 2
    assert not _same_bits(y601, y709)


def test_model_info_and_static_shape_refused_at_prepare(clib, models, tmp_path):
    import onnx

    with capi.CModel(models["y_int8"], threads=2, library=clib) as model:
        info = model.info()
    assert info["scale"] == 2 and info["color"] == "y" and info["channels"] == 1
    assert info["precision"] == "int8-qdq" and info["backend"] == "onnxruntime"
    assert info["num_threads"] == 2 and info["input_shape"] == [-1, 1, -1, -1]
    assert info["min_size"] == (1, 1) and info["max_size"] == (2**64 - 1, 2**64 - 1)

    fixed = onnx.load(str(models["y_fp32"]))
    for value in (fixed.graph.input[0], fixed.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = (8, 8) if value is fixed.graph.input[0] else (16, 16)
    path = tmp_path / "static.onnx"
    onnx.save(fixed, str(path))
    with capi.CEngine(path, threads=1, library=clib) as engine:
        engine.prepare(8, 8)
        with pytest.raises(ModelError, match="8x8 frames only"):
            engine.prepare(16, 8)


def test_log_callback_receives_load_and_errors(clib, models):
    seen: list[tuple[str, str]] = []
    clib.set_log_callback(lambda level, msg: seen.append((level, msg)), "info")
    try:
        with (
            capi.CEngine(models["y_fp32"], threads=1, library=clib) as engine,
            pytest.raises(DataError),
        ):
            engine.upscale_y_u8(np.zeros((0, 4), np.uint8))
    finally:
        clib.set_log_callback(None)
    assert any(level == "info" and "loaded" in msg for level, msg in seen)
    assert any(level == "error" and "zero dimension" in msg for level, msg in seen)
