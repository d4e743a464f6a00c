"""INT8 models on every CPU: PSNR on each arithmetic ONNX Runtime has, and the speed of the fix.

    python tests/benchmarks/bench_int8_cpus.py MODEL.onnx [MORE.onnx ...] --data DIR [--data DIR]
        [--size 270x480] [--threads 2] [--rounds 5] [--frames 30] [--json out.json]

Per model and image folder, mean Y-PSNR (standard SR protocol, edgesr.evaluate) with:

* ``ref``      ORT with graph optimizations off: DequantizeLinear -> float Conv ->
               QuantizeLinear, exact integer grids (what every CPU should give);
* ``here``     ORT's default (fused) session on this CPU;
* ``avx2``     the same default session on an emulated Haswell (AVX2, no VNNI: the int16
               saturating VPMADDUBSW kernels), via qemu-user;
* ``avx2+x64`` that with ``session.x64quantprecision=1`` (ORT's exact u8 x s8 kernels).

Latency (this CPU, one process per timing, median of rounds as in bench_latency.py) with the
default session and with ``session.x64quantprecision=1``. On a VNNI CPU that option changes
nothing; its cost on AVX2-only CPUs can only be timed on one (emulation times nothing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODES = ("ref", "here", "avx2", "avx2+x64")


def _session(path: Path, mode: str, threads: int):
    import onnxruntime as ort

    from edgesr.runtime.runners import ort_session_options

    opts = ort_session_options(threads, exact_int8=mode.endswith("x64"))
    if mode == "ref":
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _psnr_child(path: Path, mode: str, folders: list[str]) -> int:
    from edgesr.evaluate import evaluate
    from edgesr.runtime.runners import ONNX_COLOR, CallableRunner

    sess = _session(path, mode, 1)
    meta = sess.get_modelmeta().custom_metadata_map
    scale, color = int(meta["edgesr.scale"]), ONNX_COLOR[meta["edgesr.color"]]
    name = sess.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: x})[0]

    runner = CallableRunner(predict, scale=scale, color=color)
    out = {f: evaluate(runner, f, scale=scale, bicubic=False).mean["psnr_y"] for f in folders}
    print(json.dumps(out))
    return 0


def _latency_child(path: Path, mode: str, threads: int, size: tuple[int, int], frames: int) -> int:
    sess = _session(path, mode, threads)
    name = sess.get_inputs()[0].name
    channels = sess.get_inputs()[0].shape[1]
    x = np.random.default_rng(0).random((1, channels, *size), dtype=np.float32)
    for _ in range(5):
        sess.run(None, {name: x})
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1000)
    print(json.dumps(statistics.median(times)))
    return 0


def _run(cmd: list[str]) -> object:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(cmd[:6])} ... failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--data", action="append", default=[], help="image folder (repeatable)")
    parser.add_argument("--size", default="270x480")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=["psnr", "latency"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="here", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    if args.child == "psnr":
        return _psnr_child(args.models[0], args.mode, args.data)
    if args.child == "latency":
        return _latency_child(args.models[0], args.mode, args.threads, (h, w), args.frames)
    if args.json and args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5
    if not args.data:
        print("error: pass at least one --data folder of HR images", file=sys.stderr)
        return 2
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print(
            "error: needs qemu-user (apt-get install qemu-user) for the AVX2 rows", file=sys.stderr
        )
        return 6
    me = [sys.executable, __file__]
    data = [x for d in args.data for x in ("--data", d)]
    rows = []
    t0 = time.perf_counter()
    for model in args.models:
        psnr = {}
        for mode in MODES:
            prefix = [qemu, "-cpu", "Haswell"] if mode.startswith("avx2") else []
            psnr[mode] = _run([*prefix, *me, str(model), "--child", "psnr", "--mode", mode, *data])
        lat: dict[str, list[float]] = {"here": [], "here+x64": []}
        for _ in range(args.rounds):
            for mode in lat:
                cmd = [*me, str(model), "--child", "latency", "--mode", mode, "--size", args.size]
                cmd += ["--threads", str(args.threads), "--frames", str(args.frames)]
                lat[mode].append(float(_run(cmd)))
        rows.append(
            {
                "model": str(model),
                "psnr_y": psnr,
                "latency_ms": {k: statistics.median(v) for k, v in lat.items()},
                "latency_round_medians_ms": lat,
            }
        )
    print(
        f"ORT, LR {h}x{w}, {args.threads} threads, median of {args.rounds} rounds x "
        f"{args.frames} frames; PSNR-Y per folder ({time.perf_counter() - t0:.0f} s)"
    )
    head = f"{'model':<40} {'data':<10} " + " ".join(f"{m:>9}" for m in MODES)
    print(head + f" {'avx2-ref':>9} {'ms':>7} {'ms x64':>7}")
    for row in rows:
        for folder in args.data:
            vals = [row["psnr_y"][m][folder] for m in MODES]
            print(
                f"{row['model'][-40:]:<40} {Path(folder).name[:10]:<10} "
                + " ".join(f"{v:9.3f}" for v in vals)
                + f" {vals[2] - vals[0]:+9.3f} {row['latency_ms']['here']:7.2f}"
                f" {row['latency_ms']['here+x64']:7.2f}"
            )
    if args.json:
        payload = {"size": [h, w], "threads": args.threads, "rounds": args.rounds, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
