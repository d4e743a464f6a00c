"""ORT CPU latency of a compress run's stage models (or any ONNX files), one process per timing.

    python tests/benchmarks/bench_latency.py RUN_DIR [MORE.onnx ...] [--size 270x480]
        [--threads 2] [--rounds 5] [--frames 30] [--json out.json]

Each round times every model in a fresh process: ``--frames`` frames after warm-up, median
kept. The table gives, per model, the median over rounds of those medians, their spread, and
the ratio to the FP32 median of the same run.

Why a process per timing: with ``threads > 1``, an ORT session's idle worker threads keep
spinning for a while after its last frame. Timed side by side in one process, the sessions
took the cores from each other, and how much depended on the order and on how fast each
model was (ESPCN x4 INT8 at 2 threads read 13.8-15.3 ms interleaved, 10.9 ms alone).
Rounds still alternate the models, so slow phases of a shared machine hit all of them alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _child(path: Path, threads: int, size: tuple[int, int], frames: int) -> int:
    from edgesr.runtime.runners import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path, threads=threads)
    runner.activate()
    frame = np.random.default_rng(0).random((1, runner.num_channels, *size), dtype=np.float32)
    for _ in range(5):
        runner.infer(frame)
    runner.inference_times.clear()
    for _ in range(frames):
        runner.infer(frame)
    print(json.dumps([t * 1000 for t in runner.inference_times]))
    return 0


def _models(inputs: list[Path]) -> dict[str, Path]:
    """Stage name -> ONNX path: a run directory's manifest stages, or files by their stem."""
    models: dict[str, Path] = {}
    for item in inputs:
        if item.is_dir():
            manifest = json.loads((item / "manifest.json").read_text())
            for s in manifest["stages"]:
                models[s["stage"] if len(inputs) == 1 else f"{item.name}/{s['stage']}"] = (
                    item / s["onnx"]
                )
        else:
            name = item.stem if item.stem not in models else f"{item.parent.name}/{item.stem}"
            models[name] = item
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", type=Path, nargs="+", help="compress run dirs and/or ONNX files")
    parser.add_argument("--size", default="270x480")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=30, help="timed frames per process")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    if args.child:
        return _child(args.inputs[0], args.threads, (h, w), args.frames)
    if args.json and args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5
    models = _models(args.inputs)
    medians: dict[str, list[float]] = {k: [] for k in models}
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        for name, path in models.items():
            cmd = [sys.executable, __file__, str(path), "--child", "--size", args.size]
            cmd += ["--threads", str(args.threads), "--frames", str(args.frames)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"error: timing {path} failed:\n{done.stderr}", file=sys.stderr)
                return 1
            medians[name].append(statistics.median(json.loads(done.stdout.splitlines()[-1])))
    med = {k: statistics.median(v) for k, v in medians.items()}
    base = med.get("fp32", next(iter(med.values())))
    print(
        f"ORT CPU, {args.threads} threads, LR {h}x{w}: median over {args.rounds} rounds of the "
        f"median of {args.frames} frames, one process per model and round "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'model':<28} {'p50 ms':>8} {'spread ms':>13} {'vs fp32':>8}")
    rows = []
    for k, v in med.items():
        lo, hi = min(medians[k]), max(medians[k])
        rows.append(
            {
                "model": k,
                "onnx": str(models[k]),
                "p50_ms": v,
                "round_medians_ms": medians[k],
                "speedup_vs_fp32": base / v,
            }
        )
        print(f"{k:<28} {v:8.2f} {lo:6.2f}-{hi:<6.2f} {base / v:7.2f}x")
    if args.json:
        payload = {
            "size": [h, w],
            "threads": args.threads,
            "rounds": args.rounds,
            "frames": args.frames,
            "baseline": "fp32" if "fp32" in med else next(iter(med)),
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
