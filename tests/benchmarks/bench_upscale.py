"""End-to-end video throughput of `edgesr upscale` next to the model's own latency.

    python tests/benchmarks/bench_upscale.py [--int8 INT8.onnx] [--frames 60] [--threads 2]
        [--backends torch,onnxruntime,c] [--ext mkv,mp4] [--json out.json]

A 480x270 clip of ``--frames`` frames (default 60, 30 fps) is made from real photos (a pan and
zoom over scikit-image's photos, FFV1, nothing downloaded) and upscaled x4 to 1920x1080 by
ESPCN x4: FP32 (the shipped weights) and INT8 (``--int8``: the ``int8-ort`` ONNX of
``edgesr compress --recipe espcn_x4 --set compress.prune_ratio=0``) on every backend that
runs here (torch: FP32 only; c: when libedgesr is built). For each output (mkv: lossless FFV1,
mp4: H.264 ultrafast, y4m: the same frames as raw YUV in and out, i.e. the pipeline with no
codec at all) the table gives:

* model ms alone: the per-frame model call of the stream (the net on a 270x480 Y plane, through
  the Upscaler, or for backend c libedgesr's ``esr_upscale_image`` on the frame's planes, net
  and chroma) with nothing else running, median of 30;
* model ms in stream: the same model's mean per-frame time inside the video run;
* e2e fps: frames / wall time of the whole `upscale_video` call (decode, model, encode);
* ratio: e2e fps x model ms alone / 1000, i.e. e2e fps as a fraction of 1 / model latency
  (1.0: decoding and encoding are completely hidden behind the model).

With backend c a second table compares, per 4:2:0 frame of the clip, the stream's whole work
(reader + inference + writer stages of ``NV12Path``, run back to back) on three paths: ``c
planes`` (the frame's planes to libedgesr's ``esr_upscale_image`` in one call, what ``upscale
--backend c`` runs), ``c Y + py chroma`` (Y through ``esr_upscale_y_u8``, chroma resized by
OpenCV in Python: backend c before the planes path) and ``ort nv12`` (the Python NV12 path of
the other backends, ONNX Runtime from Python). One process, the order rotating every group of
frames; each ratio is the median of the per-group ratios, measured in that one run.

Each row runs in its own process (an ORT session's idle threads spin and would slow the
next row down; see bench_latency.py). The 1-minute load average before and after each row is
recorded: on a shared machine, read the rows with their load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

LR_W, LR_H, SCALE = 480, 270, 4


def make_clip(path: Path, frames: int) -> Path:
    """A 480x270 FFV1 clip panning and zooming over real photos (scikit-image's)."""
    import av
    import cv2
    import skimage.data

    photos = [
        cv2.resize(p(), (1920, 1080), interpolation=cv2.INTER_CUBIC)
        for p in (skimage.data.astronaut, skimage.data.coffee, skimage.data.rocket)
    ]
    per = max(1, -(-frames // len(photos)))
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = LR_W, LR_H, "yuv420p"
        for i in range(frames):
            photo, k = photos[min(i // per, len(photos) - 1)], (i % per) / per
            zoom = 1.0 - 0.35 * k  # a slow zoom-in with a pan to the right
            cw, ch = int(1920 * zoom), int(1080 * zoom)
            x0, y0 = int((1920 - cw) * k), int((1080 - ch) * 0.5)
            crop = photo[y0 : y0 + ch, x0 : x0 + cw]
            lr = cv2.resize(crop, (LR_W, LR_H), interpolation=cv2.INTER_AREA)
            f = av.VideoFrame.from_ndarray(lr, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 30)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def clip_to_y4m(clip: Path, path: Path) -> Path:
    """The same frames as raw YUV4MPEG2 (I420): the rows without any codec in the loop."""
    import av

    with av.open(str(clip)) as c, open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{LR_W} H{LR_H} F30:1 Ip A1:1 C420mpeg2\n".encode())
        for frame in c.decode(video=0):
            out.write(b"FRAME\n")
            out.write(frame.to_ndarray(format="yuv420p").tobytes())
    return path


def _load() -> float:
    return os.getloadavg()[0]


def _child(args: argparse.Namespace) -> int:
    """One row: model latency alone, then the video run; prints one JSON line."""
    from edgesr.upscale.engine import open_upscaler
    from edgesr.upscale.video import upscale_video

    kind = {"model": args.model} if args.model != "shipped" else {"recipe": "espcn_x4"}
    up = open_upscaler(backend=args.backend, threads=args.threads, **kind)
    load_before = _load()
    # The model alone: what the stream's inference thread runs per frame (NV12Path.run: the
    # Upscaler's net on Y, or libedgesr's esr_upscale_image on the planes for backend c).
    import av

    from edgesr.upscale.stream import NV12Path, YuvFrame
    from edgesr.upscale.video import frame_yuv

    with av.open(str(args.clip)) as c:
        frame = frame_yuv(next(c.decode(video=0)))
        path = NV12Path(up)
        item = path.prepare_yuv(YuvFrame(frame.fmt, [np.array(p) for p in frame.planes]))
    times = [path.run(item)[1] for _ in range(35)][5:]
    alone_ms = statistics.median(times) * 1000
    if args.dst.suffix == ".y4m":
        from edgesr.upscale.raw import upscale_raw

        clip = args.clip.with_suffix(".y4m")
        stats = upscale_raw(up, clip, args.dst, force=True, log=lambda _: None)
    else:
        stats = upscale_video(up, args.clip, args.dst, force=True, log=lambda _: None)
    up.close()
    row = {
        "model_alone_ms": alone_ms,
        "model_stream_ms": stats["latency_mean_ms"],
        "model_stream_p99_ms": stats["latency_p99_ms"],
        "e2e_fps": stats["fps"],
        "frames": stats["frames"],
        "ratio": stats["fps"] * alone_ms / 1000,
        "load_before": load_before,
        "load_after": _load(),
    }
    print(json.dumps(row))
    return 0


PLANE_PATHS = ("c planes", "c Y + py chroma", "ort nv12")


def _planes_child(args: argparse.Namespace) -> int:
    """The plane-path comparison (see the module docstring); prints one JSON line."""
    import av

    from edgesr.upscale.engine import open_upscaler
    from edgesr.upscale.stream import NV12Path, YuvFrame
    from edgesr.upscale.video import frame_yuv

    with av.open(str(args.clip)) as c:
        frames = [
            YuvFrame(f.fmt, [np.array(p) for p in f.planes])
            for f in (frame_yuv(x) for x in c.decode(video=0))
        ]
    ups = {
        "c": open_upscaler(model=args.model, backend="c", threads=args.threads),
        "ort": open_upscaler(model=args.model, backend="onnxruntime", threads=args.threads),
    }
    paths = {"c": NV12Path(ups["c"]), "ort": NV12Path(ups["ort"])}
    assert paths["c"].c_planes and not paths["ort"].c_planes

    def one(name: str, frame: YuvFrame) -> float:
        path = paths["ort" if name == "ort nv12" else "c"]
        start = time.perf_counter()
        if name == "c planes":
            item = path.prepare_yuv(frame)
            assert isinstance(item, YuvFrame)
        else:
            item = path.prepare(*frame.nv12())
        path.finish(path.run(item)[0])
        return time.perf_counter() - start

    for name in PLANE_PATHS:  # warm-up: first-frame allocations, ORT's first runs
        for frame in frames[:2]:
            one(name, frame)
    load_before = _load()
    times: dict[str, list[float]] = {name: [] for name in PLANE_PATHS}
    group = 3
    for g in range(args.groups):
        order = PLANE_PATHS[g % 3 :] + PLANE_PATHS[: g % 3]
        chunk = [frames[(g * group + i) % len(frames)] for i in range(group)]
        for name in order:
            times[name].append(sum(one(name, f) for f in chunk) / group)
    for up in ups.values():
        up.close()
    base = times["c planes"]
    rows = [
        {
            "path": name,
            "frame_ms": statistics.median(times[name]) * 1000,
            "vs_c_planes": statistics.median(t / b for t, b in zip(times[name], base, strict=True)),
        }
        for name in PLANE_PATHS
    ]
    print(json.dumps({"planes": rows, "load_before": load_before, "load_after": _load()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--int8", type=Path, help="INT8 ESPCN x4 ONNX (compress's int8-ort)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="torch,onnxruntime,c")
    parser.add_argument(
        "--ext", default="mkv,mp4,y4m", help="outputs: mkv (FFV1), mp4 (H.264), y4m (raw in/out)"
    )
    parser.add_argument(
        "--groups", type=int, default=15, help="groups of 3 frames in the plane-path comparison"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--planes-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if args.planes_child:
        return _planes_child(args)
    if args.json and args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5
    if args.frames < 1:
        print("error: --frames must be >= 1", file=sys.stderr)
        return 2
    backends = [b for b in args.backends.split(",") if b]
    notes = []
    if "c" in backends:
        from edgesr.runtime.capi import find_library

        if find_library() is None:
            backends.remove("c")
            notes.append("c: libedgesr not built (bash deploy/runtime/build.sh); skipped")
    if args.int8 is None:
        notes.append("int8: no --int8 model given; INT8 rows skipped")
    with tempfile.TemporaryDirectory(prefix="bench-upscale-") as tmp:
        tmp_dir = Path(tmp)
        clip = make_clip(tmp_dir / "clip_480x270.mkv", args.frames)
        clip_to_y4m(clip, clip.with_suffix(".y4m"))
        fp32_onnx = tmp_dir / "espcn_x4.fp32.onnx"
        _export_fp32(fp32_onnx)
        models = {"fp32": fp32_onnx, **({"int8": args.int8} if args.int8 else {})}
        rows = []
        t0 = time.perf_counter()
        for ext in [e.strip(".") for e in args.ext.split(",") if e]:
            for backend in backends:
                for name, path in models.items():
                    if backend == "torch" and name != "fp32":
                        continue  # INT8 is an ONNX Runtime / libedgesr deployment format
                    model = "shipped" if backend == "torch" else str(path)
                    cmd = [sys.executable, __file__, "--child", "--backend", backend]
                    cmd += ["--model", model, "--threads", str(args.threads)]
                    cmd += ["--clip", str(clip), "--dst", str(tmp_dir / f"out.{ext}")]
                    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if done.returncode:
                        print(
                            f"error: {backend}/{name}/{ext} failed:\n{done.stderr}", file=sys.stderr
                        )
                        return 1
                    row = {"backend": backend, "model": name, "output": ext}
                    row.update(json.loads(done.stdout.splitlines()[-1]))
                    rows.append(row)
                    print(_fmt(row), flush=True)
        planes = None
        if "c" in backends:
            cmd = [sys.executable, __file__, "--planes-child", "--model", str(fp32_onnx)]
            cmd += ["--threads", str(args.threads), "--clip", str(clip)]
            cmd += ["--groups", str(args.groups)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"error: the plane-path comparison failed:\n{done.stderr}", file=sys.stderr)
                return 1
            planes = json.loads(done.stdout.splitlines()[-1])
    print(
        f"\nESPCN x4, {LR_W}x{LR_H} -> {LR_W * SCALE}x{LR_H * SCALE}, {args.frames} frames, "
        f"{args.threads} threads, {os.cpu_count()} CPUs ({time.perf_counter() - t0:.0f} s)"
    )
    print(_HEADER)
    for row in rows:
        print(_fmt(row))
    if planes is not None:
        print(
            f"\nper 4:2:0 frame, the stream's three stages back to back, ESPCN x4 FP32, "
            f"{args.groups} groups of 3 frames (load {planes['load_before']:.1f}-"
            f"{planes['load_after']:.1f})"
        )
        print(f"{'path':<18}{'ms/frame':>10}{'x c planes':>12}")
        for p in planes["planes"]:
            print(f"{p['path']:<18}{p['frame_ms']:10.2f}{p['vs_c_planes']:12.3f}")
    for note in notes:
        print(f"note: {note}")
    if args.json:
        payload = {
            "lr": [LR_H, LR_W],
            "scale": SCALE,
            "frames": args.frames,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "rows": rows,
            "plane_paths": planes,
            "notes": notes,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


_HEADER = (
    f"{'output':<7}{'backend':<13}{'model':<7}{'model ms alone':>15}{'in stream':>11}"
    f"{'e2e fps':>9}{'1/lat fps':>11}{'ratio':>7}{'load':>11}"
)


def _fmt(row: dict) -> str:
    return (
        f"{row['output']:<7}{row['backend']:<13}{row['model']:<7}{row['model_alone_ms']:15.2f}"
        f"{row['model_stream_ms']:11.2f}{row['e2e_fps']:9.1f}{1000 / row['model_alone_ms']:11.1f}"
        f"{row['ratio']:7.2f}{row['load_before']:6.1f}-{row['load_after']:<4.1f}"
    )


def _export_fp32(path: Path) -> None:
    from edgesr.export.onnx_export import export_onnx
    from edgesr.modelio import load_pretrained
    from edgesr.recipe import load_recipe

    net, info = load_pretrained(load_recipe("espcn_x4"))
    fuse = getattr(net, "fuse", None)
    export_onnx(fuse() if callable(fuse) else net, path, info=info, verify=False, force=True)


if __name__ == "__main__":
    sys.exit(main())
