"""The Y-PSNR a Jetson user will see from a compress run's TensorRT INT8 models, predicted here.

    python tests/benchmarks/bench_trt_int8.py RUN_DIR [--data-root DIR] [--json out.json]

For every int8-qdq ONNX of ``RUN_DIR/manifest.json`` (the TensorRT layout), mean Y-PSNR on
Set5 and Set14 (standard SR protocol, edgesr.evaluate) under:

* ``ort``: ONNX Runtime's default session on this CPU (what ``edgesr compress`` reports);
* ``trt-fp32``: edgesr.export.trt_reference, TensorRT's INT8 fusion arithmetic with the float
  layers in FP32: a strongly typed engine (TensorRT >= 10, JetPack 6.1+);
* ``trt-fp16``: the same with the float layers in FP16: TensorRT 8.x ``--int8 --fp16``
  (JetPack 5.1 / 6.0) and DLA builds;

next to the run's FP32 model under ONNX Runtime. The benchmark sets come from
``--data-root``, else ``$EDGESR_BENCHMARKS``, else ``../shared/data/benchmarks``; they are only
measured on (never trained, tuned or picked on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SETS = ("Set5", "Set14")
ROUTES = ("ort", "trt-fp32", "trt-fp16")


def default_root() -> Path:
    env = os.environ.get("EDGESR_BENCHMARKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "benchmarks"


def _mean_psnr(runner, pairs, scale: int) -> float:
    from edgesr.evaluate import evaluate

    return evaluate(runner, pairs, scale=scale, bicubic=False).mean["psnr_y"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="an `edgesr compress` run directory")
    parser.add_argument("--data-root", type=Path, default=default_root())
    parser.add_argument("--json", type=Path, help="write results here (refuses to overwrite)")
    args = parser.parse_args(argv)
    if args.json and args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5
    manifest_path = args.run / "manifest.json"
    if not manifest_path.is_file():
        print(f"error: {manifest_path} not found; pass an `edgesr compress` run", file=sys.stderr)
        return 3
    for name in SETS:
        if not (args.data_root / name).is_dir():
            print(
                f"error: {args.data_root / name} not found; pass --data-root (or set "
                "EDGESR_BENCHMARKS) to a folder with Set5/ and Set14/",
                file=sys.stderr,
            )
            return 3

    from edgesr.evaluate import resolve_eval_data
    from edgesr.export.onnx_export import read_onnx_metadata
    from edgesr.export.trt_reference import TrtInt8Reference
    from edgesr.runtime.runners import ONNX_COLOR, CallableRunner, OnnxRuntimeRunner

    rows = json.loads(manifest_path.read_text())["stages"]
    fp32 = next((r for r in rows if r["stage"] == "fp32"), rows[0])
    qdq = [r for r in rows if "int8-qdq" in r["stage"]]
    if not qdq:
        print(f"error: {manifest_path} lists no int8-qdq model", file=sys.stderr)
        return 3
    meta = read_onnx_metadata(args.run / fp32["onnx"])
    scale, color = int(meta["edgesr.scale"]), ONNX_COLOR[meta["edgesr.color"]]
    sets = {name: resolve_eval_data(str(args.data_root / name), scale=scale) for name in SETS}

    t0 = time.perf_counter()
    base = {
        n: _mean_psnr(OnnxRuntimeRunner(args.run / fp32["onnx"], threads=2), p, scale)
        for n, p in sets.items()
    }
    psnr: dict[str, dict[str, dict[str, float]]] = {}
    for row in qdq:
        path = args.run / row["onnx"]
        runners = {"ort": lambda path=path: OnnxRuntimeRunner(path, threads=2)}
        for route in ("trt-fp32", "trt-fp16"):
            ref = TrtInt8Reference(path, float_precision=route.removeprefix("trt-"))
            runners[route] = lambda ref=ref, route=route: CallableRunner(
                ref.run, scale=scale, color=color, name=route
            )
        psnr[row["stage"]] = {
            route: {n: _mean_psnr(make(), p, scale) for n, p in sets.items()}
            for route, make in runners.items()
        }

    print(
        f"{args.run}: Y-PSNR (dB) on {', '.join(SETS)}, Δ vs {fp32['stage']} (ORT) "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'model':<20}{'route':<10}" + "".join(f"{n:>18}" for n in SETS))
    print(f"{fp32['stage']:<20}{'ort':<10}" + "".join(f"{base[n]:>18.3f}" for n in SETS))
    for stage, by_route in psnr.items():
        for route in ROUTES:
            got = by_route[route]
            cells = "".join(f"{got[n]:10.3f} ({got[n] - base[n]:+.3f})" for n in SETS)
            print(f"{stage:<20}{route:<10}{cells}")
    if args.json:
        payload = {
            "run": str(args.run),
            "data_root": str(args.data_root),
            "sets": {n: [p.name for p in pairs] for n, pairs in sets.items()},
            "routes": {
                "ort": "ONNX Runtime default session, this CPU",
                "trt-fp32": "TensorRT INT8 reference, float layers FP32 (strongly typed, TRT >= 10)",
                "trt-fp16": "TensorRT INT8 reference, float layers FP16 (TRT 8.x --int8 --fp16, DLA)",
            },
            "fp32": {"stage": fp32["stage"], "psnr_y": base},
            "int8_qdq": {
                stage: {
                    route: {"psnr_y": got, "delta_vs_fp32": {n: got[n] - base[n] for n in SETS}}
                    for route, got in by_route.items()
                }
                for stage, by_route in psnr.items()
            },
        }
        from edgesr.outputs import atomic_write_bytes

        atomic_write_bytes(args.json, (json.dumps(payload, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
