"""What every streaming source of ``edgesr upscale`` shares: the pipelined loop, progress,
statistics, power, the live window and the write-then-rename output.

The loop runs three stages at once: a reader thread (decode / file reads / camera grabs),
inference on the calling thread, and a writer thread (encode / file writes / display), joined
by small bounded queues. ONNX Runtime, PyTorch, libedgesr (ctypes) and FFmpeg release the GIL
while they work, so with enough cores a frame's decode and encode hide behind the next frame's
inference and throughput approaches 1 / model latency. Inference stays on the calling thread so
Ctrl-C (delivered to the main thread) stops it at once.

4:2:0 frames (raw ``.nv12``/``.yuv``/``.y4m`` files, decoded video) travel as a :class:`YuvFrame`.
With ``--backend c`` and a Y model each untiled frame's planes, with their own pitches, go to
libedgesr's ``esr_upscale_image`` in one call (:meth:`CStream.upscale_yuv`): the net on Y and the
chroma upsampling both run in C and nothing is converted or resized in Python. The output is
byte-identical to ``upscale_yuv`` (and to ``deploy/runtime``'s ``edgesr_upscale`` example, BT.601
limited range: Y reaches the net as stored, as on the Python path) on the same planes. How it
differs from the Python path (other backends), measured on the embedded coffee photo as NV12
(600x400 -> 2400x1600, ESPCN x4; ``tests/test_upscale_c.py`` holds these bounds):

* Y: the same net output, rounded in double where the Python path rounds in float32, so a value
  whose float32 product with 255 is exactly x.5 goes down instead of up: 1 level on 12 of the
  3.84 M pixels.
* U/V: libedgesr's integer bilinear upsampling where the Python path resizes bicubically
  (OpenCV): max 9, mean 0.33 levels of 255 (the rocket photo: max 18, mean 0.27), near edges.

Frames the Upscaler would tile (over ``AUTO_TILE_PIXELS``, or ``--tile``) and RGB models keep
the Python path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgesr.errors import ConfigError
from edgesr.outputs import refuse_existing

__all__ = [
    "AtomicOutput",
    "Display",
    "Progress",
    "StreamStats",
    "check_display",
    "NV12Path",
    "YuvFrame",
    "run_pipeline",
    "timed",
]

_END = object()
_POLL_S = 0.1


def run_pipeline(
    source: Iterable[Any],
    process: Callable[[Any], Any],
    sink: Callable[[Any], None],
    *,
    depth: int = 4,
) -> None:
    """``sink(process(item))`` for every item of ``source``, in order, the three overlapping.

    ``source`` is iterated on a reader thread and ``sink`` called on a writer thread; at most
    ``depth`` items wait between stages, which bounds memory. The first exception of any stage
    (KeyboardInterrupt included) stops all three and is raised here.
    """
    stop = threading.Event()
    errors: list[BaseException] = []
    q_in: queue.Queue[Any] = queue.Queue(depth)
    q_out: queue.Queue[Any] = queue.Queue(depth)

    def put(q: queue.Queue[Any], item: Any) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                q.put(item, timeout=_POLL_S)
                return True
        return False

    def get(q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                if stop.is_set():
                    return _END

    def read() -> None:
        try:
            for item in source:
                if not put(q_in, item):
                    return
            put(q_in, _END)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    def write() -> None:
        try:
            while (item := get(q_out)) is not _END:
                sink(item)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=read, name="edgesr-read", daemon=True),
        threading.Thread(target=write, name="edgesr-write", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        while (item := get(q_in)) is not _END:
            if not put(q_out, process(item)):
                break
        put(q_out, _END)
        while threads[1].is_alive():  # join in slices so Ctrl-C still reaches this thread
            threads[1].join(_POLL_S)
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join(5.0)
    if errors:
        raise errors[0]


def timed(upscaler: Any, fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and the model's seconds for it: what the Upscaler recorded for the frame
    (its runner's calls, summed over tiles), or the call's wall time where nothing was
    recorded (the C fast path calls libedgesr directly)."""
    record = getattr(getattr(upscaler, "times", None), "model", None)
    before = len(record) if record is not None else 0
    start = time.perf_counter()
    out = fn(*args)
    wall = time.perf_counter() - start
    if record is not None and len(record) > before:
        return out, float(record[-1])
    return out, wall


class YuvFrame(NamedTuple):
    """One 4:2:0 frame's planes as stored: ``"nv12"`` [Y (HxW), UV (H/2 x W/2 x 2)] or ``"i420"``
    [Y, U, V (H/2 x W/2 each)]. Planes may be strided views (padded rows, separate buffers)."""

    fmt: str
    planes: list[np.ndarray]

    def nv12(self) -> tuple[np.ndarray, np.ndarray]:
        """Y and interleaved UV (H/2 x W/2 x 2); I420 chroma is interleaved (a copy)."""
        if self.fmt == "nv12":
            return self.planes[0], self.planes[1]
        return self.planes[0], np.stack((self.planes[1], self.planes[2]), axis=-1)

    def layout(self, fmt: str) -> list[np.ndarray]:
        """The planes in layout ``fmt`` (the same arrays where it is already ``fmt``)."""
        if fmt == self.fmt:
            return list(self.planes)
        y, uv = self.nv12()
        return [y, uv] if fmt == "nv12" else [y, uv[..., 0], uv[..., 1]]


class NV12Path:
    """How a stream runs NV12 frames through an Upscaler, split over the pipeline's threads.

    For a Y model, :meth:`Upscaler.upscale_nv12` is the net on Y plus a resize of UV; here the
    chroma resize runs on the reader thread (:meth:`prepare`) and only the net on the inference
    thread (:meth:`run`), with the same bytes as a result. With libedgesr (backend ``c``) a
    whole frame from :meth:`prepare_yuv` goes to ``esr_upscale_image`` as it is (the module
    docstring says what that gives); planes given to :meth:`prepare` send only the strided Y
    plane to ``esr_upscale_y_u8``. Tiled frames take the Upscaler's own path. RGB models, and
    frames the Upscaler would refuse (odd sizes), go through ``upscale_nv12`` whole.
    """

    def __init__(self, upscaler: Any) -> None:
        self.up = upscaler
        self.split = getattr(upscaler, "color", None) == "y" and all(
            hasattr(upscaler, name) for name in ("upscale_y", "_resize", "tile_for")
        )
        engine = getattr(getattr(upscaler, "runner", None), "engine", None)
        self.engine: Any = engine if self.split and hasattr(engine, "upscale_y_u8") else None
        self.fast = self.engine is not None
        # libedgesr takes whole 4:2:0 frames: planes in, planes out, chroma upsampled in C.
        self.c_planes = self.fast and hasattr(engine, "upscale_yuv")

    def uses_c_planes(self, width: int, height: int) -> bool:
        """Whether a ``width`` x ``height`` frame goes to libedgesr whole (one call, no
        Python colour work): backend c, a Y model, even sizes and no tiling."""
        return (
            self.c_planes
            and not (width % 2 or height % 2)
            and self.up.tile_for(height, width) is None
        )

    def check_size(self, width: int, height: int, *, model: str = "") -> None:
        """Refuse, before any output is written, a frame size libedgesr's model does not take
        (a model exported with a fixed input size): a ModelError that says what to do."""
        if not self.uses_c_planes(width, height):
            return
        from edgesr.errors import ModelError

        try:
            self.engine.prepare(width, height)
        except ModelError as exc:
            raise ModelError(
                f"{model or 'the model'} cannot upscale {width}x{height} frames on libedgesr ({exc}); give "
                "frames of the size it was exported for, or export it again with `edgesr "
                "export` (dynamic height and width)."
            ) from exc

    def prepare_yuv(self, frame: YuvFrame) -> Any:
        """Reader thread: a frame for :meth:`run`, as stored where libedgesr takes it whole,
        else as NV12 planes with the chroma resized now (:meth:`prepare`)."""
        h, w = frame.planes[0].shape[:2]
        if self.uses_c_planes(w, h) and all(p.dtype == np.uint8 for p in frame.planes):
            return frame
        return self.prepare(*frame.nv12())

    def prepare(self, y: np.ndarray, uv: np.ndarray) -> tuple[Any, ...]:
        """Reader thread: resize the chroma now where the frame will be split."""
        h, w = y.shape[:2]
        ok = not (h % 2 or w % 2) and getattr(uv, "shape", None) == (h // 2, w // 2, 2)
        if not (self.split and ok and y.dtype == np.uint8 and uv.dtype == np.uint8):
            return (y, uv, None)
        s = int(self.up.scale)
        return (y, None, np.ascontiguousarray(self.up._resize(uv, (h * s // 2, w * s // 2))))

    def run(self, item: Any) -> tuple[Any, float]:
        """Inference thread: the upscaled planes (a YuvFrame from libedgesr, else Y and UV,
        Y maybe float until :meth:`finish`) and the model's seconds."""
        if isinstance(item, YuvFrame):  # one esr_upscale_image call: planes in, planes out
            planes, seconds = timed(None, self.engine.upscale_yuv, item.fmt, item.planes)
            return YuvFrame(item.fmt, planes), seconds
        y, uv, uv_out = item
        if uv_out is None:
            return timed(self.up, self.up.upscale_nv12, y, uv)
        if self.engine is not None and self.up.tile_for(*y.shape) is None:
            y_out, seconds = timed(None, self.engine.upscale_y_u8, y)
        else:  # rounded to u8 by finish(), on the writer thread
            y_out, seconds = timed(self.up, self.up.upscale_y_float, y)
        return (y_out, uv_out), seconds

    @staticmethod
    def finish(planes: Any) -> YuvFrame:
        """Writer thread: the u8 planes of what :meth:`run` returned. Rounding a 1080p float
        plane costs about as much as decoding and chroma together; here it overlaps the net."""
        if isinstance(planes, YuvFrame):
            return planes
        y, uv = planes
        if y.dtype != np.uint8:
            from edgesr.runtime.upscaler import to_u8

            y = to_u8(y)
        return YuvFrame("nv12", [y, uv])


class StreamStats:
    """Frames, model latency per frame, end-to-end rate and (where a probe exists) energy."""

    def __init__(self, *, power: str = "auto") -> None:
        self.latencies: list[float] = []
        self.frames = 0
        self.start = time.perf_counter()
        self.end: float | None = None
        self._sampler: Any = None
        self.power_note = "power: no probe"
        try:
            from edgesr.profile.power import PowerSampler, detect_probe

            probe, why = detect_probe(power)
        except Exception as exc:  # a broken sensor must not stop a video
            probe, why = None, str(exc)
        if probe is not None:
            self._sampler = PowerSampler(probe)
            self._sampler.start()
        elif why and not why.startswith("no usable power sensor"):
            self.power_note = f"power: no probe ({why})"

    def add_latency(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def add_frame(self) -> None:
        self.frames += 1

    def finish(self, *, output: str | Path | None) -> dict[str, Any]:
        """Stop the clock and the power window; the stats dict ``edgesr upscale`` reports."""
        self.end = time.perf_counter()
        seconds = self.end - self.start
        lat = np.asarray(self.latencies, dtype=np.float64) * 1000.0
        stats: dict[str, Any] = {
            "frames": self.frames,
            "latency_mean_ms": float(lat.mean()) if lat.size else None,
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
            "fps": self.frames / seconds if seconds > 0 else None,
            "seconds": seconds,
            "energy_per_frame_j": None,
            "power": self.power_note,
            "output": str(output) if output is not None else None,
        }
        if self._sampler is not None:
            try:
                power = self._sampler.result(max(self.frames, 1))
                stats["energy_per_frame_j"] = power["energy_per_frame_j"]
                stats["power"] = (
                    f"power: {power['mean_w']:.2f} W mean ({power.get('probe', 'probe')})"
                )
            except Exception as exc:
                stats["power"] = f"power: not measured ({exc})"
        return stats

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.halt()


def summary_line(stats: dict[str, Any]) -> str:
    """The final line: frames, model mean/p99 latency, end-to-end FPS and its ratio to
    1 / model latency, energy per frame or why there is none."""
    parts = [f"{stats['frames']} frames"]
    if stats["output"]:
        parts[0] += f" -> {stats['output']}"
    mean, p99, fps = stats["latency_mean_ms"], stats["latency_p99_ms"], stats["fps"]
    if mean is not None:
        parts.append(f"model {mean:.1f} ms mean / {p99:.1f} ms p99 per frame")
    if fps is not None:
        ratio = f" ({fps * mean / 1000:.2f} x 1/latency)" if mean else ""
        parts.append(f"end-to-end {fps:.1f} fps{ratio}")
    if stats["energy_per_frame_j"] is not None:
        parts.append(f"{stats['energy_per_frame_j'] * 1000:.1f} mJ/frame, {stats['power']}")
    else:
        parts.append(stats["power"])
    return "; ".join(parts)


class Progress:
    """A frames/s line on stderr: rewritten in place on a terminal, one line every few
    seconds otherwise (logs stay readable)."""

    def __init__(self, *, total: int | None = None, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = 0.5 if self.tty else 5.0
        self.start = self.last = time.perf_counter()
        self.count = 0
        self.shown = False

    def update(self, frames: int = 1) -> None:
        self.count += frames
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._show(now)

    def _show(self, now: float) -> None:
        fps = self.count / max(now - self.start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        text = f"upscale: {self.count}{of} frames, {fps:.1f} frames/s"
        if self.tty:
            self.stream.write(f"\r{text}\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()


class AtomicOutput:
    """Write to ``<stem>.<pid>.partial<suffix>`` beside ``dst``; rename onto ``dst`` only when
    the run completes. An error or Ctrl-C removes the partial file, so nothing that looks
    complete is ever left behind; an existing ``dst`` is refused without ``force`` and
    replaced only at the final rename."""

    def __init__(self, dst: str | Path, *, force: bool, src: str | Path | None = None) -> None:
        self.dst = Path(dst)
        if self.dst.is_dir():
            raise ConfigError(
                f"output {self.dst} is a folder; give a file name, e.g. {self.dst / 'out.mkv'}"
            )
        if src is not None and self.dst.exists() and Path(src).resolve() == self.dst.resolve():
            raise ConfigError(f"output {self.dst} is the input file; choose another output name.")
        refuse_existing(self.dst, force=force)
        self.tmp = self.dst.with_name(f"{self.dst.stem}.{os.getpid()}.partial{self.dst.suffix}")

    def __enter__(self) -> Path:
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.dst)
        else:
            self.tmp.unlink(missing_ok=True)


def check_display() -> None:
    """Raise ConfigError unless a live window can be shown (a display and a GUI OpenCV)."""
    if not os.environ.get("DISPLAY"):
        raise ConfigError(
            "--display needs a display, but none is available ($DISPLAY is not set: a headless "
            "machine or an SSH session without X forwarding); drop --display, or run where "
            "a display exists (e.g. ssh -X)."
        )
    import cv2

    info = cv2.getBuildInformation()
    gui = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.strip().startswith("GUI:")
        ),
        "",
    )
    if gui.upper() in ("", "NONE"):
        raise ConfigError(
            "--display needs an OpenCV build with a GUI, but this one has none "
            "(opencv-python-headless); drop --display, or install the GUI build in this "
            "environment: pip uninstall opencv-python-headless && pip install opencv-python"
        )


class Display:
    """A live window of the upscaled frames with the running FPS (call from one thread)."""

    def __init__(self, title: str = "edgesr upscale") -> None:
        check_display()
        self.title = title
        self.start = time.perf_counter()
        self.count = 0

    def show_bgr(self, bgr: np.ndarray) -> None:
        import cv2

        self.count += 1
        fps = self.count / max(time.perf_counter() - self.start, 1e-9)
        frame = np.ascontiguousarray(bgr)
        cv2.putText(
            frame, f"{fps:.1f} fps", (16, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 255, 0), 2
        )
        cv2.imshow(self.title, frame)
        cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        with contextlib.suppress(Exception):
            cv2.destroyWindow(self.title)


def nv12_to_bgr(y: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Y (HxW) and UV (H/2 x W/2 x 2) planes -> a BGR image for the window."""
    import cv2

    h, w = y.shape
    return cv2.cvtColorTwoPlane(
        np.ascontiguousarray(y), np.ascontiguousarray(uv), cv2.COLOR_YUV2BGR_NV12
    ).reshape(h, w, 3)
