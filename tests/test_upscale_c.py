"""`edgesr upscale --backend c` on raw YUV: each frame's planes go to libedgesr in one
esr_upscale_image call. Real photos as NV12/I420/y4m, the real ESPCN x4 exported to ONNX, the real
library (skipped, with the reason, where it cannot be built) and its C example program."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

capi = pytest.importorskip("edgesr.runtime.capi")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

W, H = 64, 48  # LR frames for the byte-for-byte checks: small, so each test takes a second


@pytest.fixture(scope="module")
def espcn(tmp_path_factory, clib) -> Path:
    """The shipped ESPCN x4 weights, exported as `edgesr export` writes them."""
    from edgesr.export.onnx_export import export_onnx
    from edgesr.modelio import load_pretrained
    from edgesr.recipe import load_recipe

    net, info = load_pretrained(load_recipe("espcn_x4"))
    path = tmp_path_factory.mktemp("upscale_c") / "espcn_x4.onnx"
    export_onnx(
        net.fuse() if hasattr(net, "fuse") else net, path, info=info, verify=False, force=True
    )
    return path


def photo_yuv(name: str, w: int | None = None, h: int | None = None):
    """An embedded photo as BT.601 studio-range Y and interleaved UV (H/2 x W/2 x 2), as a
    camera writes NV12; cropped to w x h where given."""
    import cv2

    from edgesr.data.color import rgb_to_ycbcr, to_float, to_uint8
    from edgesr.data.embedded import embedded_images

    rgb = next(im.rgb for im in embedded_images(split="val", num_procedural=0) if name in im.name)
    h = h or rgb.shape[0] // 2 * 2
    w = w or rgb.shape[1] // 2 * 2
    rgb = np.ascontiguousarray(rgb[50 : 50 + h, 80 : 80 + w] if h < 200 else rgb[:h, :w])
    ycc = to_uint8(rgb_to_ycbcr(to_float(rgb)))
    uv = cv2.resize(ycc[..., 1:], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(ycc[..., 0]), np.ascontiguousarray(uv)


def cli(*args: str) -> int:
    from edgesr.cli import main

    return main(["upscale", *args])


def test_nv12_file_equals_upscale_yuv_byte_for_byte(tmp_path: Path, espcn, clib) -> None:
    frames = [photo_yuv("coffee", W, H), photo_yuv("rocket", W, H)]
    src = tmp_path / "frame.nv12"
    src.write_bytes(b"".join(y.tobytes() + uv.tobytes() for y, uv in frames))
    model = ["--model", str(espcn), "--backend", "c", "--threads", "1"]
    assert cli(str(src), "--size", f"{W}x{H}", *model) == 0
    out = (tmp_path / "frame_x4.nv12").read_bytes()

    expected = b""
    with capi.CEngine(espcn, threads=1, library=clib) as engine:
        for y, uv in frames:
            planes = engine.upscale_yuv("nv12", [y, uv])
            expected += b"".join(p.tobytes() for p in planes)
    assert len(out) == 2 * 16 * W * H * 3 // 2
    assert out == expected


def test_i420_and_y4m_equal_upscale_yuv(tmp_path: Path, espcn, clib) -> None:
    y, uv = photo_yuv("rocket", W, H)
    u, v = np.ascontiguousarray(uv[..., 0]), np.ascontiguousarray(uv[..., 1])
    raw = y.tobytes() + u.tobytes() + v.tobytes()
    (tmp_path / "cam.yuv").write_bytes(raw)
    header = f"YUV4MPEG2 W{W} H{H} F30:1 Ip A1:1 C420jpeg\n".encode()
    (tmp_path / "cam.y4m").write_bytes(header + b"FRAME\n" + raw)
    model = ["--model", str(espcn), "--backend", "c", "--threads", "1"]
    assert cli(str(tmp_path / "cam.yuv"), "--size", f"{W}x{H}", *model) == 0
    assert cli(str(tmp_path / "cam.y4m"), *model) == 0

    with capi.CEngine(espcn, threads=1, library=clib) as engine:
        planes = engine.upscale_yuv("i420", [y, u, v])
    expected = b"".join(p.tobytes() for p in planes)
    assert [p.shape for p in planes] == [(4 * H, 4 * W), (2 * H, 2 * W), (2 * H, 2 * W)]
    assert (tmp_path / "cam_x4.yuv").read_bytes() == expected
    y4m = (tmp_path / "cam_x4.y4m").read_bytes()
    assert y4m == f"YUV4MPEG2 W{4 * W} H{4 * H} F30:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + expected


def test_same_bytes_as_the_c_example_program(tmp_path: Path, espcn) -> None:
    example = capi.RUNTIME_DIR / "build" / "edgesr_upscale"
    if not example.is_file():
        pytest.skip(f"the C example is not built ({example}); run `bash deploy/runtime/build.sh`")
    y, uv = photo_yuv("coffee", 2 * W, 2 * H)
    src = tmp_path / "cam.nv12"
    src.write_bytes(y.tobytes() + uv.tobytes())
    w, h = 2 * W, 2 * H
    ref = tmp_path / "example.nv12"
    done = subprocess.run(
        [str(example), "--model", str(espcn), "--yuv", str(src), "--format", "nv12"]
        + ["--size", f"{w}x{h}", "--frames", "1", "--warmup", "0", "--threads", "1"]
        + ["--out", str(ref)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert cli(str(src), "--size", f"{w}x{h}", "--model", str(espcn), "--backend", "c") == 0
    assert (tmp_path / "cam_x4.nv12").read_bytes() == ref.read_bytes()


def test_frame_size_the_model_refuses(tmp_path: Path, espcn, capsys) -> None:
    """A model exported for 64x48 frames only, given 32x24 frames: a ModelError (exit 4) that
    names the size it takes and the way out, and no output file, partial or not."""
    import onnx

    from edgesr.errors import ModelError
    from edgesr.runtime.capi import CRunner
    from edgesr.runtime.upscaler import Upscaler
    from edgesr.upscale.raw import upscale_raw

    fixed = onnx.load(str(espcn))
    shapes = ((fixed.graph.input[0], (H, W)), (fixed.graph.output[0], (4 * H, 4 * W)))
    for value, (h, w) in shapes:
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = h, w
    static = tmp_path / "static.onnx"
    onnx.save(fixed, str(static))
    y, uv = photo_yuv("coffee", 32, 24)
    src = tmp_path / "small.nv12"
    src.write_bytes(y.tobytes() + uv.tobytes())
    # The CLI: refused when the model opens (its receptive-field probe runs other sizes).
    code = cli(str(src), "--size", "32x24", "--model", str(static), "--backend", "c")
    err = capsys.readouterr().err
    assert code == 4, err
    assert "64x48 frames only" in err and "export" in err and "Traceback" not in err
    # The library, with the radius given (no probe): refused by libedgesr before the output.
    with Upscaler(CRunner(static, threads=1), radius=4) as up:
        with pytest.raises(ModelError, match=r"cannot upscale 32x24 frames .*64x48.*export"):
            upscale_raw(up, src, tmp_path / "small_x4.nv12", size="32x24", log=print)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["small.nv12", "static.onnx"]
        y, uv = photo_yuv("coffee", W, H)  # the size it was exported for runs
        (tmp_path / "ok.nv12").write_bytes(y.tobytes() + uv.tobytes())
        upscale_raw(up, tmp_path / "ok.nv12", tmp_path / "ok_x4.nv12", size=f"{W}x{H}", log=print)
    assert (tmp_path / "ok_x4.nv12").stat().st_size == 16 * W * H * 3 // 2


def test_python_path_differs_only_within_the_measured_bound(espcn, clib) -> None:
    """The whole coffee photo (600x400 -> 2400x1600) through the Python NV12 path (ONNX
    Runtime, chroma resized bicubically by OpenCV) and through libedgesr's planes path
    (chroma bilinear in integers): the numbers the upscale docs state."""
    from edgesr.upscale.engine import open_upscaler
    from edgesr.upscale.stream import NV12Path, YuvFrame

    y, uv = photo_yuv("coffee")
    assert y.shape == (400, 600)
    with open_upscaler(model=espcn, backend="onnxruntime", threads=2) as up:
        y_py, uv_py = up.upscale_nv12(y, uv)
    with open_upscaler(model=espcn, backend="c", threads=2) as up:
        path = NV12Path(up)
        item = path.prepare_yuv(YuvFrame("nv12", [y, uv]))
        assert isinstance(item, YuvFrame)  # handed to libedgesr whole
        y_c, uv_c = path.finish(path.run(item)[0]).planes
    dy = np.abs(y_py.astype(np.int16) - y_c)
    duv = np.abs(uv_py.astype(np.int16) - uv_c)
    # Y: the same net output; libedgesr rounds float32 ties (x.5 after * 255) in double.
    assert dy.max() <= 1 and np.count_nonzero(dy) <= 12
    # Chroma: bilinear vs bicubic, measured max 9 and mean 0.331 levels.
    assert 0 < duv.max() <= 9 and duv.mean() <= 0.34


def test_video_frames_go_to_libedgesr_as_decoded(tmp_path: Path, espcn, clib) -> None:
    """A lossless yuv420p clip: its decoded planes (padded rows) through libedgesr, as the
    upscaled clip holds them."""
    av = pytest.importorskip("av", reason="PyAV (pip install 'edgesr[video]') reads video")
    from edgesr.upscale.video import frame_yuv

    w, h = 72, 40  # 72-wide rows: FFmpeg pads each plane's pitch beyond the frame
    src = tmp_path / "clip.mkv"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for name in ("coffee", "rocket", "coffee"):
            y, uv = photo_yuv(name, w, h)
            frame = av.VideoFrame.from_ndarray(
                np.concatenate([y.ravel(), uv[..., 0].ravel(), uv[..., 1].ravel()]).reshape(-1, w),
                format="yuv420p",
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    out = tmp_path / "clip_x4.mkv"
    assert cli(str(src), "--out", str(out), "--model", str(espcn), "--backend", "c") == 0

    def decoded(path: Path) -> list[list[np.ndarray]]:
        with av.open(str(path)) as container:
            frames = [frame_yuv(f) for f in container.decode(video=0)]
            assert all(f.fmt == "i420" and f.planes[0].strides[0] > w for f in frames)
            return [[np.array(p) for p in f.planes] for f in frames]

    with capi.CEngine(espcn, threads=2, library=clib) as engine:
        expected = [engine.upscale_yuv("i420", planes) for planes in decoded(src)]
    got = decoded(out)
    assert len(got) == len(expected) == 3
    for g, e in zip(got, expected, strict=True):
        for a, b in zip(g, e, strict=True):
            np.testing.assert_array_equal(a, b)
