"""Video files through an SR model: ``edgesr upscale clip.mp4 --out clip_x4.mkv``.

Why PyAV (FFmpeg's libraries, in its wheels) and not OpenCV's VideoCapture/VideoWriter:
OpenCV's writer cannot carry audio and stamps frames at a fixed rate, so a phone clip would
lose its sound and its variable frame rate. PyAV remuxes the audio packets untouched, gives
each decoded frame its pts to hand to the encoder, decodes straight to YUV planes (a Y model
never sees RGB; with ``--backend c`` those planes go to libedgesr as they are, see
:mod:`edgesr.upscale.stream`) and encodes FFV1 (lossless), MPEG-4 part 2 and H.264 (libx264)
from the same wheel. It is an optional extra (``pip install 'edgesr[video]'``): images, raw YUV and cameras
do not need it.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import ConfigError, DataError, require
from edgesr.upscale.stream import (
    AtomicOutput,
    Display,
    NV12Path,
    Progress,
    StreamStats,
    YuvFrame,
    check_display,
    nv12_to_bgr,
    run_pipeline,
    summary_line,
    timed,
)

__all__ = ["VideoWriter", "default_codec", "import_av", "upscale_video"]

# Output codec by extension: FFV1 where the container holds it (lossless, so PSNR can be
# measured on the result), H.264 for mp4/mov (MPEG-4 part 2 where libx264 is missing).
_CODECS: dict[str, tuple[str, ...]] = {
    ".mkv": ("ffv1",),
    ".avi": ("ffv1",),
    ".nut": ("ffv1",),
    ".mp4": ("libx264", "mpeg4"),
    ".m4v": ("libx264", "mpeg4"),
    ".mov": ("libx264", "mpeg4"),
    ".webm": ("libvpx-vp9", "libvpx"),
}


# libx264's default preset (medium) encodes 1080p at a few frames/s on a 2-core CPU;
# ultrafast keeps a live stream real-time, crf 18 keeps it visually lossless. FFV1 version 3
# with slices encodes on several threads (1.3x at 1080p on 2 cores).
_CODEC_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"preset": "ultrafast", "crf": "18"},
    "ffv1": {"level": "3", "slices": "4"},
}


def import_av() -> Any:
    return require(
        "av", purpose="video files in `edgesr upscale`", install="pip install 'edgesr[video]'"
    )


def default_codec(path: str | Path, codec: str | None = None) -> str:
    """The encoder for an output path: ``codec`` if given (checked), else by extension."""
    av = import_av()
    suffix = Path(path).suffix.lower()
    candidates = (codec,) if codec else _CODECS.get(suffix)
    if not candidates:
        raise ConfigError(
            f"no default video codec for '{suffix or path}'; use one of {', '.join(sorted(_CODECS))} "
            "(.mkv: lossless FFV1, .mp4: H.264) or name one with --codec."
        )
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    raise ConfigError(
        f"video codec {' / '.join(candidates)} is not available in this FFmpeg build (PyAV "
        f"{av.__version__}); choose another with --codec (e.g. ffv1, mpeg4, libx264)."
    )


class VideoWriter:
    """An output container: one encoded video stream, plus audio streams copied from inputs."""

    def __init__(
        self,
        path: Path,
        *,
        codec: str,
        width: int,
        height: int,
        time_base: Fraction,
        rate: Fraction | None,
        audio: tuple[Any, ...] = (),
        fmt: str | None = None,
    ) -> None:
        av = import_av()
        self.av = av
        try:
            self.container = av.open(str(path), "w", format=fmt)
        except Exception as exc:
            raise ConfigError(f"cannot create video {path}: {exc}") from exc
        self.in_tb = time_base
        # MPEG-4 part 2 allows time-base denominators up to 65535 only; 1/60000 holds 24, 25,
        # 30, 50, 60 and 30000/1001 fps exactly.
        self.tb = (
            Fraction(1, 60000) if codec == "mpeg4" and time_base.denominator > 65535 else time_base
        )
        self.rate = Fraction(rate or 30)
        stream = self.container.add_stream(
            codec, rate=self.rate, options=dict(_CODEC_OPTIONS.get(codec, {}))
        )
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.tb
        stream.codec_context.time_base = self.tb
        stream.thread_type = "AUTO"
        self.stream = stream
        self.audio = {}
        for a in audio:
            try:
                self.audio[a.index] = self.container.add_stream_from_template(a)
            except Exception as exc:
                raise ConfigError(
                    f"the audio stream ({a.codec_context.name}) cannot be copied into {path.suffix}: "
                    f"{exc}; write a .mkv, which holds any codec."
                ) from exc
        self.path = path
        self.streams = [codec] + [f"{a.codec_context.name} audio" for a in audio]
        with self._writing():  # the header now: a container that cannot hold a stream fails here
            self.container.start_encoding()
        self.width, self.height = width, height
        self.last_pts: int | None = None

    def _pts(self, pts: int | None) -> int:
        if pts is None:  # a bare stream (.h264, some .avi): one frame time after the last
            step = max(1, round(1 / (self.rate * self.tb)))
            out = 0 if self.last_pts is None else self.last_pts + step
            self.last_pts = out
            return out
        out = pts if self.tb == self.in_tb else round(pts * self.in_tb / self.tb)
        if self.last_pts is not None and out <= self.last_pts:  # encoders need rising pts
            out = self.last_pts + 1
        self.last_pts = out
        return out

    def write_yuv(self, yuv: YuvFrame, pts: int | None) -> None:
        """An upscaled 4:2:0 frame, encoded as yuv420p. The planes are copied once, straight
        into the frame's buffers."""
        h, w = yuv.planes[0].shape[:2]
        frame = self.av.VideoFrame(w, h, "yuv420p")
        for i, plane in enumerate(yuv.layout("i420")):
            p = frame.planes[i]
            view = np.frombuffer(p, np.uint8).reshape(-1, p.line_size)
            view[: plane.shape[0], : plane.shape[1]] = plane
        self._encode(frame, pts)

    def write_rgb(self, rgb: np.ndarray, pts: int | None) -> None:
        self._encode(
            self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"), pts
        )

    def _encode(self, frame: Any, pts: int | None) -> None:
        frame.pts = self._pts(pts)
        frame.time_base = self.tb
        with self._writing():
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def mux_audio(self, packet: Any) -> None:
        packet.stream = self.audio[packet.stream.index]
        with self._writing():
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and write the trailer."""
        with self._writing():
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()

    @contextlib.contextmanager
    def _writing(self) -> Any:
        """FFmpeg's muxer errors as edgesr errors that name the streams and the way out."""
        try:
            yield
        except self.av.error.FFmpegError as exc:
            raise ConfigError(
                f"writing the {self.path.suffix} output failed: {exc}. A {self.path.suffix} file may not hold "
                f"these streams ({', '.join(self.streams)}); write a .mkv, which holds any codec, "
                "or choose another --codec."
            ) from exc

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


def frame_yuv(frame: Any) -> YuvFrame:
    """A decoded frame as 4:2:0 planes, views of the frame's buffers where it already is NV12
    or yuv420p (rows keep their padded pitch, as a camera buffer); other formats are converted
    to NV12 by FFmpeg first."""
    fmt = frame.format.name
    if fmt not in ("nv12", "yuv420p", "yuvj420p"):
        frame = frame.reformat(format="nv12")  # 4:2:2, 4:4:4, 10-bit ...: FFmpeg's swscale
        fmt = "nv12"
    h, w = frame.height, frame.width
    if h % 2 or w % 2:
        raise DataError(f"video frames are {w}x{h}; NV12/4:2:0 needs even width and height.")

    def plane(i: int, rows: int, cols: int) -> np.ndarray:
        p = frame.planes[i]
        return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:rows, :cols]

    y = plane(0, h, w)
    if fmt == "nv12":
        return YuvFrame("nv12", [y, plane(1, h // 2, w).reshape(h // 2, w // 2, 2)])
    return YuvFrame("i420", [y, plane(1, h // 2, w // 2), plane(2, h // 2, w // 2)])


def _open_input(av: Any, src: Path) -> Any:
    if not src.is_file():
        raise DataError(f"video {src} does not exist.")
    try:
        container = av.open(str(src))
    except Exception as exc:
        raise DataError(f"cannot read video {src}: {exc}; is it a complete video file?") from exc
    if not container.streams.video:
        container.close()
        raise DataError(f"{src} has no video stream.")
    return container


def upscale_video(
    upscaler: Any,
    src: str | Path,
    dst: str | Path,
    *,
    codec: str | None = None,
    frames: int | None = None,
    display: bool = False,
    force: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Upscale every frame of a video file into ``dst``, keeping audio and timestamps.

    Y models get NV12 planes (Y through the net, chroma resized, never RGB); RGB models get
    RGB frames. ``frames`` stops after that many frames. A video that ends early keeps what
    was decoded, with a warning; one with no decodable frame is a DataError.
    """
    av = import_av()
    src, dst = Path(src), Path(dst)
    if display:
        check_display()
    out = AtomicOutput(dst, force=force, src=src)
    codec_name = default_codec(dst, codec)
    container = _open_input(av, src)
    try:
        vstream = container.streams.video[0]
        vstream.thread_type = "AUTO"
        astreams = tuple(container.streams.audio)
        with out as tmp:
            stats = _run(
                upscaler,
                av,
                container,
                vstream,
                astreams,
                tmp,
                src=src,
                codec=codec_name,
                frames=frames,
                display=display,
                log=log,
            )
    finally:
        container.close()
    stats["output"] = str(dst)
    log(f"upscale: {summary_line(stats)}")
    return stats


def _run(
    upscaler: Any,
    av: Any,
    container: Any,
    vstream: Any,
    astreams: tuple[Any, ...],
    tmp: Path,
    *,
    src: Path,
    codec: str,
    frames: int | None,
    display: bool,
    log: Any,
) -> dict[str, Any]:
    yuv = getattr(upscaler, "color", "y") == "y"
    state: dict[str, Any] = {"decoded": 0, "error": None, "last_pts": None}
    writer: VideoWriter | None = None
    total = frames or (vstream.frames or None)

    def source() -> Any:
        try:
            for packet in container.demux(vstream, *astreams):
                if packet.stream.type == "audio":
                    if packet.dts is not None and packet.size:
                        yield ("a", packet)
                    continue
                for frame in packet.decode():
                    if frames is not None and state["decoded"] >= frames:
                        return
                    state["decoded"] += 1
                    state["last_pts"] = frame.pts
                    if yuv and state["decoded"] == 1:  # refused sizes fail before any frame
                        nv12.check_size(
                            frame.width, frame.height, model=str(getattr(upscaler, "name", ""))
                        )
                    data = (
                        nv12.prepare_yuv(frame_yuv(frame))
                        if yuv
                        else frame.to_ndarray(format="rgb24")
                    )
                    yield ("v", data, frame.pts)
        except av.error.FFmpegError as exc:  # truncated or corrupt from here on
            state["error"] = exc

    nv12 = NV12Path(upscaler)
    stats = StreamStats()
    progress = Progress(total=total)
    window = Display() if display else None

    def process(item: Any) -> Any:
        if item[0] == "a":
            return item
        _, data, pts = item
        if yuv:
            planes, seconds = nv12.run(data)
            out = ("v", planes, pts)
        else:
            rgb, seconds = timed(upscaler, upscaler.upscale_rgb, data)
            out = ("v", rgb, pts)
        stats.add_latency(seconds)
        return out

    def sink(item: Any) -> None:
        nonlocal writer
        if item[0] == "a":
            if writer is not None:
                writer.mux_audio(item[1])
            else:  # audio before the first video frame: keep it for when the writer exists
                pending.append(item[1])
            return
        _, data, pts = item
        if yuv:
            data = nv12.finish(data)
        if writer is None:
            h, w = data.planes[0].shape if yuv else data.shape[:2]
            writer = VideoWriter(
                tmp,
                codec=codec,
                width=w,
                height=h,
                time_base=vstream.time_base,
                rate=vstream.average_rate or vstream.guessed_rate,
                audio=astreams,
            )
            for packet in pending:
                writer.mux_audio(packet)
            pending.clear()
        if yuv:
            writer.write_yuv(data, pts)
        else:
            writer.write_rgb(data, pts)
        stats.add_frame()
        progress.update()
        if window is not None:
            window.show_bgr(nv12_to_bgr(*data.nv12()) if yuv else data[..., ::-1])

    pending: list[Any] = []
    try:
        run_pipeline(source(), process, sink)
        if writer is None:
            detail = f" ({state['error']})" if state["error"] else ""
            raise DataError(
                f"no frame of {src} could be decoded{detail}; is it a complete video file?"
            )
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        stats.close()
        raise
    finally:
        progress.close()
        if window is not None:
            window.close()
    _warn_if_short(container, vstream, state, frames=frames, src=src, log=log)
    result = stats.finish(output=None)
    if state.get("warning"):
        result["warning"] = state["warning"]
    return result


def _warn_if_short(
    container: Any, vstream: Any, state: dict[str, Any], *, frames: int | None, src: Path, log: Any
) -> None:
    """Say so when the input ended before its header said it would (frame count or duration)."""
    n = state["decoded"]
    if frames is not None and n >= frames:
        return
    reason = None
    if vstream.duration:
        duration = float(vstream.duration * vstream.time_base)
    else:  # Matroska keeps the duration for the whole file only (microseconds)
        duration = (container.duration or 0) / 1e6
    if state["error"] is not None:
        reason = f"decoding stopped with an error ({state['error']})"
    elif vstream.frames and n < vstream.frames:
        reason = f"its header announces {vstream.frames} frames"
    elif duration and state["last_pts"] is not None and vstream.average_rate:
        frame_time = float(1 / vstream.average_rate)
        end = (
            float((state["last_pts"] - (vstream.start_time or 0)) * vstream.time_base) + frame_time
        )
        if end < duration - 2 * frame_time:
            reason = f"its header announces {duration:.2f} s, the frames end at {end:.2f} s"
    if reason:
        message = f"{src} ended early: {reason}; kept the {n} frames decoded so far."
        state["warning"] = message
        log(f"upscale: warning: {message}")
