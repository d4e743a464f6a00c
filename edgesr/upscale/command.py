"""``edgesr upscale INPUT``: the command behind the CLI, dispatching on the kind of input.

Images and folders are handled here (:mod:`edgesr.upscale.images`); videos, raw YUV files and
cameras by :mod:`edgesr.upscale.video`, :mod:`edgesr.upscale.raw` and
:mod:`edgesr.upscale.camera`, imported only when such an input is given.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, DataError

__all__ = ["add_upscale_parser", "input_kind", "run_upscale"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
RAW_EXTENSIONS = (".nv12", ".yuv", ".y4m")
_CAMERA = re.compile(r"^(camera:\d+|/dev/video\d+)$")


def input_kind(text: str) -> str:
    """'camera', 'folder', 'image', 'video' or 'raw'; DataError for anything else."""
    from edgesr.data.io import IMAGE_EXTENSIONS

    if _CAMERA.match(text):
        return "camera"
    path = Path(text)
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    kind = (
        "image"
        if suffix in IMAGE_EXTENSIONS
        else "video"
        if suffix in VIDEO_EXTENSIONS
        else "raw"
        if suffix in RAW_EXTENSIONS
        else None
    )
    if not path.exists():
        raise DataError(
            f"input {text} does not exist; give an image, a folder of images, a video, a raw "
            ".nv12/.yuv/.y4m file, or camera:N"
        )
    if kind is None:
        raise DataError(
            f"cannot tell what {text} is from its extension '{suffix}'; images: "
            f"{' '.join(IMAGE_EXTENSIONS)}; videos: {' '.join(VIDEO_EXTENSIONS)}; raw: "
            f"{' '.join(RAW_EXTENSIONS)}"
        )
    return kind


def _default_stream_output(text: str, scale: int) -> Path:
    src = Path(text)
    return src.with_name(f"{src.stem}_x{scale}{src.suffix}")


def _summary(count: int, skipped: int, up: Any, seconds: float) -> str:
    t = up.times.summary()
    skip = f", {skipped} skipped" if skipped else ""
    rate = count / seconds if seconds > 0 else float("inf")
    return (
        f"upscaled {count} image{'s' if count != 1 else ''}{skip} with {up.name} "
        f"({up.backend}, x{up.scale}): model {t.get('model_mean_ms', 0.0):.1f} ms mean, "
        f"{t.get('model_p99_ms', 0.0):.1f} ms p99 per image; {rate:.2f} images/s end to end"
    )


def run_upscale(args: argparse.Namespace, *, log: Callable[[str], None] = print) -> int:
    """The ``edgesr upscale`` command; returns the exit code."""
    from edgesr.upscale.engine import open_upscaler

    kind = input_kind(args.input)  # before loading the model: a typo costs nothing
    stream_opts = {
        "--size": args.size,
        "--fps": args.fps,
        "--codec": args.codec,
        "--frames": args.frames,
        "--display": args.display or None,
    }
    allowed = {
        "image": (),
        "folder": (),
        "video": ("--codec", "--frames", "--display"),
        "raw": ("--size", "--frames"),
        "camera": ("--frames", "--display", "--fps"),
    }[kind]
    wrong = [k for k, v in stream_opts.items() if v is not None and k not in allowed]
    if wrong:
        verb = "does" if len(wrong) == 1 else "do"
        raise ConfigError(f"{', '.join(wrong)} {verb} not apply to a {kind} input.")

    with open_upscaler(
        model=args.model,
        recipe=args.recipe,
        backend=args.backend,
        threads=args.threads,
        tile=args.tile,
        overlap=args.tile_overlap,
        overrides=args.overrides,
    ) as up:
        if kind == "image":
            from edgesr.upscale.images import upscale_file

            start = time.perf_counter()
            dst = upscale_file(up, args.input, args.out, force=args.force)
            log(f"wrote {dst}")
            log(_summary(1, 0, up, time.perf_counter() - start))
        elif kind == "folder":
            from edgesr.upscale.images import upscale_folder

            result = upscale_folder(up, args.input, args.out, force=args.force, log=log)
            for path, _ in result.skipped:
                log(f"upscale: skipped {path}")
            log(_summary(len(result.written), len(result.skipped), up, result.seconds))
        else:
            dst = Path(args.out) if args.out else _default_stream_output(args.input, up.scale)
            common = {"frames": args.frames, "force": args.force, "log": log}
            if kind == "video":
                from edgesr.upscale.video import upscale_video

                upscale_video(up, args.input, dst, codec=args.codec, display=args.display, **common)
            elif kind == "raw":
                from edgesr.upscale.raw import upscale_raw

                upscale_raw(up, args.input, dst, size=args.size, **common)
            else:  # no --out: frames are shown and/or timed only
                from edgesr.upscale.camera import upscale_camera

                upscale_camera(
                    up,
                    args.input,
                    Path(args.out) if args.out else None,
                    display=args.display,
                    fps=args.fps,
                    **common,
                )
    return 0


def _size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, as video tools write it (1920x1080)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a frame size; write WIDTHxHEIGHT, e.g. 1920x1080"
        ) from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"'{text}': width and height must be positive")
    return w, h


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be >= 0")
    return value


def add_upscale_parser(sub: Any, add_recipe_args: Callable[..., None]) -> None:
    """Register ``edgesr upscale`` on the CLI's subparsers."""
    from edgesr.upscale.engine import BACKENDS

    p = sub.add_parser(
        "upscale",
        help="upscale your own images, folders, videos, raw YUV files or camera frames",
    )
    p.add_argument(
        "input",
        help="an image, a folder of images (recursive), a video, a .nv12/.yuv/.y4m file, "
        "camera:N or /dev/videoN",
    )
    add_recipe_args(p, required=False)
    p.add_argument(
        "--model",
        help="run directory or .safetensors, an .onnx from `edgesr export`, or a TensorRT "
        ".engine (default: the recipe's shipped weights)",
    )
    p.add_argument("--backend", choices=BACKENDS, default="onnxruntime")
    p.add_argument(
        "--out",
        help="output file or folder (default: <name>_x<scale>.<ext> beside the input; "
        "<folder>_x<scale>/ for a folder; a camera without --out is only shown/timed)",
    )
    p.add_argument(
        "--tile",
        type=_positive,
        help="LR tile size in pixels (default: whole frames up to 1 MP, 512 above; 0: never)",
    )
    p.add_argument(
        "--tile-overlap",
        type=_positive,
        help="LR context per tile side (default: the net's receptive radius, exact; smaller "
        "values blend the seams)",
    )
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    g = p.add_argument_group("video, raw and camera input")
    g.add_argument("--size", type=_size, help="raw .nv12/.yuv frame size WIDTHxHEIGHT")
    g.add_argument("--fps", type=float, help="camera frame rate to request")
    g.add_argument(
        "--codec",
        help="output video codec (default: from the output extension: .mkv FFV1, .mp4 H.264)",
    )
    g.add_argument("--frames", type=int, help="stop after this many frames")
    g.add_argument("--display", action="store_true", help="show the upscaled frames in a window")
    p.set_defaults(func=run_upscale)
