"""Raw YUV through `edgesr upscale`: NV12 / I420 / y4m files made from real photos, camera-style
NV12 buffers with padded pitches (Python and libedgesr), and the errors a wrong size gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgesr.errors import ConfigError, DataError, OutputExistsError

W, H = 64, 48  # LR frame: small, so the real ESPCN x4 on ONNX Runtime stays fast


@pytest.fixture(scope="module")
def upscaler():
    from edgesr.upscale.engine import open_upscaler

    up = open_upscaler(recipe="espcn_x4", backend="onnxruntime", threads=1)
    yield up
    up.close()


def photo_nv12(n: int, w: int = W, h: int = H) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` NV12 frames panning over real photos (BT.601 studio range, as cameras write)."""
    import cv2
    import skimage.data

    from edgesr.data.color import rgb_to_ycbcr, to_float, to_uint8

    frames = []
    for i in range(n):
        photo = (skimage.data.astronaut, skimage.data.coffee, skimage.data.chelsea)[i % 3]()
        crop = photo[10 + 7 * i : 10 + 7 * i + 2 * h, 20 + 11 * i : 20 + 11 * i + 2 * w]
        rgb = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
        ycc = to_uint8(rgb_to_ycbcr(to_float(rgb)))
        uv = cv2.resize(ycc[..., 1:], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        frames.append((np.ascontiguousarray(ycc[..., 0]), np.ascontiguousarray(uv)))
    return frames


def nv12_bytes(y: np.ndarray, uv: np.ndarray) -> bytes:
    return y.tobytes() + uv.tobytes()


def i420_bytes(y: np.ndarray, uv: np.ndarray) -> bytes:
    return y.tobytes() + uv[..., 0].tobytes() + uv[..., 1].tobytes()


def test_nv12_file_round_trip(tmp_path: Path, upscaler) -> None:
    frames = photo_nv12(4)
    src, dst = tmp_path / "cam.nv12", tmp_path / "cam_x4.nv12"
    src.write_bytes(b"".join(nv12_bytes(*f) for f in frames))
    logs: list[str] = []
    stats = upscale_raw_(upscaler, src, dst, size=f"{W}x{H}", log=logs.append)
    assert stats["frames"] == 4 and stats["latency_mean_ms"] > 0 and stats["fps"] > 0
    assert "power: no probe" in logs[-1] or "mJ/frame" in logs[-1]
    ow, oh = 4 * W, 4 * H
    data = np.frombuffer(dst.read_bytes(), np.uint8)
    assert data.size == 4 * ow * oh * 3 // 2
    for i, (y, uv) in enumerate(frames):
        out = data[i * ow * oh * 3 // 2 : (i + 1) * ow * oh * 3 // 2]
        y_ref, uv_ref = upscaler.upscale_nv12(y, uv)
        np.testing.assert_array_equal(out[: ow * oh].reshape(oh, ow), y_ref)
        np.testing.assert_array_equal(out[ow * oh :].reshape(oh // 2, ow // 2, 2), uv_ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.nv12", "cam_x4.nv12"]


def upscale_raw_(*args, **kwargs):
    from edgesr.upscale.raw import upscale_raw

    kwargs.setdefault("log", lambda _: None)
    return upscale_raw(*args, **kwargs)


def test_i420_yuv_round_trip_and_frame_limit(tmp_path: Path, upscaler) -> None:
    frames = photo_nv12(3)
    src, dst = tmp_path / "cam.yuv", tmp_path / "out.yuv"
    src.write_bytes(b"".join(i420_bytes(*f) for f in frames))
    stats = upscale_raw_(upscaler, src, dst, size=(W, H), frames=2)
    assert stats["frames"] == 2
    ow, oh = 4 * W, 4 * H
    data = dst.read_bytes()
    assert len(data) == 2 * ow * oh * 3 // 2
    y_ref, uv_ref = upscaler.upscale_nv12(*frames[1])
    assert data[ow * oh * 3 // 2 :] == i420_bytes(y_ref, uv_ref)


def y4m_bytes(frames, tags: str = "F30000:1001 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2") -> bytes:
    h, w = frames[0][0].shape
    head = f"YUV4MPEG2 W{w} H{h} {tags}\n".encode()
    return head + b"".join(b"FRAME\n" + i420_bytes(*f) for f in frames)


def test_y4m_round_trip_keeps_header(tmp_path: Path, upscaler) -> None:
    frames = photo_nv12(3)
    src, dst = tmp_path / "clip.y4m", tmp_path / "clip_x4.y4m"
    src.write_bytes(y4m_bytes(frames))
    stats = upscale_raw_(upscaler, src, dst)
    assert stats["frames"] == 3
    refs = [upscaler.upscale_nv12(*f) for f in frames]
    expected = y4m_bytes(refs)
    assert expected.startswith(f"YUV4MPEG2 W{4 * W} H{4 * H} F30000:1001".encode())
    assert dst.read_bytes() == expected


@pytest.mark.parametrize("colour", ["C444", "C422", "C420p10", "Cmono"])
def test_y4m_other_than_420_is_refused(tmp_path: Path, upscaler, colour: str) -> None:
    src = tmp_path / "clip.y4m"
    src.write_bytes(f"YUV4MPEG2 W{W} H{H} F25:1 {colour}\nFRAME\n".encode() + bytes(W * H * 3))
    with pytest.raises(DataError, match=f"{colour}.*4:2:0"):
        upscale_raw_(upscaler, src, tmp_path / "out.y4m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.y4m"]


def test_truncated_y4m_keeps_complete_frames(tmp_path: Path, upscaler) -> None:
    frames = photo_nv12(3)
    src, dst = tmp_path / "clip.y4m", tmp_path / "out.y4m"
    src.write_bytes(y4m_bytes(frames)[:-1000])
    logs: list[str] = []
    stats = upscale_raw_(upscaler, src, dst, log=logs.append)
    assert stats["frames"] == 2
    assert "kept the 2 complete frames" in stats["warning"]
    assert any("warning" in line and "2 complete frames" in line for line in logs)


def test_odd_size_is_a_data_error(tmp_path: Path, upscaler) -> None:
    src = tmp_path / "odd.nv12"
    src.write_bytes(bytes(63 * 47 * 3 // 2 * 2))
    with pytest.raises(DataError, match=r"63x47.*even"):
        upscale_raw_(upscaler, src, tmp_path / "out.nv12", size="63x47")
    assert not (tmp_path / "out.nv12").exists()


def test_size_not_matching_file_length_states_arithmetic(tmp_path: Path, upscaler) -> None:
    src = tmp_path / "cam.nv12"
    src.write_bytes(bytes(W * H * 3 // 2 * 3 + 100))
    with pytest.raises(DataError) as err:
        upscale_raw_(upscaler, src, tmp_path / "out.nv12", size=f"{W}x{H}")
    message = str(err.value)
    frame = W * H * 3 // 2
    assert f"{frame * 3 + 100} bytes" in message and f"{W}*{H}*3/2 = {frame}" in message
    assert "--size" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.nv12"]


def test_missing_size_and_wrong_output_format(tmp_path: Path, upscaler) -> None:
    src = tmp_path / "cam.nv12"
    src.write_bytes(b"".join(nv12_bytes(*f) for f in photo_nv12(1)))
    with pytest.raises(ConfigError, match="--size WxH"):
        upscale_raw_(upscaler, src, tmp_path / "out.nv12")
    with pytest.raises(ConfigError, match="out.nv12"):
        upscale_raw_(upscaler, src, tmp_path / "out.yuv", size=f"{W}x{H}")
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        upscale_raw_(upscaler, src, tmp_path / "out.nv12", size="64by48")


def test_never_overwrites_without_force(tmp_path: Path, upscaler) -> None:
    src, dst = tmp_path / "cam.nv12", tmp_path / "out.nv12"
    src.write_bytes(b"".join(nv12_bytes(*f) for f in photo_nv12(1)))
    dst.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--force"):
        upscale_raw_(upscaler, src, dst, size=f"{W}x{H}")
    assert dst.read_bytes() == b"keep me"
    upscale_raw_(upscaler, src, dst, size=f"{W}x{H}", force=True)
    assert dst.stat().st_size == 16 * W * H * 3 // 2
    with pytest.raises(ConfigError, match="is the input"):
        upscale_raw_(upscaler, src, src, size=f"{W}x{H}", force=True)


def test_no_partial_file_after_an_error_mid_stream(tmp_path: Path, upscaler) -> None:
    """A failure (here Ctrl-C) on the third frame leaves neither the output nor a partial."""

    class Interrupting:
        def __init__(self, inner) -> None:
            self.inner, self.scale, self.color, self.calls = inner, inner.scale, inner.color, 0

        def upscale_nv12(self, y, uv):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return self.inner.upscale_nv12(y, uv)

    src = tmp_path / "cam.nv12"
    src.write_bytes(b"".join(nv12_bytes(*f) for f in photo_nv12(6)))
    with pytest.raises(KeyboardInterrupt):
        upscale_raw_(Interrupting(upscaler), src, tmp_path / "out.nv12", size=f"{W}x{H}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.nv12"]


# -- camera buffers: NV12 rows with a pitch wider than the frame ----------------------------------


def padded_nv12(y: np.ndarray, uv: np.ndarray, pitch: int) -> tuple[np.ndarray, np.ndarray]:
    """The planes as a V4L2 driver hands them out: separate buffers, rows ``pitch`` bytes
    apart, garbage in the padding; returned as strided views (no copy)."""
    h, w = y.shape
    y_buf = np.full((h, pitch), 0xAA, np.uint8)
    uv_buf = np.full((h // 2, pitch), 0x55, np.uint8)
    y_buf[:, :w] = y
    uv_buf[:, :w] = uv.reshape(h // 2, w)
    y_view, uv_view = y_buf[:, :w], uv_buf[:, :w].reshape(h // 2, w // 2, 2)
    assert y_view.strides == (pitch, 1) and uv_view.strides == (pitch, 2, 1)
    return y_view, uv_view


def test_padded_pitch_nv12_equals_unpadded(upscaler) -> None:
    y, uv = photo_nv12(1)[0]
    y_ref, uv_ref = upscaler.upscale_nv12(y, uv)
    y_out, uv_out = upscaler.upscale_nv12(*padded_nv12(y, uv, pitch=128))
    np.testing.assert_array_equal(y_out, y_ref)
    np.testing.assert_array_equal(uv_out, uv_ref)


@pytest.fixture(scope="module")
def c_engine_model(tmp_path_factory):
    """ESPCN x4 as ONNX, and libedgesr (skipped where it cannot be built)."""
    import shutil

    from edgesr.errors import DependencyError
    from edgesr.runtime import capi

    if capi.find_library() is None:
        if shutil.which("cmake") is None or shutil.which("cc") is None:
            pytest.skip(
                "libedgesr is not built and cmake/cc are missing (bash deploy/runtime/build.sh)"
            )
        try:
            capi.build_library()
        except DependencyError as exc:
            pytest.skip(f"cannot build libedgesr here: {exc}")
    from edgesr.export.onnx_export import export_onnx
    from edgesr.modelio import load_pretrained
    from edgesr.recipe import load_recipe

    net, info = load_pretrained(load_recipe("espcn_x4"))
    path = tmp_path_factory.mktemp("capi") / "espcn_x4.onnx"
    export_onnx(
        net.fuse() if hasattr(net, "fuse") else net, path, info=info, verify=False, force=True
    )
    return path


def test_c_api_nv12_with_padded_pitch_equals_packed(c_engine_model) -> None:
    from edgesr.runtime.capi import CEngine

    y, uv = photo_nv12(1)[0]
    with CEngine(c_engine_model, threads=1) as engine:
        y_ref, uv_ref = engine.upscale_nv12(y, uv.reshape(H // 2, W))
        y_view, uv_view = padded_nv12(y, uv, pitch=96)
        y_out, uv_out = engine.upscale_nv12(y_view, uv_view)
        assert uv_out.shape == (2 * H, 2 * W, 2)
        np.testing.assert_array_equal(y_out, y_ref)
        np.testing.assert_array_equal(uv_out.reshape(2 * H, 4 * W), uv_ref)
        # The luma through libedgesr is the same model output as the Python path's.
        from edgesr.upscale.engine import open_upscaler

        with open_upscaler(model=c_engine_model, backend="onnxruntime", threads=1) as up:
            np.testing.assert_array_equal(y_out, up.upscale_nv12(y, uv)[0])


def test_c_backend_stream_fast_path_matches_onnxruntime(tmp_path: Path, c_engine_model) -> None:
    """Backend c feeds the planes straight to libedgesr: the Y planes are the same bytes as
    ORT's (its chroma is libedgesr's bilinear upsampling: tests/test_upscale_c.py)."""
    from edgesr.upscale.engine import open_upscaler

    frames = photo_nv12(2)
    src = tmp_path / "cam.nv12"
    src.write_bytes(b"".join(nv12_bytes(*f) for f in frames))
    outs = {}
    for backend in ("onnxruntime", "c"):
        with open_upscaler(model=c_engine_model, backend=backend, threads=1) as up:
            if backend == "c":
                from edgesr.upscale.stream import NV12Path

                assert NV12Path(up).fast  # the Y plane goes straight to libedgesr
            upscale_raw_(up, src, tmp_path / f"{backend}.nv12", size=f"{W}x{H}")
        outs[backend] = (tmp_path / f"{backend}.nv12").read_bytes()
    ys = {
        k: [v[i * 24 * W * H : i * 24 * W * H + 16 * W * H] for i in range(2)]
        for k, v in outs.items()
    }
    assert ys["c"] == ys["onnxruntime"]
