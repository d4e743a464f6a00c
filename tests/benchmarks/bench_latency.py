"""ORT CPU latency of a compress run's stage models, measured interleaved for fair ratios.

    python tests/benchmarks/bench_latency.py RUN_DIR [--size 270x480] [--threads 2] [--rounds 15] [--block 4] [--json out.json]

Each round times every model once (after warm-up), so slow phases of a shared machine hit all
models alike; the table gives per-model medians and the ratio to the FP32 median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from edgesr.runtime.runners import OnnxRuntimeRunner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--size", default="270x480")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=4, help="frames per model per round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    manifest = json.loads((args.run / "manifest.json").read_text())
    runners = {
        s["stage"]: OnnxRuntimeRunner(args.run / s["onnx"], threads=args.threads)
        for s in manifest["stages"]
    }
    for r in runners.values():
        r.activate()
    frame = np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)
    for r in runners.values():
        for _ in range(3):
            r.infer(frame)
        r.inference_times.clear()
    # Each round runs every model in a block of --block frames and keeps all but the first:
    # an idle ORT session's worker threads keep spinning for a while after its last frame,
    # and with threads > 1 they would steal the cores from the next model's first frame.
    for _ in range(args.rounds):
        for r in runners.values():
            for i in range(args.block):
                r.infer(frame)
                if i == 0 and args.block > 1:
                    r.inference_times.pop()
    med = {k: statistics.median(r.inference_times) * 1000 for k, r in runners.items()}
    base = med.get("fp32")
    print(
        f"ORT CPU, {args.threads} threads, LR {h}x{w}, {args.rounds} interleaved rounds of "
        f"{args.block} frames per model (medians; first frame of each block dropped)"
    )
    print(f"{'stage':<10} {'p50 ms':>8} {'vs fp32':>8}")
    rows = []
    for k, v in med.items():
        ratio = base / v if base else float("nan")
        rows.append({"stage": k, "p50_ms": v, "speedup_vs_fp32": ratio})
        print(f"{k:<10} {v:8.1f} {ratio:7.2f}x")
    if args.json:
        if args.json.exists():
            print(f"error: {args.json} exists", file=sys.stderr)
            return 5
        args.json.write_text(
            json.dumps(
                {
                    "size": [h, w],
                    "threads": args.threads,
                    "rounds": args.rounds,
                    "block": args.block,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
