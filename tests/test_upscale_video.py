"""Videos and cameras through `edgesr upscale`: real clips made here with PyAV from real photos
(FFV1 and H.264, an AAC track, variable frame rate), run through the real ESPCN x4 on ONNX
Runtime, and decoded again to check frames, audio packets and timestamps."""

from __future__ import annotations

import glob
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from edgesr.errors import ConfigError, DataError, OutputExistsError

av = pytest.importorskip("av", reason="PyAV is the video extra: pip install 'edgesr[video]'")

W, H = 64, 48


@pytest.fixture(scope="module")
def upscaler():
    from edgesr.upscale.engine import open_upscaler

    up = open_upscaler(recipe="espcn_x4", backend="onnxruntime", threads=1)
    yield up
    up.close()


def photo_frames(n: int, w: int = W, h: int = H) -> list[np.ndarray]:
    """``n`` RGB frames panning over real photos."""
    import cv2
    import skimage.data

    out = []
    for i in range(n):
        photo = (skimage.data.astronaut, skimage.data.coffee, skimage.data.chelsea)[i % 3]()
        crop = photo[10 + 5 * i : 10 + 5 * i + 3 * h, 20 + 9 * i : 20 + 9 * i + 3 * w]
        out.append(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA))
    return out


def make_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    pts_ms: list[int] | None = None,
    codec: str = "ffv1",
    audio_s: float = 0.0,
) -> Path:
    """A clip with frames at ``pts_ms`` (default 25 fps) and optionally a mono AAC sine track."""
    pts_ms = pts_ms or [40 * i for i in range(len(frames))]
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=25)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        a = out.add_stream("aac", rate=48000) if audio_s else None
        for rgb, ms in zip(frames, pts_ms, strict=True):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = ms, Fraction(1, 1000)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            t = np.arange(int(48000 * audio_s)) / 48000
            sine = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, sine.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(sine[:, start : start + 1024]),
                    format="fltp",
                    layout="mono",
                )
                af.sample_rate, af.pts = 48000, start
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)
    return path


def decode_planes(path: Path) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Every video frame as (Y, UV pairs, time in s)."""
    from edgesr.upscale.video import frame_yuv

    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            y, uv = frame_yuv(f).nv12()
            out.append((y.copy(), uv.copy(), float(f.pts * f.time_base)))
    return out


def audio_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        s = c.streams.audio[0]
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(s) if p.size]


def run(upscaler, src: Path, dst: Path, **kwargs):
    from edgesr.upscale.video import upscale_video

    logs: list[str] = []
    stats = upscale_video(upscaler, src, dst, log=logs.append, **kwargs)
    return stats, logs


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def test_ffv1_round_trip_equals_upscaling_decoded_frames(tmp_path: Path, upscaler) -> None:
    src = make_video(tmp_path / "clip.mkv", photo_frames(6))
    dst = tmp_path / "clip_x4.mkv"
    stats, logs = run(upscaler, src, dst)
    assert stats["frames"] == 6 and stats["output"] == str(dst)
    assert stats["latency_mean_ms"] > 0 and stats["latency_p99_ms"] >= stats["latency_mean_ms"]
    assert "6 frames" in logs[-1] and "fps" in logs[-1] and "power: no probe" in logs[-1]
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
    got, inputs = decode_planes(dst), decode_planes(src)
    assert len(got) == len(inputs) == 6
    for (y, uv, t), (y_in, uv_in, t_in) in zip(got, inputs, strict=True):
        y_ref, uv_ref = upscaler.upscale_nv12(y_in, uv_in)
        assert y.shape == (4 * H, 4 * W)
        assert psnr(y, y_ref) == math.inf and psnr(uv, uv_ref) == math.inf
        assert t == t_in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv", "clip_x4.mkv"]


def test_audio_packets_are_copied_untouched(tmp_path: Path, upscaler) -> None:
    src = make_video(tmp_path / "clip.mkv", photo_frames(10), audio_s=0.4)
    dst = tmp_path / "out.mkv"
    run(upscaler, src, dst)
    a_in, a_out = audio_packets(src), audio_packets(dst)
    assert len(a_in) > 10
    assert a_out == a_in  # same packets, same bytes, same times
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"


def test_variable_frame_rate_timestamps_kept(tmp_path: Path, upscaler) -> None:
    pts = [0, 33, 66, 150, 160, 300, 310, 480]
    src = make_video(tmp_path / "vfr.mkv", photo_frames(len(pts)), pts_ms=pts)
    dst = tmp_path / "vfr_x4.mkv"
    run(upscaler, src, dst)
    assert [round(t * 1000) for *_, t in decode_planes(dst)] == pts


def test_mp4_outputs_h264_or_mpeg4_with_the_same_times(tmp_path: Path, upscaler) -> None:
    pts = [0, 40, 80, 200, 240, 400]
    src = make_video(tmp_path / "vfr.mkv", photo_frames(len(pts)), pts_ms=pts, audio_s=0.5)
    for codec, expected in ((None, ("h264", "mpeg4")), ("mpeg4", ("mpeg4",))):
        dst = tmp_path / f"out_{codec}.mp4"
        run(upscaler, src, dst, codec=codec)
        with av.open(str(dst)) as c:
            assert c.streams.video[0].codec_context.name in expected
            assert len(c.streams.audio) == 1
        times = [t for *_, t in decode_planes(dst)]
        np.testing.assert_allclose(times, np.array(pts) / 1000, atol=1e-3)


def test_frame_limit(tmp_path: Path, upscaler) -> None:
    src = make_video(tmp_path / "clip.mkv", photo_frames(8))
    stats, _ = run(upscaler, src, tmp_path / "out.mkv", frames=3)
    assert stats["frames"] == 3 and len(decode_planes(tmp_path / "out.mkv")) == 3
    assert "warning" not in stats


def test_truncated_video_keeps_frames_with_a_warning(tmp_path: Path, upscaler) -> None:
    src = make_video(tmp_path / "clip.mkv", photo_frames(12))
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    stats, logs = run(upscaler, cut, tmp_path / "out.mkv")
    n = stats["frames"]
    assert 0 < n < 12
    assert f"kept the {n} frames" in stats["warning"]
    assert any(line.startswith("upscale: warning:") and f"{n} frames" in line for line in logs)
    assert len(decode_planes(tmp_path / "out.mkv")) == n


def test_unreadable_video_is_a_data_error(tmp_path: Path, upscaler) -> None:
    src = tmp_path / "noise.mp4"
    src.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match="noise.mp4"):
        run(upscaler, src, tmp_path / "out.mkv")
    with pytest.raises(DataError, match="does not exist"):
        run(upscaler, tmp_path / "missing.mp4", tmp_path / "out.mkv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.mp4"]


def test_never_overwrites_without_force(tmp_path: Path, upscaler) -> None:
    src = make_video(tmp_path / "clip.mkv", photo_frames(2))
    dst = tmp_path / "out.mkv"
    dst.write_bytes(b"earlier result")
    with pytest.raises(OutputExistsError, match="--force"):
        run(upscaler, src, dst)
    assert dst.read_bytes() == b"earlier result"
    stats, _ = run(upscaler, src, dst, force=True)
    assert stats["frames"] == 2 and len(decode_planes(dst)) == 2


def test_interrupt_mid_video_leaves_no_output(tmp_path: Path, upscaler) -> None:
    class Interrupting:
        def __init__(self, inner) -> None:
            self.inner, self.scale, self.color, self.calls = inner, inner.scale, inner.color, 0

        def upscale_nv12(self, y, uv):
            self.calls += 1
            if self.calls == 4:
                raise KeyboardInterrupt
            return self.inner.upscale_nv12(y, uv)

    src = make_video(tmp_path / "clip.mkv", photo_frames(10), audio_s=0.4)
    with pytest.raises(KeyboardInterrupt):
        run(Interrupting(upscaler), src, tmp_path / "out.mkv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


def test_codec_choice_and_errors(tmp_path: Path) -> None:
    from edgesr.upscale.video import default_codec

    assert default_codec("a.mkv") == "ffv1"
    assert default_codec("a.mp4") in ("libx264", "mpeg4")
    assert default_codec("a.mkv", "mpeg4") == "mpeg4"
    with pytest.raises(ConfigError, match="--codec"):
        default_codec("a.xyz")
    with pytest.raises(ConfigError, match="not available"):
        default_codec("a.mkv", "no-such-codec")


def test_display_without_a_display_is_a_config_error(tmp_path: Path, upscaler, monkeypatch) -> None:
    src = make_video(tmp_path / "clip.mkv", photo_frames(2))
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ConfigError, match=r"--display needs a display.*DISPLAY"):
        run(upscaler, src, tmp_path / "out.mkv", display=True)
    import cv2

    if "GUI:                           NONE" in cv2.getBuildInformation():
        monkeypatch.setenv("DISPLAY", ":99")
        with pytest.raises(ConfigError, match="opencv-python-headless"):
            run(upscaler, src, tmp_path / "out.mkv", display=True)
    assert not (tmp_path / "out.mkv").exists()


# -- cameras -------------------------------------------------------------------------------------


def test_camera_path_with_a_video_file_standing_in(tmp_path: Path, upscaler) -> None:
    """The camera loop (VideoCapture, capture-time stamps, pipelined writer) on a file."""
    from edgesr.upscale.camera import upscale_camera

    src = make_video(tmp_path / "cam.mkv", photo_frames(5))
    logs: list[str] = []
    stats = upscale_camera(upscaler, str(src), tmp_path / "cam_x4.mkv", log=logs.append)
    assert stats["frames"] == 5
    frames = decode_planes(tmp_path / "cam_x4.mkv")
    assert len(frames) == 5 and frames[0][0].shape == (4 * H, 4 * W)
    assert [round(t * 1000) for *_, t in frames] == [0, 40, 80, 120, 160]
    stats = upscale_camera(upscaler, str(src), None, frames=2, log=logs.append)
    assert stats["frames"] == 2 and stats["output"] is None


def test_camera_that_cannot_be_opened(tmp_path: Path, upscaler) -> None:
    from edgesr.upscale.camera import upscale_camera

    with pytest.raises(DataError, match=r"camera:57.*v4l2-ctl --list-devices"):
        upscale_camera(upscaler, "camera:57", tmp_path / "out.mkv")
    assert list(tmp_path.iterdir()) == []


def test_real_camera_device(tmp_path: Path, upscaler) -> None:
    devices = sorted(glob.glob("/dev/video*"))
    if not devices:
        pytest.skip("no /dev/video* device on this machine (no camera, no v4l2loopback)")
    from edgesr.upscale.camera import upscale_camera

    stats = upscale_camera(upscaler, devices[0], tmp_path / "cam.mkv", frames=3, log=lambda _: None)
    assert stats["frames"] == 3


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_ctrl_c_mid_video_exits_130_and_leaves_no_output(tmp_path: Path) -> None:
    """`edgesr upscale clip.mkv`: a full run, then SIGINT once the partial output exists."""
    import signal
    import subprocess
    import sys
    import time

    src = make_video(tmp_path / "clip.mkv", photo_frames(12) * 50, audio_s=1.0)
    cmd = [sys.executable, "-m", "edgesr", "upscale", str(src), "--recipe", "espcn_x4"]
    cmd += ["--threads", "1"]
    done = subprocess.run([*cmd, "--frames", "5"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "clip_x4.mkv").is_file() and "5 frames" in done.stdout
    again = subprocess.run([*cmd, "--frames", "5"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 5 and "--force" in again.stderr

    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "long.mkv")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("long.*.partial.mkv")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv", "clip_x4.mkv"]


@pytest.mark.slow
def test_bench_upscale_runs_and_never_overwrites_its_json(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    bench = Path(__file__).parent / "benchmarks" / "bench_upscale.py"
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(bench), "--frames", "3", "--threads", "1"]
    cmd += ["--backends", "onnxruntime", "--ext", "mkv", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["backend"] == "onnxruntime" and row["model"] == "fp32" and row["frames"] == 3
    assert row["e2e_fps"] > 0 and row["model_alone_ms"] > 0
    assert row["ratio"] == pytest.approx(row["e2e_fps"] * row["model_alone_ms"] / 1000)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "exists" in again.stderr
    assert json.loads(out.read_text()) == result


def test_audio_the_output_container_cannot_hold(tmp_path: Path, upscaler) -> None:
    """PCM audio cannot go into .mp4/.webm: a ConfigError that points to .mkv, no files left."""
    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("ffv1", rate=25)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = out.add_stream("pcm_s16le", rate=8000)
        for i, rgb in enumerate(photo_frames(3)):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        for p in [*a.encode(af), *a.encode(None)]:
            out.mux(p)
    for ext in ("mp4", "webm"):
        with pytest.raises(ConfigError, match=r"pcm_s16le.*\.mkv"):
            run(upscaler, src, tmp_path / f"out.{ext}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pcm.mkv"]
    stats, _ = run(upscaler, src, tmp_path / "out.mkv")
    assert stats["frames"] == 3 and len(audio_packets(tmp_path / "out.mkv")) >= 1


def test_bare_h264_stream_without_timestamps_gets_frame_times(tmp_path: Path, upscaler) -> None:
    src = tmp_path / "bare.h264"
    with av.open(str(src), "w", format="h264") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i, rgb in enumerate(photo_frames(4)):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    run(upscaler, src, tmp_path / "out.mkv")
    assert [round(t * 1000) for *_, t in decode_planes(tmp_path / "out.mkv")] == [0, 40, 80, 120]
