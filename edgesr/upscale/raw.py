"""Raw YUV 4:2:0 streams through an SR model, staying in YUV: ``.nv12`` -> ``.nv12``,
``.yuv`` (I420 / yuv420p) -> ``.yuv``, ``.y4m`` -> ``.y4m``.

Each frame's Y plane goes through the net and its chroma is resized (``Upscaler.upscale_nv12``);
nothing is converted to RGB. With ``--backend c`` and a Y model the planes, as read, go to
libedgesr in one call per frame and its planes are written as they come (see
:mod:`edgesr.upscale.stream`); a frame size that model refuses is an error before any output. ``.nv12`` and ``.yuv`` carry no header, so their size comes from
``--size WxH``; ``.y4m`` (YUV4MPEG2) has it in its header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edgesr.errors import ConfigError, DataError
from edgesr.upscale.stream import (
    AtomicOutput,
    NV12Path,
    Progress,
    StreamStats,
    YuvFrame,
    run_pipeline,
    summary_line,
)

__all__ = ["RAW_FORMATS", "Y4mHeader", "parse_size", "read_y4m_header", "upscale_raw"]

RAW_FORMATS = {".nv12": "nv12", ".yuv": "i420", ".y4m": "y4m"}

# YUV4MPEG2 colour spaces with 8-bit 4:2:0 planes (they differ only in chroma siting, which
# a plane-wise chroma resize keeps). No C tag means 4:2:0 (jpeg siting) by the format's spec.
Y4M_420 = ("420jpeg", "420paldv", "420mpeg2", "420")


def parse_size(size: Any) -> tuple[int, int]:
    """``"WxH"`` or ``(width, height)`` -> (width, height)."""
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", size)
        if not m:
            raise ConfigError(f"--size must be WIDTHxHEIGHT, e.g. 1920x1080; got {size!r}")
        w, h = int(m.group(1)), int(m.group(2))
    else:
        w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise ConfigError(f"--size must be positive, got {w}x{h}")
    return w, h


def _check_even(w: int, h: int, where: str) -> None:
    if w % 2 or h % 2:
        raise DataError(
            f"{where} is {w}x{h}; 4:2:0 YUV (NV12, I420, y4m 420) needs an even width and height."
        )


class Y4mHeader:
    """The stream header of a YUV4MPEG2 file: size and the other tags, kept as written."""

    def __init__(self, width: int, height: int, tags: list[str]) -> None:
        self.width, self.height, self.tags = width, height, tags

    def line(self, width: int, height: int) -> bytes:
        return " ".join(["YUV4MPEG2", f"W{width}", f"H{height}", *self.tags]).encode() + b"\n"


def read_y4m_header(f: BinaryIO, src: Path) -> Y4mHeader:
    line = f.readline(4096)
    if not line.startswith(b"YUV4MPEG2") or not line.endswith(b"\n"):
        raise DataError(f"{src} is not a YUV4MPEG2 (.y4m) file: its first line is {line[:40]!r}.")
    w = h = None
    tags: list[str] = []
    for token in line.decode("ascii", errors="replace").split()[1:]:
        if token[0] == "W":
            w = int(token[1:])
        elif token[0] == "H":
            h = int(token[1:])
        else:
            tags.append(token)
    if not w or not h:
        raise DataError(f"{src}: the y4m header has no W or H tag: {line.strip()!r}")
    colour = next((t[1:] for t in tags if t[0] == "C"), "420jpeg")
    if colour not in Y4M_420:
        raise DataError(
            f"{src} is y4m colour space C{colour}; edgesr upscale reads 8-bit 4:2:0 y4m "
            f"(C{', C'.join(Y4M_420)}, or no C tag). Convert it first, e.g. "
            "ffmpeg -i in.y4m -pix_fmt yuv420p out.y4m"
        )
    _check_even(w, h, f"{src} (y4m header)")
    return Y4mHeader(w, h, tags)


def _frame(buf: np.ndarray, w: int, h: int, layout: str) -> YuvFrame:
    """One frame's bytes -> its planes (views of ``buf``) in the file's layout."""
    y = buf[: w * h].reshape(h, w)
    if layout == "nv12":
        return YuvFrame("nv12", [y, buf[w * h :].reshape(h // 2, w // 2, 2)])
    q = (w // 2) * (h // 2)
    u = buf[w * h : w * h + q].reshape(h // 2, w // 2)
    v = buf[w * h + q :].reshape(h // 2, w // 2)
    return YuvFrame("i420", [y, u, v])


def upscale_raw(
    upscaler: Any,
    src: str | Path,
    dst: str | Path,
    *,
    size: Any = None,
    frames: int | None = None,
    force: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Upscale a raw ``.nv12`` / ``.yuv`` (I420, both need ``size`` "WxH") or ``.y4m`` file into
    the same format at ``dst``. ``frames`` stops after that many frames."""
    src, dst = Path(src), Path(dst)
    kind = RAW_FORMATS.get(src.suffix.lower())
    if kind is None:
        raise ConfigError(f"{src}: raw input must be one of {', '.join(RAW_FORMATS)}.")
    if RAW_FORMATS.get(dst.suffix.lower()) != kind:
        raise ConfigError(
            f"raw {src.suffix} input is written as {src.suffix}; name the output "
            f"{dst.with_suffix(src.suffix).name} (YUV stays YUV, no conversion)."
        )
    if not src.is_file():
        raise DataError(f"{src} does not exist.")
    out = AtomicOutput(dst, force=force, src=src)
    s = int(upscaler.scale)
    with open(src, "rb") as f:
        header: Y4mHeader | None = None
        if kind == "y4m":
            header = read_y4m_header(f, src)
            if size is not None and parse_size(size) != (header.width, header.height):
                raise ConfigError(
                    f"{src} is {header.width}x{header.height} by its y4m header; drop --size."
                )
            w, h, layout = header.width, header.height, "i420"
        else:
            if size is None:
                raise ConfigError(
                    f"{src} is raw {kind.upper()} without a header; give its frame size with --size WxH."
                )
            w, h = parse_size(size)
            _check_even(w, h, f"--size {w}x{h}")
            layout = kind
        nv12 = NV12Path(upscaler)
        nv12.check_size(w, h, model=str(getattr(upscaler, "name", "")))
        frame_size = w * h * 3 // 2
        count = _count_frames(src, f, w, h, frame_size, kind)
        state = {"short": None}
        total = (
            min(count, frames) if frames is not None and count is not None else (frames or count)
        )

        def source() -> Iterator[tuple[Any, ...]]:
            n = 0
            while frames is None or n < frames:
                if kind == "y4m":
                    marker = f.readline(1 << 16)
                    if not marker:
                        return
                    if not marker.startswith(b"FRAME"):
                        raise DataError(
                            f"{src}: frame {n} does not start with FRAME (found {marker[:20]!r})."
                        )
                buf = np.frombuffer(f.read(frame_size), np.uint8)
                if buf.size < frame_size:
                    if buf.size or kind == "y4m":
                        state["short"] = (n, buf.size)
                    return
                n += 1
                yield nv12.prepare_yuv(_frame(buf, w, h, layout))

        stats = StreamStats()
        progress = Progress(total=total)

        def process(item: Any) -> Any:
            result, seconds = nv12.run(item)
            stats.add_latency(seconds)
            return result

        try:
            with out as tmp, open(tmp, "wb") as o:
                if header is not None:
                    o.write(header.line(w * s, h * s))

                def sink(planes: Any) -> None:
                    frame = nv12.finish(planes)
                    if header is not None:
                        o.write(b"FRAME\n")
                    for part in frame.layout(layout):
                        o.write(np.ascontiguousarray(part).data)
                    stats.add_frame()
                    progress.update()

                run_pipeline(source(), process, sink)
                if stats.frames == 0:
                    raise DataError(
                        f"{src} holds no complete frame of {w}x{h} ({frame_size} bytes)."
                    )
        except BaseException:
            stats.close()
            raise
        finally:
            progress.close()
    result = stats.finish(output=dst)
    if state["short"] is not None:
        n, got = state["short"]
        message = f"{src} ends inside frame {n + 1} ({got} of {frame_size} bytes); kept the {n} complete frames."
        result["warning"] = message
        log(f"upscale: warning: {message}")
    log(f"upscale: {summary_line(result)}")
    return result


def _count_frames(src: Path, f: BinaryIO, w: int, h: int, frame_size: int, kind: str) -> int | None:
    """Frames in a headerless file, which must hold a whole number of them (y4m: None)."""
    if kind == "y4m":
        return None
    length = src.stat().st_size
    if length == 0:
        raise DataError(f"{src} is empty.")
    if length % frame_size:
        raise DataError(
            f"{src} is {length} bytes, which is not a whole number of {w}x{h} {kind.upper()} frames "
            f"({w}*{h}*3/2 = {frame_size} bytes each: {length} / {frame_size} = {length / frame_size:.3f}); "
            "check --size (width first: WxH) and the pixel format."
        )
    return length // frame_size
