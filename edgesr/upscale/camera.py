"""A live camera through an SR model: ``edgesr upscale camera:0 --out live.mkv [--display]``.

Frames come from OpenCV's VideoCapture (V4L2 on Linux), which hands out BGR frames; they go
through :meth:`Upscaler.upscale_rgb` and into the same pipelined writer as video files, stamped
with their capture time (a camera's rate varies, so the output is variable-frame-rate).
``upscale_camera`` accepts any VideoCapture source, so a video file can stand in for a camera
in tests. Ctrl-C ends a camera session normally: the frames so far are finished and kept.
"""

from __future__ import annotations

import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import DataError
from edgesr.upscale.stream import (
    AtomicOutput,
    Display,
    Progress,
    StreamStats,
    check_display,
    run_pipeline,
    summary_line,
    timed,
)

__all__ = ["camera_source", "is_camera", "upscale_camera"]

_TIME_BASE = Fraction(1, 1000)  # capture times in ms


def is_camera(spec: str | Path) -> bool:
    """``camera:N`` or ``/dev/videoN``."""
    return bool(re.fullmatch(r"camera:\d+|/dev/video\d+", str(spec)))


def camera_source(spec: str | Path | int) -> int | str:
    """``camera:N`` -> N (an index), anything else (``/dev/videoN``, a file, a URL) as is."""
    m = re.fullmatch(r"camera:(\d+)", str(spec))
    return int(m.group(1)) if m else (spec if isinstance(spec, int) else str(spec))


def _open(spec: str | Path | int, fps: float | None) -> Any:
    import cv2

    source = camera_source(spec)
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        cap.release()
        raise DataError(
            f"cannot open camera {spec}: no such device, or it is busy or not permitted. "
            "List cameras with `v4l2-ctl --list-devices` (or `ls /dev/video*`) and pass "
            "camera:N or /dev/videoN; check that your user is in the 'video' group."
        )
    if fps:
        cap.set(cv2.CAP_PROP_FPS, float(fps))
    return cap


def upscale_camera(
    upscaler: Any,
    device: str | Path | int,
    dst: str | Path | None,
    *,
    frames: int | None = None,
    display: bool = False,
    force: bool = False,
    fps: float | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Upscale frames from ``device`` (``camera:N``, ``/dev/videoN`` or any VideoCapture source)
    into the video ``dst`` (None: only show them / measure). Runs until ``frames`` frames, the
    source ends, or Ctrl-C, which keeps what was recorded."""
    import cv2

    from edgesr.upscale.video import VideoWriter, default_codec

    if display:
        check_display()
    if dst is None and not display and frames is None:
        log("upscale: no --out: frames are upscaled and timed only (Ctrl-C stops).")
    out = AtomicOutput(dst, force=force) if dst is not None else None
    codec = default_codec(dst) if dst is not None else None
    cap = _open(device, fps)
    live = is_camera(device) or isinstance(camera_source(device), int)
    rate = Fraction(fps or cap.get(cv2.CAP_PROP_FPS) or 30).limit_denominator(1001)
    state: dict[str, Any] = {"read": 0}

    def source() -> Any:
        t0 = None
        while frames is None or state["read"] < frames:
            ok, bgr = cap.read()
            if not ok:
                return
            now = time.monotonic()
            t0 = now if t0 is None else t0
            # A device's frames are stamped when grabbed; a file's carry their own time.
            ms = (now - t0) * 1000 if live else cap.get(cv2.CAP_PROP_POS_MSEC)
            state["read"] += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), round(ms)

    stats = StreamStats()
    progress = Progress(total=frames)
    window = Display() if display else None
    writer: VideoWriter | None = None

    def process(item: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
        rgb, seconds = timed(upscaler, upscaler.upscale_rgb, item[0])
        stats.add_latency(seconds)
        return rgb, item[1]

    def sink(item: tuple[np.ndarray, int]) -> None:
        nonlocal writer
        rgb, ms = item
        if out is not None:
            if writer is None:
                h, w = rgb.shape[:2]
                writer = VideoWriter(
                    out.tmp, codec=codec, width=w, height=h, time_base=_TIME_BASE, rate=rate
                )
            writer.write_rgb(rgb, ms)
        stats.add_frame()
        progress.update()
        if window is not None:
            window.show_bgr(rgb[..., ::-1])

    interrupted = False
    try:
        if out is not None:
            out.__enter__()
        try:
            run_pipeline(source(), process, sink)
        except KeyboardInterrupt:
            interrupted = True  # the normal way to stop a camera: keep what was recorded
        if stats.frames == 0:
            raise DataError(f"camera {device} delivered no frame; is it in use by another program?")
        if writer is not None:
            writer.close()
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        stats.close()
        if out is not None:
            out.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        cap.release()
        progress.close()
        if window is not None:
            window.close()
    if out is not None:
        out.__exit__(None, None, None)
    result = stats.finish(output=dst)
    if interrupted:
        log(f"upscale: stopped by Ctrl-C after {stats.frames} frames; the recording is kept.")
    log(f"upscale: {summary_line(result)}")
    return result
