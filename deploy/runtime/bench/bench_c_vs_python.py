"""Latency of libedgesr's C example vs ONNX Runtime from Python, same model, same input size.

ESPCN x4 (the espcn_x4 recipe's net; weights do not change the latency) on a 270x480 Y frame
-> 1080x1920, at 1 and 2 intra-op threads. Three timings per thread count:

* ``python_ort``: ``InferenceSession.run`` from Python on a float32 [1,1,270,480] array, with
  the session options of edgesr's OnnxRuntimeRunner;
* ``c_f32``: the ``edgesr_upscale`` example, ``esr_upscale_f32`` on the same float planes
  (the same work as Python's call: the overhead of the C API itself);
* ``c_y_u8``: the example's camera path, ``esr_upscale_y_u8`` (u8 -> float, model, clamp and
  round back to u8), for reference.

Two comparisons, both interleaved because a shared machine's load drifts by tens of percent
within seconds:

* ``example``: rounds alternate between Python's ``run`` and a fresh ``edgesr_upscale``
  process; each round yields a p50, the overhead is the median of the per-round ratios
  (C round / the Python round just before it).
* ``in-process``: one process rotates single frames between Python's ``run`` and, through
  the ctypes binding on one libedgesr stream, ``esr_upscale_f32`` (the same float frame),
  ``esr_upscale_y_u8`` and an NV12 ``esr_upscale_image`` (the same frame as 8-bit luma, plus a
  flat chroma plane), the order rotating every group; each overhead is the median of the
  per-group ratios. This isolates the C API's own cost best, and gives the cost of the NV12
  camera path (u8 -> float, model, float -> u8, chroma upsampling) over the model alone.

Prints a table and writes JSON.

Usage: python deploy/runtime/bench/bench_c_vs_python.py [--model M.onnx] [--runs 15]
           [--rounds 3] [--exe deploy/runtime/build/edgesr_upscale] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
LR_HW = (270, 480)


def export_espcn_x4(path: Path) -> Path:
    import onnx
    import torch

    from edgesr.archs import build_arch

    torch.manual_seed(0)
    net = build_arch("espcn", scale=4, num_channels=1).eval()
    torch.onnx.export(
        net.fuse(),
        torch.rand(1, 1, 32, 32),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["lr"],
        output_names=["sr"],
        dynamic_axes={"lr": {0: "N", 2: "H", 3: "W"}, "sr": {0: "N", 2: "sH", 3: "sW"}},
    )
    model = onnx.load(str(path))
    for key, value in {
        "edgesr.scale": "4",
        "edgesr.color": "y_bt601",
        "edgesr.version": "bench",
        "edgesr.recipe": "espcn_x4",
        "edgesr.recipe_hash": "",
        "edgesr.precision": "fp32",
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def python_round(session: Any, x: np.ndarray, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"lr": x})
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def c_round(exe: Path, model: Path, threads: int, runs: int, path: str) -> list[float]:
    """One round of the example (a fresh process, 2 warm-up frames): its p50 over `runs` frames."""
    cmd = [
        str(exe),
        "--model",
        str(model),
        "--synthetic",
        f"{LR_HW[1]}x{LR_HW[0]}",
        "--frames",
        str(runs),
        "--warmup",
        "2",
        "--threads",
        str(threads),
        "--json",
    ]
    if path == "f32":
        cmd.append("--float")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [json.loads(out.strip().splitlines()[-1])["p50_ms"]]


PATHS = ("py", "c", "c_y_u8", "c_nv12")


def interleaved(
    session: Any,
    engine: Any,
    x: np.ndarray,
    out: np.ndarray,
    y8: np.ndarray,
    uv: np.ndarray,
    groups: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and thread-CPU ms of each path, one frame each per group, order rotating."""
    calls = {
        "py": lambda: session.run(None, {"lr": x}),
        "c": lambda: engine.upscale_f32(x, out),
        "c_y_u8": lambda: engine.upscale_y_u8(y8),
        "c_nv12": lambda: engine.upscale_nv12(y8, uv),
    }
    for name in PATHS[1:]:  # warm-up: buffers and tensor wrappers of each path
        for _ in range(2):
            calls[name]()
    wall: dict[str, list[float]] = {k: [] for k in PATHS}
    cpu: dict[str, list[float]] = {k: [] for k in PATHS}
    for i in range(groups):
        for name in PATHS[i % 4 :] + PATHS[: i % 4]:
            start, cpu_start = time.perf_counter(), time.thread_time()
            calls[name]()
            wall[name].append((time.perf_counter() - start) * 1000.0)
            cpu[name].append((time.thread_time() - cpu_start) * 1000.0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="an edgesr ONNX model (default: export ESPCN x4)")
    ap.add_argument("--exe", type=Path, default=HERE.parent / "build" / "edgesr_upscale")
    ap.add_argument("--runs", type=int, default=10, help="timed frames per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=40, help="in-process frame groups")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path, default=HERE.parent / "build" / "bench_c_vs_python.json")
    args = ap.parse_args()

    import onnxruntime as ort

    if not args.exe.is_file():
        raise SystemExit(f"{args.exe} not found; build it with: bash deploy/runtime/build.sh")
    tmp = tempfile.TemporaryDirectory()
    model = args.model or export_espcn_x4(Path(tmp.name) / "espcn_x4.onnx")
    x = np.random.default_rng(0).random((1, 1, *LR_HW), dtype=np.float32)

    results: dict[str, Any] = {
        "model": str(model) if args.model else "espcn_x4 (exported, random weights)",
        "lr_hw": list(LR_HW),
        "sr_hw": [LR_HW[0] * 4, LR_HW[1] * 4],
        "runs_per_round": args.runs,
        "rounds": args.rounds,
        "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
        "rows": [],
    }
    from edgesr.runtime.capi import CEngine, load_library
    from edgesr.runtime.runners import ort_session_options

    clib = load_library(args.exe.parent / "libedgesr.so")
    sr_shape = (1, 1, LR_HW[0] * 4, LR_HW[1] * 4)
    for threads in args.threads:
        opts = ort_session_options(threads)  # exactly OnnxRuntimeRunner's options
        session = ort.InferenceSession(
            str(model), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        python_round(session, x, 2)  # warm-up
        py_p50s: list[float] = []
        c_f32: list[float] = []
        c_u8: list[float] = []
        for _ in range(args.rounds):
            py_p50s.append(statistics.median(python_round(session, x, args.runs)))
            c_f32 += c_round(args.exe, model, threads, args.runs, "f32")
            c_u8 += c_round(args.exe, model, threads, args.runs, "y_u8")
        # In-process, frame-interleaved: Python ORT vs the C API's paths on the same frame.
        out = np.empty(sr_shape, np.float32)
        # The same frame in 8 bits (x rounded to 1/255 steps) and a flat chroma plane.
        y8 = np.floor(x[0, 0] * 255.0 + 0.5).astype(np.uint8)
        uv = np.full((LR_HW[0] // 2, LR_HW[1]), 128, np.uint8)
        with CEngine(model, threads=threads, library=clib) as engine:
            wall, cpu = interleaved(session, engine, x, out, y8, uv, args.pairs)
        del session
        pair_py, pair_c, cpu_py, cpu_c = wall["py"], wall["c"], cpu["py"], cpu["c"]

        def ratio_pct(a: list[float], b: list[float]) -> float:
            return 100.0 * (statistics.median(p / q for p, q in zip(a, b, strict=True)) - 1)

        row = {
            "threads": threads,
            "python_ort_p50_ms": statistics.median(py_p50s),
            "c_f32_p50_ms": statistics.median(c_f32),
            "c_y_u8_p50_ms": statistics.median(c_u8),
            "c_f32_overhead_pct": 100.0
            * (statistics.median(c / p for c, p in zip(c_f32, py_p50s, strict=True)) - 1),
            "c_y_u8_overhead_pct": 100.0
            * (statistics.median(c / p for c, p in zip(c_u8, py_p50s, strict=True)) - 1),
            "inproc_python_p50_ms": statistics.median(pair_py),
            "inproc_c_p50_ms": statistics.median(pair_c),
            "inproc_overhead_pct": 100.0
            * (statistics.median(c / p for c, p in zip(pair_c, pair_py, strict=True)) - 1),
            # With one thread ORT computes on the calling thread, so its CPU time is immune to
            # the time slices other processes take; with more it misses the pool's threads.
            "inproc_cpu_python_p50_ms": statistics.median(cpu_py) if threads == 1 else None,
            "inproc_cpu_c_p50_ms": statistics.median(cpu_c) if threads == 1 else None,
            "inproc_cpu_overhead_pct": 100.0
            * (statistics.median(c / p for c, p in zip(cpu_c, cpu_py, strict=True)) - 1)
            if threads == 1
            else None,
            "inproc_c_y_u8_p50_ms": statistics.median(wall["c_y_u8"]),
            "inproc_c_nv12_p50_ms": statistics.median(wall["c_nv12"]),
            # The camera paths over the model alone (same stream, same frame, same run).
            "nv12_vs_f32_pct": ratio_pct(wall["c_nv12"], wall["c"]),
            "y_u8_vs_f32_pct": ratio_pct(wall["c_y_u8"], wall["c"]),
            "nv12_vs_python_pct": ratio_pct(wall["c_nv12"], wall["py"]),
            "nv12_vs_f32_cpu_pct": ratio_pct(cpu["c_nv12"], cpu["c"]) if threads == 1 else None,
            "y_u8_vs_f32_cpu_pct": ratio_pct(cpu["c_y_u8"], cpu["c"]) if threads == 1 else None,
            "round_p50s": {"python_ort": py_p50s, "c_f32": c_f32, "c_y_u8": c_u8},
        }
        results["rows"].append(row)

    print(
        f"ESPCN x4 {LR_HW[0]}x{LR_HW[1]} -> {LR_HW[0] * 4}x{LR_HW[1] * 4}, ORT {ort.__version__}; "
        f"example: {args.rounds} rounds x {args.runs} frames, in-process: {args.pairs} frame pairs"
    )
    print(
        f"{'threads':>7} | {'Py ORT ms':>9} | {'C ex f32':>8} | {'ovh':>7} | {'C ex u8':>8} | "
        f"{'ovh':>7} || {'in-proc Py':>10} | {'in-proc C':>9} | {'ovh':>7}"
    )
    for r in results["rows"]:
        print(
            f"{r['threads']:>7} | {r['python_ort_p50_ms']:>9.2f} | {r['c_f32_p50_ms']:>8.2f} | "
            f"{r['c_f32_overhead_pct']:>+6.2f}% | {r['c_y_u8_p50_ms']:>8.2f} | "
            f"{r['c_y_u8_overhead_pct']:>+6.2f}% || {r['inproc_python_p50_ms']:>10.2f} | "
            f"{r['inproc_c_p50_ms']:>9.2f} | {r['inproc_overhead_pct']:>+6.2f}%"
        )
    print(
        f"{'threads':>7} | {'in-proc f32':>11} | {'y_u8':>8} | {'NV12':>8} | {'NV12/f32':>8} | "
        f"{'y_u8/f32':>8} | {'NV12/Py':>8}"
    )
    for r in results["rows"]:
        print(
            f"{r['threads']:>7} | {r['inproc_c_p50_ms']:>11.2f} | {r['inproc_c_y_u8_p50_ms']:>8.2f} | "
            f"{r['inproc_c_nv12_p50_ms']:>8.2f} | {r['nv12_vs_f32_pct']:>+7.2f}% | "
            f"{r['y_u8_vs_f32_pct']:>+7.2f}% | {r['nv12_vs_python_pct']:>+7.2f}%"
        )
    for r in results["rows"]:
        if r["inproc_cpu_overhead_pct"] is not None:
            print(
                f"thread CPU time, {r['threads']} thread, in-process: Python "
                f"{r['inproc_cpu_python_p50_ms']:.2f} ms, C {r['inproc_cpu_c_p50_ms']:.2f} ms, "
                f"C vs Python {r['inproc_cpu_overhead_pct']:+.2f}%; NV12 vs f32 "
                f"{r['nv12_vs_f32_cpu_pct']:+.2f}%, y_u8 vs f32 {r['y_u8_vs_f32_cpu_pct']:+.2f}%"
            )
    print(
        "ovh: median over rounds (example) or frame pairs (in-process) of C time / Python time - 1"
    )
    print(
        "in-process with >1 thread: both runtimes' thread pools share one process and spin after "
        "each run, so those figures are pessimistic for both; prefer the example columns."
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
